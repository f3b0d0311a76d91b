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

    python tests/benchmarks/bench_lr_range.py --callback [--reps 3]

times what `StagnationCallback(lr_range_test=True)` adds instead: for each
scenario whose learning rate is the cause (and the healthy one, where no
test runs), the fit with the callback's defaults against the same fit with
`lr_range_test=True` (the test runs at the end of the epoch that names the
rate: the sweep, `overfit_check(fix=...)` of the suggestion and the record),
and the time of that test alone. Then the per-step cost of keeping the rows:
the median step time (epochs 1-5 of the healthy scenario) with no capture,
with the capture done after its 512 rows (what lr_range_test=True leaves), and
with a capture that never fills (CAPTURE_ROWS raised: the cost while capturing).
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


CALLBACK_SCENARIOS = ["learning_rate_too_small", "learning_rate_too_large", "lr_schedule_kill"]


class _StepTimes(keras.callbacks.Callback):
    """Wall time of every training step (batch begin to batch end), per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[list[float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append([])

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.epochs[-1].append(time.perf_counter() - self._started)


def _fit(name: str, epochs: int | None = None, **options) -> tuple[float, object, _StepTimes]:
    import tempfile

    from tb_stagnation import StagnationCallback

    scenario = SCENARIOS[name]
    keras.utils.set_random_seed(_seed(name))
    spec = scenario.build()
    model = spec.pop("model")
    model.compile(**spec.pop("compile"))
    ours = StagnationCallback(log_dir=tempfile.mkdtemp(prefix="bench_lr_"), **options)
    steps = _StepTimes()
    callbacks = list(spec.pop("callbacks", [])) + [ours, steps]
    started = time.perf_counter()
    model.fit(
        epochs=epochs or scenario.epochs, callbacks=callbacks, batch_size=32, verbose=0, **spec
    )
    return time.perf_counter() - started, ours, steps


def callback_main(reps: int) -> None:
    from tb_stagnation.callback import lr_range_trigger

    print(
        f"StagnationCallback(lr_range_test=True) vs defaults, median of {reps}; CPUs: "
        f"{os.cpu_count()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    worst = 0.0
    for name in CALLBACK_SCENARIOS + ["healthy"]:
        plain, with_test, test, sweep, check = [], [], [], [], []
        ran_at = None
        for _ in range(reps):
            plain.append(_fit(name)[0])
            seconds, ours, _ = _fit(name, lr_range_test=True)
            with_test.append(seconds)
            trigger = ours._lr_trigger
            test.append(trigger.seconds)
            sweep.append(trigger.result.seconds if trigger.result is not None else 0.0)
            check.append(trigger.checked.seconds if trigger.checked is not None else 0.0)
            ran_at = trigger.ran_at_epoch
        median = statistics.median(test)
        worst = max(worst, median)
        print(
            f"  {name:24s} fit {statistics.median(plain):5.2f} s -> "
            f"{statistics.median(with_test):5.2f} s; test at epoch {ran_at}: {median:5.2f} s "
            f"(sweep {statistics.median(sweep):.2f} s, overfit_check of the suggestion "
            f"{statistics.median(check):.2f} s)"
        )
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(f"worst median test {worst:.2f} s; target < {TARGET_SECONDS:.0f} s: {verdict}")

    # Per-step cost of the capture: epochs 1-5 of the healthy run (epoch 0 traces),
    # the three settings interleaved so that load on the machine hits them alike.
    def step_ms(**options) -> float:
        _, _, steps = _fit("healthy", epochs=6, **options)
        return 1000 * statistics.median(t for epoch in steps.epochs[1:] for t in epoch)

    def capturing() -> float:
        rows = lr_range_trigger.CAPTURE_ROWS
        lr_range_trigger.CAPTURE_ROWS = 10**6  # never full on 512 samples x 6 epochs
        try:
            return step_ms(lr_range_test=True)
        finally:
            lr_range_trigger.CAPTURE_ROWS = rows

    times: dict[str, list[float]] = {"off": [], "done": [], "capturing": []}
    for _ in range(max(reps, 5)):
        times["off"].append(step_ms())
        times["done"].append(step_ms(lr_range_test=True))
        times["capturing"].append(capturing())
    off, done, during = (statistics.median(times[k]) for k in ("off", "done", "capturing"))
    print(
        f"  step time (healthy, epochs 1-5, median of {len(times['off'])} interleaved fits): "
        f"no capture {off:.3f} ms; capture done {done:.3f} ms ({done / off:.2f}x); "
        f"while capturing {during:.3f} ms ({during / off:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--big", action="store_true", help="add the 1M MLP and the small CNN")
    parser.add_argument(
        "--callback", action="store_true", help="time StagnationCallback(lr_range_test=True)"
    )
    args = parser.parse_args()
    if args.callback:
        callback_main(args.reps)
        return
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
