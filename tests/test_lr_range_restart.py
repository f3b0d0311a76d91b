"""The rate the callback's LR range test suggests makes a restarted run learn.

For each scenario of tests/scenarios.py whose learning rate is the cause (too
small, too large, and a schedule that collapsed it to 1e-9), the run is
trained with `StagnationCallback(stop_on_stall=True)`, which runs the test
when it stops; then a fresh model (same architecture, same seed, same
optimizer class) is trained at the suggested rate, and its final training
loss must end below the constant predictor's (the label entropy,
`analysis.baselines.entropy`, which the report shows as the baseline). On the
healthy twins no test runs, and the test called directly on the rows the
callback kept suggests a rate within 10x of the one that worked.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from scenarios import BATCH, SCENARIOS, _seed  # noqa: E402

from tb_stagnation import StagnationCallback, lr_range_test  # noqa: E402
from tb_stagnation.analysis.baselines import entropy  # noqa: E402

# Epochs of the restarted run (the scenarios train 14; 5 are enough to be
# clearly below the baseline, and keep the file short).
RESTART_EPOCHS = 5


def constant_predictor_loss(y: np.ndarray) -> float:
    """The best constant prediction's cross-entropy: the entropy of the class shares."""
    counts = np.bincount(np.asarray(y).reshape(-1))
    return entropy(counts / counts.sum())


def build(name: str):
    keras.utils.set_random_seed(_seed(name))
    spec = SCENARIOS[name].build()
    model = spec.pop("model")
    compile_kwargs = spec.pop("compile")
    return model, compile_kwargs, spec


def stalled_run(name: str, log_dir: str, **options) -> tuple[StagnationCallback, keras.Model]:
    model, compile_kwargs, spec = build(name)
    model.compile(**compile_kwargs)
    callback = StagnationCallback(log_dir=log_dir, **options)
    callbacks = list(spec.pop("callbacks", [])) + [callback]
    model.fit(
        epochs=SCENARIOS[name].epochs, callbacks=callbacks, batch_size=BATCH, verbose=0, **spec
    )
    return callback, model


def restarted_loss(name: str, rate: float) -> float:
    """A fresh model of the scenario, its optimizer class at `rate`, no schedule."""
    model, compile_kwargs, spec = build(name)
    optimizer = type(keras.optimizers.get(compile_kwargs["optimizer"]))(learning_rate=rate)
    model.compile(optimizer=optimizer, loss=compile_kwargs["loss"])
    # The collapsed schedule is what the fix replaces: the restart runs at the rate.
    spec.pop("callbacks", None)
    history = model.fit(epochs=RESTART_EPOCHS, batch_size=BATCH, verbose=0, **spec)
    return float(history.history["loss"][-1])


@pytest.mark.parametrize(
    "name", ["learning_rate_too_small", "learning_rate_too_large", "lr_schedule_kill"]
)
def test_a_run_restarted_at_the_suggested_rate_learns(tmp_path, capsys, name):
    callback, _ = stalled_run(name, str(tmp_path), stop_on_stall=True)
    out = capsys.readouterr().out
    assert callback.stopped_epoch is not None, out
    result = callback.lr_range_result
    assert result is not None and result.verdict == "suggested", (result, out)
    # It ran where the training stopped, once, in well under 10 s.
    assert callback._lr_trigger.ran_at_epoch == callback.stopped_epoch
    assert callback._lr_trigger.seconds < 10
    _, _, spec = build(name)
    baseline = constant_predictor_loss(spec["y"])
    learned = restarted_loss(name, result.suggested_lr)
    assert learned < baseline, (result.suggested_lr, learned, baseline)
    # The rate that stalled, restarted the same way, does not get there: the
    # suggestion, not the restart, is what made it learn.
    own = float(keras.optimizers.get(build(name)[1]["optimizer"]).learning_rate.numpy())
    if name != "lr_schedule_kill":  # its own 0.01 learned until the schedule cut it
        assert not restarted_loss(name, own) < baseline


@pytest.mark.parametrize("name", ["healthy", "healthy_early_plateau"])
def test_healthy_twins_run_no_test_and_the_rows_kept_give_a_rate_near_the_one_that_worked(
    tmp_path, capsys, name
):
    callback, model = stalled_run(name, str(tmp_path), lr_range_test=True)
    assert callback._lr_trigger.ran_at_epoch is None and callback.lr_range_result is None
    assert "LR range test" not in capsys.readouterr().out
    worked = float(model.optimizer.learning_rate.numpy())
    # The test the callback would have run, on the same rows, from a fresh model.
    x, y = callback._lr_trigger.capture.rows()
    fresh, compile_kwargs, _ = build(name)
    fresh.compile(**compile_kwargs)
    result = lr_range_test(fresh, x, y, batch_size=BATCH)
    assert result.verdict == "suggested", result
    assert worked / 10 <= result.suggested_lr <= worked * 10, (worked, result)
