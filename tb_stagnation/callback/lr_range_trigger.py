"""`lr_range_test=True`: run the LR range test when the rate is the stall's cause.

Data flow (the callback calls three things):

1. `start` (first batch, spec known, nothing traced yet): decides whether the
   inputs and labels can be kept (every leaf a dense numeric tensor of a fixed
   per-sample shape) and, if so, creates `RangeCapture`'s variables and
   returns the recorder wrapped in `first_batch.TappedRecorder`, which copies the first
   `CAPTURE_ROWS` training rows (x and y, as the real steps see them) into
   them. Inputs it cannot keep (strings, ragged, variable-length) skip the
   test with one warning when the user asked for it explicitly.
2. `on_report` (every epoch end, with the in-training analysis the stall
   stopper runs, `analysis.report.analyze_run`): once per fit, at the first
   epoch whose top finding is `learning_rate_too_small` or
   `learning_rate_too_large` while a stall is flagged, it runs
   `tb_stagnation.lr_range_test` on the captured rows, checks the suggestion
   with `overfit_check(fix=...)` when that is cheap (a few hundred steps on
   20 rows), writes the result with
   `summary.lr_range_record.write_lr_range_record` (the report turns it into
   the finding's fix) and returns the sentence the stop message prints.
3. Nothing else: the capture's in-graph cost is one read of a one-entry
   variable and a `tf.cond` per step; the copy branch runs only until the
   rows are full (16 batches of 32).

The callback does not get the user's dataset, so the test sweeps these rows:
up to 512 samples (at most `CAPTURE_BYTES` of them) cycled in the fit's own
batch size, which is what the suggested rate must suit.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from tb_stagnation.callback.console import warn_at_user_code
from tb_stagnation.callback.first_batch import TappedRecorder
from tb_stagnation.callback.graph_recorder import accumulator_variable, scatter_update
from tb_stagnation.compat import keras as compat_keras

LR_CODES = ("learning_rate_too_small", "learning_rate_too_large")
# Rows kept for the sweep: 16 batches of Keras's default 32, enough that 100
# sweep steps do not memorise them, and at most this many bytes (images).
CAPTURE_ROWS = 512
CAPTURE_BYTES = 64 * 2**20
# Fewer rows than this and the sweep would fit noise: skip it.
MIN_ROWS = 16
# The suggestion is "checked" with overfit_check on this many rows, this many steps at most:
# about a second on the scenarios' models.
CHECK_SAMPLES = 20
CHECK_STEPS = 200


class LRRangeTrigger:
    """The LR range test of one fit: capture, trigger, result."""

    def __init__(self, log_dir: str, *, explicit: bool) -> None:
        self.log_dir = log_dir
        # Asked for with lr_range_test=True (warn when it cannot run), or
        # implied by stop_on_stall=True (stay quiet then).
        self.explicit = bool(explicit)
        self.capture: RangeCapture | None = None
        self.batch_size: int | None = None
        self.done = False
        self.ran_at_epoch: int | None = None
        self.code: str | None = None
        self.result: Any = None  # LRRangeResult
        self.checked: Any = None  # OverfitResult of the suggestion, when it was checked
        self.note: str | None = None
        self.seconds = 0.0
        # Writing the record failed (the callback warns once); the sentence is still printed.
        self.write_error: Exception | None = None

    # ------------------------------------------------------------ first batch

    def start(
        self,
        tf: Any,
        keras: Any,
        model: Any,
        x_spec: Any,
        y_spec: Any,
        recorder: Any,
        on_error: Any,
        replicas: int = 1,
    ) -> Any:
        """Create the capture; return `recorder` wrapped so the steps feed it.

        `replicas`: the spec is one replica's share of a batch split over this
        many (the sweep uses the global batch size, which the rate must suit).
        """
        why = _why_not_capturable(tf, keras, x_spec, y_spec)
        if why is None:
            capacity = _capacity(keras, x_spec, y_spec)
            if capacity < MIN_ROWS:
                why = "one training sample is too large to keep enough of them"
        if why is not None:
            self.done = True
            if self.explicit:
                warn_at_user_code(
                    f"StagnationCallback(lr_range_test=True): {why}, so the LR range test "
                    "cannot run inside fit and is skipped; training is not affected. Run "
                    "tb_stagnation.lr_range_test(model, x, y) on your data instead.",
                    RuntimeWarning,
                )
            return recorder
        first = keras.tree.flatten(x_spec)[0]
        if first.shape[0] is not None:
            self.batch_size = int(first.shape[0]) * max(1, int(replicas))
        self.capture = RangeCapture(
            tf,
            keras,
            model.distribute_strategy,
            x_spec,
            y_spec,
            capacity,
            # The recorder's choice, made once for this fit's train step.
            unlowered_conds=recorder.plan.unlowered_conds,
        )
        return TappedRecorder(recorder, self.capture, self.capture.record, on_error)

    # -------------------------------------------------------------- epoch end

    def on_report(self, model: Any, report: dict, epoch: int) -> str | None:
        """Run the test at the first report whose top finding is a rate; its sentence."""
        if self.done:
            return None
        findings = report.get("findings") or []
        if not findings or findings[0].get("code") not in LR_CODES:
            return None
        if not report.get("stalled_epochs"):
            # A rate finding on a run still learning (a high rate that works) needs no test.
            return None
        self.done = True
        self.code = str(findings[0]["code"])
        self.ran_at_epoch = int(epoch)
        data = self.capture.rows() if self.capture is not None else None
        if data is None or _count(data[1]) < MIN_ROWS:
            self.note = (
                "The LR range test was skipped: too few training rows were captured "
                f"(it needs {MIN_ROWS})."
            )
            return self.note
        from tb_stagnation.lr_range import LRRangeTestError

        started = time.perf_counter()
        try:
            self.result = self._sweep(model, *data)
        except LRRangeTestError as error:
            # Not our failure: the model cannot be copied or swept (the message says why).
            self.note = f"The LR range test could not run: {error}"
            return self.note
        self._check(model, *data)
        self.seconds = time.perf_counter() - started
        try:
            self._write(int(epoch))
        except Exception as error:
            self.write_error = error
        self.note = self._sentence()
        return self.note

    def _sweep(self, model: Any, x: Any, y: Any) -> Any:
        from tb_stagnation.lr_range import lr_range_test

        rows = _count(y)
        batch = min(self.batch_size or 32, rows)
        # A run whose rate is too large left weights that may learn at no rate
        # (dead or saturated units): sweep from a fresh initialisation.
        fresh = self.code == "learning_rate_too_large"
        result = lr_range_test(model, x, y, batch_size=batch, reinitialize=fresh)
        if not fresh and result.verdict == "never_falls":
            # Weights trained before a schedule cut the rate may already sit at
            # their best: what a restart needs is the rate a fresh model learns at.
            result = lr_range_test(model, x, y, batch_size=batch, reinitialize=True)
        return result

    def _check(self, model: Any, x: Any, y: Any) -> None:
        """Does the suggestion make a copy fit 20 rows? Only said when it was tried."""
        from tb_stagnation.overfit import OverfitCheckError, overfit_check

        result = self.result
        if result is None or result.verdict != "suggested" or result.suggested_lr is None:
            return
        try:
            self.checked = overfit_check(
                model,
                x,
                y,
                samples=min(CHECK_SAMPLES, _count(y)),
                max_epochs=CHECK_STEPS,
                reinitialize=result.start != "the model's current weights",
                fix={"learning_rate": float(result.suggested_lr)},
            )
        except OverfitCheckError:
            self.checked = None  # not checked, and the message will not claim it

    def _write(self, epoch: int) -> None:
        try:
            from tb_stagnation.summary.lr_range_record import write_lr_range_record
        except ImportError:  # pragma: no cover - an install without the record module
            return
        write_lr_range_record(self.log_dir, self.result, epoch)

    def _sentence(self) -> str:
        from tb_stagnation.overfit import fmt_rate

        result = self.result
        if result.verdict != "suggested" or result.suggested_lr is None:
            return f"An LR range test on this model: {result.message}"
        if result.divergence_lr is not None:
            ceiling = f"it diverges above {fmt_rate(result.divergence_lr)}"
        else:
            ceiling = f"it never diverged up to {fmt_rate(result.max_lr)}"
        text = (
            f"An LR range test on this model suggests {fmt_rate(result.suggested_lr)} "
            f"({ceiling}; from {result.start}, {result.seconds:.1f} s)."
        )
        checked = self.checked
        if checked is not None:
            # OverfitResult's fix message starts "checked: with learning rate ..."
            # when it passed, and says what went wrong otherwise.
            text += f" {checked.message[:1].upper()}{checked.message[1:]}"
        return text


# ------------------------------------------------------------------ capture


class RangeCapture:
    """The first `capacity` training rows (inputs and labels), kept on the device."""

    def __init__(
        self,
        tf: Any,
        keras: Any,
        strategy: Any,
        x_spec: Any,
        y_spec: Any,
        capacity: int,
        unlowered_conds: bool = False,
    ) -> None:
        self._tf = tf
        self._cond = compat_keras.step_cond(tf, unlowered_conds)
        self._keras = keras
        self._strategy = strategy
        self._x_spec = x_spec
        self._y_spec = y_spec
        self.capacity = int(capacity)
        self.active = True
        self._x_count = len(keras.tree.flatten(x_spec))
        leaves = keras.tree.flatten(x_spec) + keras.tree.flatten(y_spec)
        with strategy.scope():
            self.count = accumulator_variable(tf, np.zeros(1), "lr_range_rows")
            # One spare row: rows past the capacity all land in it (as the probe's).
            self.variables = [
                accumulator_variable(tf, _zeros(self.capacity + 1, leaf), "lr_range_rows_data")
                for leaf in leaves
            ]

    def record(self, x: Any, y: Any) -> None:
        """Copy this step's rows while there is room (graph ops; checked while tracing)."""
        tf = self._tf
        tree = self._keras.tree
        if x is None or y is None:
            return
        leaves = tree.flatten(x) + tree.flatten(y)
        if not _leaves_fit(tf, leaves, self.variables):
            return  # a step shaped unlike the first batch (a custom train_step): keep none
        capacity = self.capacity
        count = self.count.read_value()[0]

        def fill() -> Any:
            start = tf.cast(count, tf.int32)
            batch = tf.shape(leaves[0])[0]
            rows = tf.minimum(start + tf.range(batch, dtype=tf.int32), capacity)
            for leaf, variable in zip(leaves, self.variables):
                scatter_update(tf, variable, tf.reshape(rows, [-1, 1]), leaf)
            filled = tf.cast(tf.minimum(start + batch, capacity), tf.float64)
            self.count.assign(tf.reshape(filled, [1]))
            return tf.constant(0)

        # Once full, this comparison is all a step pays.
        self._cond(count < float(capacity), fill, lambda: tf.constant(0))

    def _local(self, variable: Any) -> np.ndarray:
        return self._strategy.experimental_local_results(variable)[0].numpy()

    def rows(self) -> tuple[Any, Any] | None:
        """The captured (x, y), packed like the fit's; None when none were kept."""
        count = int(self._local(self.count)[0])
        if count <= 0:
            return None
        leaves = [self._local(variable)[:count] for variable in self.variables]
        tree = self._keras.tree
        x = tree.pack_sequence_as(self._x_spec, leaves[: self._x_count])
        y = tree.pack_sequence_as(self._y_spec, leaves[self._x_count :])
        return x, y


