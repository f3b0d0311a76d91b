"""Training-time overhead of StagnationCallback, beside keras.callbacks.TensorBoard.

    python tests/benchmarks/bench_callback_overhead.py [--reps 5 --epochs 6]
        [--models cnn,mlp] [--jit auto|on|off] [--gradient-freq 1]

For each model, (a) a small CNN on 28x28x1 synthetic images and (b) an MLP
with about 1M parameters, both 100 steps of 64 samples per epoch, it times
`fit` with

- no callback,
- `StagnationCallback` at its defaults (plus `--gradient-freq` if given),
- `keras.callbacks.TensorBoard(histogram_freq=1)`,

interleaved in one process (A B C A B C ...), a fresh identically seeded
model each time, and prints the medians and their ratios to "no callback":

- `epoch`: the steady-state epoch (median over epochs 2..E of the time from
  one epoch end to the next, so our epoch-end work is inside it);
- `fit`: the whole `fit` call, tracing and XLA compilation included.

The target is `epoch` <= 1.05x for StagnationCallback at defaults. Synthetic
data only; nothing is downloaded. Logs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tb_stagnation import StagnationCallback  # noqa: E402

VARIANTS = ("none", "stagnation", "tensorboard")


class EpochClock(keras.callbacks.Callback):
    """Epoch-end timestamps; placed last, so other callbacks' epoch-end work counts."""

    def on_train_begin(self, logs=None):
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


def cnn_case() -> tuple:
    rng = np.random.default_rng(0)
    x = rng.random((6400, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 6400)

    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Conv2D(16, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(32, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    return build, x, y, 64


def mlp_case() -> tuple:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6400, 784)).astype(np.float32)
    y = rng.integers(0, 10, 6400)

    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        # 784*1024 + 1024*256 + 256*10 (+ biases) = 1.07M parameters.
        return keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(1024, activation="relu"),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    return build, x, y, 64


def run_once(case: tuple, variant: str, epochs: int, jit: object, logdir: str, gradient_freq: int):
    build, x, y, batch_size = case
    model = build()
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit,
    )
    clock = EpochClock()
    callbacks = []
    if variant == "stagnation":
        kwargs = {} if gradient_freq == 1 else {"gradient_freq": gradient_freq}
        callbacks.append(StagnationCallback(log_dir=logdir, **kwargs))
    elif variant == "tensorboard":
        callbacks.append(keras.callbacks.TensorBoard(log_dir=logdir, histogram_freq=1))
    callbacks.append(clock)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=callbacks)
    total = time.perf_counter() - start
    epoch_times = np.diff(clock.ends)  # epochs 2..E: no tracing inside
    return total, float(np.median(epoch_times)), model.count_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--gradient-freq", type=int, default=1)
    args = parser.parse_args()
    jit = {"auto": "auto", "on": True, "off": False}[args.jit]
    cases = {"cnn": cnn_case, "mlp": mlp_case}
    root = tempfile.mkdtemp(prefix="tb_stagnation_bench_")
    try:
        for name in args.models.split(","):
            case = cases[name]()
            totals = {v: [] for v in VARIANTS}
            epochs = {v: [] for v in VARIANTS}
            params = 0
            # A warm-up fit of each variant: first-use costs (imports, thread
            # pools) must not land on whichever variant happens to run first.
            for variant in VARIANTS:
                run_once(
                    case, variant, 2, jit, os.path.join(root, f"{name}_warm"), args.gradient_freq
                )
            for rep in range(args.reps):
                for variant in VARIANTS:
                    logdir = os.path.join(root, f"{name}_{variant}_{rep}")
                    total, epoch, params = run_once(
                        case, variant, args.epochs, jit, logdir, args.gradient_freq
                    )
                    totals[variant].append(total)
                    epochs[variant].append(epoch)
            base_total = statistics.median(totals["none"])
            base_epoch = statistics.median(epochs["none"])
            print(
                f"\n{name}: {params:,} parameters, {args.epochs} epochs, jit_compile={args.jit}, "
                f"{args.reps} interleaved repetitions, medians"
            )
            print(f"{'variant':<14}{'epoch s':>10}{'ratio':>8}{'fit s':>10}{'ratio':>8}")
            for variant in VARIANTS:
                epoch = statistics.median(epochs[variant])
                total = statistics.median(totals[variant])
                print(
                    f"{variant:<14}{epoch:>10.4f}{epoch / base_epoch:>8.3f}"
                    f"{total:>10.3f}{total / base_total:>8.3f}"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
