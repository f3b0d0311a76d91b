"""Small real Keras trainings, each with one cause of stagnation (or none).

A registry `SCENARIOS`: name -> `Scenario(train, expected, ...)`, where
`train(log_dir, stagnation=True, keras_tensorboard=False, epochs=None)` trains
a tiny model on synthetic numpy data (a second or two on a laptop CPU) and
logs it with `StagnationCallback` and/or `keras.callbacks.TensorBoard`;
`expected` is the code that must be the report's top finding, or "healthy".

The tests train each scenario once per session (tests/test_analysis_scenarios.py)
and the demo gallery reuses the same functions:

    from tests.scenarios import SCENARIOS
    SCENARIOS["vanishing_gradients"].train("logs/vanishing_gradients")

Every scenario seeds Python, numpy and TensorFlow, so a run is reproducible
on one machine (TensorFlow's CPU kernels may differ in the last bits elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

HEALTHY = "healthy"
SAMPLES = 512
FEATURES = 10
BATCH = 32
EPOCHS = 14


@dataclass(frozen=True)
class Scenario:
    """One training run with a known diagnosis."""

    name: str
    build: Callable[[], dict]
    expected: str  # top finding code, or "healthy"
    description: str
    # First epoch the stall must be flagged from (None: no stall expected).
    # Tests allow the flags to start up to `stall_slack` epochs later.
    stall_from: int | None = None
    stall_slack: int = 2
    epochs: int = EPOCHS

    def train(
        self,
        log_dir: str,
        *,
        stagnation: bool = True,
        keras_tensorboard: bool = False,
        epochs: int | None = None,
    ):
        """Train the scenario's model, logging to `log_dir`; returns the History."""
        keras = _keras()
        keras.utils.set_random_seed(_seed(self.name))
        spec = self.build()
        model = spec.pop("model")
        compile_kwargs = spec.pop("compile")
        model.compile(**compile_kwargs)
        callbacks = list(spec.pop("callbacks", []))
        if stagnation:
            from tb_stagnation import StagnationCallback

            callbacks.append(StagnationCallback(log_dir=log_dir))
        if keras_tensorboard:
            callbacks.append(
                keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=0, write_graph=False)
            )
        fit_kwargs = {"batch_size": BATCH, "verbose": 0}
        fit_kwargs.update(spec)
        return model.fit(epochs=epochs or self.epochs, callbacks=callbacks, **fit_kwargs)


def _seed(name: str) -> int:
    return sum(ord(c) for c in name) % 10_000


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


# --- data ------------------------------------------------------------------


