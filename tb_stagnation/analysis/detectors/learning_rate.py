"""Learning rate too small / too large.

Both work on plain-Keras runs too: Keras's TensorBoard callback logs
`epoch_learning_rate`, and the stall windows give the curve shape (a plateau
for a rate too small; oscillation or divergence for one too large).
"""

from __future__ import annotations

import numpy as np

from tb_stagnation.analysis.baselines import (
    RATE_SLACK,
    default_learning_rate,
    learning_rate_reference_text,
    working_learning_rate,
)
from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.detectors.gradients import ZERO_GRADIENT
from tb_stagnation.analysis.findings import SEVERITY_ERROR, Finding, detector
from tb_stagnation.analysis.series import finite_max, fmt_epochs, fmt_num, fmt_pct, median
from tb_stagnation.analysis.stall import (
    FROZEN_ACCURACY_TOLERANCE,
    KIND_DIVERGENCE,
    KIND_OSCILLATION,
    KIND_PLATEAU,
)
from tb_stagnation.overfit import fmt_rate
from tb_stagnation.summary import tags
from tb_stagnation.summary.lr_range_record import check_lr_range_record

# "Far below the default": <= 1/100 of Keras's default rate for the optimizer
# (Adam 1e-3 -> 1e-5, SGD 1e-2 -> 1e-4). At 1/10 it is only a weak hint.
LR_SMALL_RATIO = 0.01
LR_SOMEWHAT_SMALL_RATIO = 0.1
# "Far above": >= 10x the default (Adam 1e-2, SGD 0.1); 3x is a weak hint.
LR_LARGE_RATIO = 10.0
LR_SOMEWHAT_LARGE_RATIO = 3.0
# Per-step update ratio |dW| / |W|: DeepDiagnosis flags lr*|g|/|W| below 1e-5
# (too small) and above 0.1 (too large) per step; SageMaker's WeightUpdateRatio
# uses [1e-8, 10]. We take DeepDiagnosis's bounds, with the per-step ratio
# estimated as the epoch's update ratio / steps in the epoch.
UPDATE_RATIO_SMALL_PER_STEP = 1e-5
UPDATE_RATIO_LARGE_PER_STEP = 0.1
# Plain-Keras runs do not say which optimizer ran: judge against SGD's default
# (the larger one), so Adam-sized rates are never called "too large".
KERAS_ONLY_REFERENCE_LR = 0.01
# A learning rate that merely creeps the loss down moves it down at most steps;
# >= 80% of steps falling is the "tiny steps" shape (our choice).
CREEP_SHARE = 0.8


def _designed_rate_hint(ctx: Context) -> str:
    """The "; Adadelta is meant for 1.0" of the fix when the run's optimizer is designed for a rate
    other than its Keras default."""
    optimizer = ctx.optimizer_class
    if optimizer is None:
        return ""
    working = working_learning_rate(optimizer)
    if working == default_learning_rate(optimizer):
        return ""
    return f"; {optimizer} is meant for {fmt_num(working)}"


def _range_test(ctx: Context) -> dict | None:
    """The run's LR range test record (FORMAT.md `lr_range`), when it is one.

    The reader checked it already; a RunData made by hand is checked here, so
    a malformed one is ignored rather than trusted.
    """
    record = getattr(ctx.run, "lr_range", None)
    try:
        check_lr_range_record(record)
    except (ValueError, TypeError, KeyError):
        return None
    return record


def _with_range_test(finding: Finding, ctx: Context, rate: float | None, higher: bool) -> Finding:
    """`finding` with what the run's LR range test found.

    A suggestion that points the way the finding does (a higher rate than the
    logged one for a rate too small, a lower one for a rate too large) becomes
    the fix; any other outcome is only reported as what the test found, in its
    own words. A record never makes a finding by itself.
    """
    record = _range_test(ctx)
    if record is None:
        return finding
    epoch = record.get("epoch")
    # A record without an epoch came from lr_range_test(log_dir=...), which
    # cannot tell whether the model had trained: say only what is known.
    when = f"after epoch {epoch}" if epoch is not None else "outside fit()"
    suggested = record.get("suggested_lr")
    if record["verdict"] != "suggested" or suggested is None:
        message = record["message"].strip().rstrip(".")
        if message:
            finding.evidence += f" An LR range test run {when} found: {message}."
        return finding
    agrees = rate is None or (suggested > rate if higher else suggested < rate)
    if not agrees:
        direction = "higher" if higher else "lower"
        finding.evidence += (
            f" An LR range test run {when} suggests {fmt_rate(suggested)}, which is not "
            f"{direction} than the logged {fmt_num(rate)}."
        )
        return finding
    divergence = record.get("divergence_lr")
    ceiling = (
        f"the loss diverged above {fmt_rate(divergence)}"
        if divergence is not None
        else f"the loss did not diverge up to {fmt_rate(record['max_lr'])}"
    )
    finding.evidence += f" An LR range test run {when} suggests {fmt_rate(suggested)}."
    finding.fix = (
        f"An LR range test on this model (run {when}) suggests {fmt_rate(suggested)} "
        f"({ceiling}); restart with that rate. " + finding.fix
    )
    return finding


