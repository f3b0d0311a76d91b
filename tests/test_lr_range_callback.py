"""`StagnationCallback(lr_range_test=True)`: the LR range test, run by the callback.

Real training on the scenarios of tests/scenarios.py. The test must run once
per fit, at the first epoch whose analysis names the learning rate, on rows
the callback kept itself; log its record; print the suggested rate (with the
stop message under stop_on_stall); and cost the default callback nothing.
Whether the suggestion makes a restarted run learn: tests/test_lr_range_restart.py.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from scenarios import BATCH, SCENARIOS, _seed  # noqa: E402

import tb_stagnation  # noqa: E402
from tb_stagnation import StagnationCallback  # noqa: E402
from tb_stagnation.callback import lr_range_trigger  # noqa: E402
from tb_stagnation.callback.first_batch import TappedRecorder  # noqa: E402
from tb_stagnation.callback.lr_range_trigger import CAPTURE_ROWS, RangeCapture  # noqa: E402
from tb_stagnation.overfit import fmt_rate  # noqa: E402
from tb_stagnation.summary import tags  # noqa: E402

EPOCHS = 6
# The scenarios whose top finding is the learning rate.
RATE_CAUSES = ["learning_rate_too_small", "learning_rate_too_large"]


def fit_scenario(name: str, log_dir: str, epochs: int = EPOCHS, extra=(), **options):
    """The scenario's model and data with our callback; returns (callback, history, model)."""
    scenario = SCENARIOS[name]
    keras.utils.set_random_seed(_seed(name))
    spec = scenario.build()
    model = spec.pop("model")
    model.compile(**spec.pop("compile"))
    callback = StagnationCallback(log_dir=log_dir, **options)
    callbacks = list(spec.pop("callbacks", [])) + [callback, *extra]
    history = model.fit(epochs=epochs, callbacks=callbacks, batch_size=BATCH, verbose=0, **spec)
    return callback, history, model


def logged_records(log_dir: str) -> list:
    """The steps at which an `lr_range` record was written under `log_dir/stagnation`."""
    from tensorboard.backend.event_processing import event_file_loader

    steps = []
    run_dir = os.path.join(log_dir, tags.RUN_SUBDIR)
    for name in sorted(os.listdir(run_dir)):
        if "tfevents" not in name:
            continue
        for event in event_file_loader.EventFileLoader(os.path.join(run_dir, name)).Load():
            steps.extend(int(event.step) for v in event.summary.value if v.tag == tags.LR_RANGE)
    return steps


@pytest.mark.parametrize("name", RATE_CAUSES)
def test_the_test_runs_once_when_the_rate_is_the_cause_and_says_the_number(tmp_path, capsys, name):
    callback, history, _ = fit_scenario(name, str(tmp_path), lr_range_test=True)
    out = capsys.readouterr().out
    # stop_on_stall is off: training goes on to the end.
    assert len(history.history["loss"]) == EPOCHS and callback.stopped_epoch is None
    trigger = callback._lr_trigger
    assert trigger.code == name and trigger.ran_at_epoch is not None
    result = callback.lr_range_result
    assert result is not None and result.verdict == "suggested", result
    # Swept on the rows the callback kept: the first 512 training samples.
    x, y = trigger.capture.rows()
    assert len(x) == len(y) == CAPTURE_ROWS
    # Printed once, with the number, and "checked" only because it was checked.
    rate = fmt_rate(result.suggested_lr)
    assert out.count("An LR range test on this model suggests") == 1, out
    assert f"suggests {rate} (" in out
    assert trigger.checked is not None and trigger.checked.passed
    assert "Checked: with learning rate" in out
    assert trigger.seconds < 10
    # Logged once, at the epoch it ran.
    assert logged_records(str(tmp_path)) == [trigger.ran_at_epoch]


def test_the_logged_record_puts_the_number_into_the_findings_fix(tmp_path, capsys):
    callback, _, _ = fit_scenario("learning_rate_too_small", str(tmp_path), lr_range_test=True)
    rate = fmt_rate(callback.lr_range_result.suggested_lr)
    report = tb_stagnation.analyze(str(tmp_path))["runs"][0]
    top = report["findings"][0]
    assert top["code"] == "learning_rate_too_small"
    assert rate in top["fix"], top["fix"]


def test_stop_on_stall_runs_it_and_its_message_names_the_number(tmp_path, capsys):
    callback, history, _ = fit_scenario(
        "learning_rate_too_small", str(tmp_path), epochs=12, stop_on_stall=True
    )
    out = capsys.readouterr().out
    assert callback.stopped_epoch is not None and len(history.history["loss"]) < 12
    result = callback.lr_range_result
    assert result is not None and result.suggested_lr is not None
    stop = out[out.index("stopping training after epoch") :]
    # One message: the stop block carries the sentence (not printed twice).
    assert f"suggests {fmt_rate(result.suggested_lr)} (" in stop
    assert out.count("An LR range test on this model") == 1


def test_stop_on_stall_with_lr_range_test_false_runs_no_test(tmp_path, capsys):
    callback, _, _ = fit_scenario(
        "learning_rate_too_small", str(tmp_path), stop_on_stall=True, lr_range_test=False
    )
    assert callback.stopped_epoch is not None
    assert callback._lr_trigger is None and callback.lr_range_result is None
    assert "LR range test" not in capsys.readouterr().out


