"""The `lr_range` record (FORMAT.md): an LR range test written into a run's log_dir,
read back by both of TensorBoard's loaders and the plugin, and used by the report.

Real Keras training and real `lr_range_test` sweeps (a second or two each),
TensorBoard's real data providers (its Rust data server and its Python
multiplexer) and the plugin served by TensorBoard's WSGI app.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import math
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from plugin_support import ServedPlugin, train_keras_run, write_callback_run  # noqa: E402
from scenarios import BATCH, SCENARIOS, _seed  # noqa: E402

from tb_stagnation import StagnationCallback  # noqa: E402
from tb_stagnation.analysis.api import analyze  # noqa: E402
from tb_stagnation.cli import main  # noqa: E402
from tb_stagnation.lr_range import LRRangeResult, lr_range_test  # noqa: E402
from tb_stagnation.overfit import fmt_rate  # noqa: E402
from tb_stagnation.reader.logdir import open_logdir  # noqa: E402
from tb_stagnation.summary import metadata, tags  # noqa: E402
from tb_stagnation.summary.lr_range_record import (  # noqa: E402
    MAX_CURVE_POINTS,
    lr_range_record,
    write_lr_range_record,
)
from tb_stagnation.summary.writer import SummaryWriter  # noqa: E402

LOADERS = [pytest.param(True, id="rust_data_server"), pytest.param(False, id="python_multiplexer")]
RATE_CODES = ("learning_rate_too_small", "learning_rate_too_large")


def compiled(name: str) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """The scenario's model, compiled as the scenario compiles it, and its data."""
    keras.utils.set_random_seed(_seed(name))
    spec = SCENARIOS[name].build()
    model = spec.pop("model")
    model.compile(**spec.pop("compile"))
    return model, spec["x"], spec["y"]


def train(name: str, log_dir: str, epochs: int, callbacks=()) -> tuple:
    """Train the scenario's model with StagnationCallback (then `callbacks`)."""
    model, x, y = compiled(name)
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=BATCH,
        verbose=0,
        callbacks=[StagnationCallback(log_dir=log_dir), *callbacks],
    )
    return model, x, y


def read_all(logdir: str, use_data_server: bool) -> dict:
    with open_logdir(logdir, use_data_server=use_data_server) as source:
        return {run.name: run for run in source.read_runs(source.list_runs())}


def as_stored(result: LRRangeResult, epoch: int | None) -> dict:
    """The record as JSON makes it (tuples become lists, etc.)."""
    return json.loads(json.dumps(lr_range_record(result, epoch), allow_nan=False))


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(list(argv))
    return status, out.getvalue()


def one_line(text: str) -> str:
    """Text with the CLI's wrapping undone."""
    return " ".join(text.split())


# ---------------------------------------------------------------- round trip


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory) -> tuple[str, dict]:
    """A callback run, a plain-Keras run and an empty folder, each with a record."""
    root = str(tmp_path_factory.mktemp("lr_range_round_trip"))
    model, x, y = compiled("healthy")
    result = lr_range_test(model, x, y, steps=40)
    expected = {}
    # The callback's run, then a record of a test that ran after its epoch 2.
    write_callback_run(os.path.join(root, "callback"), epochs=5)
    write_lr_range_record(os.path.join(root, "callback"), result, 2)
    expected["callback"] = as_stored(result, 2)
    # Keras's own TensorBoard logs beside a test run on its own.
    keras_dir = os.path.join(root, "keras")
    train_keras_run(keras_dir, epochs=3)
    result = lr_range_test(model, x, y, steps=40, log_dir=keras_dir)
    expected["keras"] = as_stored(result, None)
    # A test before any training: the run exists with no epoch yet.
    result = lr_range_test(model, x, y, steps=40, log_dir=os.path.join(root, "before"))
    expected["before"] = as_stored(result, None)
    return root, expected


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_the_record_round_trips_through_both_readers(three_runs, use_data_server):
    root, expected = three_runs
    runs = read_all(root, use_data_server)
    assert sorted(runs) == ["before", "callback", "keras"]
    for name, record in expected.items():
        assert runs[name].lr_range == record, name
        assert not any("LR range" in note for note in runs[name].notes), runs[name].notes
    assert runs["callback"].source == "callback" and runs["callback"].num_epochs == 5
    # The record does not turn Keras's run into an (empty) callback run.
    assert runs["keras"].source == "keras" and runs["keras"].num_epochs == 3
    assert runs["before"].num_epochs == 0
    assert runs["callback"].lr_range["epoch"] == 2 and runs["keras"].lr_range["epoch"] is None


