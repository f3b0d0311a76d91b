"""The first training batch's labels, captured inside the real training step.

The pre-flight (`preflight.py`) needs what the recorder does not keep: the
range of the first batch's labels (min, max, mean, whether they are whole
numbers, NaN/Inf entries) and, for the tiny-subset test, the labels of the
first samples (their inputs are the recorder's probe, filled in the same
order). `TappedRecorder` runs `FirstBatchCapture.record` right after the
recorder's `record_data`, so `hooks.py` feeds both without knowing of this.

In-graph cost per step: one read of a small state vector and a `tf.cond`;
the capture branch runs at the first step only (and while label rows fill).
Like the recorder's, these ops cannot fail at run time: reductions of an
empty tensor give +-inf, scatter rows are bounded, shapes are checked while
tracing (a mismatch skips the capture).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tb_stagnation.analysis.series import finite_or_none
from tb_stagnation.callback.graph_recorder import accumulator_variable, scatter_update
from tb_stagnation.callback.model_info import select_target
from tb_stagnation.compat import keras as compat_keras

# State vector: captured?, entries, min, max, sum of finite entries,
# non-integer entries, NaN/Inf entries, label rows filled.
_CAPTURED, _COUNT, _MIN, _MAX, _SUM, _NON_INTEGER, _NONFINITE, _ROWS = range(8)
_SIZE = 8


class FirstBatchCapture:
    """Owns the capture variables; `record` builds the ops, `facts` reads them."""

    def __init__(
        self,
        tf: Any,
        keras: Any,
        strategy: Any,
        *,
        output_index: int,
        output_names: tuple,
        y_spec: Any,
        rows: int = 0,
        unlowered_conds: bool = False,
    ) -> None:
        self._tf = tf
        self._cond = compat_keras.step_cond(tf, unlowered_conds)
        self._keras = keras
        self._strategy = strategy
        self._index = output_index
        self._names = list(output_names)
        self._y_spec = y_spec
        self.active = True
        leaves = keras.tree.flatten(y_spec) if y_spec is not None else []
        # Label rows for the tiny-subset test: every label leaf dense, numeric,
        # with a fixed per-sample shape (else the test cannot be fed).
        keep_rows = rows > 0 and leaves and all(_fixed_numeric(tf, leaf) for leaf in leaves)
        self.capacity = int(rows) if keep_rows else 0
        with strategy.scope():
            self.state = accumulator_variable(tf, np.zeros(_SIZE), "first_batch")
            self.label_vars = [
                accumulator_variable(
                    tf,
                    np.zeros(
                        (self.capacity + 1,) + tuple(leaf.shape[1:]), leaf.dtype.as_numpy_dtype
                    ),
                    "first_labels",
                )
                for leaf in (leaves if self.capacity else [])
            ]

    # ------------------------------------------------------------ graph side

    def record(self, y: Any) -> None:
        """Capture this step's labels if the first batch was not captured yet."""
        tf = self._tf
        f64 = tf.float64
        target = select_target(y, self._index, self._names, self._keras)
        usable = isinstance(target, tf.Tensor) and (
            target.dtype.is_floating or target.dtype.is_integer or target.dtype.is_bool
        )
        leaves = self._keras.tree.flatten(y) if y is not None else []
        fill = bool(self.label_vars) and _rows_match(leaves, self.label_vars)
        if not usable and not fill:
            return
        capacity = float(self.capacity)
        state = self.state.read_value()

        def summarise() -> Any:
            values = tf.reshape(tf.cast(target, f64), [-1])
            finite = tf.math.is_finite(values)
            safe = tf.where(finite, values, tf.zeros_like(values))
            inf = tf.constant(math.inf, f64)
            return tf.stack(
                [
                    tf.constant(1.0, f64),
                    tf.cast(tf.size(values), f64),
                    tf.reduce_min(tf.where(finite, values, inf)),
                    tf.reduce_max(tf.where(finite, values, -inf)),
                    tf.reduce_sum(safe),
                    tf.reduce_sum(tf.cast(finite & tf.not_equal(safe, tf.round(safe)), f64)),
                    tf.reduce_sum(tf.cast(tf.logical_not(finite), f64)),
                ]
            )

        def update() -> Any:
            head = state[:_ROWS]
            if usable:
                head = self._cond(state[_CAPTURED] > 0, lambda: state[:_ROWS], summarise)
            rows = state[_ROWS]
            if fill:
                rows = self._cond(
                    rows < capacity, lambda: self._fill(leaves, state[_ROWS]), lambda: rows
                )
            self.state.assign(tf.concat([head, tf.reshape(rows, [1])], 0))
            return tf.constant(0)

        # Past the first batch (and once the rows are full) nothing but this test runs.
        needed = state[_CAPTURED] <= 0
        if fill:
            needed = tf.logical_or(needed, state[_ROWS] < capacity)
        self._cond(needed, update, lambda: tf.constant(0))

    def _fill(self, leaves: list, count: Any) -> Any:
        tf = self._tf
        batch = tf.shape(leaves[0])[0]
        start = tf.cast(count, tf.int32)
        # Rows past the capacity all land in the spare last row.
        rows = tf.minimum(start + tf.range(batch, dtype=tf.int32), self.capacity)
        for leaf, variable in zip(leaves, self.label_vars):
            scatter_update(tf, variable, tf.reshape(rows, [-1, 1]), leaf)
        return tf.cast(tf.minimum(start + tf.cast(batch, tf.int32), self.capacity), tf.float64)

    # ------------------------------------------------------------- host side

    def _local(self, variable: Any) -> np.ndarray:
        return self._strategy.experimental_local_results(variable)[0].numpy()

    def facts(self) -> dict | None:
        """The first batch's label facts (FORMAT.md `preflight.labels`), or None."""
        state = self._local(self.state)
        if state[_CAPTURED] <= 0:
            return None
        count = float(state[_COUNT])
        nonfinite = float(state[_NONFINITE])
        finite = count - nonfinite
        return {
            "count": int(count),
            "min": finite_or_none(state[_MIN]) if finite > 0 else None,
            "max": finite_or_none(state[_MAX]) if finite > 0 else None,
            "mean": finite_or_none(state[_SUM] / finite) if finite > 0 else None,
            "non_integer": int(state[_NON_INTEGER]),
            "nonfinite": int(nonfinite),
        }

    def label_rows(self) -> Any:
        """The labels of the first samples, packed like `y`; None when none were kept."""
        if not self.label_vars:
            return None
        rows = int(self._local(self.state)[_ROWS])
        if rows <= 0:
            return None
        leaves = [self._local(variable)[:rows] for variable in self.label_vars]
        return self._keras.tree.pack_sequence_as(self._y_spec, leaves)


