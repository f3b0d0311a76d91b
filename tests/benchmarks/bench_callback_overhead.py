"""Training-time overhead of StagnationCallback, beside keras.callbacks.TensorBoard.

    python tests/benchmarks/bench_callback_overhead.py [--reps 5 --epochs 6]
        [--models cnn,mlp,resnet] [--jit auto|on|off] [--gradient-freq 1]
        [--layers 10,30,100,300] [--memory] [--first-epochs 300]

Three models, each 100 steps of 64 samples per epoch on synthetic data:
(a) `cnn`, a small CNN on 28x28x1 images, (b) `mlp`, an MLP with about 1M
parameters, (c) `resnet`, a residual CNN of 45 layers (8 blocks of
conv-BN-ReLU-conv-BN-add-ReLU on 16x16x8 images). For each it times `fit` with

- no callback,
- `StagnationCallback` at its defaults (plus `--gradient-freq` if given),
- `keras.callbacks.TensorBoard(histogram_freq=1)`,

interleaved in one process (A B C A B C ...), a fresh identically seeded
model each time, and prints two ratios to "no callback": that of the medians,
and the paired ratio (1 + the median difference between the variant's and
the clean fit's epoch of the same repetition, over the median clean epoch).
On a machine shared with other jobs the paired ratio is the steadier: both
members of a pair run under the same load. Each row also prints the CPU ratio
paired by fit, with its 90% bootstrap interval drawn over fits, then over
their epochs: a target is met only when the interval's top is under it. Over
fits, because a whole fit's steps run 5-8% apart from the next fit's on this
machine, whether the two fits share a model or not; epochs of one fit are not
independent samples. Per row:

- `epoch`: the steady-state epoch (median over epochs 2..E of the time from
  one epoch end to the next, so our epoch-end work is inside it);
- `epoch cpu`: the same, in this process's CPU time (all threads; steadier
  than wall time when other jobs share the machine);
- `fit`: the whole `fit` call, tracing and XLA compilation included.

Then where the time goes, per part:

- `step`: the train step alone, instrumented versus clean, in one process
  (`time_step_variants`: `--step-builds` models per instrumentation, each
  timed against its own clean step, the same batches, blocks of 10 steps in
  a shuffled order, paired by block; the CPU a step gains is the mean over
  the builds, and each build's is printed too: one build's figure swings
  by more than the cost), for four
  instrumentations: the per-step data statistics alone (label counts, input
  sums, batch fingerprint, and the gradient pass's cond, never taken:
  `gradient_freq` past the run, probe off), plus filling the probe, plus the
  gradient pass every `gradient_freq` steps (the defaults), and the gradient
  pass on every step (what one measured step costs). Differences between
  rows are each part's cost; each row prints the CPU it adds to a step.
- `inside the fits' epochs`: the added CPU split into a step (the mean
  interval between batch starts) and the epoch's boundary (the rest: our
  epoch-end work, and Keras's and ours at the epoch's start), paired by fit.
  The boundary is measured tightly; a fit's step inherits the fit's swing.
- `host`: milliseconds per steady-state epoch in each part of the callback's
  Python side (weight snapshot and update norms, accumulator readout, probe
  pass, writing, per-batch hooks), timed inside the stagnation fits above,
  in wall time and in CPU time (the probe's forward pass keeps both cores
  busy: its CPU time is what the epoch's CPU ratio counts).
- `the steady-state epoch from its parts`: 1 + (a step's added CPU from the
  `step` A/B x steps + the boundary's added CPU) / (the same, clean), at the
  benchmark's epoch length and at ten times it. It is built from the two
  figures this machine measures well, and says how the per-epoch share falls
  with longer epochs.

`--layers 10,30,100,300` adds the layer-count scaling: a stack of N
Dense(32, relu) layers, one model per N, fits without and with the callback
alternating on that model (so the clean train function is traced once), and
prints the steady-state epoch ratio and the callback's host time per epoch
for each N, then the `step` parts above for each N (fewer blocks for deeper
stacks). The target is a flat per-layer cost: 300 layers within 1.05x.

`--cond-ab mlp,10,300` compares, in one process, the train step with our
per-step conds lowered by TensorFlow and kept one functional `If`
(`compat_keras.unlowered_cond`), for each model or Dense stack named.

`--first-epochs 300` prints a new user's first three epochs (wall time,
tracing included) on a new Dense stack of that many layers, each fit in a
fresh process, without and with the callback, median over `--reps`.

`--memory` prints peak resident memory of a fit with and without the
callback, each in a fresh subprocess (`--reps` alternating pairs, the
medians and each pair), on an MLP with 23M parameters (so the weights
dominate), and how many bytes the callback holds across an epoch for the
update ratio.

The target is `epoch cpu` and `step` <= 1.03x at the defaults. Synthetic
data only; nothing is downloaded. Logs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tb_stagnation import StagnationCallback  # noqa: E402
from tb_stagnation.callback.weight_snapshot import WeightSnapshot  # noqa: E402

VARIANTS = ("none", "stagnation", "tensorboard")

# The callback's host-side parts, by the method that does each (timed from
# outside, on the instance): what the `host` breakdown prints.
HOST_PARTS = {
    "weight snapshot (epoch begin)": "on_epoch_begin",
    "update norms (epoch end)": "_weight_values",
    "accumulator readout": "_recorder_values",
    "probe pass": "_probe_values",
    "writing": "_write_epoch",
    "per-batch hooks": ("on_train_batch_begin", "on_train_batch_end"),
}

# Step A/B instrumentations, each adding one part to the one before. With
# `gradient_freq` past the run the gradient pass's `tf.cond` is still in the
# step, never taken: its cost on every step (it takes every gradient as an
# input) counts in "data statistics". The last row measures every step (and
# then builds no cond at all), so (its cost - the defaults' cost) /
# (1 - 1/gradient_freq) is roughly one measured step's work.
STEP_PARTS = (
    ("data statistics", {"gradient_freq": 10**9, "probe_size": 0}),
    ("+ probe fill", {"gradient_freq": 10**9}),
    ("+ gradient pass (defaults)", {}),
    ("gradient pass every step", {"gradient_freq": 1}),
)


class EpochClock(keras.callbacks.Callback):
    """Epoch-end timestamps; placed last, so other callbacks' epoch-end work counts.

    Wall time and this process's CPU time: on a machine shared with other
    jobs the wall time swings with their load, the CPU time much less. The
    CPU time at each batch's start too (it overrides only
    `on_train_batch_begin`, so Keras still dispatches batch ends as it would
    without it), which splits an epoch into its steps and its boundary.
    """

    def on_train_begin(self, logs=None):
        self.ends = []
        self.cpu_ends = []
        self.batch_starts: list[list[float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.batch_starts.append([])

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_starts[-1].append(time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())

    def split(self) -> tuple[list, list]:
        """Per steady-state epoch (2..E): (CPU seconds a step, CPU seconds of the boundary).

        A step is the mean interval from one batch's start to the next; the
        boundary is the rest of the epoch (the last step's share taken out):
        epoch-end and epoch-begin work, ours and Keras's.
        """
        steps, boundaries = [], []
        for epoch in range(1, len(self.cpu_ends)):
            starts = self.batch_starts[epoch]
            step = (starts[-1] - starts[0]) / max(len(starts) - 1, 1)
            steps.append(step)
            boundaries.append(self.cpu_ends[epoch] - self.cpu_ends[epoch - 1] - step * len(starts))
        return steps, boundaries


class PartTimer:
    """Seconds spent in each of HOST_PARTS, on one callback instance, from epoch 2 on.

    Wall time and this process's CPU time: a part that runs TensorFlow ops
    (the probe's forward pass) keeps both cores busy, so its CPU time, which
    is what the epoch's CPU ratio counts, can be twice its wall time.
    """

    def __init__(self, callback: StagnationCallback) -> None:
        self.seconds: dict = collections.defaultdict(float)
        self.cpu_seconds: dict = collections.defaultdict(float)
        self.epochs = 0
        self._counting = False
        for part, names in HOST_PARTS.items():
            for name in (names,) if isinstance(names, str) else names:
                self._wrap(callback, name, part)
        epoch_end = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            epoch_end(epoch, logs)
            # Epoch 1 holds tracing: count from the second epoch on.
            self.epochs += int(self._counting)
            self._counting = True

        callback.on_epoch_end = on_epoch_end

    def _wrap(self, callback, name, part):
        original = getattr(callback, name)

        def timed(*args, **kwargs):
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                if self._counting:
                    self.seconds[part] += time.perf_counter() - start
                    self.cpu_seconds[part] += time.process_time() - cpu_start

        setattr(callback, name, timed)

    def per_epoch_ms(self, cpu: bool = False) -> dict:
        seconds = self.cpu_seconds if cpu else self.seconds
        return {part: 1e3 * seconds[part] / max(self.epochs, 1) for part in HOST_PARTS}


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


def mlp_case(width: int = 1024) -> tuple:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6400, 784)).astype(np.float32)
    y = rng.integers(0, 10, 6400)

    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        # At width 1024: 784*1024 + 1024*256 + 256*10 (+ biases) = 1.07M parameters.
        return keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(width, activation="relu"),
                keras.layers.Dense(width // 4, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    return build, x, y, 64


def resnet_case(blocks: int = 8) -> tuple:
    rng = np.random.default_rng(0)
    x = rng.random((6400, 16, 16, 8), dtype=np.float32)
    y = rng.integers(0, 10, 6400)

    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        inputs = keras.Input((16, 16, 8))
        h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
        for _ in range(blocks):
            r = keras.layers.Conv2D(16, 3, padding="same")(h)
            r = keras.layers.BatchNormalization()(r)
            r = keras.layers.ReLU()(r)
            r = keras.layers.Conv2D(16, 3, padding="same")(r)
            r = keras.layers.BatchNormalization()(r)
            h = keras.layers.ReLU()(keras.layers.Add()([h, r]))
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))

    return build, x, y, 64


def stack_case(layers: int) -> tuple:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6400, 32)).astype(np.float32)
    y = rng.integers(0, 10, 6400)

    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        hidden = [keras.layers.Dense(32, activation="relu") for _ in range(layers)]
        return keras.Sequential(
            [keras.Input((32,)), *hidden, keras.layers.Dense(10, activation="softmax")]
        )

    return build, x, y, 64


CASES = {"cnn": cnn_case, "mlp": mlp_case, "resnet": resnet_case}


def compile_model(model: keras.Model, jit: object) -> None:
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit,
    )


def make_callbacks(variant: str, logdir: str, gradient_freq: int) -> tuple[list, PartTimer | None]:
    if variant == "stagnation":
        kwargs = {"gradient_freq": gradient_freq} if gradient_freq else {}
        callback = StagnationCallback(log_dir=logdir, **kwargs)
        return [callback], PartTimer(callback)
    if variant == "tensorboard":
        return [keras.callbacks.TensorBoard(log_dir=logdir, histogram_freq=1)], None
    return [], None


def clocked_fit(model, case, epochs, callbacks) -> tuple[float, float, EpochClock]:
    """One `fit` of `case`: (wall clock before it, after it, its `EpochClock`)."""
    _, x, y, batch_size = case
    clock = EpochClock()
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[*callbacks, clock])
    return start, time.perf_counter(), clock


def timed_fit(model, case, epochs, callbacks) -> tuple[float, list, list, EpochClock]:
    """(fit seconds, steady-state epoch seconds, the same in CPU seconds, the clock)."""
    start, end, clock = clocked_fit(model, case, epochs, callbacks)
    # Epochs 2..E: no tracing inside.
    return end - start, list(np.diff(clock.ends)), list(np.diff(clock.cpu_ends)), clock


@dataclasses.dataclass
class FitResult:
    """One fit of `bench_model`: its steady-state epochs, whole and split."""

    total: float
    epochs: list
    cpus: list
    step_cpus: list
    boundary_cpus: list
    params: int
    timer: PartTimer | None


def run_once(
    case: tuple, variant: str, epochs: int, jit: object, logdir: str, gradient_freq: int
) -> FitResult:
    model = case[0]()
    compile_model(model, jit)
    callbacks, timer = make_callbacks(variant, logdir, gradient_freq)
    total, epoch, epoch_cpu, clock = timed_fit(model, case, epochs, callbacks)
    steps, boundaries = clock.split()
    return FitResult(total, epoch, epoch_cpu, steps, boundaries, model.count_params(), timer)


def ratios(instrumented: list, clean: list) -> tuple[float, float]:
    """(ratio of the medians, paired ratio): the second is the steadier.

    `instrumented[i]` and `clean[i]` ran next to each other (the same
    repetition and epoch, or adjacent blocks of steps), so their difference
    is measured under the same load from other jobs; the paired ratio is
    1 + the median of these differences over the median clean time. Other
    jobs on a shared machine move both members of a pair, and a burst that
    hits one pair moves a median of many pairs little.
    """
    differences = [i - c for i, c in zip(instrumented, clean)]
    base = statistics.median(clean)
    return (
        statistics.median(instrumented) / base,
        1.0 + statistics.median(differences) / base,
    )


def paired_interval(instrumented: list, clean: list, level: float = 0.9) -> str:
    """The paired ratio's `level` bootstrap interval over the pairs, as "[low, high]".

    On a shared 2-core machine a 2% difference is within the noise of one
    run; the interval says whether a target is met or merely not refuted.
    The pairs are one build's blocks: `StepTimes.interval` with one build.
    """
    return StepTimes([(instrumented, clean)]).interval(level)


def driven_step(model: keras.Model, callback: StagnationCallback) -> Callable:
    """`model`'s train step with `callback` driven around it as `fit` drives it.

    `on_train_batch_begin` before every step tells our train-function
    wrapper that the call is our fit's; without it the wrapper runs Keras's
    clean function, and an A/B would compare clean with clean. The step
    counts its calls in `.calls`; `finish_driven(callback)` ends the epoch.
    """
    callback.set_model(model)
    callback.set_params({"epochs": 1, "steps": None, "verbose": 0})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    function = model.train_function

    def step(iterator: Any) -> None:
        callback.on_train_batch_begin(step.calls)
        logs = function(iterator)
        callback.on_train_batch_end(step.calls, logs)
        step.calls += 1

    step.calls = 0  # type: ignore[attr-defined]
    return step


def finish_driven(callback: StagnationCallback) -> None:
    callback.on_epoch_end(0)
    callback.on_train_end()


@dataclasses.dataclass
class StepVariant:
    """One instrumented train step to time against the clean one.

    `while_planning` (a context manager factory) holds while the callback
    plans and traces the step; `check(callback)` then raises if the step was
    not built as the variant says.
    """

    name: str
    kwargs: dict
    while_planning: Callable[[], Any] = contextlib.nullcontext
    check: Callable[[StagnationCallback], None] | None = None


def time_step_variants(
    case: tuple, jit: object, root: str, variants: list, blocks: int, builds: int = 1
) -> dict:
    """Per `StepVariant` name, its `StepTimes`: CPU seconds per step of each block.

    One process, `builds` models per variant, and on each model two steps:
    Keras's clean train function, traced before the callback, and the
    instrumented one with the callback driven as `fit` drives it
    (`driven_step`). The same batches, blocks of 10 steps of every step in a
    shuffled order. Each instrumented step is paired with the clean step of
    its own model, block by block: that takes out the load of other jobs.
    Several builds, because one build's figure swings by more than the cost:
    the same instrumentation added 51 to 423 us to the MLP's step on six
    builds, and two builds of one model's clean step ran 4% apart, in one
    process (2026-12-04).
    """
    build, x, y, batch_size = case
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True)
    iterator = iter(dataset.repeat().prefetch(4))
    steps: dict = {}
    callbacks: list = []
    try:
        for variant in variants:
            for copy in range(builds):
                model = build()
                model.compile(
                    optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit
                )
                model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, verbose=0)
                model.make_train_function()
                # Traced before our hooks exist, and they record only inside our
                # wrapper: this step stays clean while the callback is installed.
                steps[(variant.name, copy, "clean")] = model.train_function
                logdir = os.path.join(root, f"step_{len(callbacks)}")
                with variant.while_planning():
                    callback = StagnationCallback(log_dir=logdir, **variant.kwargs)
                    callbacks.append((variant, copy, callback))
                    step = driven_step(model, callback)
                    for _ in range(5):  # traced and planned while the context holds
                        step(iterator)
                if variant.check is not None:
                    variant.check(callback)
                steps[(variant.name, copy, "instrumented")] = step
        cpu: dict = {key: [] for key in steps}
        order = list(steps.items())
        shuffle = random.Random(0)
        for function in steps.values():
            function(iterator)
        for _ in range(blocks):
            shuffle.shuffle(order)
            for key, function in order:
                start = time.process_time()
                for _ in range(10):
                    function(iterator)
                cpu[key].append((time.process_time() - start) / 10)
        # The guard against timing clean against clean: each recorder counted
        # its model's instrumented steps.
        for variant, copy, callback in callbacks:
            recorder = callback._recorder
            recorded = int(recorder.read().data.batches) if recorder is not None else 0
            if recorded < steps[(variant.name, copy, "instrumented")].calls:
                raise RuntimeError(f"{variant.name}: only {recorded} steps were instrumented")
    finally:
        for _, _, callback in callbacks:
            finish_driven(callback)
    return {
        v.name: StepTimes(
            [(cpu[(v.name, c, "instrumented")], cpu[(v.name, c, "clean")]) for c in range(builds)]
        )
        for v in variants
    }


@dataclasses.dataclass
class StepTimes:
    """One instrumentation's train-step CPU: per build, (instrumented, clean) seconds per block."""

    builds: list

    def added(self) -> float:
        """Seconds a step gains: the mean over builds of the median paired block difference."""
        return float(np.mean([_median_difference(i, c) for i, c in self.builds]))

    def clean(self) -> float:
        return statistics.median(t for _, clean in self.builds for t in clean)

    def ratio(self) -> float:
        return 1.0 + self.added() / self.clean()

    def interval(self, level: float = 0.9) -> str:
        """The ratio's `level` bootstrap interval, as "[low, high]"."""
        draws = self.draws()
        if draws is None:
            return "[n/a]"
        low, high = np.quantile(1.0 + draws[0] / draws[1], [(1 - level) / 2, (1 + level) / 2])
        return f"[{low:.3f}, {high:.3f}]"

    def added_interval(self, unit: float, level: float = 0.9) -> str:
        """The added seconds' `level` bootstrap interval, in `unit` seconds."""
        draws = self.draws()
        if draws is None:
            return "[n/a]"
        low, high = np.quantile(draws[0] / unit, [(1 - level) / 2, (1 + level) / 2])
        return f"[{low:+.1f}, {high:+.1f}]"

    def draws(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
        """Bootstrap draws of (added seconds, clean seconds), or None with too few pairs.

        Two stages, as the data were made: builds drawn with replacement,
        then each drawn build's blocks. With one build only its blocks vary,
        and the interval says nothing of the next build's luck.
        """
        if min(len(clean) for _, clean in self.builds) < 4:
            return None
        rng = np.random.default_rng(seed)
        resamples = 2000
        added = []  # [build, resample]: the build's median difference
        clean = []
        for instrumented, clean_blocks in self.builds:
            pairs = np.array(list(zip(instrumented, clean_blocks)), np.float64)
            picks = rng.integers(0, len(pairs), (resamples, len(pairs)))
            drawn = pairs[picks]  # [resample, pair, (instrumented, clean)]
            added.append(np.median(drawn[..., 0] - drawn[..., 1], axis=1))
            clean.append(np.median(drawn[..., 1], axis=1))
        added_, clean_ = np.array(added), np.array(clean)
        count = len(self.builds)
        builds = rng.integers(0, count, (resamples, count))
        columns = np.arange(resamples)[:, None]
        return added_[builds, columns].mean(1), np.median(clean_[builds, columns], 1)

    def per_build_us(self) -> str:
        """Each build's added CPU a step, in microseconds: how much one build's luck weighs."""
        return ", ".join(f"{_median_difference(i, c) * 1e6:+.0f}" for i, c in self.builds)


def _median_difference(instrumented: list, clean: list) -> float:
    return statistics.median(i - c for i, c in zip(instrumented, clean))


def step_row(label: str, times: StepTimes) -> str:
    """`label`, the paired CPU ratio, its 90% interval, the CPU added per step, per build."""
    row = (
        f"  {label:<30}{times.ratio():>8.3f}{times.interval():>18}"
        f"{times.added() * 1e6:>+12.0f} us{times.clean() * 1e3:>8.2f} ms"
    )
    return row + (f"   ({times.per_build_us()})" if len(times.builds) > 1 else "")


@contextlib.contextmanager
def replaced(owner: Any, name: str, value: Any) -> Any:
    """`owner.name` is `value` inside the block."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def print_step_parts(
    case: tuple, jit: object, root: str, blocks: int, gradient_freq: int, builds: int
) -> dict:
    variants = []
    for label, kwargs in STEP_PARTS:
        if gradient_freq and "gradient_freq" not in kwargs:
            kwargs = {**kwargs, "gradient_freq": gradient_freq}
        variants.append(StepVariant(label, kwargs))
    cpu = time_step_variants(case, jit, root, variants, blocks, builds)
    print(
        f"step (train function alone, one process, each part on {builds} models of its own, "
        "each against its clean step, shuffled blocks), instrumented / clean:"
    )
    print(
        f"  {'':<30}{'paired cpu':>10}{'90% interval':>16}{'cpu a step':>15}{'clean':>11}"
        + ("   (cpu a step, per build)" if builds > 1 else "")
    )
    for variant in variants:
        print(step_row(variant.name, cpu[variant.name]))
    return cpu


def print_host_parts(timers: list) -> None:
    timers = [timer for timer in timers if timer is not None]
    if not timers:
        return
    walls, cpus = ([timer.per_epoch_ms(cpu) for timer in timers] for cpu in (False, True))
    wall = {part: statistics.median(p[part] for p in walls) for part in HOST_PARTS}
    cpu = {part: statistics.median(p[part] for p in cpus) for part in HOST_PARTS}
    print(f"host, ms per steady-state epoch (median of {len(timers)} fits), wall and CPU:")
    for part in HOST_PARTS:
        print(f"  {part:<32}{wall[part]:>8.2f}{cpu[part]:>8.2f}")
    print(f"  {'total':<32}{sum(wall.values()):>8.2f}{sum(cpu.values()):>8.2f}")


def bench_model(name: str, case: tuple, args, jit, root: str) -> None:
    fits: dict = {v: [] for v in VARIANTS}
    # A warm-up fit of each variant: first-use costs (imports, thread
    # pools) must not land on whichever variant happens to run first.
    for variant in VARIANTS:
        run_once(case, variant, 2, jit, os.path.join(root, f"{name}_warm"), args.gradient_freq)
    for rep in range(args.reps):
        for variant in VARIANTS:
            logdir = os.path.join(root, f"{name}_{variant}_{rep}")
            fits[variant].append(
                run_once(case, variant, args.epochs, jit, logdir, args.gradient_freq)
            )
    clean = fits["none"]
    base_total = statistics.median(fit.total for fit in clean)
    print(
        f"\n{name}: {clean[0].params:,} parameters, {args.epochs} epochs, "
        f"jit_compile={args.jit}, {args.reps} interleaved repetitions; ratios of the "
        "medians, then paired by epoch, then by fit (the interval draws fits, then their "
        "epochs: a whole fit's steps run 5-8% apart from the next fit's)"
    )
    print(
        f"{'variant':<14}{'epoch ratio':>12}{'cpu ratio':>11}{'paired':>9}{'paired cpu':>12}"
        f"{'fit ratio':>11}{'epoch s':>10}{'epoch cpu s':>13}{'fit s':>9}"
        f"{'by fit, cpu':>13}{'90% interval':>18}"
    )
    for variant in VARIANTS:
        runs = fits[variant]
        epochs = [e for fit in runs for e in fit.epochs]
        cpus = [c for fit in runs for c in fit.cpus]
        epoch, paired = ratios(epochs, [e for fit in clean for e in fit.epochs])
        cpu, paired_cpu = ratios(cpus, [c for fit in clean for c in fit.cpus])
        total = statistics.median(fit.total for fit in runs)
        by_fit = StepTimes([(fit.cpus, base.cpus) for fit, base in zip(runs, clean)])
        print(
            f"{variant:<14}{epoch:>12.3f}{cpu:>11.3f}{paired:>9.3f}{paired_cpu:>12.3f}"
            f"{total / base_total:>11.3f}{statistics.median(epochs):>10.4f}"
            f"{statistics.median(cpus):>13.4f}{total:>9.3f}"
            f"{by_fit.ratio():>13.3f}{by_fit.interval():>18}"
        )
    boundary = print_epoch_split(fits["stagnation"], clean)
    print_host_parts([fit.timer for fit in fits["stagnation"]])
    steps = print_step_parts(
        case,
        jit,
        os.path.join(root, f"{name}_step"),
        args.step_blocks,
        args.gradient_freq,
        args.step_builds,
    )
    defaults = steps[STEP_PARTS[2][0]]
    per_epoch = len(case[1]) // case[3]
    print_epoch_from_parts(defaults, boundary, sorted({per_epoch, 10 * per_epoch}))


def print_epoch_split(instrumented: list, clean: list) -> StepTimes:
    """Where the epoch's added CPU lands inside the fits: its steps or its boundary.

    The steps here are `fit`'s own (the data pipeline, Keras's per-batch
    work and ours); the boundary holds our epoch-end and epoch-begin work and
    Keras's. Paired by fit, intervals over fits, as the epoch ratio above.
    """
    steps = StepTimes([(fit.step_cpus, base.step_cpus) for fit, base in zip(instrumented, clean)])
    boundary = StepTimes(
        [(fit.boundary_cpus, base.boundary_cpus) for fit, base in zip(instrumented, clean)]
    )
    epoch = statistics.median(c for fit in clean for c in fit.cpus)
    print("inside the fits' epochs, CPU, stagnation against none:")
    print(
        f"  a step        {steps.added() * 1e6:+8.0f} us {steps.added_interval(1e-6):>18} us"
        f"  of {steps.clean() * 1e3:.2f} ms: {steps.ratio():.3f} {steps.interval()}"
    )
    print(
        f"  the boundary  {boundary.added() * 1e3:+8.1f} ms {boundary.added_interval(1e-3):>18} ms"
        f"  of {boundary.clean() * 1e3:.1f} ms: {boundary.added() / epoch:+.1%} of the epoch"
    )
    return boundary


def epoch_from_parts(
    step: StepTimes, boundary: StepTimes, length: int, level: float = 0.9
) -> tuple[float, float | None, float | None]:
    """The epoch's CPU ratio built from its two parts that this machine measures well.

    1 + (a step's added CPU x `length` + the boundary's added CPU) / (the
    same, clean), and its `level` bootstrap interval (None, None with too few
    pairs), which draws the two parts independently. The step comes from the
    step A/B (blocks of steps interleaved within milliseconds), the boundary
    from the fits (our epoch-end work, paired within each fit). A whole fit's
    steps swing by 5-8% from one fit to the next on this machine, paired or
    not (2026-12-04): hence the direct epoch ratio's intervals 15-20 points wide.
    """
    ratio = 1 + (step.added() * length + boundary.added()) / (
        step.clean() * length + boundary.clean()
    )
    step_draws, boundary_draws = step.draws(seed=1), boundary.draws(seed=2)
    if step_draws is None or boundary_draws is None:
        return ratio, None, None
    added = step_draws[0] * length + boundary_draws[0]
    ratios_ = 1 + added / (step_draws[1] * length + boundary_draws[1])
    low, high = np.quantile(ratios_, [(1 - level) / 2, (1 + level) / 2])
    return ratio, float(low), float(high)


def print_epoch_from_parts(step: StepTimes, boundary: StepTimes, lengths: list[int]) -> None:
    print("the steady-state epoch from its parts (a step's CPU from the step A/B, the boundary's")
    print("from the fits), CPU ratio at the defaults:")
    for length in lengths:
        ratio, low, high = epoch_from_parts(step, boundary, length)
        interval = "[n/a]" if low is None else f"[{low:.3f}, {high:.3f}]"
        print(f"  {length:>6} steps an epoch{ratio:>10.3f} {interval}")


def bench_layers(counts: list[int], args, jit, root: str) -> None:
    """Steady-state epoch ratio and host time per epoch against the layer count."""
    print(
        f"\nlayer-count scaling: Dense(32) stacks, {args.epochs} epochs, "
        f"{args.reps} alternations per model"
    )
    print(
        f"{'layers':>7}{'epoch ratio':>13}{'cpu ratio':>11}{'paired':>9}{'paired cpu':>12}"
        f"{'host ms/epoch':>15}{'clean epoch s':>15}{'paired cpu, 90% interval':>27}"
    )
    for count in counts:
        case = stack_case(count)
        model = case[0]()
        compile_model(model, jit)
        timed_fit(model, case, 2, [])  # traces Keras's own train function once
        epochs = {"none": [], "stagnation": []}
        cpus = {"none": [], "stagnation": []}
        timers = []
        for rep in range(args.reps):
            for variant in ("none", "stagnation"):
                callbacks, timer = make_callbacks(
                    variant, os.path.join(root, f"stack{count}_{rep}"), args.gradient_freq
                )
                _, epoch, cpu, _ = timed_fit(model, case, args.epochs, callbacks)
                epochs[variant].extend(epoch)
                cpus[variant].extend(cpu)
                timers.append(timer)
        host = statistics.median(sum(t.per_epoch_ms().values()) for t in timers if t)
        epoch, paired = ratios(epochs["stagnation"], epochs["none"])
        cpu, paired_cpu = ratios(cpus["stagnation"], cpus["none"])
        print(
            f"{count:>7}{epoch:>13.3f}{cpu:>11.3f}{paired:>9.3f}{paired_cpu:>12.3f}"
            f"{host:>15.1f}{statistics.median(epochs['none']):>15.3f}"
            f"{paired_interval(cpus['stagnation'], cpus['none']):>27}"
        )
    if args.step_blocks <= 0:
        return
    # Per step, by part: what the epoch ratios above blur. The untaken
    # gradient cond grows with the gradients it takes as inputs.
    for count in counts:
        # A 300-layer step is ~30 ms: fewer blocks keep the run to minutes;
        # 8 blocks left the 100-layer rows' intervals 0.2 wide (2026-12-04).
        blocks = max(24, args.step_blocks * 10 // max(count, 10))
        print(f"\nDense(32) stack of {count} layers, {blocks} blocks:")
        print_step_parts(
            stack_case(count),
            jit,
            os.path.join(root, f"stack{count}_step"),
            blocks,
            args.gradient_freq,
            args.step_builds,
        )


def peak_memory_child(variant: str, logdir: str) -> None:
    """In a subprocess: one fit of the 23M-parameter MLP; prints JSON for the parent."""
    case = mlp_case(width=8192)
    _, x, y, batch_size = case
    model = case[0]()
    compile_model(model, "auto")
    callbacks, _ = make_callbacks(variant, logdir, 0)
    model.fit(x[:1280], y[:1280], batch_size=batch_size, epochs=2, verbose=0, callbacks=callbacks)
    # What the callback keeps across an epoch for the update ratio: the same
    # snapshot over the same variables (its layers' weights).
    snapshot = WeightSnapshot(tf, model.weights)
    snapshot.take()
    held = snapshot.held_bytes
    peak_kib = peak_rss_kib()
    weights = sum(int(np.prod(w.shape)) * 4 for w in model.trainable_weights)
    print(
        json.dumps(
            {"peak_mb": peak_kib / 1024, "held_mb": held / 2**20, "weights_mb": weights / 2**20}
        )
    )


FIRST_EPOCH_VARIANTS = ("none", "stagnation")


def first_epochs_child(variant: str, layers: int, logdir: str) -> None:
    """In a fresh process: a new Dense stack, 3 epochs; prints their wall seconds as JSON."""
    case = stack_case(layers)
    model = case[0]()
    compile_model(model, "auto")
    callbacks, _ = make_callbacks(variant, logdir, 0)
    start, _, clock = clocked_fit(model, case, 3, callbacks)
    print(json.dumps(list(np.diff([start, *clock.ends]))))


def bench_first_epochs(layers: int, reps: int, root: str) -> None:
    """A new user's first three epochs on a Dense stack, each variant in fresh processes."""
    print(
        f"\nfirst epochs of a new {layers}-layer Dense stack, wall seconds, "
        f"a fresh process per fit, median of {reps}:"
    )
    seconds: dict = {variant: [] for variant in FIRST_EPOCH_VARIANTS}
    for _ in range(reps):
        for variant in FIRST_EPOCH_VARIANTS:
            seconds[variant].append(
                child_result(
                    "--first-epochs-child", variant, "--first-epochs", str(layers), "--logdir", root
                )
            )
    for variant, runs in seconds.items():
        epochs = [statistics.median(run[epoch] for run in runs) for epoch in range(3)]
        print(f"  {variant:<14}" + " / ".join(f"{value:.2f}" for value in epochs))


def child_result(*args: str) -> Any:
    """Run this script in a fresh process with `args`; the JSON its last output line holds."""
    output = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def peak_rss_kib() -> int:
    """This process's peak resident memory since its exec, in KiB.

    Not `ru_maxrss`: on Linux it survives exec, so a child forked from this
    benchmark (gigabytes after the training runs) would start at the parent's
    peak. `VmHWM` belongs to the new process image.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_memory(reps: int, root: str) -> None:
    """Peak RSS without and with the callback, `reps` alternating pairs of fresh processes.

    Several pairs, because the clean fit's own peak moves by up to 100 MB
    from one process to the next (1,132-1,228 MB in three runs, 2026-12-04),
    more than the callback's share.
    """
    print(
        f"\npeak memory, one 2-epoch fit per fresh process (MLP 784-8192-2048-10), "
        f"{reps} alternating pairs:"
    )
    runs: dict = {"none": [], "stagnation": []}
    for _ in range(reps):
        for variant in runs:
            runs[variant].append(child_result("--memory-child", variant, "--logdir", root))
    peaks = {variant: [run["peak_mb"] for run in results] for variant, results in runs.items()}
    without, with_ = statistics.median(peaks["none"]), statistics.median(peaks["stagnation"])
    first = runs["stagnation"][0]
    print(
        f"  trainable weights {first['weights_mb']:.0f} MB; peak RSS, median without "
        f"{without:.0f} MB, with {with_:.0f} MB (ratio {with_ / without:.3f}); "
        f"held by the callback for the update ratio: {first['held_mb']:.1f} MB"
    )
    print(
        "  each pair, without / with: "
        + ", ".join(f"{a:.0f} / {b:.0f}" for a, b in zip(peaks["none"], peaks["stagnation"]))
    )


def bench_cond_lowering(names: list[str], blocks: int, builds: int, root: str) -> None:
    """The train step clean, with our per-step conds lowered, and kept one `If`.

    Two instrumented models whose recorders were planned with
    `conds_may_stay_unlowered` answering False and True, each timed against
    its own clean step by `time_step_variants`: what
    `compat_keras.unlowered_cond` is worth, without the noise between runs
    or between builds.
    """
    from tb_stagnation.compat import keras as compat_keras

    def planned(unlowered: bool) -> StepVariant:
        def swapped() -> Any:
            return replaced(
                compat_keras, "conds_may_stay_unlowered", lambda _keras, _model: unlowered
            )

        def check(callback: StagnationCallback) -> None:
            recorder = callback._recorder
            if recorder is None or recorder.plan.unlowered_conds != unlowered:
                raise RuntimeError(f"the model was not planned with unlowered={unlowered}")

        return StepVariant("unlowered" if unlowered else "lowered", {}, swapped, check)

    print("\nper-step conds, train step CPU paired to the clean one (90% interval):")
    for name in names:
        case = CASES[name]() if name in CASES else stack_case(int(name))
        cpu = time_step_variants(
            case,
            "auto",
            os.path.join(root, f"conds_{name}"),
            [planned(False), planned(True)],
            blocks,
            builds,
        )
        parts = [
            f"{variant} {cpu[variant].ratio():.3f} {cpu[variant].interval()}"
            for variant in ("lowered", "unlowered")
        ]
        # Each against its own model's clean step: the difference of the added CPU.
        added = {variant: cpu[variant].added() for variant in ("lowered", "unlowered")}
        clean = statistics.median([cpu["lowered"].clean(), cpu["unlowered"].clean()])
        print(
            f"  {name:>6}: clean {clean * 1e3:.2f} ms; "
            + "; ".join(parts)
            + f"; unlowered saves {(added['lowered'] - added['unlowered']) * 1e3:.3f} ms a step"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--models", default="cnn,mlp,resnet")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto")
    parser.add_argument(
        "--gradient-freq", type=int, default=0, help="0: StagnationCallback's default"
    )
    parser.add_argument("--step-blocks", type=int, default=60)
    parser.add_argument(
        "--step-builds", type=int, default=3, help="models per step instrumentation"
    )
    parser.add_argument(
        "--layers", default="", help="layer counts to scale over, e.g. 10,30,100,300"
    )
    parser.add_argument(
        "--cond-ab", default="", help="models or layer counts for the cond A/B, e.g. mlp,10,300"
    )
    parser.add_argument("--memory", action="store_true")
    parser.add_argument(
        "--first-epochs", type=int, default=0, help="layers of a new stack: its first 3 epochs"
    )
    parser.add_argument("--memory-child", choices=("none", "stagnation"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--first-epochs-child", choices=FIRST_EPOCH_VARIANTS, help=argparse.SUPPRESS
    )
    parser.add_argument("--logdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child, args.logdir)
        return
    if args.first_epochs_child:
        first_epochs_child(args.first_epochs_child, args.first_epochs, args.logdir)
        return
    jit = {"auto": "auto", "on": True, "off": False}[args.jit]
    root = tempfile.mkdtemp(prefix="tb_stagnation_bench_")
    try:
        for name in filter(None, args.models.split(",")):
            bench_model(name, CASES[name](), args, jit, root)
        if args.layers:
            bench_layers([int(n) for n in args.layers.split(",")], args, jit, root)
        if args.cond_ab:
            bench_cond_lowering(args.cond_ab.split(","), args.step_blocks, args.step_builds, root)
        if args.memory:
            bench_memory(max(1, args.reps), root)
        if args.first_epochs:
            bench_first_epochs(args.first_epochs, max(1, args.reps), root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
