"""What the pre-flight checks add to `fit`.

    python tests/benchmarks/bench_preflight.py [--reps 5 --epochs 2 --models small,cnn,mlp]

For each model it times `fit` with `StagnationCallback()` (pre-flight on, the
default) and `StagnationCallback(preflight=False)`, interleaved in one process
(on off off on on off ...: each variant goes first as often), a fresh
identically seeded model each time, and prints the medians, their difference
and ratio. The pre-flight works in the first epoch, so the fits are short.

It also prints `host`: the time spent inside the pre-flight's own methods
(`Preflight.start` and `after_batch`: the checks, the host reads, printing
and logging), measured directly, which the shared machine's noise does not
blur like the fit-level difference. The in-graph part (one state read and a
`tf.cond` per step) is inside the fit-level difference only.

Models: `small`, the README's MLP (20 features, 512 samples); `cnn` and `mlp`,
the benchmark models of bench_callback_overhead.py (a small CNN on 28x28
images and a 1M-parameter MLP, 100 steps of 64 per epoch).

Target: the pre-flight adds under 1 s to `fit`. Synthetic data only; logs
go to a temporary folder.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench_callback_overhead import cnn_case, mlp_case  # noqa: E402

from tb_stagnation import StagnationCallback  # noqa: E402
from tb_stagnation.callback.preflight import Preflight  # noqa: E402

HOST_SECONDS = [0.0]


def _timed(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            HOST_SECONDS[0] += time.perf_counter() - start

    return wrapper


Preflight.start = _timed(Preflight.start)
Preflight.after_batch = _timed(Preflight.after_batch)


def small_case() -> tuple:
    rng = np.random.default_rng(0)
    x = rng.random((512, 20), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype("int32")

    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        return keras.Sequential(
            [
                keras.Input((20,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(2, activation="softmax"),
            ]
        )

    return build, x, y, 32


def run_once(case: tuple, preflight: bool, epochs: int, logdir: str) -> tuple[float, float]:
    build, x, y, batch_size = case
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callback = StagnationCallback(log_dir=logdir, preflight=preflight)
    HOST_SECONDS[0] = 0.0
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[callback])
    return time.perf_counter() - start, HOST_SECONDS[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", default="small,cnn,mlp")
    args = parser.parse_args()
    cases = {"small": small_case, "cnn": cnn_case, "mlp": mlp_case}
    root = tempfile.mkdtemp(prefix="tb_stagnation_bench_preflight_")
    try:
        print(f"{'model':6} {'fit on':>8} {'fit off':>8} {'diff':>8} {'ratio':>6} {'host':>8}")
        for name in args.models.split(","):
            case = cases[name]()
            # Warm-up: imports (the analysis, once per process) and thread pools.
            for preflight in (True, False):
                run_once(case, preflight, 1, os.path.join(root, f"{name}_warm"))
            fits = {True: [], False: []}
            host = []
            for rep in range(args.reps):
                order = (True, False) if rep % 2 == 0 else (False, True)
                for preflight in order:
                    logdir = os.path.join(root, f"{name}_{rep}_{preflight}")
                    total, inside = run_once(case, preflight, args.epochs, logdir)
                    fits[preflight].append(total)
                    if preflight:
                        host.append(inside)
            on, off = statistics.median(fits[True]), statistics.median(fits[False])
            print(
                f"{name:6} {on:7.3f}s {off:7.3f}s {on - off:+7.3f}s {on / off:6.3f} "
                f"{statistics.median(host):7.4f}s"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
