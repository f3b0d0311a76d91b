"""`tb_stagnation.overfit_check` and the callback's `overfit_check=True`, on real models."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from callback_support import read_run  # noqa: E402

import tb_stagnation  # noqa: E402
from tb_stagnation import StagnationCallback  # noqa: E402
from tb_stagnation.callback.preflight import PreflightWarning  # noqa: E402
from tb_stagnation.overfit import (  # noqa: E402
    CURVE_POINTS,
    NEAR_ZERO,
    OverfitCheckError,
    OverfitResult,
    overfit_check,
)
from tb_stagnation.summary import tags  # noqa: E402

FEATURES = 10
RNG = np.random.default_rng(5)
X = RNG.normal(size=(64, FEATURES)).astype("float32")
Y = RNG.integers(0, 3, 64).astype("int32")  # random labels: only memorising fits them


def mlp(units=3, activation="softmax", trainable=True) -> keras.Model:
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(units, activation=activation),
        ]
    )
    for layer in model.layers:
        layer.trainable = trainable
    return model


def state(model) -> list:
    """Every weight and optimizer variable of the model, as numpy."""
    optimizer = [v.numpy().copy() for v in model.optimizer.variables]
    return [w.copy() for w in model.get_weights()] + optimizer


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_healthy_mlp_can_overfit_and_is_left_untouched():
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, verbose=0)  # a model with optimizer state
    before = state(model)
    result = tb_stagnation.overfit_check(model, X, Y)
    assert isinstance(result, OverfitResult)
    assert result.passed and result.verdict == "passed", result
    assert result.samples == 20
    assert result.curve[0] == result.initial_loss and len(result.curve) == result.epochs
    assert result.final_loss < result.initial_loss
    assert result.final_loss <= NEAR_ZERO * result.reference_loss or result.accuracy == 1.0
    assert same(before, state(model))
    assert "can overfit" in str(result) and "passed=True" in repr(result)
    # The model still trains normally afterwards.
    model.fit(X, Y, epochs=1, verbose=0)
    assert not same(before, state(model))


def test_a_model_with_every_layer_frozen_cannot():
    model = mlp(trainable=False)
    model.compile("adam", "sparse_categorical_crossentropy")
    before = state(model)
    result = overfit_check(model, X, Y)
    assert not result.passed and result.verdict == "stuck"
    assert result.trainable_weights == 0
    assert "no trainable weights" in result.message
    assert same(before, state(model))


def test_targets_a_sigmoid_cannot_reach_cannot_be_fitted():
    # Regression targets 0..100 into one sigmoid unit: the output tops out at 1.
    model = mlp(1, "sigmoid")
    model.compile("adam", "mse")
    result = overfit_check(model, X, RNG.uniform(0, 100, 64).astype("float32"), max_epochs=150)
    assert not result.passed and result.verdict == "stuck", result
    assert result.best_loss > 0.5 * result.reference_loss


def test_labels_outside_0_1_never_pass_on_a_falling_loss():
    model = mlp(1, "sigmoid")
    model.compile("adam", "binary_crossentropy")
    result = overfit_check(model, X, (Y % 2 + 1).astype("float32"), max_epochs=300)
    assert not result.passed and result.verdict in ("negative", "slow", "stuck"), result


def test_a_tf_data_dataset_and_fresh_weights():
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(8)
    result = overfit_check(model, dataset, samples=12, reinitialize=True)
    assert result.samples == 12 and "fresh initialisation" in result.message


def test_what_it_cannot_check_is_said_clearly():
    class Opaque(keras.Model):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def call(self, x):
            return self.layer(x)

    opaque = Opaque(keras.layers.Dense(3, activation="softmax"))
    opaque.compile("adam", "sparse_categorical_crossentropy")
    opaque(X[:1])
    with pytest.raises(OverfitCheckError, match="get_config"):
        overfit_check(opaque, X, Y)
    with pytest.raises(OverfitCheckError, match="compile"):
        overfit_check(mlp(), X, Y)
    with pytest.raises(ValueError, match="samples"):
        overfit_check(mlp(), X, Y, samples=0)


def test_the_json_form_is_thinned_and_strict():
    result = OverfitResult(
        passed=False,
        verdict="slow",
        samples=20,
        epochs=500,
        initial_loss=1.1,
        final_loss=0.5,
        best_loss=0.5,
        reference_loss=1.0,
        reference="constant predictor",
        accuracy=None,
        curve=list(np.linspace(1.1, 0.5, 500)) + [float("nan")],
    )
    data = result.to_json()
    assert len(data["curve"]) <= CURVE_POINTS
    assert data["curve"][0] == pytest.approx(1.1) and data["curve"][-1] is None
    json.dumps(data, allow_nan=False)


def _fit_with_callback(tmp_path, capsys, model, epochs=2):
    model.compile("adam", "sparse_categorical_crossentropy")
    log_dir = str(tmp_path / "run")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = model.fit(
            X,
            Y,
            epochs=epochs,
            batch_size=32,
            verbose=0,
            callbacks=[StagnationCallback(log_dir=log_dir, overfit_check=True)],
        )
    found = [str(r.message) for r in records if issubclass(r.category, PreflightWarning)]
    return history, found, capsys.readouterr().out, log_dir


def test_the_callback_runs_it_on_request_and_the_report_says_so(tmp_path, capsys):
    model = mlp(trainable=False)
    history, found, _, log_dir = _fit_with_callback(tmp_path, capsys, model)
    assert len(history.history["loss"]) == 2  # training went on
    assert len(found) == 1 and "overfit_failure" in found[0] and "frozen_layers" in found[0]
    points = read_run(log_dir).tensors[tags.PREFLIGHT]
    record = json.loads(points[max(points)].item().decode("utf-8"))
    assert record["overfit"]["passed"] is False and record["overfit"]["samples"] == 20
    codes = [f["code"] for f in tb_stagnation.analyze(str(tmp_path))["runs"][0]["findings"]]
    assert "overfit_failure" in codes and codes[0] == "frozen_layers"


def test_the_callback_prints_a_pass_and_warns_nothing(tmp_path, capsys):
    model = mlp()
    before = model.get_weights()
    history, found, out, _ = _fit_with_callback(tmp_path, capsys, model, epochs=1)
    assert found == []
    assert "can overfit" in out
    # Only the user's own training changed the weights: one epoch of 2 steps.
    assert int(model.optimizer.iterations.numpy()) == 2
    assert not same(before, model.get_weights())
    codes = [f["code"] for f in tb_stagnation.analyze(str(tmp_path))["runs"][0]["findings"]]
    assert "overfit_failure" not in codes


def test_exported_lazily_from_the_package():
    import subprocess
    import sys

    assert tb_stagnation.overfit_check is overfit_check
    assert tb_stagnation.PreflightWarning is PreflightWarning
    code = (
        "import sys, tb_stagnation; tb_stagnation.overfit_check; tb_stagnation.PreflightWarning;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
