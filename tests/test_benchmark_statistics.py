"""The step benchmark's statistics: the mean over builds and its two-stage interval.

`bench_callback_overhead.StepTimes` turns blocks of step CPU times into the
figures the README quotes; a wrong mean or interval there would misstate
what the callback costs.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks"))

from bench_callback_overhead import StepTimes  # noqa: E402


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
