"""StagnationCallback against what users do to a model around `fit` (issue 14).

Two threads training one model, a re-run `fit` into the same folder, an
interrupt landing outside the train step, and the inputs and environments a
user cannot act on when they fail late (a bytes or None `log_dir`, `~`, no
stdout, complex weights). Real Keras training, real event files throughout.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import threading
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from callback_support import read_run, stagnation_warnings

from tb_stagnation import StagnationCallback
from tb_stagnation.callback import stagnation_callback
from tb_stagnation.callback.hooks import is_instrumented
from tb_stagnation.summary import tags

# Every test here trains 96 samples in batches of 32: 3 steps per epoch.
_STEPS = 3


def _data(n: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
    return x, y


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def _assert_clean(model: keras.Model) -> None:
    """Nothing of ours is left on the model or its optimizer."""
    assert "_compute_loss" not in vars(model)
    assert "compute_loss" not in vars(model)
    assert "apply" not in vars(model.optimizer)
    assert not is_instrumented(model.train_function)


# ---------------------------------------------------------------- item 2


class _Signal(keras.callbacks.Callback):
    """Sets `begun` once this fit's callbacks have begun; meets the other
    thread at the first step; makes the long fit wait for the short one to
    end before its second epoch, so that end lands in the middle of it."""

    def __init__(self, begun=None, meet=None, wait_for=None) -> None:
        super().__init__()
        self.begun, self.meet, self.wait_for = begun, meet, wait_for

    def on_train_begin(self, logs=None):
        if self.begun is not None:
            self.begun.set()

    def on_train_batch_begin(self, batch, logs=None):
        if self.meet is not None:
            meet, self.meet = self.meet, None
            meet.wait(timeout=120)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1 and self.wait_for is not None:
            assert self.wait_for.wait(timeout=120)


@pytest.mark.parametrize("other", ["own callback", "same callback", "no callback"])
def test_two_threads_fitting_one_model_both_finish_and_only_the_first_records(tmp_path, other):
    x, y = _data()
    model = _model()
    first = StagnationCallback(str(tmp_path / "first"), gradient_freq=1)
    second = {
        "own callback": [StagnationCallback(str(tmp_path / "second"), gradient_freq=1)],
        "same callback": [first],
        "no callback": [],
    }[other]
    begun, first_done = threading.Event(), threading.Event()
    meet = threading.Barrier(2)
    errors: list = []

    def run(callbacks, epochs, done=None):
        try:
            model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=callbacks)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
            meet.abort()
        finally:
            if done is not None:
                done.set()

    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        short = threading.Thread(
            target=run, args=([first, _Signal(begun=begun, meet=meet)], 1, first_done)
        )
        short.start()
        assert begun.wait(timeout=120)
        # Begins while the first fit runs; still training when that one ends.
        long = threading.Thread(
            target=run, args=([*second, _Signal(meet=meet, wait_for=first_done)], 3)
        )
        long.start()
        short.join(timeout=300)
        long.join(timeout=300)
    assert not errors, errors
    _assert_clean(model)
    concurrent = [r for r in stagnation_warnings(records) if "another thread" in str(r.message)]
    assert len(concurrent) == (0 if other == "no callback" else 1)
    assert len(stagnation_warnings(records)) == len(concurrent)
    # The first fit's epoch counts its own 3 steps only, not the other thread's.
    run_data = read_run(tmp_path / "first")
    assert run_data.series(tags.BATCHES_SEEN) == [float(_STEPS)]
    assert run_data.series(tags.GRAD_STEPS) == [float(_STEPS)]
    assert not (tmp_path / "second" / tags.RUN_SUBDIR).exists()
    # And the model still trains, recorded, in this thread.
    model.fit(
        x, y, batch_size=32, epochs=1, verbose=0, callbacks=[StagnationCallback(tmp_path / "3")]
    )
    assert read_run(tmp_path / "3").series(tags.BATCHES_SEEN) == [float(_STEPS)]
    _assert_clean(model)


# ---------------------------------------------------------------- item 3


def _read_with_reader(log_dir):
    """The run as the tab and `tb-stagnation report` read it."""
    from tb_stagnation.reader.logdir import open_logdir

    with open_logdir(str(log_dir), use_data_server=False) as source:
        runs = source.read_runs(source.list_runs())
    ours = [run for run in runs if run.source == "callback"]
    assert len(ours) == 1, [(run.name, run.source) for run in runs]
    return ours[0]


@pytest.mark.parametrize("reuse", [True, False], ids=["same callback", "new callback"])
def test_a_rerun_fit_goes_on_after_the_epochs_already_logged(tmp_path, reuse):
    x, y = _data()
    model = _model()
    losses = []
    callback = StagnationCallback(str(tmp_path), update_freq=1)
    for _ in range(2):  # a notebook cell run twice
        if not reuse:
            callback = StagnationCallback(str(tmp_path), update_freq=1)
        history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
        losses += history.history["loss"]
        assert history.epoch == [0, 1]  # Keras's own numbering is untouched
    _assert_clean(model)
    run = read_run(tmp_path)
    for tag in (tags.logs_tag("loss"), tags.GRAD_GLOBAL_NORM, tags.BATCHES_SEEN):
        assert sorted(run.scalar(tag)) == [0, 1, 2, 3], tag
    np.testing.assert_allclose(run.series(tags.logs_tag("loss")), losses, rtol=1e-6)
    assert sorted(run.scalar(tags.BATCH_LOSS)) == list(range(4 * _STEPS))
    cards = run.cards()
    assert sorted(cards) == [0, 2]
    assert cards[2]["epoch_offset"] == 2 and "epoch_offset" not in cards[0]
    # The reader: one epoch per step, the second fit's after the first's.
    data = _read_with_reader(tmp_path)
    assert list(data.epochs) == [0, 1, 2, 3]
    np.testing.assert_allclose(data.scalars[tags.logs_tag("loss")], losses, rtol=1e-6)


def test_a_new_model_in_a_folder_of_an_earlier_process_goes_on_after_it(tmp_path):
    x, y = _data()
    first = _model(seed=1)
    first.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path), update_freq=1)],
    )
    # As in a new process: only the files tell what the folder holds.
    stagnation_callback._WRITTEN.clear()
    second = _model(seed=2)
    second.fit(
        x,
        y,
        batch_size=32,
        epochs=3,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path), update_freq=1)],
    )
    run = read_run(tmp_path)
    assert sorted(run.scalar(tags.logs_tag("loss"))) == [0, 1, 2, 3, 4]
    # The new model's batch count starts at 0; its steps go on after the old ones.
    assert sorted(run.scalar(tags.BATCH_LOSS)) == list(range(5 * _STEPS))
    assert list(_read_with_reader(tmp_path).epochs) == [0, 1, 2, 3, 4]


def test_a_folder_emptied_between_fits_starts_again_at_epoch_0(tmp_path):
    x, y = _data()
    model = _model()
    callback = StagnationCallback(str(tmp_path / "logs"))
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
    shutil.rmtree(tmp_path / "logs")  # a cell that clears its log folder first
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
    assert sorted(read_run(tmp_path / "logs").scalar(tags.logs_tag("loss"))) == [0, 1]


# ---------------------------------------------------------------- item 4


class _InterruptAtBatchEnd(keras.callbacks.Callback):
    """Ctrl-C during Python-side work between two steps."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            raise KeyboardInterrupt