class _WhatTheStepFeeds(keras.callbacks.Callback):
    """Looks, during fit, at what hooks.py feeds each step (our recorder, or a tap)."""

    def __init__(self, ours: StagnationCallback) -> None:
        super().__init__()
        self.ours = ours
        self.seen: list = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(self.ours._hooks.recorder if self.ours._hooks else None)


def test_the_default_callback_keeps_no_rows_and_runs_no_test(tmp_path, capsys):
    for options in ({}, {"stop_on_stall": True, "lr_range_test": False}):
        keras.utils.set_random_seed(0)
        spec = SCENARIOS["learning_rate_too_small"].build()
        model = spec.pop("model")
        model.compile(**spec.pop("compile"))
        ours = StagnationCallback(log_dir=str(tmp_path / str(len(options))), **options)
        probe = _WhatTheStepFeeds(ours)
        model.fit(epochs=2, callbacks=[ours, probe], batch_size=BATCH, verbose=0, **spec)
        assert ours._lr_trigger is None
        assert probe.seen and all(
            feeds is not None and not _taps_rows(feeds) for feeds in probe.seen
        )
        assert "lr_range" not in " ".join(v.name for v in model.variables)
    # With the option, the step feeds the tap.
    ours = StagnationCallback(log_dir=str(tmp_path / "on"), lr_range_test=True)
    probe = _WhatTheStepFeeds(ours)
    keras.utils.set_random_seed(0)
    spec = SCENARIOS["healthy"].build()
    model = spec.pop("model")
    model.compile(**spec.pop("compile"))
    model.fit(epochs=1, callbacks=[ours, probe], batch_size=BATCH, verbose=0, **spec)
    assert _taps_rows(probe.seen[0])


def _taps_rows(recorder) -> bool:
    """Whether the step's recorder copies rows for the LR range test."""
    while isinstance(recorder, TappedRecorder):
        if isinstance(recorder.capture, RangeCapture):
            return True
        recorder = recorder._recorder
    return False


def _string_model_and_data():
    rng = np.random.default_rng(0)
    words = np.array(["red", "green", "blue", "cyan"])
    picks = rng.integers(0, 4, size=256)
    x = {"word": words[picks].reshape(-1, 1), "size": rng.normal(size=(256, 1)).astype("float32")}
    y = (picks % 2).astype("int32")
    word = keras.Input((1,), dtype="string", name="word")
    size = keras.Input((1,), name="size")
    lookup = keras.layers.StringLookup(vocabulary=list(words), output_mode="one_hot")(word)
    hidden = keras.layers.Dense(8, activation="relu")(
        keras.layers.Concatenate()([keras.layers.Flatten()(lookup), size])
    )
    output = keras.layers.Dense(2, activation="softmax")(hidden)
    model = keras.Model({"word": word, "size": size}, output)
    # A rate far too small, so a test would be wanted if it could run.
    model.compile(keras.optimizers.Adam(1e-7), "sparse_categorical_crossentropy")
    import tensorflow as tf

    # Keras takes string inputs as tensors (a tf.data pipeline, as text data comes).
    return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


def test_inputs_it_cannot_keep_warn_once_and_training_completes(tmp_path, capsys):
    model, data = _string_model_and_data()
    callback = StagnationCallback(log_dir=str(tmp_path), lr_range_test=True)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = model.fit(data, epochs=4, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 4
    ours = [str(r.message) for r in records if "lr_range_test=True" in str(r.message)]
    assert len(ours) == 1, ours
    assert "string, not numbers" in ours[0] and "skipped" in ours[0]
    assert not [r for r in records if "internal error" in str(r.message)]
    assert callback.lr_range_result is None
    # Implied by stop_on_stall (not asked for): no warning.
    model, data = _string_model_and_data()
    callback = StagnationCallback(log_dir=str(tmp_path / "quiet"), stop_on_stall=True)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model.fit(data, epochs=1, verbose=0, callbacks=[callback])
    assert not [r for r in records if "lr_range_test" in str(r.message)]


def test_a_failure_of_the_test_is_one_warning_and_training_goes_on(tmp_path, capsys, monkeypatch):
    def broken(self, model, x, y):
        raise RuntimeError("injected failure")

    # Fault injection: the real training runs, only the sweep is made to fail.
    monkeypatch.setattr(lr_range_trigger.LRRangeTrigger, "_sweep", broken)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        callback, history, _ = fit_scenario(
            "learning_rate_too_small", str(tmp_path), epochs=12, stop_on_stall=True
        )
    ours = [str(r.message) for r in records if "StagnationCallback" in str(r.message)]
    assert len(ours) == 1 and "injected failure" in ours[0], ours
    # stop_on_stall still did its job, without the number.
    assert callback.stopped_epoch is not None and len(history.history["loss"]) < 12
    assert "stopping training after epoch" in capsys.readouterr().out


def test_lr_range_test_must_be_a_bool_or_none():
    for bad in ("yes", 1, 0.5):
        with pytest.raises(ValueError, match="lr_range_test"):
            StagnationCallback(log_dir="unused", lr_range_test=bad)
