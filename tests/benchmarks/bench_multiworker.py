"""What StagnationCallback costs each worker of a MultiWorkerMirroredStrategy cluster.

    python tests/benchmarks/bench_multiworker.py [--reps 3 --epochs 5]

Starts a two-worker cluster of local processes on loopback (TF_CONFIG).
Each worker trains an MLP of about 1M parameters (synthetic data, 50 global
steps of 128 samples per epoch) `--reps` times without and with
StagnationCallback, interleaved, and reports per worker:

- the median steady-state epoch (epochs 2..E) in wall time and in the
  process's own CPU time, and their ratios to "no callback";
- `hooks ms/epoch`: the time spent inside the callback's Keras hooks (its
  host work: weight snapshots, reads, probe pass, writing), per epoch.

The workers wait for each other at every step, so wall times are the same on
both, and any host work of the chief delays both. The targets: the
non-chief spends ~0 ms in the hooks and adds no ops (CPU ratio ~1.00x); the
chief's cost is that of a single process (bench_callback_overhead.py). Both
workers and their loopback collectives share this machine's two cores, so
epoch times swing by more than the effect; the hook time is the steady
number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCHMARKS, os.path.dirname(BENCHMARKS)]

STEPS, BATCH, FEATURES = 50, 128, 256


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    parser.add_argument("--log-dir", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


def _worker(args: argparse.Namespace) -> None:
    workers = [f"localhost:{port}" for port in args.ports.split(",")]
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": args.worker}}
    )
    import keras
    import numpy as np
    import tensorflow as tf
    from bench_callback_overhead import EpochClock
    from distributed_training import _work_around_keras_multiworker_fit

    from tb_stagnation import StagnationCallback

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    _work_around_keras_multiworker_fit()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, FEATURES)).astype("float32")
    y = rng.integers(0, 10, size=STEPS * BATCH).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)

    times: dict = {"none": {"wall": [], "cpu": []}, "stagnation": {"wall": [], "cpu": []}}
    hook_seconds = [0.0]
    hook_epochs = [0]

    def timed(hook):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                hook_seconds[0] += time.perf_counter() - start

        return call

    for rep in range(args.reps):
        for variant in times:
            keras.utils.set_random_seed(rep)
            with strategy.scope():
                model = keras.Sequential(
                    [
                        keras.Input((FEATURES,)),
                        keras.layers.Dense(1024, activation="relu"),
                        keras.layers.Dense(512, activation="relu"),
                        keras.layers.Dense(256, activation="relu"),
                        keras.layers.Dense(10, activation="softmax"),
                    ]
                )
                model.compile("adam", "sparse_categorical_crossentropy")
            clock = EpochClock()
            callbacks = [clock]
            if variant == "stagnation":
                log_dir = os.path.join(args.log_dir, f"rep{rep}")
                callback = StagnationCallback(log_dir=log_dir)
                for name in ("on_epoch_begin", "on_train_batch_end", "on_epoch_end"):
                    setattr(callback, name, timed(getattr(callback, name)))
                callbacks.insert(0, callback)
                hook_epochs[0] += args.epochs
            model.fit(dataset, epochs=args.epochs, verbose=0, callbacks=callbacks)
            # Steady state: from the first epoch end on (tracing excluded).
            for kind, stamps in (("wall", clock.ends), ("cpu", clock.cpu_ends)):
                times[variant][kind] += [b - a for a, b in zip(stamps, stamps[1:])]
    chief = bool(strategy.extended.should_save_summary)
    hooks_ms = 1000 * hook_seconds[0] / max(hook_epochs[0], 1)
    result = {"worker": args.worker, "chief": chief, "times": times, "hooks_ms": hooks_ms}
    print("RESULT " + json.dumps(result))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def main() -> None:
    args = _arguments()
    if args.worker is not None:
        _worker(args)
        return
    log_dir = tempfile.mkdtemp(prefix="bench_multiworker_")
    ports = ",".join(map(str, _free_ports(2)))
    command = [sys.executable, os.path.abspath(__file__), "--reps", str(args.reps)]
    command += ["--epochs", str(args.epochs), "--ports", ports, "--log-dir", log_dir]
    try:
        processes = [
            subprocess.Popen([*command, "--worker", str(i)], stdout=subprocess.PIPE, text=True)
            for i in range(2)
        ]
        outputs = [p.communicate()[0] for p in processes]
        written = sorted(
            os.path.relpath(os.path.join(root, name), log_dir)
            for root, _, names in os.walk(log_dir)
            for name in names
        )
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    print(f"MLP ~1M parameters, {STEPS} steps x {BATCH} samples per epoch, 2 workers, ")
    print(f"{args.reps} reps x {args.epochs} epochs per variant, interleaved; medians per epoch.")
    header = f"{'worker':<10}{'variant':<12}{'wall s':>9}{'cpu s':>9}{'wall ratio':>12}"
    print(f"{header}{'cpu ratio':>11}{'hooks ms/epoch':>16}")
    for output in outputs:
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        if not lines:
            print("a worker failed; see its output above")
            continue
        result = json.loads(lines[-1][len("RESULT ") :])
        role = "chief" if result["chief"] else f"worker {result['worker']}"
        base = {k: statistics.median(result["times"]["none"][k]) for k in ("wall", "cpu")}
        for variant, measured in result["times"].items():
            wall, cpu = statistics.median(measured["wall"]), statistics.median(measured["cpu"])
            hooks = f"{result['hooks_ms']:16.2f}" if variant == "stagnation" else ""
            print(
                f"{role:<10}{variant:<12}{wall:9.3f}{cpu:9.3f}"
                f"{wall / base['wall']:11.2f}x{cpu / base['cpu']:10.2f}x{hooks}"
            )
    print(f"files written by the cluster: {len(written)} ({', '.join(written) or 'none'})")


if __name__ == "__main__":
    main()