def _windows_mask(ctx: Context, kinds: tuple[str, ...]) -> np.ndarray:
    mask = np.zeros(ctx.n, dtype=bool)
    for window in ctx.stall.windows:
        if window.kind in kinds:
            mask[window.start : window.end + 1] = True
    return mask


def _per_step_update(ctx: Context, mask: np.ndarray) -> float | None:
    ratio = ctx.s(tags.UPDATE_GLOBAL_RATIO)
    if ratio is None:
        return None
    value = median(ratio[mask])
    if value is None:
        return None
    steps = ctx.steps_per_epoch or 1.0
    return value / steps


def _gradients_are_zero(ctx: Context, mask: np.ndarray) -> bool:
    norm = ctx.s(tags.GRAD_GLOBAL_NORM)
    if norm is None:
        return False
    value = median(norm[mask])
    return value is not None and value <= ZERO_GRADIENT


@detector("learning_rate_too_small", needs_callback=False)
def learning_rate_too_small(ctx: Context) -> Finding | None:
    plateau = _windows_mask(ctx, (KIND_PLATEAU,))
    collapsed = ctx.stall.lr_collapsed
    lr = ctx.lr
    # A collapse of the rate explains a stall of any shape (the loss may have
    # jumped first); a rate that was small all along shows as a plateau.
    dropped = lr is not None and collapsed is not None and bool((collapsed & ctx.stalled).any())
    window = ctx.stalled if dropped else plateau
    if not window.any() or _gradients_are_zero(ctx, window):
        return None
    reference = ctx.default_lr if ctx.is_callback else None
    confidence = 0.0
    parts = []
    epochs_mask = window
    if dropped:
        assert lr is not None and collapsed is not None  # `dropped` requires both
        first = int(np.flatnonzero(collapsed & window)[0])
        # The collapse may have started just before the window: report from it.
        start = first
        while start > 0 and collapsed[start - 1]:
            start -= 1
        peak = finite_max(lr[: start + 1])
        now = median(lr[collapsed & window])
        confidence = 0.9
        parts.append(
            f"the learning rate fell from {fmt_num(peak)} to {fmt_num(now)} at epoch "
            f"{int(ctx.epochs[start])}, and the loss has not improved since"
        )
        epochs_mask = window & (np.arange(ctx.n) >= min(start, first))
    else:
        value = median(lr[plateau]) if lr is not None else ctx.card_learning_rate
        if value is not None and value >= 0:
            ref = reference if reference is not None else ctx.default_lr
            if value <= LR_SMALL_RATIO * ref * RATE_SLACK:
                confidence = 0.8 if ctx.is_callback else 0.65
            elif value <= LR_SOMEWHAT_SMALL_RATIO * ref * RATE_SLACK:
                confidence = 0.45 if ctx.is_callback else 0.35
            if confidence:
                default_text = learning_rate_reference_text(ctx.optimizer_class)
                parts.append(f"the learning rate is {fmt_num(value)} (vs {default_text})")
    per_step = _per_step_update(ctx, epochs_mask)
    lr_known = lr is not None or ctx.card_learning_rate is not None
    if per_step is not None and per_step < UPDATE_RATIO_SMALL_PER_STEP:
        if confidence or not lr_known:
            parts.append(
                f"each step moves the weights by ~{fmt_num(per_step)} of their norm "
                f"(healthy training: ~1e-3)"
            )
            # With the rate unknown, tiny updates alone are a weaker hint; ten
            # times below the bound, the measured step confirms a small rate.
            if not confidence:
                confidence = 0.4
            elif per_step < UPDATE_RATIO_SMALL_PER_STEP / 10:
                confidence += 0.15
            else:
                confidence += 0.05
    if not confidence:
        return None
    loss = ctx.loss
    if loss is not None and epochs_mask.sum() >= 3:
        window = loss[epochs_mask]
        window = window[np.isfinite(window)]
        if window.size >= 3:
            falling = float((np.diff(window) < 0).mean())
            change = abs(window[-1] - window[0]) / max(abs(window[0]), 1e-12)
            shape = f"the loss changed by only {fmt_pct(change)} over these epochs"
            if falling >= CREEP_SHARE:
                shape += ", creeping down in tiny steps"
                confidence += 0.05
            parts.append(shape)
    epochs = ctx.epochs_of(epochs_mask)
    text = "; ".join(parts)
    # The rate the stall ran at, which a suggestion must exceed to be a raise.
    stalled_rate = median(lr[epochs_mask]) if lr is not None else ctx.card_learning_rate
    finding = Finding(
        code="learning_rate_too_small",
        severity=SEVERITY_ERROR,
        confidence=min(confidence, 0.95),
        epochs=epochs,
        evidence=f"In epochs {fmt_epochs(epochs)} {text}.",
        # A model whose weights barely move from their initial values keeps the
        # initial predictions: often one class for every input.
        explains=("prediction_collapse", "class_imbalance"),
        fix=(
            "Raise the learning rate (Keras defaults: Adam 1e-3, SGD 1e-2"
            + _designed_rate_hint(ctx)
            + "). If a schedule drove "
            "it down, fix the decay or give it a floor (e.g. ReduceLROnPlateau(min_lr=1e-5), "
            "a decay that stops at 1e-5)."
        ),
    )
    return _with_range_test(finding, ctx, stalled_rate, higher=True)