def test_series_carries_the_record_as_stored(three_runs):
    root, expected = three_runs
    served = ServedPlugin(root)
    for name, record in expected.items():
        series = served.get_json(f"/series?run={name}")
        assert series["lr_range"] == json.loads(json.dumps(record)), name
        # A curve of its own: one loss per rate, however many epochs the run has.
        assert len(series["lr_range"]["losses"]) == len(series["lr_range"]["learning_rates"])
    assert served.get_json("/runs")["runs"]  # the runs list still answers


def test_a_later_record_supersedes_an_earlier_one(tmp_path):
    log_dir = str(tmp_path / "run")
    write_callback_run(log_dir, epochs=6)
    model, x, y = compiled("healthy")
    first = lr_range_test(model, x, y, steps=20)
    second = lr_range_test(model, x, y, steps=30)
    write_lr_range_record(log_dir, first, 1)
    write_lr_range_record(log_dir, second, 4)  # the highest step wins
    for use_data_server in (True, False):
        record = read_all(str(tmp_path), use_data_server)["run"].lr_range
        assert record["epoch"] == 4 and record["steps"] == 30
    write_lr_range_record(log_dir, first, 4)  # a tie: the last written wins
    for use_data_server in (True, False):
        record = read_all(str(tmp_path), use_data_server)["run"].lr_range
        assert record["epoch"] == 4 and record["steps"] == 20
    # A test run on its own after the fit's (step 0 after step 4) is the last
    # word too, for both loaders alike (the data server keeps only it).
    write_lr_range_record(log_dir, second, None)
    for use_data_server in (True, False):
        record = read_all(str(tmp_path), use_data_server)["run"].lr_range
        assert record["epoch"] is None and record["steps"] == 30


def test_a_record_written_during_fit_goes_into_the_fits_file(tmp_path):
    """TensorBoard's Python loader never returns to an older file of a folder:
    a record in a file of its own mid-fit would hide the fit's later epochs
    from a TensorBoard that was watching during the fit."""
    log_dir = str(tmp_path / "run")
    model, x, y = compiled("healthy")
    result = lr_range_test(model, x, y, steps=20)
    watching = []

    class WriteAfterEpoch1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                write_lr_range_record(log_dir, result, epoch)
            if epoch == 2:  # TensorBoard loads the folder while the fit goes on
                watching.append(ServedPlugin(str(tmp_path)))

    train("healthy", log_dir, epochs=5, callbacks=[WriteAfterEpoch1()])
    assert len(glob.glob(os.path.join(log_dir, tags.RUN_SUBDIR, "*tfevents*"))) == 1
    served = watching[0]
    assert served.get_json("/series?run=run")["epochs"] == [0, 1, 2]
    served.reload(str(tmp_path))
    series = served.get_json("/series?run=run")
    assert series["epochs"] == [0, 1, 2, 3, 4]
    assert series["lr_range"]["epoch"] == 1
    for use_data_server in (True, False):
        run = read_all(str(tmp_path), use_data_server)["run"]
        assert run.epochs.tolist() == [0, 1, 2, 3, 4] and run.lr_range["epoch"] == 1


def test_a_record_before_training_does_not_shift_the_fits_epochs(tmp_path):
    log_dir = str(tmp_path / "run")
    model, x, y = compiled("healthy")
    lr_range_test(model, x, y, steps=20, log_dir=log_dir)
    train("healthy", log_dir, epochs=3)
    run = read_all(str(tmp_path), False)["run"]
    assert run.epochs.tolist() == [0, 1, 2] and run.lr_range["epoch"] is None


