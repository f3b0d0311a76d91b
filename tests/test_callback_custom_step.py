"""A model whose own `train_step` computes the loss: what the callback can see.

Keras 3's documented way (`self.compute_loss(x, y, y_pred)` in `train_step`)
bypasses the private `_compute_loss` that the default step calls; the
callback also hooks the public method, so labels and outputs are recorded.
A step that calls its own loss function shows no labels at all: the report
then says exactly what is missing and why.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf
from callback_support import read_run

from tb_stagnation.analysis.api import analyze
from tb_stagnation.summary import tags


def _model(use_compute_loss: bool):
    class StepModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.head = keras.layers.Dense(3, activation="softmax")
            self.own_loss = keras.losses.SparseCategoricalCrossentropy()

        def call(self, x, training=False):
            return self.head(self.hidden(x))

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                if use_compute_loss:
                    loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
                else:
                    loss = self.own_loss(y, y_pred)
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            return {"loss": loss}

    model = StepModel()
    model.build((None, 8))
    if use_compute_loss:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    else:
        model.compile(optimizer="adam")
    return model


def _train(tmp_path, use_compute_loss: bool):
    from tb_stagnation import StagnationCallback

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    log_dir = str(tmp_path / ("compute_loss" if use_compute_loss else "own_loss"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Validation only where a compiled loss exists: Keras's own test_step
        # needs one (without our callback too).
        validation = (x[:64], y[:64]) if use_compute_loss else None
        _model(use_compute_loss).fit(
            x, y, epochs=3, batch_size=32, verbose=0, validation_data=validation,
            callbacks=[StagnationCallback(log_dir=log_dir)],
        )  # fmt: skip
    return log_dir


def test_train_step_calling_compute_loss_is_recorded(tmp_path):
    log_dir = _train(tmp_path, use_compute_loss=True)
    run = read_run(log_dir)
    counts = run.tensors[tags.LABEL_CLASS_COUNTS]
    # Every training label of each epoch, once (8 batches of 32): the public
    # hook records it, the private one inside it does not count it again, and
    # validation batches are not training labels.
    assert [float(np.asarray(counts[step]).sum()) for step in sorted(counts)] == [256.0] * 3
    report = analyze(log_dir)["runs"][0]
    assert report["baselines"]["majority_rate"] is not None


def test_train_step_with_its_own_loss_says_what_is_missing(tmp_path):
    log_dir = _train(tmp_path, use_compute_loss=False)
    report = analyze(log_dir)["runs"][0]
    assert any("does not call compute_loss" in note for note in report["notes"]), report["notes"]
    assert report["baselines"]["majority_rate"] is None
