"""The overhead benchmark's statistics: the mean over builds, its two-stage
interval, an epoch split into its steps and its boundary, and the epoch
ratio built from those parts.

`bench_callback_overhead.StepTimes`, `EpochClock.split` and
`epoch_from_parts` turn CPU times into the figures the README quotes; a wrong
mean or interval there would misstate what the callback costs.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks"))

from bench_callback_overhead import EpochClock, StepTimes, epoch_from_parts  # noqa: E402


def blocks(clean_seconds: float, added_seconds: float, count: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    clean = list(clean_seconds + noise * rng.standard_normal(count))
    instrumented = [c + added_seconds + noise * rng.standard_normal() for c in clean]
    return instrumented, clean


def interval_bounds(times: StepTimes) -> tuple[float, float]:
    low, high = times.interval().strip("[]").split(",")
    return float(low), float(high)


def test_the_added_cpu_is_the_mean_over_builds_of_each_builds_median_difference():
    # Three builds, so the mean (300 us) and the median (200 us) differ.
    times = StepTimes([blocks(0.010, added, 30, 0.0, 0) for added in (0.0001, 0.0002, 0.0006)])
    assert times.added() == pytest.approx(0.0003)
    assert times.clean() == pytest.approx(0.010)
    assert times.ratio() == pytest.approx(1.03)
    assert times.per_build_us() == "+100, +200, +600"


def test_the_interval_holds_the_ratio_and_widens_when_builds_disagree():
    agreeing = StepTimes([blocks(0.010, 0.0002, 40, 0.0002, seed) for seed in range(3)])
    disagreeing = StepTimes(
        [blocks(0.010, added, 40, 0.0002, seed) for seed, added in enumerate((0.0, 0.0002, 0.0004))]
    )
    for times in (agreeing, disagreeing):
        low, high = interval_bounds(times)
        assert low <= times.ratio() <= high
    agreeing_width = np.subtract(*interval_bounds(agreeing)[::-1])
    disagreeing_width = np.subtract(*interval_bounds(disagreeing)[::-1])
    assert disagreeing_width > 1.5 * agreeing_width


def test_too_few_blocks_give_no_interval():
    assert StepTimes([blocks(0.010, 0.0001, 3, 0.0, 0)]).interval() == "[n/a]"


def test_the_added_interval_is_in_the_unit_asked_and_holds_the_added_time():
    times = StepTimes([blocks(0.020, 0.002, 30, 0.0005, seed) for seed in range(4)])
    low, high = (float(v) for v in times.added_interval(1e-3).strip("[]").split(","))
    assert low <= times.added() * 1e3 <= high
    assert 1.0 < low < high < 3.0


def test_an_epoch_splits_into_its_mean_step_and_the_rest():
    clock = EpochClock()
    clock.on_train_begin()
    cpu = 0.0
    for _ in range(3):
        clock.on_epoch_begin(0)
        cpu += 0.030  # the epoch's start: Keras's and ours
        for _ in range(5):
            clock.on_train_batch_begin(0)
            clock.batch_starts[-1][-1] = cpu  # the clock's own reading, replaced
            cpu += 0.010
        cpu += 0.020  # epoch-end work
        clock.cpu_ends.append(cpu)
        clock.ends.append(cpu)
    steps, boundaries = clock.split()
    # Epoch 1 holds tracing in a real fit: only epochs 2.. are split.
    assert steps == pytest.approx([0.010, 0.010])
    assert boundaries == pytest.approx([0.050, 0.050])


def test_the_epoch_from_its_parts_weighs_the_step_by_the_epoch_length():
    # +100 us on a 10 ms step, +20 ms on a 30 ms boundary.
    step = StepTimes([blocks(0.010, 0.0001, 40, 0.00005, seed) for seed in range(3)])
    boundary = StepTimes([blocks(0.030, 0.020, 8, 0.001, seed) for seed in range(5)])
    short, low, high = epoch_from_parts(step, boundary, 100)
    assert short == pytest.approx(1 + (0.01 + 0.02) / (1.0 + 0.03), rel=0.02)
    assert low <= short <= high
    long_, _, _ = epoch_from_parts(step, boundary, 10_000)
    assert long_ == pytest.approx(1.01, abs=0.001)  # the boundary's share vanishes
    few = StepTimes([blocks(0.030, 0.020, 3, 0.0, 0)])
    assert epoch_from_parts(step, few, 100)[1:] == (None, None)
