"""The epoch's update norms measured on the device (weight_snapshot.py) against numpy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tb_stagnation.callback import weight_snapshot
from tb_stagnation.callback.weight_snapshot import WeightSnapshot


def _exact(start: np.ndarray, end: np.ndarray) -> tuple[float, float]:
    end64, start64 = end.astype(np.float64), start.astype(np.float64)
    return float(np.sum(end64 * end64)), float(np.sum((end64 - start64) ** 2))


def _update(variables: list, updates: list) -> list:
    start = [v.numpy().copy() for v in variables]
    for variable, update in zip(variables, updates):
        variable.assign(variable.numpy() + update)
    return start


def test_small_variables_are_exact_and_large_ones_estimated_closely():
    rng = np.random.default_rng(0)
    shapes = [(16, 8), (8,), (784, 512), (3000, 700)]
    variables = [keras.Variable(rng.normal(size=s).astype(np.float32)) for s in shapes]
    snapshot = WeightSnapshot(tf, variables)
    snapshot.take()
    updates = [rng.normal(size=s).astype(np.float32) * 1e-3 for s in shapes]
    start = _update(variables, updates)
    weights, changes = snapshot.measure()
    for index, variable in enumerate(variables):
        exact_weight, _ = _exact(start[index], variable.numpy())
        assert weights[index] == pytest.approx(exact_weight, rel=1e-6)  # float32 sums
    _assert_updates_measured(changes, start, variables)


def _assert_updates_measured(changes, start, variables):
    """Small variables exactly, sketched ones within the sketch's error."""
    for index, variable in enumerate(variables):
        _, exact_update = _exact(start[index], variable.numpy())
        if np.prod(variable.shape) <= weight_snapshot.EXACT_LIMIT:
            assert changes[index] == pytest.approx(exact_update, rel=1e-6)
        else:
            # sqrt(2 / B) relative standard error on the square: 1.1% here; 5 sigma.
            assert np.sqrt(changes[index] / exact_update) == pytest.approx(1.0, abs=0.03)


def test_held_memory_does_not_grow_with_a_large_variable():
    variable = keras.Variable(np.ones((4000, 1000), np.float32))
    snapshot = WeightSnapshot(tf, [variable])
    assert snapshot.held_bytes == 0
    snapshot.take()
    assert snapshot.held_bytes == weight_snapshot.SKETCH_BUCKETS * 8
    snapshot.measure()
    # The end of one epoch is the start of the next: held as much, not more.
    assert snapshot.held_bytes == weight_snapshot.SKETCH_BUCKETS * 8
    snapshot.release()
    assert snapshot.held_bytes == 0
    assert not snapshot.holds_start


def test_each_measure_starts_the_next_one_where_it_ended():
    # One device call per epoch: the second epoch's update is measured from
    # the first epoch's end, as a `take` there would have measured it.
    rng = np.random.default_rng(3)
    shapes = [(16, 8), (8,), (784, 512)]
    variables = [keras.Variable(rng.normal(size=s).astype(np.float32)) for s in shapes]
    carried = WeightSnapshot(tf, variables)
    retaken = WeightSnapshot(tf, variables)
    carried.take()
    for epoch in range(3):
        retaken.take()
        scale = 10.0 ** -(epoch + 2)  # each epoch's update differs from the others
        start = _update(variables, [rng.normal(size=s).astype(np.float32) * scale for s in shapes])
        _, changes = carried.measure()
        _, reference = retaken.measure()
        assert carried.holds_start
        np.testing.assert_array_equal(changes, reference)
        _assert_updates_measured(changes, start, variables)


def test_an_unchanged_variable_gives_exactly_zero_and_tiny_updates_stay_measurable():
    rng = np.random.default_rng(1)
    frozen = keras.Variable(rng.normal(size=(1000, 300)).astype(np.float32))
    moving = keras.Variable(rng.normal(size=(1000, 300)).astype(np.float32))
    snapshot = WeightSnapshot(tf, [frozen, moving])
    snapshot.take()
    # An update ratio near 1e-7 (learning rate far too small): float32 sums
    # of the weights would bury it in rounding.
    tiny = (rng.normal(size=(1000, 300)) * 1e-7).astype(np.float32)
    start = _update([moving], [tiny])[0]
    _, changes = snapshot.measure()
    assert changes[0] == 0.0
    _, exact_update = _exact(start, moving.numpy())
    assert exact_update > 0
    assert np.sqrt(changes[1] / exact_update) == pytest.approx(1.0, abs=0.03)


def test_an_update_concentrated_in_a_few_columns_is_estimated_well():
    # A kernel whose few live units alone move: the columns spread over buckets.
    rng = np.random.default_rng(2)
    kernel = keras.Variable(rng.normal(size=(2048, 256)).astype(np.float32))
    snapshot = WeightSnapshot(tf, [kernel])
    snapshot.take()
    update = np.zeros((2048, 256), np.float32)
    update[:, :3] = rng.normal(size=(2048, 3)) * 1e-2
    start = _update([kernel], [update])[0]
    _, changes = snapshot.measure()
    _, exact_update = _exact(start, kernel.numpy())
    assert np.sqrt(changes[0] / exact_update) == pytest.approx(1.0, abs=0.03)


def test_complex_integer_and_half_precision_variables():
    complex_var = tf.Variable(np.array([1 + 2j, 3 - 1j], np.complex64))
    int_var = keras.Variable(np.array([1, 2, 3], np.int32), dtype="int32", trainable=False)
    half_var = keras.Variable(np.ones((300, 300), np.float16), dtype="float16")
    snapshot = WeightSnapshot(tf, [complex_var, int_var, half_var])
    snapshot.take()
    complex_var.assign(np.array([1 + 3j, 3 - 1j], np.complex64))
    int_var.assign(np.array([1, 2, 5], np.int32))
    half_var.assign(np.full((300, 300), 1.5, np.float16))
    weights, changes = snapshot.measure()
    assert weights[0] == pytest.approx(1 + 9 + 9 + 1)
    assert changes[0] == pytest.approx(1.0)
    assert weights[1] == pytest.approx(1 + 4 + 25)
    assert changes[1] == pytest.approx(4.0)
    assert weights[2] == pytest.approx(90000 * 2.25)
    assert np.sqrt(changes[2] / (90000 * 0.25)) == pytest.approx(1.0, abs=0.03)


def test_measure_without_take_and_no_variables():
    variable = keras.Variable(np.ones(3, np.float32))
    assert WeightSnapshot(tf, [variable]).measure() is None
    empty = WeightSnapshot(tf, [])
    empty.take()
    weights, changes = empty.measure()
    assert weights.shape == changes.shape == (0,)