# "The first epoch blew up": its loss at least 10x the constant-predictor loss.
BLOW_UP_FACTOR = 10.0
# "The first epoch overshot": its mean loss >= 1.25x the constant-predictor
# loss. A freshly initialised model scores about the baseline and learning
# only lowers it, so a whole epoch well above it means steps that threw the
# model past anything a constant guess would do.
OVERSHOOT_FACTOR = 1.25


# "Units die at once": a layer with at least this share of dead ReLUs.
STRUCK_DEAD_SHARE = 0.9


def _struck(ctx: Context, mask: np.ndarray) -> bool:
    """Whether the window shows what one huge step does to a network: every input
    given the same class (collapsed probe predictions, or an accuracy identical in
    every epoch), or a layer of ReLUs that never fire."""
    collapsed = ctx.collapsed_predictions()
    if collapsed is not None and float(np.mean(collapsed[mask])) >= 0.5:
        return True
    dead = ctx.ls(tags.LAYER_DEAD_FRACTION)
    if dead is not None:
        shares = [median(dead[mask, i]) for i in range(dead.shape[1])]
        if any(share is not None and share >= STRUCK_DEAD_SHARE for share in shares):
            return True
    if ctx.acc is not None and mask.sum() >= 3:
        accuracy = ctx.acc[mask]
        accuracy = accuracy[np.isfinite(accuracy)]
        if accuracy.size >= 3 and float(np.ptp(accuracy)) <= FROZEN_ACCURACY_TOLERANCE:
            return True
    return False


def _first_epoch_blow_up(
    ctx: Context, mask: np.ndarray, factor: float = BLOW_UP_FACTOR
) -> tuple[float, float] | None:
    """(first loss, its multiple of the constant-predictor loss) when the first
    epoch, before the window, scored >= `factor` x the baseline."""
    constant = ctx.baselines.constant_loss
    loss = ctx.loss
    if loss is None or constant is None or constant <= 0 or not mask.any():
        return None
    before = loss[: int(np.flatnonzero(mask)[0]) + 1]
    finite = before[np.isfinite(before)]
    if finite.size == 0 or finite[0] < factor * constant:
        return None
    return float(finite[0]), float(finite[0] / constant)


def _overshot(ctx: Context, mask: np.ndarray) -> bool:
    """Whether the first epoch's mean cross-entropy was >= OVERSHOOT_FACTOR x a
    constant guess's. Only for cross-entropy: a fresh regression model predicts
    ~0 and starts far above the target variance without any overshoot."""
    if ctx.baselines.loss_kind != "crossentropy":
        return False
    return _first_epoch_blow_up(ctx, mask, OVERSHOOT_FACTOR) is not None