def test_an_interrupt_outside_the_train_step_leaves_nothing_running(tmp_path):
    x, y = _data()
    model = _model()
    callback = StagnationCallback(str(tmp_path), gradient_freq=1)
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=3,
            verbose=0,
            callbacks=[callback, _InterruptAtBatchEnd()],
        )
    recorder = callback._recorder
    assert recorder is not None  # Keras called no on_train_end
    before = recorder.read()

    # A plain fit, and a single step, without our callback.
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model.train_on_batch(x[:32], y[:32])

    after = recorder.read()
    np.testing.assert_array_equal(after.data.values, before.data.values)  # no step ran our ops
    np.testing.assert_array_equal(after.grad.values, before.grad.values)
    _assert_clean(model)
    assert callback._writer is None and callback._hooks is None  # file closed
    # The reused callback records a later fit as usual.
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    _assert_clean(model)
    assert read_run(tmp_path).series(tags.BATCHES_SEEN) == [float(_STEPS)]


# ---------------------------------------------------------------- item 7


def test_log_dir_is_checked_and_normalised_at_construction(tmp_path, monkeypatch):
    for bad in (None, 3, ["logs"]):
        with pytest.raises(
            TypeError, match=r"log_dir must be a folder path \(a str or os.PathLike"
        ):
            StagnationCallback(log_dir=bad)
    with pytest.raises(ValueError, match="NUL"):
        StagnationCallback(log_dir="logs\0x")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert StagnationCallback("~/logs").log_dir == str(tmp_path / "logs")
    assert StagnationCallback(tmp_path / "p").log_dir == str(tmp_path / "p")

    # Bytes are a path too, as for the os module: a real fit writes there.
    callback = StagnationCallback(os.fsencode(tmp_path / "b"))
    assert callback.log_dir == str(tmp_path / "b")
    x, y = _data()
    _model().fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    assert sorted(read_run(tmp_path / "b").scalar(tags.logs_tag("loss"))) == [0]


