"""`StagnationCallback(stop_on_stall=True)`: ends a run that cannot learn, never a healthy one."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402

import tb_stagnation  # noqa: E402
from tb_stagnation import StagnationCallback  # noqa: E402
from tb_stagnation.callback.stall_stopper import StallStopper  # noqa: E402

EPOCHS = 12


def fit_scenario(name: str, log_dir: str, **options):
    """The scenario's model and data, with `stop_on_stall=True` and EPOCHS epochs."""
    scenario = SCENARIOS[name]
    keras.utils.set_random_seed(1)
    spec = scenario.build()
    model = spec.pop("model")
    model.compile(**spec.pop("compile"))
    callback = StagnationCallback(log_dir=log_dir, stop_on_stall=True, **options)
    kwargs = {"batch_size": 32, "verbose": 0, **spec}
    history = model.fit(epochs=EPOCHS, callbacks=[callback], **kwargs)
    return callback, history


def test_a_learning_rate_of_1e_7_is_stopped_with_the_finding(tmp_path, capsys):
    callback, history = fit_scenario("learning_rate_too_small", str(tmp_path / "run"))
    out = capsys.readouterr().out
    epochs = len(history.history["loss"])
    assert epochs < EPOCHS
    assert epochs == callback.patience  # stalled from epoch 0: stopped once confirmed
    assert callback.stopped_epoch == epochs - 1
    assert "stopping training after epoch" in out
    assert "learning_rate_too_small" in out and "Fix:" in out
    # The report of the logs agrees with what was printed.
    report = tb_stagnation.analyze(str(tmp_path))["runs"][0]
    assert report["findings"][0]["code"] == "learning_rate_too_small"
    assert report["stalled_epochs"][-1] == callback.stopped_epoch


def test_patience_delays_the_stop(tmp_path, capsys):
    callback, history = fit_scenario("learning_rate_too_small", str(tmp_path), patience=5)
    assert len(history.history["loss"]) == 5
    assert callback.stopped_epoch == 4


@pytest.mark.parametrize("name", ["healthy", "healthy_early_plateau"])
def test_a_healthy_run_is_never_stopped(tmp_path, capsys, name):
    callback, history = fit_scenario(name, str(tmp_path))
    assert len(history.history["loss"]) == EPOCHS
    assert callback.stopped_epoch is None
    assert "stopping training" not in capsys.readouterr().out


def test_patience_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="patience"):
            StagnationCallback(log_dir="unused", stop_on_stall=True, patience=bad)


def test_the_run_so_far_is_what_the_reader_would_deliver():
    stopper = StallStopper(patience=3)

    class Model:
        stop_training = False

    for epoch, loss in enumerate([1.1, 1.1, 1.1]):
        stopper.on_epoch_end(
            Model(),
            epoch,
            {"logs/loss": loss, "optimizer/learning_rate": 1e-3},
            {"layers/grad_norm": np.array([0.1, 0.2])},
            np.array([10.0, 10.0]),
            None,
            None,
        )
    run = stopper.run_data(None, {"labels": {"count": 3}})
    assert list(run.epochs) == [0, 1, 2]
    assert run.scalars["logs/loss"].tolist() == [1.1, 1.1, 1.1]
    assert run.layer_stats["layers/grad_norm"].shape == (3, 2)
    assert run.class_counts.shape == (3, 2) and run.preflight == {"labels": {"count": 3}}