def test_a_failed_write_is_a_warning_and_the_result_is_returned(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    model, x, y = compiled("healthy")
    with pytest.warns(RuntimeWarning, match="could not write"):
        result = lr_range_test(model, x, y, steps=20, log_dir=str(blocked))
    assert result.verdict in ("suggested", "never_falls") and result.losses


# ------------------------------------------------------------------ the report


@pytest.fixture(scope="module")
def too_small(tmp_path_factory) -> tuple[str, LRRangeResult]:
    """Adam at 1e-7 (it stalls), then the range test written beside it."""
    root = str(tmp_path_factory.mktemp("lr_range_too_small"))
    log_dir = os.path.join(root, "too_small")
    model, x, y = train("learning_rate_too_small", log_dir, epochs=8)
    result = lr_range_test(model, x, y, log_dir=log_dir)
    assert result.verdict == "suggested", result
    return root, result


def test_a_rate_too_small_gets_the_suggested_rate_as_its_fix(too_small):
    root, result = too_small
    rate = fmt_rate(result.suggested_lr)
    report = analyze(root)["runs"][0]
    finding = report["findings"][0]
    assert finding["code"] == "learning_rate_too_small", report["findings"]
    assert f"An LR range test on this model (run outside fit()) suggests {rate}" in finding["fix"]
    assert "restart with that rate" in finding["fix"]
    # The ceiling named is the one the test measured.
    if result.divergence_lr is not None:
        assert f"diverged above {fmt_rate(result.divergence_lr)}" in finding["fix"]
    else:
        assert f"did not diverge up to {fmt_rate(result.max_lr)}" in finding["fix"]
    assert f"An LR range test run outside fit() suggests {rate}." in finding["evidence"]
    # It raises the rate: the suggestion is far above the 1e-7 that stalled.
    assert result.suggested_lr > 100 * 1e-7


def test_the_cli_prints_the_suggested_rate(too_small):
    root, result = too_small
    rate = fmt_rate(result.suggested_lr)
    status, out = run_cli("report", root)
    assert status == 1
    assert f"suggests {rate}" in one_line(out)
    status, out = run_cli("report", root, "--json")
    fixes = [f["fix"] for run in json.loads(out)["runs"] for f in run["findings"]]
    assert any(f"suggests {rate}" in fix for fix in fixes), fixes


def test_a_rate_too_large_gets_the_suggested_rate_after_the_epoch_it_ran(tmp_path):
    """SGD at 10, and a test after its epoch 5 as the callback writes one."""
    log_dir = str(tmp_path / "too_large")
    model, x, y = train("learning_rate_too_large", log_dir, epochs=6)
    result = lr_range_test(model, x, y, reinitialize=True)
    assert result.verdict == "suggested" and result.suggested_lr < 1.0, result
    write_lr_range_record(log_dir, result, 5)
    finding = analyze(str(tmp_path))["runs"][0]["findings"][0]
    assert finding["code"] == "learning_rate_too_large"
    rate = fmt_rate(result.suggested_lr)
    assert finding["fix"].startswith(
        f"An LR range test on this model (run after epoch 5) suggests {rate} ("
    )
    assert f"An LR range test run after epoch 5 suggests {rate}." in finding["evidence"]


def test_a_healthy_run_with_a_record_gets_no_finding(tmp_path):
    log_dir = str(tmp_path / "healthy")
    model, x, y = train("healthy", log_dir, epochs=6)
    result = lr_range_test(model, x, y, log_dir=log_dir)
    assert result.verdict == "suggested", result
    report = analyze(str(tmp_path))["runs"][0]
    assert report["healthy"] and report["findings"] == [], report["findings"]
    assert read_all(str(tmp_path), True)["healthy"].lr_range["verdict"] == "suggested"
    # Whatever the verdict says, a healthy run stays healthy.
    failing = LRRangeResult(
        verdict="never_falls",
        suggested_lr=None,
        divergence_lr=None,
        learning_rates=[1e-3, 1e-2],
        losses=[1.1, 1.1],
        smoothed=[1.1, 1.1],
        message="the loss never falls at any rate: the learning rate is not the problem.",
    )
    write_lr_range_record(log_dir, failing, 5)
    report = analyze(str(tmp_path))["runs"][0]
    assert report["healthy"] and report["findings"] == [], report["findings"]
    assert read_all(str(tmp_path), False)["healthy"].lr_range["verdict"] == "never_falls"


def test_another_verdict_adds_what_the_test_found_without_advice(tmp_path):
    log_dir = str(tmp_path / "too_small")
    train("learning_rate_too_small", log_dir, epochs=8)
    never = LRRangeResult(
        verdict="never_falls",
        suggested_lr=None,
        divergence_lr=None,
        learning_rates=[1e-7, 1e-6],
        losses=[1.1, 1.1],
        smoothed=[1.1, 1.1],
        message="the loss never falls at any rate from 1e-7 to 10",
    )
    write_lr_range_record(log_dir, never, 7)
    finding = analyze(str(tmp_path))["runs"][0]["findings"][0]
    assert finding["code"] == "learning_rate_too_small"
    assert (
        "An LR range test run after epoch 7 found: the loss never falls at any rate from 1e-7 "
        "to 10." in finding["evidence"]
    )
    assert "LR range" not in finding["fix"]


# ------------------------------------------------------------------ malformed


def write_raw_record(log_dir: str, payload, step: int = 3) -> None:
    """A record value as a foreign or damaged writer could leave it: `payload`
    is the tensor's value (a bytes string, or any numpy array)."""
    writer = SummaryWriter(os.path.join(log_dir, tags.RUN_SUBDIR))
    array = payload if isinstance(payload, np.ndarray) else np.array(payload, dtype=object)
    writer._add(step, [writer._value(tags.LR_RANGE, metadata.KIND_LR_RANGE, array)], None)
    writer.close()


def valid_record() -> dict:
    return as_stored(
        LRRangeResult(
            verdict="suggested",
            suggested_lr=3e-3,
            divergence_lr=0.1,
            learning_rates=[1e-4, 1e-3, 1e-2],
            losses=[1.1, 0.9, 0.5],
            smoothed=[1.1, 0.9, 0.5],
            steepest_lr=3e-3,
            min_loss_lr=1e-2,
            message="suggested learning rate 3e-3.",
        ),
        4,
    )


def malformed_records() -> dict:
    bad_types = valid_record()
    bad_types["suggested_lr"] = "3e-3"
    bad_curve = valid_record()
    bad_curve["losses"] = [1.1, "x", 0.5]
    short = valid_record()
    short["losses"] = [1.1]
    negative = valid_record()
    negative["learning_rates"][0] = -1.0
    with_nan = json.dumps(valid_record()).replace('"suggested_lr": 0.003', '"suggested_lr": NaN')
    unknown_verdict = valid_record()
    unknown_verdict["verdict"] = "try_harder"
    missing = valid_record()
    del missing["divergence_lr"]
    huge = valid_record()
    count = MAX_CURVE_POINTS + 1
    huge.update(learning_rates=[1e-3] * count, losses=[1.0] * count, smoothed=[1.0] * count)
    assert "NaN" in with_nan
    return {
        "not_json": b"{not json",
        "not_utf8": b"\xff\xfe{}",
        "a_list": json.dumps([1, 2]).encode(),
        "wrong_types": json.dumps(bad_types).encode(),
        "bad_curve": json.dumps(bad_curve).encode(),
        "short_curve": json.dumps(short).encode(),
        "negative_rate": json.dumps(negative).encode(),
        "nan": with_nan.encode(),
        "unknown_verdict": json.dumps(unknown_verdict).encode(),
        "missing_field": json.dumps(missing).encode(),
        "too_many_points": json.dumps(huge).encode(),
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "floats": np.array([1.0, 2.0], dtype=np.float32),
        "two_strings": np.array([b"{}", b"{}"], dtype=object),
    }


@pytest.fixture(scope="module")
def malformed(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("lr_range_malformed"))
    for name, payload in malformed_records().items():
        log_dir = os.path.join(root, name)
        write_callback_run(log_dir, epochs=6, stall_from=2)
        write_raw_record(log_dir, payload)
    return root


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_a_malformed_record_is_ignored_with_a_note(malformed, use_data_server):
    runs = read_all(malformed, use_data_server)
    assert sorted(runs) == sorted(malformed_records())
    for name, run in runs.items():
        assert run.lr_range is None, name
        assert run.num_epochs == 6 and run.error is None, name
        assert any("LR range test record" in n or tags.LR_RANGE in n for n in run.notes), (
            name,
            run.notes,
        )


def test_a_malformed_record_gives_null_in_series_and_a_plain_report(malformed):
    served = ServedPlugin(malformed)
    for name in malformed_records():
        assert served.get_json(f"/series?run={name}")["lr_range"] is None, name
        report = served.get_json(f"/report?run={name}")
        assert "error" not in report, (name, report.get("error"))
        assert any("LR range" in n or tags.LR_RANGE in n for n in report["notes"]), name
        for finding in report["findings"]:
            assert "LR range" not in finding["fix"] + finding["evidence"], name


def test_a_valid_record_beside_the_malformed_ones_is_read(tmp_path):
    """The check is not simply rejecting everything: the same writer path
    with a well-formed payload is read and reaches the report."""
    log_dir = str(tmp_path / "ok")
    write_callback_run(log_dir, epochs=6, stall_from=2)
    write_raw_record(log_dir, json.dumps(valid_record(), allow_nan=False).encode())
    for use_data_server in (True, False):
        run = read_all(str(tmp_path), use_data_server)["ok"]
        assert run.lr_range == valid_record() and not any("LR range" in n for n in run.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = analyze(str(tmp_path))["runs"][0]
    rate_findings = [f for f in report["findings"] if f["code"] in RATE_CODES]
    for finding in rate_findings:
        assert "suggests 3e-3" in finding["fix"]


def test_no_nan_reaches_series_from_a_hand_made_run():
    from tb_stagnation.analysis.run_data import RunData
    from tb_stagnation.plugin.series import build_series

    record = valid_record()
    record["reference_loss"] = math.nan
    run = RunData(name="r", source="callback", epochs=np.arange(0), lr_range=record)
    series = build_series(run, {})
    assert series["lr_range"]["reference_loss"] == "NaN"
    assert series["lr_range"]["suggested_lr"] == 3e-3