def _closed_stream():
    stream = io.StringIO()
    stream.close()
    return stream


@pytest.mark.parametrize("stdout", [None, "closed"])
def test_printing_survives_a_missing_or_closed_stdout(tmp_path, monkeypatch, stdout):
    x, y = _data()
    model = _model()
    monkeypatch.setattr(sys, "stdout", None if stdout is None else _closed_stream())
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=2,
            verbose=0,
            callbacks=[StagnationCallback(str(tmp_path), verbose=1, overfit_check=True)],
        )
    assert not stagnation_warnings(records)
    run = read_run(tmp_path)
    assert sorted(run.scalar(tags.GRAD_GLOBAL_NORM)) == [0, 1]


class _ComplexDense(keras.layers.Layer):
    """A dense layer with complex weights and a real output (the magnitude)."""

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 3),
            dtype="complex64",
            initializer=lambda shape, dtype=None: tf.complex(tf.ones(shape), tf.ones(shape) / 2),
        )

    def call(self, inputs):
        return tf.math.abs(tf.matmul(tf.cast(inputs, tf.complex64), self.kernel))


def test_complex_weights_are_measured_without_numpy_or_tf_cast_warnings(tmp_path, caplog):
    x, _ = _data()
    y = np.abs(x[:, :3])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), _ComplexDense()])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=2,
            verbose=0,
            callbacks=[StagnationCallback(str(tmp_path), gradient_freq=1)],
        )
    leaked = [r for r in records if issubclass(r.category, np.exceptions.ComplexWarning)]
    assert not leaked, [str(r.message) for r in leaked]
    assert not stagnation_warnings(records)
    assert not [r for r in caplog.records if "imaginary part" in r.getMessage()]
    run = read_run(tmp_path)
    # Norms of complex weights count both parts: |z|, not the real part.
    kernel = model.layers[0].kernel.numpy()
    assert np.iscomplexobj(kernel) and np.abs(kernel.imag).max() > 0
    np.testing.assert_allclose(
        run.scalar(tags.WEIGHT_GLOBAL_NORM)[1], np.linalg.norm(kernel), rtol=1e-5
    )
    norms = run.series(tags.GRAD_GLOBAL_NORM)
    assert len(norms) == 2 and all(np.isfinite(norms)) and all(n > 0 for n in norms)
