"""The pre-flight checks: real Keras models with each bug, and healthy ones that stay silent.

Every model trains for one epoch on 128 synthetic samples (4 batches of 32):
the pre-flight decides after the first batch, or at the first epoch's end
when "all labels one class" must wait for more labels.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from callback_support import read_run  # noqa: E402

import tb_stagnation  # noqa: E402
from tb_stagnation import StagnationCallback  # noqa: E402
from tb_stagnation.analysis import preflight as checks  # noqa: E402
from tb_stagnation.analysis.detectors import label_encoding  # noqa: E402
from tb_stagnation.analysis.report import analyze_run  # noqa: E402
from tb_stagnation.analysis.run_data import RunData  # noqa: E402
from tb_stagnation.callback.preflight import PreflightWarning  # noqa: E402
from tb_stagnation.summary import tags  # noqa: E402

SAMPLES = 128
FEATURES = 10
RNG = np.random.default_rng(7)
X = RNG.normal(size=(SAMPLES, FEATURES)).astype("float32")
CLASSES = (X[:, :3].argmax(axis=1)).astype("int32")  # learnable, balanced-ish


def mlp(units: int, activation: str | None, trainable: bool = True) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(units, activation=activation),
        ]
    )
    for layer in model.layers:
        layer.trainable = trainable
    return model


@dataclass
class Outcome:
    warnings: list  # PreflightWarning messages
    error: Exception | None
    log_dir: str
    output: str  # what was printed (stdout + stderr)
    where: list  # (file, line) each PreflightWarning points at


def train(
    tmp_path, capsys, model, loss, x, y, epochs=1, batch_size=32, shuffle=True, **options
) -> Outcome:
    keras.utils.set_random_seed(3)
    model.compile(optimizer="adam", loss=loss)
    log_dir = str(tmp_path / "run")
    error = None
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        try:
            model.fit(
                x,
                y,
                epochs=epochs,
                batch_size=batch_size,
                shuffle=shuffle,
                verbose=0,
                callbacks=[StagnationCallback(log_dir=log_dir, **options)],
            )
        except Exception as caught:  # Keras refusing the labels is part of some cases
            error = caught
    captured = capsys.readouterr()
    ours = [r for r in records if issubclass(r.category, PreflightWarning)]
    where = [(r.filename, r.lineno) for r in ours]
    return Outcome(
        [str(r.message) for r in ours], error, log_dir, captured.out + captured.err, where
    )


def onehot(ids, classes):
    return np.eye(classes, dtype="float32")[ids]


# (model, loss, x, y, code, words the printed evidence must hold, Keras refuses the labels)
BUGS = {
    "binary_loss_on_a_softmax": (
        lambda: mlp(10, "softmax"),
        "binary_crossentropy",
        X,
        onehot(RNG.integers(0, 10, SAMPLES), 10),
        "loss_output_mismatch",
        "10-unit softmax",
        False,
    ),
    "categorical_loss_with_integer_labels": (
        lambda: mlp(3, "softmax"),
        "categorical_crossentropy",
        X,
        CLASSES,
        "loss_output_mismatch",
        "class ids of shape (32,)",
        True,
    ),
    "sparse_loss_with_onehot_labels": (
        lambda: mlp(3, "softmax"),
        "sparse_categorical_crossentropy",
        X,
        onehot(CLASSES, 3),
        "loss_output_mismatch",
        "one-hot encoded",
        True,
    ),
    "binary_labels_coded_1_and_2": (
        lambda: mlp(1, "sigmoid"),
        "binary_crossentropy",
        X,
        (CLASSES % 2 + 1).astype("int32"),
        "loss_output_mismatch",
        "range over 1 to 2",
        False,
    ),
    "regression_targets_into_a_sigmoid": (
        lambda: mlp(1, "sigmoid"),
        "mse",
        X,
        RNG.uniform(0, 100, SAMPLES).astype("float32"),
        "loss_output_mismatch",
        "uses sigmoid",
        False,
    ),
    "negative_targets_into_a_relu": (
        lambda: mlp(1, "relu"),
        "mse",
        X,
        -RNG.uniform(1, 5, SAMPLES).astype("float32"),
        "loss_output_mismatch",
        "uses relu",
        False,
    ),
    "labels_all_one_class": (
        lambda: mlp(1, "sigmoid"),
        "binary_crossentropy",
        X,
        np.zeros(SAMPLES, "float32"),
        "constant_labels",
        "are class 0",
        False,
    ),
    "inputs_all_the_same": (
        lambda: mlp(3, "softmax"),
        "sparse_categorical_crossentropy",
        np.ones_like(X),
        CLASSES,
        "constant_inputs",
        "Every input entry",
        False,
    ),
    "inputs_of_huge_magnitude": (
        lambda: mlp(3, "softmax"),
        "sparse_categorical_crossentropy",
        X * 1e6,
        CLASSES,
        "unscaled_inputs",
        "Inputs reach |x|",
        False,
    ),
    "no_trainable_weights": (
        lambda: mlp(3, "softmax", trainable=False),
        "sparse_categorical_crossentropy",
        X,
        CLASSES,
        "frozen_layers",
        "0 of",
        False,
    ),
}


@pytest.mark.parametrize("name", list(BUGS))
def test_each_bug_is_reported_once_before_training_goes_on(tmp_path, capsys, name):
    build, loss, x, y, code, words, refused = BUGS[name]
    outcome = train(tmp_path, capsys, build(), loss, x, y)
    assert (outcome.error is not None) == refused, outcome.error
    assert len(outcome.warnings) == 1, outcome.warnings
    block = outcome.warnings[0]
    assert block.startswith("tb_stagnation pre-flight:")
    assert f"  {code}" in block, block
    assert words in " ".join(block.split()), block
    assert "Fix:" in block
    # Logged for the tab and the report, with the facts the checks used.
    record = _record(outcome.log_dir)
    assert code in [f["code"] for f in record["findings"]]
    assert record["format_version"] == 1


@pytest.mark.parametrize(
    "loss, units, activation, y",
    [
        ("sparse_categorical_crossentropy", 3, "softmax", CLASSES),
        ("categorical_crossentropy", 3, "softmax", onehot(CLASSES, 3)),
        ("binary_crossentropy", 1, "sigmoid", (CLASSES == 0).astype("float32")),
        ("mse", 1, None, (X[:, 0] * 20 + 50).astype("float32")),
        ("mse", 1, "sigmoid", RNG.uniform(0, 1, SAMPLES).astype("float32")),
    ],
    ids=["sparse", "onehot", "binary", "regression", "targets_in_sigmoid_range"],
)
def test_healthy_models_pass_silently(tmp_path, capsys, loss, units, activation, y):
    outcome = train(tmp_path, capsys, mlp(units, activation), loss, X, y)
    assert outcome.error is None
    assert outcome.warnings == []
    assert "pre-flight" not in outcome.output
    record = _record(outcome.log_dir)
    assert record.get("findings", []) == []
    assert record["labels"]["count"] > 0 and record["inputs"]["std"] > 0


def test_an_imbalanced_data_set_does_not_look_like_one_class(tmp_path, capsys):
    # 3% positives, none in the first 4 batches (shuffled, a batch of 32 has none
    # with probability 0.38): the check waits for more labels instead of
    # calling the first batch's single class "all labels".
    rng = np.random.default_rng(11)
    x = rng.normal(size=(1024, FEATURES)).astype("float32")
    y = np.zeros(1024, "float32")
    y[128 + rng.choice(1024 - 128, 31, replace=False)] = 1.0
    outcome = train(tmp_path, capsys, mlp(1, "sigmoid"), "binary_crossentropy", x, y, shuffle=False)
    assert outcome.warnings == []
    assert _record(outcome.log_dir)["samples"] > 128


def test_the_warning_points_at_the_users_fit_call(tmp_path, capsys):
    # Not at a line of tb_stagnation or Keras: at `model.fit(` in `train` above.
    model, loss, x, y, *_ = BUGS["binary_loss_on_a_softmax"]
    outcome = train(tmp_path, capsys, model(), loss, x, y)
    assert outcome.where, outcome.output
    fit_line = next(
        number
        for number, line in enumerate(open(__file__, encoding="utf-8"), start=1)
        if line.strip() == "model.fit("
    )
    for filename, line in outcome.where:
        assert filename == __file__
        assert fit_line <= line <= fit_line + 8  # the call's lines


def test_preflight_false_checks_nothing(tmp_path, capsys):
    build, loss, x, y, *_ = BUGS["binary_labels_coded_1_and_2"]
    outcome = train(tmp_path, capsys, build(), loss, x, y, preflight=False)
    assert outcome.warnings == []
    assert tags.PREFLIGHT not in read_run(outcome.log_dir).tensors


def test_printed_once_per_fit_and_logged_with_the_facts(tmp_path, capsys):
    build, loss, x, y, *_ = BUGS["binary_labels_coded_1_and_2"]
    outcome = train(tmp_path, capsys, build(), loss, x, y, epochs=3)
    assert len(outcome.warnings) == 1
    record = _record(outcome.log_dir)
    labels = record["labels"]
    assert (labels["min"], labels["max"], labels["non_integer"]) == (1.0, 2.0, 0)
    assert labels["shape"] in ([None], [32]) and labels["dtype"] == "int32"
    assert record["batches"] >= 1 and record["samples"] >= 32


def test_findings_reach_the_report_once_and_the_report_route(tmp_path, capsys):
    build, loss, x, y, *_ = BUGS["binary_labels_coded_1_and_2"]
    outcome = train(tmp_path, capsys, build(), loss, x, y, epochs=3)
    report = tb_stagnation.analyze(str(tmp_path))["runs"][0]
    mismatch = [f for f in report["findings"] if f["code"] == "loss_output_mismatch"]
    assert len(mismatch) == 1 and "range over 1 to 2" in mismatch[0]["evidence"]
    assert report["findings"][0]["code"] == "loss_output_mismatch"
    assert not report["healthy"]

    from plugin_support import ServedPlugin

    served = ServedPlugin(str(tmp_path)).get_json("/report?run=run")
    assert [f["code"] for f in served["findings"]] == [f["code"] for f in report["findings"]]
    assert outcome.error is None


def test_a_refused_first_step_still_leaves_the_record(tmp_path, capsys):
    build, loss, x, y, *_ = BUGS["categorical_loss_with_integer_labels"]
    outcome = train(tmp_path, capsys, build(), loss, x, y)
    assert isinstance(outcome.error, ValueError)  # Keras's own shape error, after ours
    record = _record(outcome.log_dir)
    assert record["labels"]["shape"] in ([None], [32])
    # No epoch was logged: the report shows what the pre-flight printed.
    run = RunData(
        name="refused",
        source="callback",
        epochs=np.zeros(0, np.int64),
        model_card=read_run(outcome.log_dir).card(),
        preflight=record,
    )
    codes = [f["code"] for f in analyze_run(run)["findings"]]
    assert codes.count("loss_output_mismatch") == 1
    # The reader lists such a run too, so the CLI and the tab show it.
    (listed,) = tb_stagnation.analyze(str(tmp_path))["runs"]
    assert listed["epochs"] == 0 and not listed["healthy"]
    assert listed["findings"][0]["code"] == "loss_output_mismatch"


# ------------------------------------------------------------- pure parts


def _card(loss, width, activation, name="out"):
    return {
        "loss": loss,
        "stats_output": name,
        "outputs": [{"name": name, "shape": [None, width], "activation": activation, "loss": loss}],
    }


@pytest.mark.parametrize(
    "card, labels, expected",
    [
        (_card("sparse_categorical_crossentropy", 3, "softmax"), {"shape": [None]}, None),
        (_card("categorical_crossentropy", 3, "softmax"), {"shape": [None, 3]}, None),
        (_card("categorical_crossentropy", 3, "softmax"), {"shape": [None, 1]}, "one-hot"),
        (_card("sparse_categorical_crossentropy", 4, "softmax"), {"shape": [None, 4]}, "one-hot"),
        (
            _card("sparse_categorical_crossentropy", 3, "softmax"),
            {"shape": [None], "count": 8, "min": 0, "max": 5, "non_integer": 0},
            "class ids 0 to 2",
        ),
        (
            _card("binary_crossentropy", 1, "sigmoid"),
            {"shape": [None], "count": 8, "min": 0, "max": 9, "non_integer": 0},
            "10-class problem",
        ),
        (
            _card("binary_crossentropy", 1, "sigmoid"),
            {"shape": [None], "count": 8, "min": 0, "max": 1, "non_integer": 0},
            None,
        ),
        (
            _card("mean_squared_error", 1, "tanh"),
            {"shape": [None], "count": 8, "min": -3, "max": 3, "mean": 0},
            "uses tanh",
        ),
        (
            _card("mean_squared_error", 1, "tanh"),
            {"shape": [None], "count": 8, "min": -1.1, "max": 0.9, "mean": 0},
            "uses tanh",  # a little out of range: a warning
        ),
        (
            _card("mean_squared_error", 1, None),
            {"shape": [None], "count": 8, "min": -300, "max": 900, "mean": 1},
            None,
        ),
    ],
)
def test_label_encoding_check(card, labels, expected):
    problem = label_encoding.check(card, labels)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem.evidence + problem.fix


def test_slightly_out_of_range_targets_are_a_warning():
    card = _card("mean_squared_error", 1, "tanh")
    problem = label_encoding.check(
        card, {"shape": [None], "count": 8, "min": -1.1, "max": 0.9, "mean": 0}
    )
    assert problem.severity == "warning"


def test_stored_findings_only_stand_in_for_a_run_without_epochs():
    stored = {
        "code": "constant_labels",
        "severity": "error",
        "confidence": 0.97,
        "evidence": "All 512 labels are class 0.",
        "fix": "Check the labels.",
    }
    empty = RunData(
        name="r", source="callback", epochs=np.zeros(0, np.int64), preflight={"findings": [stored]}
    )
    assert [f["code"] for f in analyze_run(empty)["findings"]] == ["constant_labels"]
    one_epoch = RunData(
        name="r",
        source="callback",
        epochs=np.array([0]),
        scalars={tags.logs_tag("loss"): np.array([0.5])},
        preflight={"findings": [stored]},
    )
    assert analyze_run(one_epoch)["findings"] == []


def test_needs_more_labels():
    assert checks.needs_more_labels([32.0, 0.0], None, 32)
    assert not checks.needs_more_labels([32.0, 0.0], None, checks.LABELS_TO_CONFIRM)
    assert not checks.needs_more_labels([30.0, 2.0], None, 32)
    assert checks.needs_more_labels(None, 0.0, 32)
    assert not checks.needs_more_labels(None, 1.5, 32)


def _record(log_dir: str) -> dict:
    points = read_run(log_dir).tensors[tags.PREFLIGHT]
    newest = points[max(points)]
    return json.loads(newest.item().decode("utf-8"))
