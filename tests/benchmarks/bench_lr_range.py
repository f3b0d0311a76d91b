"""How long `lr_range_test` takes.

    python tests/benchmarks/bench_lr_range.py [--reps 3 --steps 100 --big]

For every scenario of tests/scenarios.py (the small MLPs the tests train, on
512 samples of 10 features, batch 32) it times `lr_range_test(model, x, y,
steps=...)` end to end: copying the model, compiling and tracing the copy's
train step, and the sweep (which stops early when the loss diverges). It
prints the median of `--reps` runs, the steps actually run and the verdict,
then the worst median. `--big` adds the 1M-parameter MLP and the small CNN of
bench_callback_overhead.py (batch 64).

Target: under 10 s on two cores at steps=100. Synthetic data only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from scenarios import SCENARIOS, _seed  # noqa: E402

from tb_stagnation import lr_range_test  # noqa: E402

TARGET_SECONDS = 10.0


def scenario_cases() -> list[tuple[str, object]]:
    cases = []
    for name, scenario in SCENARIOS.items():

        def make(name=name, scenario=scenario) -> tuple:
            keras.utils.set_random_seed(_seed(name))
            spec = scenario.build()
            model = spec.pop("model")
            model.compile(**spec.pop("compile"))
            return model, spec.pop("x"), spec.pop("y", None), None

        cases.append((name, make))
    return cases


def big_cases() -> list[tuple[str, object]]:
    from bench_callback_overhead import cnn_case, mlp_case

    cases = []
    for name, case in (("mlp_1m", mlp_case), ("cnn", cnn_case)):

        def make(case=case) -> tuple:
            build, x, y, batch = case()
            model = build()
            model.compile("adam", "sparse_categorical_crossentropy")
            return model, x, y, batch

        cases.append((name, make))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--big", action="store_true", help="add the 1M MLP and the small CNN")
    args = parser.parse_args()
    print(
        f"lr_range_test, steps={args.steps}, median of {args.reps}; CPUs: {os.cpu_count()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    worst = 0.0
    cases = scenario_cases() + (big_cases() if args.big else [])
    for name, make in cases:
        times, result = [], None
        for _ in range(args.reps):
            model, x, y, batch = make()
            started = time.perf_counter()
            result = lr_range_test(model, x, y, steps=args.steps, batch_size=batch)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        worst = max(worst, median)
        print(
            f"  {name:26s} {median:6.2f} s  ({len(result.losses):3d} steps run, "
            f"{result.verdict}, suggested {result.suggested_lr})"
        )
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(f"worst median {worst:.2f} s; target < {TARGET_SECONDS:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
