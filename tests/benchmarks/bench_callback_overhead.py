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
- `epoch cpu`: the same, in this process's CPU time (steadier than wall time
  when other jobs share the machine);
- `fit`: the whole `fit` call, tracing and XLA compilation included.

Then `step`: the train step alone, instrumented by StagnationCallback versus
clean, on one model in one process, alternating blocks of 10 steps (median
per-step time over the blocks). Fit-level timings on a machine shared with
other jobs swing by more than the 5% we look for; this one does not see the
per-epoch host work but isolates what the in-graph statistics cost.

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
import tensorflow as tf  # noqa: E402

from tb_stagnation import StagnationCallback  # noqa: E402

VARIANTS = ("none", "stagnation", "tensorboard")


class EpochClock(keras.callbacks.Callback):
    """Epoch-end timestamps; placed last, so other callbacks' epoch-end work counts.

    Wall time and this process's CPU time: on a machine shared with other
    jobs the wall time swings with their load, the CPU time much less.
    """

    def on_train_begin(self, logs=None):
        self.ends = []
        self.cpu_ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())


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
        kwargs = {"gradient_freq": gradient_freq} if gradient_freq else {}
        callbacks.append(StagnationCallback(log_dir=logdir, **kwargs))
    elif variant == "tensorboard":
        callbacks.append(keras.callbacks.TensorBoard(log_dir=logdir, histogram_freq=1))
    callbacks.append(clock)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=callbacks)
    total = time.perf_counter() - start
    # Epochs 2..E: no tracing inside.
    epoch = float(np.median(np.diff(clock.ends)))
    epoch_cpu = float(np.median(np.diff(clock.cpu_ends)))
    return total, epoch, epoch_cpu, model.count_params()


def step_ab(case: tuple, jit: object, logdir: str, gradient_freq: int, blocks: int) -> tuple:
    """Median per-step seconds of the (clean, instrumented) train function."""
    build, x, y, batch_size = case
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit)
    model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True)
    iterator = iter(dataset.repeat().prefetch(4))
    kwargs = {"gradient_freq": gradient_freq} if gradient_freq else {}
    callback = StagnationCallback(log_dir=logdir, **kwargs)
    # Drive the callback as `fit` does, then keep its traced train function.
    callback.set_model(model)
    callback.set_params({"epochs": 1, "steps": None, "verbose": 0})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    instrumented = model.train_function
    for _ in range(5):
        instrumented(iterator)
    callback.on_train_end()  # restores the model; the traced function stays valid
    model.make_train_function()
    clean = model.train_function
    for _ in range(5):
        clean(iterator)
    times = {"clean": [], "instrumented": []}
    for block in range(blocks):
        order = [("clean", clean), ("instrumented", instrumented)]
        for name, function in order if block % 2 else order[::-1]:
            start = time.perf_counter()
            for _ in range(10):
                function(iterator)
            times[name].append((time.perf_counter() - start) / 10)
    return statistics.median(times["clean"]), statistics.median(times["instrumented"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto")
    parser.add_argument(
        "--gradient-freq", type=int, default=0, help="0: StagnationCallback's default"
    )
    parser.add_argument("--step-blocks", type=int, default=60)
    args = parser.parse_args()
    jit = {"auto": "auto", "on": True, "off": False}[args.jit]
    cases = {"cnn": cnn_case, "mlp": mlp_case}
    root = tempfile.mkdtemp(prefix="tb_stagnation_bench_")
    try:
        for name in args.models.split(","):
            case = cases[name]()
            totals = {v: [] for v in VARIANTS}
            epochs = {v: [] for v in VARIANTS}
            cpus = {v: [] for v in VARIANTS}
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
                    total, epoch, cpu, params = run_once(
                        case, variant, args.epochs, jit, logdir, args.gradient_freq
                    )
                    totals[variant].append(total)
                    epochs[variant].append(epoch)
                    cpus[variant].append(cpu)
            base_total = statistics.median(totals["none"])
            base_epoch = statistics.median(epochs["none"])
            base_cpu = statistics.median(cpus["none"])
            print(
                f"\n{name}: {params:,} parameters, {args.epochs} epochs, jit_compile={args.jit}, "
                f"{args.reps} interleaved repetitions, medians"
            )
            print(
                f"{'variant':<14}{'epoch s':>10}{'ratio':>8}{'epoch cpu s':>13}{'ratio':>8}"
                f"{'fit s':>10}{'ratio':>8}"
            )
            for variant in VARIANTS:
                epoch = statistics.median(epochs[variant])
                cpu = statistics.median(cpus[variant])
                total = statistics.median(totals[variant])
                print(
                    f"{variant:<14}{epoch:>10.4f}{epoch / base_epoch:>8.3f}"
                    f"{cpu:>13.4f}{cpu / base_cpu:>8.3f}"
                    f"{total:>10.3f}{total / base_total:>8.3f}"
                )
            clean, instrumented = step_ab(
                case, jit, os.path.join(root, f"{name}_step"), args.gradient_freq, args.step_blocks
            )
            print(
                f"step (train function alone): clean {clean * 1e3:.3f} ms, "
                f"instrumented {instrumented * 1e3:.3f} ms, ratio {instrumented / clean:.3f}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