# ------------------------------------------------------------------ helpers


def _why_not_capturable(tf: Any, keras: Any, x_spec: Any, y_spec: Any) -> str | None:
    """Why the rows cannot be kept in fixed-shape variables, or None when they can."""
    if x_spec is None:
        return "the training data's structure is not known"
    if y_spec is None:
        return "the training data has no labels"
    for what, spec in (("inputs", x_spec), ("labels", y_spec)):
        for leaf in keras.tree.flatten(spec):
            if not isinstance(leaf, tf.TensorSpec):
                return f"the {what} are not dense tensors ({type(leaf).__name__})"
            dtype = leaf.dtype
            if not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
                return f"the {what} are {dtype.name}, not numbers"
            shape = leaf.shape
            if shape.rank is None or shape.rank < 1 or any(d is None for d in shape[1:]):
                return f"the {what} have no fixed per-sample shape ({shape})"
    return None


def _zeros(rows: int, spec: Any) -> np.ndarray:
    return np.zeros((rows,) + tuple(spec.shape[1:]), spec.dtype.as_numpy_dtype)


def _capacity(keras: Any, x_spec: Any, y_spec: Any) -> int:
    per_row = 0
    for leaf in keras.tree.flatten(x_spec) + keras.tree.flatten(y_spec):
        per_row += int(math.prod(int(d) for d in leaf.shape[1:])) * leaf.dtype.size
    return int(min(CAPTURE_ROWS, CAPTURE_BYTES // max(1, per_row)))


def _leaves_fit(tf: Any, leaves: list, variables: list) -> bool:
    if len(leaves) != len(variables):
        return False
    for leaf, variable in zip(leaves, variables):
        if not isinstance(leaf, tf.Tensor) or leaf.dtype != variable.dtype:
            return False
        shape = leaf.shape
        if shape.rank is None or tuple(shape[1:]) != tuple(variable.shape[1:]):
            return False
    return True


def _count(y: Any) -> int:
    import keras

    leaves = keras.tree.flatten(y)
    return min(len(leaf) for leaf in leaves) if leaves else 0