class TappedRecorder:
    """The recorder (or another tap of it), with a capture beside its
    `record_data`, which hooks.py calls with each step's x and y.

    `record(x, y)` adds the capture's ops for one step while `capture.active`.
    The pre-flight taps the labels (`FirstBatchCapture`), the LR range
    trigger the rows (`lr_range_trigger.RangeCapture`); both taps can stack.
    A failure of the recorder propagates as before (hooks.py turns it off); a
    failure of the capture turns only the capture off and is reported once.
    """

    def __init__(self, recorder: Any, capture: Any, record: Any, on_error: Any) -> None:
        self._recorder = recorder
        self.capture = capture
        self._record = record
        self._on_error = on_error

    def record_data(self, x: Any, y: Any, y_pred: Any, loss: Any) -> None:
        self._recorder.record_data(x, y, y_pred, loss)
        if self.capture.active:
            try:
                self._record(x, y)
            except Exception as error:
                self.capture.active = False
                self._on_error(error)

    def record_gradients(self, grads: list, variables: list) -> list:
        return self._recorder.record_gradients(grads, variables)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recorder, name)


def _fixed_numeric(tf: Any, spec: Any) -> bool:
    if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None or spec.shape.rank < 1:
        return False
    if any(d is None for d in spec.shape[1:]):
        return False
    return bool(spec.dtype.is_floating or spec.dtype.is_integer or spec.dtype.is_bool)


def _rows_match(leaves: list, variables: list) -> bool:
    if len(leaves) != len(variables):
        return False
    for leaf, variable in zip(leaves, variables):
        shape = getattr(leaf, "shape", None)
        if shape is None or shape.rank is None or tuple(shape[1:]) != tuple(variable.shape[1:]):
            return False
        if leaf.dtype != variable.dtype:
            return False
    return True
