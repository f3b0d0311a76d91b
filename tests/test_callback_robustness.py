"""StagnationCallback when things go wrong: ours, the user's, or the run's.

Our failures must cost one warning and nothing else; the user's failures must
reach the user unchanged, with our files closed and the model restored.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from callback_support import read_run, stagnation_warnings

from tb_stagnation import StagnationCallback
from tb_stagnation.callback import epoch_stats, graph_recorder
from tb_stagnation.callback.hooks import is_instrumented
from tb_stagnation.summary import tags


def _data(n: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
    return x, y


def _model(jit_compile="auto", **compile_kwargs) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    compile_kwargs.setdefault("optimizer", "adam")
    model.compile(loss="sparse_categorical_crossentropy", jit_compile=jit_compile, **compile_kwargs)
    return model


def _assert_restored(model: keras.Model) -> None:
    assert "_compute_loss" not in vars(model)
    assert "apply" not in vars(model.optimizer)
    assert not is_instrumented(model.train_function)


def _train(callbacks, seed: int = 0, jit_compile="auto", epochs: int = 2):
    """Fit a freshly seeded model; return (model, history, weights)."""
    keras.utils.set_random_seed(seed)
    x, y = _data(seed=seed)
    model = _model(jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=callbacks)
    return model, history, [w.numpy() for w in model.weights]


def test_training_is_the_same_with_and_without_the_callback(tmp_path):
    _, history_plain, weights_plain = _train([])
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        _, history, weights = _train([StagnationCallback(str(tmp_path))])
    assert not stagnation_warnings(records)
    np.testing.assert_allclose(history.history["loss"], history_plain.history["loss"], rtol=1e-6)
    for ours, plain in zip(weights, weights_plain):
        np.testing.assert_allclose(ours, plain, rtol=1e-6, atol=1e-7)


def test_a_failure_while_tracing_costs_one_warning_and_nothing_else(tmp_path, monkeypatch):
    _, history_plain, weights_plain = _train([])

    def broken(self, *args):
        raise RuntimeError("recorder is broken")

    monkeypatch.setattr(graph_recorder.GraphRecorder, "record_data", broken)
    monkeypatch.setattr(graph_recorder.GraphRecorder, "record_gradients", broken)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model, history, weights = _train([StagnationCallback(str(tmp_path))])
    ours = stagnation_warnings(records)
    assert len(ours) == 1 and "recorder is broken" in str(ours[0].message)
    np.testing.assert_allclose(history.history["loss"], history_plain.history["loss"], rtol=1e-6)
    for a, b in zip(weights, weights_plain):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    _assert_restored(model)
    # What does not need the recorder is still written.
    run = read_run(tmp_path)
    assert sorted(run.scalar(tags.logs_tag("loss"))) == [0, 1]
    assert sorted(run.scalar(tags.UPDATE_GLOBAL_RATIO)) == [0, 1]
    assert run.card()["task"] == "classification"


def test_an_op_xla_cannot_compile_falls_back_to_the_clean_train_function(tmp_path, monkeypatch):
    original = graph_recorder.GraphRecorder.record_data

    def with_python_op(self, x, y, y_pred, loss):
        original(self, x, y, y_pred, loss)
        # A PyFunc: fine while tracing, rejected by XLA at the first call.
        value = tf.numpy_function(lambda a: a, [tf.constant(1.0, tf.float64)], tf.float64)
        self.ring.assign_add(tf.zeros_like(self.ring) * value)

    monkeypatch.setattr(graph_recorder.GraphRecorder, "record_data", with_python_op)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model, history, _ = _train([StagnationCallback(str(tmp_path))], jit_compile=True)
    ours = stagnation_warnings(records)
    assert len(ours) == 1 and "PyFunc" in str(ours[0].message)  # XLA's compile error
    assert len(history.history["loss"]) == 2 and all(np.isfinite(history.history["loss"]))
    _assert_restored(model)
    run = read_run(tmp_path)
    assert sorted(run.scalar(tags.logs_tag("loss"))) == [0, 1]


def test_a_failure_at_epoch_end_costs_one_warning_and_keeps_the_rest(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("weights unreadable")

    monkeypatch.setattr(epoch_stats, "weight_stats", broken)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        _train([StagnationCallback(str(tmp_path))], epochs=3)
    ours = stagnation_warnings(records)
    assert len(ours) == 1 and "weights unreadable" in str(ours[0].message)
    run = read_run(tmp_path)
    assert sorted(run.scalar(tags.GRAD_GLOBAL_NORM)) == [0, 1, 2]
    assert not run.scalar(tags.UPDATE_GLOBAL_RATIO)
    assert np.all(np.isnan(run.layer(tags.LAYER_UPDATE_RATIO, 2)))


class InterruptibleNet(keras.Sequential):
    """Raises `failure` from inside its training step once asked to."""

    failure: BaseException | None = None

    def train_step(self, data):
        if self.failure is not None:
            raise self.failure
        return super().train_step(data)


class _FailAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int, failure: BaseException) -> None:
        super().__init__()
        self.epoch, self.failure = epoch, failure

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.failure = self.failure


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), RuntimeError("bad batch")])
def test_an_interrupted_fit_closes_the_file_and_restores_the_model(tmp_path, failure):
    x, y = _data()
    model = InterruptibleNet([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    # Eager steps: the failure is raised inside the train function, as an
    # interrupt during a compiled step would be.
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)
    callback = StagnationCallback(str(tmp_path))
    with pytest.raises(type(failure)):
        model.fit(
            x, y, batch_size=48, epochs=5, verbose=0, callbacks=[callback, _FailAtEpoch(1, failure)]
        )
    _assert_restored(model)
    assert callback._writer is None  # closed
    run = read_run(tmp_path)
    assert sorted(run.scalar(tags.logs_tag("loss"))) == [0, 1]
    assert sorted(run.scalar(tags.GRAD_GLOBAL_NORM)) == [0, 1]

    # The model trains normally afterwards, with or without the callback.
    model.failure = None
    model.fit(x, y, batch_size=48, epochs=1, verbose=0)
    model.fit(
        x,
        y,
        batch_size=48,
        epochs=1,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "again"))],
    )
    assert sorted(read_run(tmp_path / "again").scalar(tags.GRAD_STEPS)) == [0]


def test_an_interrupt_outside_the_train_step_is_cleaned_up_by_the_next_fit(tmp_path):
    x, y = _data()
    model = _model()

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=3,
            verbose=0,
            callbacks=[StagnationCallback(str(tmp_path / "a")), Interrupt()],
        )
    # Epoch 0 was flushed before the interrupt.
    assert sorted(read_run(tmp_path / "a").scalar(tags.logs_tag("loss"))) == [0]
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "b"))],
    )
    _assert_restored(model)
    run = read_run(tmp_path / "b")
    assert run.series(tags.BATCHES_SEEN) == [3.0, 3.0]
    assert run.series(tags.GRAD_STEPS) == [1.0, 1.0]  # the default gradient_freq is 32


def test_fit_twice_continues_the_run(tmp_path):
    keras.utils.set_random_seed(3)
    x, y = _data(seed=3)
    model = _model()
    callback = StagnationCallback(str(tmp_path), update_freq=3)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
    _assert_restored(model)
    model.fit(x, y, batch_size=32, epochs=4, initial_epoch=2, verbose=0, callbacks=[callback])
    _assert_restored(model)
    run = read_run(tmp_path)
    assert sorted(run.cards()) == [0, 2]
    for tag in (
        tags.GRAD_GLOBAL_NORM,
        tags.BATCHES_SEEN,
        tags.PRED_ENTROPY,
        tags.UPDATE_GLOBAL_RATIO,
    ):
        assert sorted(run.scalar(tag)) == [0, 1, 2, 3], tag
    # Three batches per epoch; the global batch index goes on across fits.
    assert sorted(run.scalar(tags.BATCH_LOSS)) == [2, 5, 8, 11]


def test_two_models_in_one_process_keep_apart(tmp_path):
    x, y = _data()
    first, second = _model(), _model(jit_compile=False)
    first.fit(
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "first"))],
    )
    second.fit(
        x[:64],
        y[:64],
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "second"))],
    )
    first.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        initial_epoch=1,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "first"))],
    )
    one, two = read_run(tmp_path / "first"), read_run(tmp_path / "second")
    assert one.series(tags.BATCHES_SEEN) == [3.0, 3.0]
    assert two.series(tags.BATCHES_SEEN) == [4.0, 4.0]
    assert two.card()["batch_size"] == 16
    _assert_restored(first)
    _assert_restored(second)


def test_nan_losses_are_recorded_not_fatal(tmp_path):
    x, y = _data()
    x[40] = np.nan  # the second batch of every epoch
    model = _model(optimizer=keras.optimizers.SGD(0.1))
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[StagnationCallback(str(tmp_path), gradient_freq=1)],
        )
    assert not stagnation_warnings(records)
    run = read_run(tmp_path)
    assert all(math.isnan(v) for v in run.series(tags.logs_tag("loss")))
    assert all(v > 0 for v in run.series(tags.GRAD_NONFINITE_FRACTION))
    # Epoch 0 had a finite first step; epoch 1 starts from NaN weights.
    assert run.scalar(tags.GRAD_GLOBAL_NORM)[0] > 0
    assert math.isnan(run.scalar(tags.GRAD_GLOBAL_NORM)[1])
    assert np.all(run.layer(tags.LAYER_NONFINITE_FRACTION, 1) == 1.0)
    assert math.isnan(run.scalar(tags.INPUT_MEAN)[0])


def test_a_model_without_trainable_weights(tmp_path):
    x, y = _data()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    model.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model.fit(
            x, y, batch_size=32, epochs=2, verbose=0, callbacks=[StagnationCallback(str(tmp_path))]
        )
    assert not stagnation_warnings(records)
    run = read_run(tmp_path)
    card = run.card()
    assert card["trainable_params"] == 0 and card["non_trainable_params"] == 18
    assert run.series(tags.GRAD_STEPS) == [0.0, 0.0]
    assert not run.scalar(tags.GRAD_GLOBAL_NORM)
    assert run.series(tags.UPDATE_GLOBAL_NORM) == [0.0, 0.0]
    assert run.layer(tags.LAYER_UPDATE_RATIO, 1)[0] == 0.0
    assert run.series(tags.BATCHES_SEEN) == [3.0, 3.0]
    assert sorted(run.scalar(tags.PRED_ENTROPY)) == [0, 1]


def test_an_unwritable_log_dir_fails_at_train_begin_naming_the_path(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the log folder should be")
    x, y = _data()
    model = _model()
    with pytest.raises(OSError, match="not_a_folder"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[StagnationCallback(str(blocker / "run"))])


def test_loss_scale_optimizer_gradients_are_unscaled(tmp_path):
    norms = []
    for name, optimizer in (
        ("plain", keras.optimizers.SGD(0.01)),
        (
            "scaled",
            keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01), initial_scale=1024.0),
        ),
    ):
        keras.utils.set_random_seed(5)
        x, y = _data(seed=5)
        model = _model(optimizer=optimizer)
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=1,
            verbose=0,
            callbacks=[StagnationCallback(str(tmp_path / name))],
        )
        norms.append(read_run(tmp_path / name).series(tags.GRAD_GLOBAL_NORM)[0])
    assert norms[1] == pytest.approx(norms[0], rel=1e-4)
    assert read_run(tmp_path / "scaled").card()["optimizer"]["wrapper"] == "LossScaleOptimizer"


def test_without_tensorflow_the_import_error_says_what_to_install():
    code = (
        "import sys\n"
        "sys.modules['tensorflow'] = None\n"
        "import tb_stagnation\n"
        "assert 'keras' not in sys.modules\n"
        "try:\n"
        "    tb_stagnation.StagnationCallback\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    assert "pip install tensorflow" in result.stdout
    assert "tb-stagnation[cpu]" in result.stdout
