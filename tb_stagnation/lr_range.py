"""`lr_range_test`: which learning rate makes this model learn?

Smith's learning-rate range test ("Cyclical Learning Rates for Training Neural
Networks", 2015, sec. 3.3), as fastai's `lr_find` runs it: train a copy of the
model for `steps` batches while the rate grows exponentially from `min_lr` to
`max_lr`, record the training loss of every batch, stop once the loss has
clearly diverged, and suggest the rate where the smoothed loss falls fastest.

The copy is made like `overfit_check`'s (same architecture, loss and loss
weights, the optimizer class and settings rebuilt with fresh state), so the
model, its weights and its optimizer are never touched.

The curve is read twice. While sweeping, a bias-corrected exponential moving
average of the loss (fastai's, beta 0.98) decides when to stop: when it exceeds
`DIVERGE_FACTOR` (4) times the best value so far, or a loss is NaN/Inf. That
average lags the loss by tens of steps, which at 100 steps over eight decades
would move the steepest point by a decade or more; so the suggestion, and the
divergence rate we report (where that curve first exceeds the same limit), are
read from a centred smoothing of the loss over log(rate) (a Gaussian kernel of
`SMOOTH_DECADES`), which has no lag.

The suggestion is the steepest descent of that curve before its minimum
(fastai's "steep"), capped at a quarter of the rate where the loss is lowest
and a tenth of the rate where it diverged. The edge of stability moves as
training goes on: Lamb's steepest point, 1.7x below its lowest loss, trained
for two epochs and then blew up. The rate of the lowest loss is Smith's
`max_lr` (where the loss stops falling), and Smith sets the base rate to a
third or a quarter of it. fastai's other rule, a tenth of the lowest loss's
rate, we tried too: for SGD, whose loss is lowest right at the cliff it falls
off, it was 5x below the steepest point, and a regression MLP learned half as
much in 3 epochs.

The loss "falls" when the smoothed loss gets `MIN_FALL` (10%) below both its
start and the best constant predictor's loss (the label entropy, ...: see
`overfit_check`), from labels of the batches seen: a model that only learns the
class shares has not learned anything a rate could improve.

Verdicts: "suggested"; "never_falls" (the loss did not fall at any rate: the
rate is not the problem); "diverges_at_start" (the loss diverges
within the first rates tried); "nonfinite" (NaN/Inf from the first step: the
data or the model, not the rate); "untrainable" (no trainable weights).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tb_stagnation.jsonable import finite_or_none
from tb_stagnation.overfit import (
    compile_copy,
    copy_model,
    fmt_rate,
    fresh_optimizer,
    reference_loss,
    require_compiled,
)

MIN_LR = 1e-7
MAX_LR = 10.0
STEPS = 100
# Arrays are batched as fit batches them by default.
BATCH_SIZE = 32
# fastai's smoothing of the loss for the stop rule, and its divergence factor.
EMA_BETA = 0.98
DIVERGE_FACTOR = 4.0
# The stop rule ignores the first steps, where one noisy batch moves the average.
WARMUP_STEPS = 5
# Width (standard deviation, in decades of the rate) of the centred smoothing
# the suggestion is read from: wide enough to average batch noise over ~3 steps
# at 100 steps over 8 decades, narrow enough not to flatten a fall that takes
# one decade.
SMOOTH_DECADES = 0.25
# A smoothed loss that never falls below (1 - MIN_FALL) of its start (and of the
# constant predictor's loss) did not fall: batch noise alone moves it by a few percent.
MIN_FALL = 0.1
# The suggestion is at most these shares of the rates where the loss is lowest
# and where it diverged.
MIN_LOSS_SHARE = 0.25
DIVERGENCE_SHARE = 0.1
# Labels kept for the constant-predictor loss: enough rows for the class shares,
# never more than this many bytes (segmentation masks are large).
REFERENCE_ROWS = 1024
REFERENCE_BYTES = 64 * 2**20
# Divergence within this share of the sweep: every rate tried is too large.
EARLY_SHARE = 0.1
# The model's own rate is worth mentioning when it is this far from the suggestion.
FAR_FACTOR = 10.0


class LRRangeTestError(ValueError):
    """The test cannot run on this model or data (the message says why)."""


@dataclass(repr=False)
class LRRangeResult:
    """The answer of `lr_range_test`; `str()` is a one-line verdict.

    The curve is plain lists of floats (one entry per step run) so that it can
    be logged or plotted as is.
    """

    verdict: str  # "suggested", "never_falls", "diverges_at_start", "nonfinite", "untrainable"
    suggested_lr: float | None  # the steepest descent, capped (see the module docstring)
    divergence_lr: float | None  # where the loss diverged (None: it never did up to max_lr)
    learning_rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # training loss of each step's batch
    smoothed: list[float] = field(default_factory=list)  # the curve the suggestion is read from
    steepest_lr: float | None = None  # where the smoothed loss falls fastest
    min_loss_lr: float | None = None  # where the smoothed loss is lowest
    reference_loss: float | None = None  # the best constant predictor's loss, when known
    optimizer: str = ""
    current_lr: float | None = None  # the model's own rate
    min_lr: float = MIN_LR
    max_lr: float = MAX_LR
    steps: int = STEPS  # steps asked for; len(losses) is fewer when it stopped at divergence
    start: str = ""  # "the model's current weights" or "a fresh initialisation"
    nonfinite_data: bool = False  # the batch whose loss was NaN/Inf had NaN/Inf in it
    message: str = ""
    seconds: float = 0.0

    def __repr__(self) -> str:
        return (
            f"LRRangeResult(verdict={self.verdict!r}, suggested_lr={self.suggested_lr!r}, "
            f"divergence_lr={self.divergence_lr!r}, steps={len(self.losses)}/{self.steps}, "
            f"optimizer={self.optimizer!r})"
        )

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict:
        """A JSON-safe dict (NaN/Inf as None) of the result and its curve."""
        return {
            "verdict": self.verdict,
            "suggested_lr": finite_or_none(self.suggested_lr),
            "divergence_lr": finite_or_none(self.divergence_lr),
            "steepest_lr": finite_or_none(self.steepest_lr),
            "min_loss_lr": finite_or_none(self.min_loss_lr),
            "reference_loss": finite_or_none(self.reference_loss),
            "learning_rates": [finite_or_none(v) for v in self.learning_rates],
            "losses": [finite_or_none(v) for v in self.losses],
            "smoothed": [finite_or_none(v) for v in self.smoothed],
            "optimizer": self.optimizer,
            "current_lr": finite_or_none(self.current_lr),
            "min_lr": float(self.min_lr),
            "max_lr": float(self.max_lr),
            "steps": int(self.steps),
            "start": self.start,
            "nonfinite_data": bool(self.nonfinite_data),
            "message": self.message,
        }


def lr_range_test(
    model: Any,
    x_or_dataset: Any,
    y: Any = None,
    min_lr: float = MIN_LR,
    max_lr: float = MAX_LR,
    steps: int = STEPS,
    *,
    batch_size: int | None = None,
    reinitialize: bool = False,
    seed: int = 0,
    verbose: int = 0,
    log_dir: str | None = None,
) -> LRRangeResult:
    """Sweep the learning rate on a copy of `model` and suggest one.

    Args:
        model: a compiled Keras model (Sequential, functional, or a subclassed
            model whose `get_config()` / `from_config()` rebuild it), with any
            Keras optimizer that has one learning rate (SGD, Adam, AdamW,
            RMSprop, Adagrad, Adadelta, Adamax, Nadam, Ftrl, Lion, Lamb, ...;
            a schedule is replaced by the swept rate). It is not modified: a
            copy is trained with the model's loss and optimizer class.
        x_or_dataset: the training inputs (arrays, tensors, a dict or list of
            them), or a batched `tf.data.Dataset` of `(x, y)` or
            `(x, y, sample_weight)`, read again from the start when exhausted.
        y: the labels, like `fit`'s; None when `x_or_dataset` is a dataset.
        min_lr: the first rate of the sweep. Defaults to 1e-7.
        max_lr: the last rate of the sweep. Defaults to 10.
        steps: training steps (batches), the rate growing by the same factor
            at each. Defaults to 100. The sweep stops early once the loss
            diverges.
        batch_size: batch size for arrays (a dataset's own batches are used).
            Defaults to 32, like `fit`.
        reinitialize: sweep from a fresh initialisation instead of the model's
            current weights (after a run that diverged, those weights may not
            learn at any rate). Defaults to False.
        seed: seeds the shuffling of arrays. Defaults to 0.
        verbose: 1 prints the verdict. Defaults to 0.
        log_dir: also write the result into this log_dir (the one given to
            StagnationCallback), where the report and TensorBoard's
            "stagnation" tab show it: a record with no epoch, made outside
            fit (FORMAT.md, `lr_range`). A failure to write is a warning.
            Defaults to None.

    Returns:
        An `LRRangeResult`: the verdict, `suggested_lr`, `divergence_lr`, the
        curve (`learning_rates`, `losses`, `smoothed`) and a one-line message.

    Raises:
        LRRangeTestError: the model is not compiled, cannot be copied, its
            optimizer has no single learning rate, or the data cannot be read.
        ValueError: the arguments are out of range.
    """
    from tb_stagnation.keras_import import import_tensorflow_and_keras

    tf, keras = import_tensorflow_and_keras()
    min_lr, max_lr, steps = _check_arguments(min_lr, max_lr, steps, batch_size)
    require_compiled(model, "lr_range_test", LRRangeTestError)
    batches = _batches(tf, keras, x_or_dataset, y, batch_size or BATCH_SIZE, seed)
    started = time.perf_counter()
    first = next(batches)
    copy, start = copy_model(
        keras, model, first[0], reinitialize, tool="lr_range_test", error=LRRangeTestError
    )
    optimizer = fresh_optimizer(model.optimizer, min_lr, error=LRRangeTestError)
    compile_copy(model, copy, optimizer, model.loss, None)
    result = LRRangeResult(
        verdict="untrainable",
        suggested_lr=None,
        divergence_lr=None,
        optimizer=type(model.optimizer).__name__,
        current_lr=_current_rate(model.optimizer),
        min_lr=min_lr,
        max_lr=max_lr,
        steps=steps,
        start=start,
    )
    if copy.trainable_weights:
        rates = np.geomspace(min_lr, max_lr, steps)
        _sweep(copy, first, batches, rates, result)
        _judge(result)
    result.message = _message(result, trained=_trained(model.optimizer))
    result.seconds = time.perf_counter() - started
    if verbose:
        print(f"tb_stagnation lr_range_test: {result.message}")
    if log_dir is not None:
        _write_record(log_dir, result)
    return result


def _write_record(log_dir: str, result: LRRangeResult) -> None:
    """The record in `log_dir`; a failure costs the record, never the result."""
    from tb_stagnation.summary.lr_range_record import write_lr_range_record

    try:
        write_lr_range_record(log_dir, result, epoch=None)
    except Exception as error:  # noqa: BLE001 - any I/O layer's error; the result is returned
        warnings.warn(
            f"lr_range_test could not write its result to {log_dir!r} "
            f"({type(error).__name__}: {error}); the result is returned all the same.",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_arguments(
    min_lr: Any, max_lr: Any, steps: Any, batch_size: Any
) -> tuple[float, float, int]:
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not math.isfinite(float(value)) or float(value) <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not float(min_lr) < float(max_lr):
        raise ValueError(f"min_lr ({min_lr}) must be below max_lr ({max_lr})")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 10:
        raise ValueError(f"steps must be an integer >= 10, got {steps!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return float(min_lr), float(max_lr), int(steps)


def _trained(optimizer: Any) -> bool:
    try:
        return int(np.asarray(optimizer.iterations)) > 0
    except Exception:
        return False


def _current_rate(optimizer: Any) -> float | None:
    try:
        rate = float(np.asarray(optimizer.learning_rate))
    except Exception:  # a MultiOptimizer has none; a callable rate may need state
        return None
    return rate if math.isfinite(rate) else None


# ---------------------------------------------------------------- the batches


def _batches(
    tf: Any, keras: Any, data: Any, y: Any, batch_size: int, seed: int
) -> Iterator[tuple[Any, Any, Any]]:
    """Endless (x, y, sample_weight) batches (a generator: reading starts at the first)."""
    if isinstance(data, tf.data.Dataset):
        if y is not None:
            raise LRRangeTestError("pass y=None when x is a tf.data.Dataset of (x, y).")
        return _dataset_batches(keras, data)
    if y is None:
        raise LRRangeTestError("lr_range_test needs labels: lr_range_test(model, x, y).")
    return _array_batches(keras, data, y, batch_size, seed)


def _dataset_batches(keras: Any, dataset: Any) -> Iterator[tuple[Any, Any, Any]]:
    while True:
        empty = True
        for element in dataset:
            bx, by, weights = keras.utils.unpack_x_y_sample_weight(element)
            if by is None:
                raise LRRangeTestError("the dataset yields no labels: it must yield (x, y).")
            empty = False
            yield bx, by, weights
        if empty:
            raise LRRangeTestError("the dataset is empty.")


def _array_batches(
    keras: Any, x: Any, y: Any, batch_size: int, seed: int
) -> Iterator[tuple[Any, Any, Any]]:
    try:
        xs = keras.tree.map_structure(_as_array, x)
        ys = keras.tree.map_structure(_as_array, y)
    except Exception as error:
        raise LRRangeTestError(
            f"cannot read x and y as arrays ({type(error).__name__}: {error}); pass arrays, "
            "tensors or a tf.data.Dataset."
        ) from error
    counts = {len(leaf) for leaf in keras.tree.flatten(xs) + keras.tree.flatten(ys)}
    if len(counts) != 1:
        raise LRRangeTestError(f"x and y have different numbers of samples: {sorted(counts)}.")
    (count,) = counts
    if count < 1:
        raise LRRangeTestError("lr_range_test got no samples.")
    rng = np.random.default_rng(seed)
    while True:
        # Shuffled like fit: data sorted by label would otherwise sweep one class per rate.
        order = rng.permutation(count)
        for begin in range(0, count, batch_size):
            picks = np.sort(order[begin : begin + batch_size])
            yield (
                keras.tree.map_structure(lambda a, p=picks: a[p], xs),
                keras.tree.map_structure(lambda a, p=picks: a[p], ys),
                None,
            )


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "numpy"):
        value = value.numpy()
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError("a scalar has no samples")
    return array


# ------------------------------------------------------------------ the sweep


def _sweep(
    copy: Any,
    first: tuple[Any, Any, Any],
    batches: Iterator,
    rates: np.ndarray,
    result: LRRangeResult,
) -> None:
    """Train one batch per rate; stop at the first non-finite or diverged loss."""
    average, best = 0.0, math.inf
    batch = first
    labels = _Labels()
    optimizer = copy.optimizer
    ftrl = _is_ftrl(optimizer)
    if ftrl:
        optimizer.build(copy.trainable_variables)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have any trainable weights.*")
        for index, rate in enumerate(rates):
            if index:
                batch = next(batches)
            optimizer.learning_rate = float(rate)
            if ftrl:
                _rebase_ftrl(optimizer, copy.trainable_variables, float(rate))
            bx, by, weights = batch
            labels.add(by)
            logs = copy.train_on_batch(bx, by, sample_weight=weights, return_dict=True)
            loss = float(logs["loss"])
            result.learning_rates.append(float(rate))
            result.losses.append(loss)
            if not math.isfinite(loss):
                result.nonfinite_data = _has_nonfinite(batch)
                result.divergence_lr = None if result.nonfinite_data else float(rate)
                break
            average = EMA_BETA * average + (1 - EMA_BETA) * loss
            debiased = average / (1 - EMA_BETA ** (index + 1))
            best = min(best, debiased)
            if index >= WARMUP_STEPS and debiased > _diverged_above(best):
                result.divergence_lr = float(rate)
                break
    result.reference_loss = labels.reference(copy.loss)


def _diverged_above(best: float) -> float:
    """4x the best for a positive loss; the same distance for losses that can go negative."""
    return best + (DIVERGE_FACTOR - 1) * max(abs(best), 1e-12)


def _has_nonfinite(batch: tuple[Any, Any, Any]) -> bool:
    from keras import tree

    for leaf in tree.flatten(batch):
        try:
            array = np.asarray(leaf.numpy() if hasattr(leaf, "numpy") else leaf)
            if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                return True
        except (TypeError, ValueError):
            continue  # strings, ragged: not numbers to check
    return False


def _is_ftrl(optimizer: Any) -> bool:
    from tb_stagnation.compat.keras import is_ftrl

    return is_ftrl(optimizer)


def _rebase_ftrl(optimizer: Any, variables: list, rate: float) -> None:
    """Keep FTRL's weights where they are at a new rate.

    FTRL does not step from the weights: it recomputes them from its
    accumulated gradients times the rate (w = -rate * linear / sqrt(n), without
    regularisation), so raising the rate rescales every weight at once (and
    its first step discards the initial weights). Setting `linear` to what
    gives the current weights at the new rate makes the sweep's next step
    what a step at that rate from these weights does, as for other optimizers.
    """
    from tb_stagnation.compat.keras import ftrl_slots

    ftrl = getattr(optimizer, "inner_optimizer", optimizer)
    for variable in variables:
        slot, linear = ftrl_slots(ftrl, variable)
        weights = np.asarray(variable.numpy(), dtype=np.float64)
        accumulator = np.asarray(slot.numpy(), dtype=np.float64)
        l1 = float(ftrl.l1_regularization_strength)
        l2 = float(ftrl.l2_regularization_strength) + float(ftrl.beta) / (2.0 * rate)
        quadratic = np.power(accumulator, -float(ftrl.learning_rate_power)) / rate + 2 * l2
        # w = (clip(linear, -l1, l1) - linear) / quadratic, solved for linear.
        rebased = np.where(
            weights != 0,
            -weights * quadratic - np.sign(weights) * l1,
            np.clip(np.asarray(linear.numpy(), dtype=np.float64), -l1, l1),
        )
        linear.assign(rebased.astype(linear.dtype))


class _Labels:
    """The labels of the first batches, for the constant predictor's loss."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.rows = 0
        self.bytes = 0
        self.usable = True

    def add(self, labels: Any) -> None:
        if not self.usable or self.rows >= REFERENCE_ROWS:
            return
        if isinstance(labels, (list, tuple, dict)):
            self.usable = False  # several outputs: no single reference
            return
        array = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
        if array.ndim == 0 or self.bytes + array.nbytes > REFERENCE_BYTES:
            self.usable = self.rows > 0
            self.rows = REFERENCE_ROWS if self.usable else 0
            return
        if self.parts and array.shape[1:] != self.parts[0].shape[1:]:
            self.usable = False
            return
        self.parts.append(array)
        self.rows += len(array)
        self.bytes += array.nbytes

    def reference(self, loss: Any) -> float | None:
        if not self.usable or not self.parts:
            return None
        _, constant, valid = reference_loss(loss, np.concatenate(self.parts))
        if not valid or constant is None or not math.isfinite(constant) or constant <= 0:
            return None
        return float(constant)


def _judge(result: LRRangeResult) -> None:
    losses = np.asarray(result.losses, dtype=np.float64)
    rates = np.asarray(result.learning_rates, dtype=np.float64)
    finite = np.isfinite(losses)
    result.smoothed = [float(v) for v in _smooth(np.log10(rates), losses)]
    if not finite.any() or result.nonfinite_data:
        result.verdict = "nonfinite"
        return
    early = max(WARMUP_STEPS, int(math.ceil(EARLY_SHARE * result.steps)))
    if result.divergence_lr is not None and len(losses) <= early + 1:
        result.verdict = "diverges_at_start"
        return
    smoothed = np.asarray(result.smoothed)
    usable = smoothed[finite]
    usable_rates = rates[finite]
    lowest = int(np.nanargmin(usable))
    result.min_loss_lr = float(usable_rates[lowest])
    # The stop rule's average lags the loss by a decade or more of the rate:
    # the rate we name is where the lag-free curve crossed the same limit.
    crossed = np.flatnonzero(usable[lowest:] > _diverged_above(float(usable[lowest])))
    if crossed.size:
        crossed_lr = float(usable_rates[lowest + int(crossed[0])])
        if result.divergence_lr is None or crossed_lr < result.divergence_lr:
            result.divergence_lr = crossed_lr
    start = float(usable[0])
    if result.reference_loss is not None:
        start = min(start, result.reference_loss)
    if lowest < 1 or not start - float(usable[lowest]) > MIN_FALL * abs(start):
        result.verdict = "never_falls"
        return
    # Past its minimum the loss climbs: the steepest descent lies before it.
    slopes = np.gradient(usable[: lowest + 1], np.log10(usable_rates[: lowest + 1]))
    steepest = float(usable_rates[int(np.argmin(slopes))])
    result.steepest_lr = steepest
    caps = [steepest, MIN_LOSS_SHARE * result.min_loss_lr]
    if result.divergence_lr is not None:
        caps.append(DIVERGENCE_SHARE * result.divergence_lr)
    result.suggested_lr = min(caps)
    result.verdict = "suggested"


def _smooth(log_rates: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """A Gaussian-weighted average of the finite losses around each rate (NaN where
    the loss is not finite)."""
    out = np.full(losses.shape, np.nan)
    finite = np.isfinite(losses)
    if not finite.any():
        return out
    where, values = log_rates[finite], losses[finite]
    weights = np.exp(-0.5 * ((where[:, None] - where[None, :]) / SMOOTH_DECADES) ** 2)
    out[finite] = weights @ values / weights.sum(axis=1)
    return out


# -------------------------------------------------------------- the verdict


def _message(result: LRRangeResult, trained: bool = False) -> str:
    tried = f"{fmt_rate(result.min_lr)} to {fmt_rate(result.max_lr)}"
    if result.verdict == "untrainable":
        return (
            "no learning rate can help: the model has no trainable weights (set trainable=True "
            "on the layers that must learn, then compile again)."
        )
    if result.verdict == "nonfinite" and result.nonfinite_data:
        return (
            f"the loss became {result.losses[-1]} at step {len(result.losses)} on a batch with "
            "NaN/Inf in its inputs or labels: no rate can help; clean or impute the data first."
        )
    if result.verdict == "nonfinite":
        return (
            f"the loss is {result.losses[0]} from the first step at {fmt_rate(result.min_lr)}: "
            "the data or the model produce it, whatever the rate (look for NaN/Inf in the "
            "inputs and labels, and for log/division of 0 in a custom loss)."
        )
    if result.verdict == "diverges_at_start":
        return (
            f"the loss diverges already at {fmt_rate(result.divergence_lr or result.min_lr)}, "
            f"among the smallest rates tried ({tried}): try a lower min_lr; if it still "
            "diverges, the rate is not the cause (unscaled inputs or targets, a loss that "
            "does not fit the output)."
        )
    if result.verdict == "never_falls":
        losses = [v for v in result.losses if math.isfinite(v)]
        upto = (
            f"up to {fmt_rate(result.divergence_lr)}, where it diverges"
            if result.divergence_lr is not None
            else f"from {tried}"
        )
        # Weights left by a run that diverged (dead or saturated units) may learn at no rate.
        hint = (
            "; the sweep started from the model's trained weights: if its run diverged, "
            "try reinitialize=True"
            if trained and result.start == "the model's current weights"
            else ""
        )
        best = float(np.nanmin(result.smoothed))
        reference = result.reference_loss
        baseline = (
            f", no lower than the {_fmt(reference)} of a constant prediction"
            if reference is not None and best > (1 - MIN_FALL) * reference
            else ""
        )
        return (
            f"the loss never falls at any rate {upto} (from {_fmt(losses[0])}, at best "
            f"{_fmt(best)} smoothed{baseline}): the learning rate is not the problem; run "
            f"overfit_check and see the other findings{hint}."
        )
    suggested = result.suggested_lr
    assert suggested is not None and result.steepest_lr is not None
    ceiling = (
        f"it diverges above {fmt_rate(result.divergence_lr)}"
        if result.divergence_lr is not None
        else f"it never diverged up to {fmt_rate(result.max_lr)}"
    )
    fastest = f"the loss falls fastest at {fmt_rate(result.steepest_lr)}"
    divergence = result.divergence_lr
    if suggested >= result.steepest_lr:
        why = f"the loss falls fastest there; {ceiling}"
    elif divergence is not None and math.isclose(suggested, DIVERGENCE_SHARE * divergence):
        why = f"{fastest}, but {ceiling}: a tenth of that is safer"
    else:
        lowest = fmt_rate(result.min_loss_lr or suggested)
        why = f"{fastest}, but is lowest at {lowest}: a quarter of that is safer; {ceiling}"
    text = f"suggested learning rate {fmt_rate(suggested)} ({why})"
    if suggested <= result.learning_rates[min(len(result.learning_rates) - 1, 2)]:
        text += "; it falls from the first rates tried: a lower min_lr shows where it starts"
    current = result.current_lr
    if current is not None and current > 0:
        ratio = suggested / current
        if ratio >= FAR_FACTOR:
            text += f"; the model's {fmt_rate(current)} is {_times(ratio)} lower"
        elif ratio <= 1 / FAR_FACTOR:
            text += f"; the model's {fmt_rate(current)} is {_times(1 / ratio)} higher"
    return text + "."


def _times(ratio: float) -> str:
    """A factor to two significant digits: "41x", "220,000x"."""
    return f"{float(f'{ratio:.2g}'):,.0f}x"


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)
