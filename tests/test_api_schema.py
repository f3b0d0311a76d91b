"""Real answers of /runs, /report and /series against the API's JSON Schema.

`tb_stagnation/plugin/http_api.schema.json` is the contract between the
plugin and the tab (http_api.md says so). The tab's side is checked by
`npm test` in frontend/ (scripts/check-schema.mjs: every object of the schema
is a TypeScript interface with the same fields); this is the backend's side.
The logdir is made the way users make it: Keras models trained with
`StagnationCallback` (one that learns, one stuck at a learning rate of 1e-7,
one blown up by a rate of 10), a plain `keras.callbacks.TensorBoard` run, and
a run with a learning-rate range test's record. TensorBoard's own data
provider and WSGI app serve the plugin (plugin_support.ServedPlugin).

`jsonschema` is not a dependency of this project, so a small validator below
covers the keywords the schema uses, and a test fails when the schema starts
using one it does not know.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plugin_support import ServedPlugin, train_keras_run

import tb_stagnation

SCHEMA_PATH = Path(tb_stagnation.__file__).parent / "plugin" / "http_api.schema.json"
RUNS = {
    "learns": 1e-2,
    "stuck_lr_1e-7": 1e-7,
    "blown_up_lr_10": 10.0,
}
LR_RUN = "with_lr_range"
KERAS_RUN = "plain_keras"

# -- a validator for the subset of JSON Schema (2020-12) the contract uses -----

KNOWN_KEYWORDS = {
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "enum",
    "anyOf",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
    "exclusiveMinimum",
}
# Keywords whose value is a schema, a list of schemas or a map of schemas.
_SUBSCHEMA = {"additionalProperties", "items"}
_SUBSCHEMA_LIST = {"anyOf"}
_SUBSCHEMA_MAP = {"properties", "$defs"}


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise AssertionError(f"unknown type {name!r} in the schema")


def validate(value: Any, schema: dict, root: dict, path: str = "$") -> list[str]:
    """Every way `value` breaks `schema`, as "<json path>: <why>" lines."""
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        return validate(value, root["$defs"][ref[len("#/$defs/") :]], root, path)
    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, name) for name in names):
            return [f"{path}: {_show(value)} is not {' or '.join(names)}"]
    if "enum" in schema and not any(
        value == option and type(value) is type(option) for option in schema["enum"]
    ):
        errors.append(f"{path}: {_show(value)} is not one of {schema['enum']}")
    if "anyOf" in schema:
        results = [validate(value, option, root, path) for option in schema["anyOf"]]
        if all(results):
            errors.append(
                f"{path}: {_show(value)} matches none of anyOf: "
                + " | ".join(result[0] for result in results)
            )
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{path}: {value} <= exclusiveMinimum {schema['exclusiveMinimum']}")
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f"{path}: {value} is not a JSON number")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: required {key!r} is missing")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                errors += validate(item, properties[key], root, where)
            elif extra is False:
                errors.append(f"{path}: {key!r} is not in the schema")
            elif isinstance(extra, dict):
                errors += validate(item, extra, root, where)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += validate(item, schema["items"], root, f"{path}[{index}]")
    return errors


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def keywords(schema: Any) -> set[str]:
    """Every keyword used anywhere in the schema."""
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, sub in schema.items():
        if key in _SUBSCHEMA:
            found |= keywords(sub)
        elif key in _SUBSCHEMA_LIST:
            for item in sub:
                found |= keywords(item)
        elif key in _SUBSCHEMA_MAP:
            for item in sub.values():
                found |= keywords(item)
    return found


def assert_valid(value: Any, definition: str, schema: dict) -> None:
    errors = validate(value, {"$ref": f"#/$defs/{definition}"}, schema)
    assert not errors, f"{definition}:\n  " + "\n  ".join(errors[:20])


# -- the logdir -----------------------------------------------------------------


def _data(n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = ((x[:, 0] + x[:, 1]) > 0).astype("int64")
    return x, y


def _model(learning_rate: float):
    import keras

    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(8, activation="tanh", name="hidden_2"),
            keras.layers.Dense(2, activation="softmax", name="output"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _train(log_dir: str, learning_rate: float, epochs: int = 5):
    import keras

    from tb_stagnation import StagnationCallback

    keras.utils.set_random_seed(0)
    x, y = _data()
    model = _model(learning_rate)
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=32,
        validation_split=0.25,
        verbose=0,
        callbacks=[StagnationCallback(log_dir=log_dir)],
    )
    return model


def write_lr_range(log_dir: str, model, epoch: int | None) -> None:
    """The run's range-test record, written the way users write it."""
    x, y = _data()
    if "log_dir" in inspect.signature(tb_stagnation.lr_range_test).parameters:
        tb_stagnation.lr_range_test(model, x, y, steps=30, log_dir=log_dir)
        return
    # Before lr_range_test(..., log_dir=) existed: its record writer directly.
    from tb_stagnation.summary.lr_range_record import write_lr_range_record

    write_lr_range_record(log_dir, tb_stagnation.lr_range_test(model, x, y, steps=30), epoch)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("schema_logdir")
    for run, rate in RUNS.items():
        _train(str(root / run), rate)
    model = _train(str(root / LR_RUN), 1e-7, epochs=3)
    write_lr_range(str(root / LR_RUN), model, 2)
    train_keras_run(str(root / KERAS_RUN))
    return str(root)


