"""The demo gallery: short Keras runs, each showing one way learning stalls.

Every run trains on real data that ships inside scikit-learn (handwritten
digits, breast-cancer measurements), so nothing is downloaded. Each is named for
what it shows and carries the finding code the Stagnation tab should put on
top ("healthy" for the controls). `demo/run.sh` trains them and starts
TensorBoard; `python demo/gallery.py --help` for the options.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

EPOCHS = 15
BATCH_SIZE = 64
SEED = 7
# A run folder holding this file finished training; a second invocation skips it.
COMPLETE_MARKER = ".demo_complete"


@dataclass(frozen=True)
class DemoRun:
    name: str
    shows: str  # one line for the progress output
    expected: str  # the top finding code, or "healthy"
    train: Callable[[str], None]  # train(log_dir)


def _digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")  # pixel intensities 0..16
    y = data.target.astype("int32")
    return _split(x, y)


def _breast_cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return _split(data.data.astype("float32"), data.target.astype("float32"))


def _split(x, y):
    order = np.random.default_rng(SEED).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def _standardize(train_x, val_x):
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-8
    return (train_x - mean) / std, (val_x - mean) / std


def _mlp(
    inputs: int,
    outputs: int,
    activation: str = "relu",
    depth: int = 2,
    width: int = 64,
    output_activation: str = "softmax",
):
    import keras

    layers = [keras.Input((inputs,))]
    layers += [keras.layers.Dense(width, activation=activation) for _ in range(depth)]
    layers.append(keras.layers.Dense(outputs, activation=output_activation))
    return keras.Sequential(layers)


def _fit(
    model, log_dir, train, val, loss, optimizer, epochs=EPOCHS, callbacks=(), steps_per_epoch=None
):
    """Compile and fit with both Keras's TensorBoard callback and ours, the
    way a user would. `train` is (x, y) arrays or a tf.data pipeline."""
    import keras

    from tb_stagnation import StagnationCallback

    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    x, y = train if isinstance(train, tuple) else (train, None)
    model.fit(
        x,
        y,
        batch_size=BATCH_SIZE if y is not None else None,
        steps_per_epoch=steps_per_epoch,
        validation_data=val,
        epochs=epochs,
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(log_dir=log_dir),
            StagnationCallback(log_dir=log_dir),
            *callbacks,
        ],
    )


def _fit_digits(
    log_dir,
    optimizer,
    model=None,
    inputs=None,
    labels=None,
    loss="sparse_categorical_crossentropy",
    **fit_options,
):
    """The digits MLP most runs share, with one thing broken: `inputs` and
    `labels` rewrite the data, `model`, `loss` and `optimizer` the setup."""
    (tx, ty), (vx, vy) = _digits()
    if inputs is not None:
        tx, vx = inputs(tx), inputs(vx)
    if labels is not None:
        ty, vy = labels(ty), labels(vy)
    model = model if model is not None else _mlp(64, 10)
    _fit(model, log_dir, (tx, ty), (vx, vy), loss, optimizer, **fit_options)


# -- the runs -----------------------------------------------------------------


def healthy(log_dir):
    import keras

    _fit_digits(log_dir, keras.optimizers.Adam(1e-3))


def converges_then_plateaus(log_dir):
    import keras

    (tx, ty), (vx, vy) = _breast_cancer()
    tx, vx = _standardize(tx, vx)
    model = _mlp(30, 1, output_activation="sigmoid")
    _fit(
        model,
        log_dir,
        (tx, ty),
        (vx, vy),
        "binary_crossentropy",
        keras.optimizers.Adam(1e-2),
        epochs=20,
    )


def unscaled_inputs(log_dir):
    import keras

    (tx, ty), (vx, vy) = _breast_cancer()
    scale = 1e7  # raw measurements reach 4e3: now ~1e10, as in the classic blog post
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(1, activation="sigmoid")])
    _fit(
        model,
        log_dir,
        (tx * scale, ty),
        (vx * scale, vy),
        "binary_crossentropy",
        keras.optimizers.SGD(1e-2),
    )


def deep_sigmoid_stack(log_dir):
    import keras

    model = _mlp(64, 10, activation="sigmoid", depth=10, width=32)
    _fit_digits(log_dir, keras.optimizers.SGD(1e-2), model=model)


def wrong_loss_for_softmax(log_dir):
    import keras

    def one_hot(y):
        return np.eye(10, dtype="float32")[y]

    _fit_digits(log_dir, keras.optimizers.Adam(1e-3), labels=one_hot, loss="binary_crossentropy")


def learning_rate_too_small(log_dir):
    import keras

    _fit_digits(log_dir, keras.optimizers.SGD(1e-7))


def learning_rate_too_large(log_dir):
    import keras

    _fit_digits(log_dir, keras.optimizers.SGD(50.0))


def frozen_layers(log_dir):
    import keras

    model = _mlp(64, 10)
    # The transfer-learning slip: freezing the whole model instead of its base.
    model.trainable = False
    _fit_digits(log_dir, keras.optimizers.Adam(1e-3), model=model)


def labels_all_one_class(log_dir):
    import keras

    _fit_digits(log_dir, keras.optimizers.Adam(1e-3), labels=np.zeros_like)


def inputs_all_constant(log_dir):
    import keras

    def constant(x):
        return np.full_like(x, 0.5)

    _fit_digits(log_dir, keras.optimizers.Adam(1e-3), inputs=constant)


def imbalanced_labels_no_signal(log_dir):
    import keras

    rng = np.random.default_rng(SEED)
    (tx, _), (vx, _) = _breast_cancer()
    tx, vx = _standardize(tx, vx)
    # 5% positives that no feature predicts: the model learns to say "no".
    ty = (rng.random(len(tx)) < 0.05).astype("float32")
    vy = (rng.random(len(vx)) < 0.05).astype("float32")
    model = _mlp(30, 1, output_activation="sigmoid")
    _fit(model, log_dir, (tx, ty), (vx, vy), "binary_crossentropy", keras.optimizers.Adam(1e-3))


def pipeline_repeats_one_batch(log_dir):
    import keras
    import tensorflow as tf

    (tx, ty), val = _digits()
    # A tf.data bug: `take(1)` before `repeat()` feeds the same 64 images forever.
    one_batch = tf.data.Dataset.from_tensor_slices((tx, ty)).batch(BATCH_SIZE).take(1).repeat()
    _fit(
        _mlp(64, 10),
        log_dir,
        one_batch,
        val,
        "sparse_categorical_crossentropy",
        keras.optimizers.Adam(1e-3),
        steps_per_epoch=len(tx) // BATCH_SIZE,
    )


def schedule_kills_learning_rate(log_dir):
    import keras

    def schedule(epoch, lr):
        # A decay written with the wrong sign of exponent: from epoch 6 on the
        # learning rate is 1e-12, and learning stops mid-run.
        return 1e-2 if epoch < 6 else 1e-12

    _fit_digits(
        log_dir,
        keras.optimizers.SGD(1e-2),
        epochs=20,
        callbacks=[keras.callbacks.LearningRateScheduler(schedule)],
    )


GALLERY: tuple[DemoRun, ...] = (
    DemoRun("healthy", "a small MLP on digits that learns", "healthy", healthy),
    DemoRun(
        "converges_then_plateaus",
        "learns in 5 epochs, then flat at a good loss",
        "healthy",
        converges_then_plateaus,
    ),
    DemoRun(
        "unscaled_inputs",
        "features around 1e10 into a sigmoid, SGD",
        "unscaled_inputs",
        unscaled_inputs,
    ),
    DemoRun(
        "deep_sigmoid_stack",
        "ten sigmoid layers: gradients vanish",
        "vanishing_gradients",
        deep_sigmoid_stack,
    ),
    DemoRun(
        "wrong_loss_for_softmax",
        "binary_crossentropy on a 10-class softmax",
        "loss_output_mismatch",
        wrong_loss_for_softmax,
    ),
    DemoRun(
        "learning_rate_too_small",
        "SGD with lr=1e-7",
        "learning_rate_too_small",
        learning_rate_too_small,
    ),
    DemoRun(
        "learning_rate_too_large",
        "SGD with lr=50",
        "learning_rate_too_large",
        learning_rate_too_large,
    ),
    DemoRun(
        "frozen_layers", "model.trainable = False before compile", "frozen_layers", frozen_layers
    ),
    DemoRun("labels_all_one_class", "every label is 0", "constant_labels", labels_all_one_class),
    DemoRun("inputs_all_constant", "every pixel is 0.5", "constant_inputs", inputs_all_constant),
    DemoRun(
        "imbalanced_labels_no_signal",
        "5% positives no feature predicts",
        "class_imbalance",
        imbalanced_labels_no_signal,
    ),
    DemoRun(
        "pipeline_repeats_one_batch",
        "take(1) before repeat(): one batch forever",
        "repeated_batches",
        pipeline_repeats_one_batch,
    ),
    DemoRun(
        "schedule_kills_learning_rate",
        "the schedule sets lr=1e-12 at epoch 6",
        "learning_rate_too_small",
        schedule_kills_learning_rate,
    ),
)


def train_gallery(logdir: str, only: list[str] | None = None, out=sys.stdout) -> None:
    """Train every demo run not already complete under `logdir`."""
    import keras

    runs = [run for run in GALLERY if not only or run.name in only]
    for number, run in enumerate(runs, start=1):
        log_dir = os.path.join(logdir, run.name)
        marker = os.path.join(log_dir, COMPLETE_MARKER)
        prefix = f"[{number:2d}/{len(runs)}] {run.name:30s}"
        if os.path.exists(marker):
            print(f"{prefix} already trained, reused", file=out, flush=True)
            continue
        keras.utils.set_random_seed(SEED)
        started = time.monotonic()
        run.train(log_dir)
        keras.backend.clear_session()
        with open(marker, "w", encoding="utf-8") as done:
            done.write(run.expected + "\n")
        print(f"{prefix} {time.monotonic() - started:5.1f} s  {run.shows}", file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default=os.path.join(os.path.dirname(__file__), "logs"))
    parser.add_argument("--only", nargs="*", help="train only these runs")
    args = parser.parse_args(argv)
    started = time.monotonic()
    train_gallery(args.logdir, args.only)
    print(f"trained the gallery in {time.monotonic() - started:.0f} s -> {args.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