@detector("learning_rate_too_large", needs_callback=False)
def learning_rate_too_large(ctx: Context) -> Finding | None:
    unstable = _windows_mask(ctx, (KIND_DIVERGENCE, KIND_OSCILLATION))
    plateau = _windows_mask(ctx, (KIND_PLATEAU,))
    if not unstable.any() and not plateau.any():
        return None
    if ctx.data_nonfinite:
        return None  # NaN in the data makes every loss NaN, whatever the rate
    # A loss that was never finite never diverged from anywhere: only a rate
    # far off (>= 10x) is worth naming then, not a "somewhat large" one.
    never_finite = ctx.loss is not None and not np.isfinite(ctx.loss).any()
    # With the optimizer known (the callback's card, or the config Keras logged)
    # its own rate is the reference; otherwise SGD's, the larger default.
    known = ctx.is_callback or ctx.optimizer_class is not None
    reference = ctx.default_lr if known else KERAS_ONLY_REFERENCE_LR
    lr = ctx.lr
    mask = unstable if unstable.any() else plateau
    last = int(np.flatnonzero(mask)[-1])
    value = finite_max(lr[: last + 1]) if lr is not None else ctx.card_learning_rate
    confidence = 0.0
    parts = []
    at_baseline = ctx.mostly_at_baseline(mask)
    if value is not None and value > 0:
        ratio = value / reference * RATE_SLACK
        if unstable.any():
            if ratio >= LR_LARGE_RATIO:
                confidence = 0.85 if ctx.is_callback else 0.65
                if ratio >= 10 * LR_LARGE_RATIO:
                    confidence += 0.05
            elif ratio >= LR_SOMEWHAT_LARGE_RATIO and not never_finite:
                confidence = 0.5 if ctx.is_callback else 0.4
        elif ratio >= 10 * LR_LARGE_RATIO:
            # A huge step can also end in a flat loss: units die or saturate at once.
            confidence = 0.6 if ctx.is_callback else 0.45
        elif (
            ratio >= LR_LARGE_RATIO and at_baseline and (_struck(ctx, mask) or _overshot(ctx, mask))
        ):
            # 10x the working rate and a flat loss back at the baseline, after a
            # first epoch worse than a constant guess or with the predictions
            # frozen: the first steps threw the model there (dead ReLUs, one
            # class for every input).
            confidence = 0.55 if ctx.is_callback else 0.4
        if confidence:
            reference_text = (
                learning_rate_reference_text(ctx.optimizer_class)
                if known
                else f"{fmt_num(reference)}, SGD's default"
            )
            parts.append(
                f"the learning rate is {fmt_num(value)} "
                f"({fmt_num(value / reference, 2)}x {reference_text})"
            )
    blow_up = _first_epoch_blow_up(ctx, mask)
    overshoot = _first_epoch_blow_up(ctx, mask, OVERSHOOT_FACTOR) if _overshot(ctx, mask) else None
    if blow_up is None and overshoot is not None and at_baseline and confidence:
        parts.append(
            f"the first epoch's loss was {fmt_num(overshoot[0])}, {fmt_num(overshoot[1], 2)}x "
            "the loss of a constant predictor, which a fresh model scores: the first steps "
            "overshot"
        )
    # A first epoch far above the baseline also comes from unscaled inputs or a
    # mismatched output: it supports a large rate, it never names one alone.
    if blow_up is not None and at_baseline and confidence:
        first_loss, times = blow_up
        parts.append(
            f"the first epoch's loss was {fmt_num(first_loss)}, {fmt_num(times, 2)}x the loss "
            "of a constant predictor: the first steps overshot, and the loss fell back to the "
            "baseline and stayed there"
        )
        confidence += 0.05
    per_step = _per_step_update(ctx, mask)
    if per_step is not None and per_step > UPDATE_RATIO_LARGE_PER_STEP:
        parts.append(
            f"each step changes the weights by ~{fmt_num(per_step)} of their norm "
            "(healthy training: ~1e-3)"
        )
        confidence = confidence + 0.05 if confidence else (0.55 if unstable.any() else 0.0)
    if not confidence:
        return None
    loss = ctx.loss
    if loss is not None:
        window = loss[mask]
        if not np.isfinite(window).all():
            first_bad = int(np.flatnonzero(mask & ~np.isfinite(loss))[0])
            parts.append(
                f"the loss became {fmt_num(loss[first_bad])} at epoch {ctx.epochs[first_bad]}"
            )
        else:
            low, high = float(np.min(window)), float(np.max(window))
            kind = "jumps" if unstable.any() else "sits"
            parts.append(f"the loss {kind} between {fmt_num(low)} and {fmt_num(high)}")
    epochs = ctx.epochs_of(mask)
    finding = Finding(
        code="learning_rate_too_large",
        severity=SEVERITY_ERROR,
        confidence=min(confidence, 0.95),
        epochs=epochs,
        evidence=f"In epochs {fmt_epochs(epochs)} " + "; ".join(parts) + ".",
        # One huge step kills ReLU units, saturates sigmoids and collapses the
        # predictions; the rate explains them, not the other way round.
        explains=(
            "dead_units",
            "saturated_activations",
            "zero_gradients",
            "vanishing_gradients",
            "exploding_gradients",
            "prediction_collapse",
            "nonfinite_loss",
            "class_imbalance",
        ),
        fix=(
            "Lower the learning rate about 10x (Keras defaults: Adam 1e-3, SGD 1e-2) and add "
            "gradient clipping (e.g. clipnorm=1.0 in the optimizer); a warm-up helps when large "
            "rates are needed."
        ),
    )
    return _with_range_test(finding, ctx, value, higher=False)