@pytest.fixture(scope="module")
def served(logdir) -> ServedPlugin:
    return ServedPlugin(logdir)


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _q(run: str) -> str:
    return urllib.parse.quote(run, safe="")


ALL_RUNS = [*RUNS, LR_RUN, KERAS_RUN]


# -- the tests ------------------------------------------------------------------


def test_the_schema_uses_only_what_the_validator_checks(schema):
    assert keywords(schema) <= KNOWN_KEYWORDS, keywords(schema) - KNOWN_KEYWORDS
    for route in ("RunsResponse", "Report", "Series", "ErrorBody"):
        assert schema["$defs"][route]["type"] == "object"
    # Every $ref points at a definition.
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[-1])
            for sub in node.values():
                walk(sub)
        elif isinstance(node, list):
            for sub in node:
                walk(sub)

    walk(schema)
    assert refs <= set(schema["$defs"]), refs - set(schema["$defs"])


def test_the_validator_rejects_what_the_schema_forbids(schema):
    good = {
        "run": "r",
        "source": "callback",
        "epochs": 3,
        "status": "healthy",
        "healthy": True,
        "stalled_epochs": 0,
        "top_finding": None,
        "updated": 1.0,
    }
    assert validate(good, schema["$defs"]["RunInfo"], schema) == []
    for broken in (
        {**good, "status": "sleepy"},  # enum
        {**good, "epochs": 2.5},  # integer
        {**good, "healthy": 1},  # a number is not a boolean
        {**good, "surprise": 1},  # additionalProperties: false
        {key: value for key, value in good.items() if key != "updated"},  # required
    ):
        assert validate(broken, schema["$defs"]["RunInfo"], schema), broken
    value = schema["$defs"]["Value"]
    for ok in (1.5, None, "NaN", "Infinity", "-Infinity"):
        assert validate(ok, value, schema) == [], ok
    for bad in ("nan", "1.5", True, [1]):
        assert validate(bad, value, schema), bad


def test_runs_answer_matches_the_schema(served, schema):
    body = served.get_json("/runs")
    assert_valid(body, "RunsResponse", schema)
    assert {row["run"] for row in body["runs"]} == set(ALL_RUNS)


@pytest.mark.parametrize("run", ALL_RUNS)
def test_report_answer_matches_the_schema(served, schema, run):
    assert_valid(served.get_json(f"/report?run={_q(run)}"), "Report", schema)


@pytest.mark.parametrize("run", ALL_RUNS)
def test_series_answer_matches_the_schema(served, schema, run):
    assert_valid(served.get_json(f"/series?run={_q(run)}"), "Series", schema)


def test_the_data_exercise_the_schema(served, schema):
    """The runs above reach the schema's optional parts, or the checks prove little."""
    reports = {run: served.get_json(f"/report?run={_q(run)}") for run in ALL_RUNS}
    assert any(r["findings"] for r in reports.values())
    assert any(r["stall_windows"] for r in reports.values())
    series = served.get_json(f"/series?run={_q('learns')}")
    assert series["layers"] and series["layers"]["weight_norm"]
    assert series["global"] and series["predictions"]
    assert served.get_json(f"/series?run={_q(KERAS_RUN)}")["layers"] is None


def test_series_carries_the_lr_range_record(served, schema):
    record = served.get_json(f"/series?run={_q(LR_RUN)}")["lr_range"]
    assert record is not None
    assert_valid(record, "LrRange", schema)
    assert len(record["losses"]) == len(record["learning_rates"]) > 0
    assert record["message"]
    for run in RUNS:
        assert served.get_json(f"/series?run={_q(run)}")["lr_range"] is None


def test_the_lr_range_fields_are_the_records(schema):
    # /series passes on exactly the record's documented fields (FORMAT.md).
    from tb_stagnation.summary import lr_range_record

    lr_range = schema["$defs"]["LrRange"]
    assert set(lr_range["properties"]) == set(lr_range_record.FIELDS)
    assert lr_range["properties"]["verdict"]["enum"] == list(lr_range_record.VERDICTS)


@pytest.mark.parametrize(
    ("url", "status"),
    [("/report", 400), ("/series?run=no_such_run", 404), ("/report?run=%", 400)],
)
def test_error_answers_match_the_schema(served, schema, url, status):
    assert_valid(served.get_json(url, status=status), "ErrorBody", schema)


def test_the_schema_ships_with_the_package():
    # setup.py's package_data lists it beside http_api.md; the plugin folder holds both.
    assert SCHEMA_PATH.is_file() and (SCHEMA_PATH.parent / "http_api.md").is_file()
    assert os.path.getsize(SCHEMA_PATH) > 1000