def _classification(classes: int = 3, seed: int = 0):
    """Learnable synthetic classes: a linear map plus a little non-linearity."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    w = rng.normal(size=(FEATURES, classes))
    logits = x @ w + 0.5 * np.sin(3 * x[:, :classes])
    return x, logits.argmax(axis=1).astype("int32")


def _mlp(classes: int = 3, hidden=(32,), activation="relu", output=None, **dense_kwargs):
    keras = _keras()
    layers = [keras.Input((FEATURES,))]
    layers += [keras.layers.Dense(h, activation=activation, **dense_kwargs) for h in hidden]
    if output == "sigmoid":
        layers.append(keras.layers.Dense(1, activation="sigmoid"))
    else:
        layers.append(keras.layers.Dense(classes, activation="softmax"))
    return keras.Sequential(layers)


def _sparse(optimizer) -> dict:
    return {
        "optimizer": optimizer,
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
    }


def _binary(optimizer) -> dict:
    return {"optimizer": optimizer, "loss": "binary_crossentropy", "metrics": ["accuracy"]}


# --- scenarios ---------------------------------------------------------------


def _healthy() -> dict:
    keras = _keras()
    x, y = _classification()
    return {"model": _mlp(), "compile": _sparse(keras.optimizers.Adam(3e-3)), "x": x, "y": y}


def _early_plateau() -> dict:
    # Linearly separable: ~99% accuracy by epoch 2, then a flat, noisy low loss.
    keras = _keras()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = _mlp(output="sigmoid")
    return {"model": model, "compile": _binary(keras.optimizers.Adam(0.05)), "x": x, "y": y}


def _unscaled_inputs() -> dict:
    # The troubleshooting article's example: features ~1e10 into a sigmoid, SGD.
    keras = _keras()
    rng = np.random.default_rng(2)
    x = (rng.uniform(1, 2, size=(SAMPLES, 2)) * 1e10).astype("float32")
    y = (x[:, 0] + x[:, 1] > 3e10).astype("int32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    return {"model": model, "compile": _binary("sgd"), "x": x, "y": y}


def _vanishing_gradients() -> dict:
    keras = _keras()
    x, y = _classification(classes=2)
    model = _mlp(classes=2, hidden=(32,) * 8, activation="sigmoid", output="sigmoid")
    return {"model": model, "compile": _binary(keras.optimizers.SGD(0.01)), "x": x, "y": y}


def _loss_output_mismatch() -> dict:
    # binary_crossentropy on a 3-way softmax with one-hot labels (the article's Example 3).
    x, y = _classification()
    onehot = np.eye(3, dtype="float32")[y]
    return {"model": _mlp(), "compile": _binary("adam"), "x": x, "y": onehot}


def _lr_too_small() -> dict:
    keras = _keras()
    x, y = _classification()
    return {"model": _mlp(), "compile": _sparse(keras.optimizers.Adam(1e-7)), "x": x, "y": y}


def _lr_too_large() -> dict:
    keras = _keras()
    x, y = _classification()
    return {"model": _mlp(), "compile": _sparse(keras.optimizers.SGD(10.0)), "x": x, "y": y}


def _frozen_layers() -> dict:
    # `for layer in model.layers: layer.trainable = False` (forgot the [:-1]).
    x, y = _classification()
    model = _mlp(hidden=(32, 32))
    for layer in model.layers:
        layer.trainable = False
    return {"model": model, "compile": _sparse("adam"), "x": x, "y": y}


def _constant_labels() -> dict:
    x, y = _classification(classes=2)
    return {
        "model": _mlp(output="sigmoid"),
        "compile": _binary("adam"),
        "x": x,
        "y": np.zeros_like(y),
    }


def _constant_inputs() -> dict:
    x, y = _classification(classes=2)
    return {
        "model": _mlp(output="sigmoid"),
        "compile": _binary("adam"),
        "x": np.ones_like(x),
        "y": y,
    }


def _class_imbalance() -> dict:
    # 10% positives and features that carry no signal about them.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = (rng.uniform(size=SAMPLES) < 0.1).astype("int32")
    return {"model": _mlp(output="sigmoid"), "compile": _binary("adam"), "x": x, "y": y}


def _repeated_batches() -> dict:
    import tensorflow as tf

    x, y = _classification()
    dataset = tf.data.Dataset.from_tensors((x[:BATCH], y[:BATCH])).repeat()
    return {
        "model": _mlp(),
        "compile": _sparse("adam"),
        "x": dataset,
        "steps_per_epoch": SAMPLES // BATCH,
        "batch_size": None,
    }


def _lr_schedule_kill() -> dict:
    # A step schedule with a bug: from epoch 6 the rate is 1e-9.
    keras = _keras()
    x, y = _classification()

    def schedule(epoch, lr):
        return 0.01 if epoch < 6 else 1e-9

    return {
        "model": _mlp(),
        "compile": _sparse(keras.optimizers.SGD(0.01)),
        "x": x,
        "y": y,
        "callbacks": [keras.callbacks.LearningRateScheduler(schedule)],
    }


def _dead_units() -> dict:
    keras = _keras()
    x, y = _classification()
    model = _mlp(hidden=(32, 32), bias_initializer=keras.initializers.Constant(-100.0))
    return {"model": model, "compile": _sparse("adam"), "x": x, "y": y}


def _zero_gradients() -> dict:
    # kernel_initializer="zeros" in a tanh MLP: hidden units stay identical at 0.
    x, y = _classification()
    model = _mlp(hidden=(32, 32), activation="tanh", kernel_initializer="zeros")
    return {"model": model, "compile": _sparse("adam"), "x": x, "y": y}


def _exploding_gradients() -> dict:
    # Six ReLU layers initialised with stddev 1 (activations grow ~5.6x per
    # layer) and plain SGD at Keras's default rate.
    keras = _keras()
    x, y = _classification()
    model = _mlp(hidden=(64,) * 6, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0))
    return {"model": model, "compile": _sparse(keras.optimizers.SGD(0.01)), "x": x, "y": y}


_LIST = [
    Scenario("healthy", _healthy, HEALTHY, "3-class MLP, Adam 3e-3: learns steadily"),
    Scenario(
        "healthy_early_plateau",
        _early_plateau,
        HEALTHY,
        "separable data, Adam 0.05: converges by epoch 2, then a flat low loss",
    ),
    Scenario(
        "unscaled_inputs",
        _unscaled_inputs,
        "unscaled_inputs",
        "features ~1e10 into one sigmoid unit, SGD",
        stall_from=0,
    ),
    Scenario(
        "vanishing_gradients",
        _vanishing_gradients,
        "vanishing_gradients",
        "8 sigmoid layers, SGD 0.01",
        stall_from=0,
    ),
    Scenario(
        "loss_output_mismatch",
        _loss_output_mismatch,
        "loss_output_mismatch",
        "binary_crossentropy on a 3-way softmax",
    ),
    Scenario(
        "learning_rate_too_small",
        _lr_too_small,
        "learning_rate_too_small",
        "Adam with learning rate 1e-7",
        stall_from=0,
    ),
    Scenario(
        "learning_rate_too_large",
        _lr_too_large,
        "learning_rate_too_large",
        "SGD with learning rate 10",
        stall_from=0,
    ),
    Scenario(
        "frozen_layers",
        _frozen_layers,
        "frozen_layers",
        "every layer trainable=False",
        stall_from=0,
    ),
    Scenario("constant_labels", _constant_labels, "constant_labels", "every label is 0"),
    Scenario(
        "constant_inputs",
        _constant_inputs,
        "constant_inputs",
        "every input is 1.0",
        stall_from=0,
    ),
    Scenario(
        "class_imbalance",
        _class_imbalance,
        "class_imbalance",
        "10% positives, features without signal",
        stall_from=0,
        stall_slack=4,
    ),
    Scenario(
        "repeated_batches",
        _repeated_batches,
        "repeated_batches",
        "tf.data from_tensors(batch).repeat() with steps_per_epoch",
    ),
    Scenario(
        "lr_schedule_kill",
        _lr_schedule_kill,
        "learning_rate_too_small",
        "SGD 0.01, a schedule sets the rate to 1e-9 from epoch 6",
        stall_from=6,
    ),
    Scenario(
        "dead_units",
        _dead_units,
        "dead_units",
        "ReLU layers with bias -100: no unit ever fires",
        stall_from=0,
    ),
    Scenario(
        "zero_gradients",
        _zero_gradients,
        "zero_gradients",
        "tanh MLP with kernel_initializer='zeros'",
        stall_from=0,
    ),
    Scenario(
        "exploding_gradients",
        _exploding_gradients,
        "exploding_gradients",
        "6 ReLU layers, RandomNormal(stddev=1) init, SGD 0.01",
        stall_from=0,
    ),
]

SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in _LIST}
