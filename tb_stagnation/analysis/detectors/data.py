"""Detectors for problems in the training data: labels, inputs, batches."""

from __future__ import annotations

import math

import numpy as np

from tb_stagnation.analysis.baselines import error_scale_of_loss
from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.findings import (
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    Finding,
    detector,
)
from tb_stagnation.analysis.series import fmt_epochs, fmt_num, fmt_pct, median
from tb_stagnation.summary import tags

# Identical values in float32 still give a tiny variance from round-off; a
# relative variance below 1e-12 (std below 1e-6 of the magnitude) is "constant".
# Our choice: float32 has 24 bits (6e-8 relative), so 1e-6 leaves room for
# summation error over ~10^4 values and still excludes any real spread.
CONSTANT_RELATIVE_STD = 1e-6

# Unscaled inputs. Prior art (UMLAUT, DeepDiagnosis) flags any input outside
# [-1, 1]; that fires on every standardised data set (|x| reaches 4-5). We call
# |x| >= 100 unscaled (raw 0-255 pixels, counts, prices) and |x| >= 1e4 far off
# (sums, timestamps; the troubleshooting article's 1e10 features).
UNSCALED_MAX_ABS = 100.0
UNSCALED_STRONG_MAX_ABS = 1e4

# Smaller magnitudes (|x| >= 10, e.g. raw ages, a feature in [-100, 100]; or
# inputs whose mean exceeds their spread, never centred) count when they do
# what unscaled inputs do: saturate at least half of the first layer's
# sigmoid/tanh units during the stall.
UNSCALED_SATURATING_MAX_ABS = 10.0
FIRST_LAYER_SATURATED = 0.5

# Repeated batches: one distinct batch in an epoch of >= 2 is a pipeline that
# repeats one element (tf.data's from_tensors(...).repeat()). Each distinct batch
# seen 4+ times per epoch is suspicious but can be a deliberate small data set.
REPEATED_LOW_SHARE = 0.25

# Class imbalance: SageMaker Debugger's ClassImbalance rule flags a
# largest/smallest class ratio above 10. An accuracy at the majority rate is
# already meaningless from a ratio of 3 (majority >= 75% for two classes).
IMBALANCE_WARNING_RATIO = 10.0
IMBALANCE_ERROR_RATIO = 3.0
# "At the majority rate": within max(1 point, 10% of the room above it).
AT_MAJORITY_MIN = 0.01
AT_MAJORITY_FRACTION = 0.10


def _count(value) -> str:
    """A count for evidence text ("6,400"), safe for NaN/Inf/huge values."""
    value = float(value)
    if math.isfinite(value) and abs(value) < 1e15:
        return f"{round(value):,}"
    return fmt_num(value)


def _tail(ctx: Context, count: int = 3) -> np.ndarray:
    mask = np.zeros(ctx.n, dtype=bool)
    mask[max(0, ctx.n - count) :] = True
    return mask


@detector("constant_labels")
def constant_labels(ctx: Context) -> Finding | None:
    base = ctx.baselines
    fix = (
        "Check how the labels are built and loaded: np.unique(y_train, return_counts=True) "
        "must show every class (regression: a real spread of targets). Typical causes are "
        "labels taken from the wrong column, overwritten before fit(), or a filter that kept "
        "one class only."
    )
    # One class slot (a categorical loss on a 1-unit output) counts columns,
    # not classes: loss_output_mismatch says what is wrong there.
    if base.class_shares is not None and base.class_shares.size < 2:
        return None
    if base.class_shares is not None and base.label_count >= 2:
        present = np.flatnonzero(base.class_shares > 0)
        if present.size == 1:
            counts = ctx.class_counts
            assert counts is not None  # class_shares are computed from these counts
            rows = np.isfinite(counts).any(axis=1) & (np.nansum(counts, axis=1) > 0)
            epochs = ctx.epochs_of(rows)
            accuracy = ""
            if ctx.acc is not None:
                last = ctx.acc[np.isfinite(ctx.acc)]
                if last.size:
                    accuracy = (
                        f"; the {fmt_pct(last[-1])} accuracy is the trivial score of always "
                        "answering that class and says nothing about the model"
                    )
            return Finding(
                code="constant_labels",
                severity=SEVERITY_ERROR,
                confidence=0.97,
                epochs=epochs,
                evidence=(
                    f"All {_count(base.label_count)} training labels seen in epochs "
                    f"{fmt_epochs(epochs)} are class {int(present[0])} "
                    f"(of {base.class_shares.size}){accuracy}."
                ),
                fix=fix,
            )
        return None
    variance = ctx.s(tags.LABEL_VARIANCE)
    if variance is None:
        return None
    var = median(variance)
    mean = median(ctx.s(tags.LABEL_MEAN)) if ctx.s(tags.LABEL_MEAN) is not None else 0.0
    if var is None or var < 0:
        return None
    scale = max(1.0, (mean or 0.0) ** 2)
    if var > (CONSTANT_RELATIVE_STD**2) * scale:
        return None
    epochs = ctx.epochs_of(np.isfinite(variance))
    return Finding(
        code="constant_labels",
        severity=SEVERITY_ERROR,
        confidence=0.95,
        epochs=epochs,
        evidence=(
            f"Every regression target seen in epochs {fmt_epochs(epochs)} equals "
            f"{fmt_num(mean)} (variance {fmt_num(var)}): the best model is a constant and "
            "any loss value is meaningless."
        ),
        fix=fix,
    )


def _inputs_constant(ctx: Context) -> bool:
    std = median(ctx.s(tags.INPUT_STD)) if ctx.s(tags.INPUT_STD) is not None else None
    if std is None:
        return False
    mean = median(ctx.s(tags.INPUT_MEAN)) if ctx.s(tags.INPUT_MEAN) is not None else None
    max_abs_series = ctx.s(tags.INPUT_MAX_ABS)
    max_abs = median(max_abs_series) if max_abs_series is not None else None
    magnitude = max(abs(mean or 0.0), max_abs or 0.0)
    return max_abs == 0.0 or std == 0.0 or std <= CONSTANT_RELATIVE_STD * magnitude


@detector("constant_inputs")
def constant_inputs(ctx: Context) -> Finding | None:
    if not _inputs_constant(ctx):
        return None
    std_series = ctx.s(tags.INPUT_STD)
    assert std_series is not None  # _inputs_constant needs it
    std = median(std_series)
    mean = median(ctx.s(tags.INPUT_MEAN)) if ctx.s(tags.INPUT_MEAN) is not None else None
    max_abs_series = ctx.s(tags.INPUT_MAX_ABS)
    max_abs = median(max_abs_series) if max_abs_series is not None else None
    epochs = ctx.epochs_of(np.isfinite(std_series))
    value = fmt_num(mean if mean is not None else 0.0)
    return Finding(
        code="constant_inputs",
        severity=SEVERITY_ERROR,
        confidence=0.95,
        epochs=epochs,
        evidence=(
            f"Every input entry the model saw in epochs {fmt_epochs(epochs)} is {value} "
            f"(std {fmt_num(std)}, max |x| {fmt_num(max_abs)}): all samples look the same, so "
            "the model can only learn the label frequencies."
        ),
        explains=("repeated_batches", "prediction_collapse", "zero_gradients"),
        fix=(
            "Check the preprocessing: a normalisation that divides by zero or clips "
            "everything, a fillna(0) on the wrong frame, or the wrong array passed to fit(). "
            "Print x_train[:3] right before fit()."
        ),
    )


@detector("nonfinite_data")
def nonfinite_data(ctx: Context) -> Finding | None:
    bad, what = ctx.nonfinite_data_epochs()
    if not bad.any():
        return None
    epochs = ctx.epochs_of(bad)
    return Finding(
        code="nonfinite_data",
        severity=SEVERITY_ERROR,
        confidence=0.9,
        epochs=epochs,
        evidence=(
            f"The statistics of the training {' and '.join(what)} are NaN/Inf in epochs "
            f"{fmt_epochs(epochs)}: the data itself contains NaN or Inf, so every loss and "
            "gradient that touches it is NaN."
        ),
        fix=(
            "Find and fix the missing or infinite values before fit(): "
            "np.isfinite(x_train).all() and np.isfinite(y_train).all() must be True "
            "(impute or drop NaN rows, guard divisions and logs in the preprocessing)."
        ),
    )


# Layers whose inputs are integer ids (token or category indices), not
# magnitudes: ids in the thousands are what they should be.
ID_INPUT_LAYERS = ("Embedding", "CategoryEncoding", "IntegerLookup", "StringLookup", "Hashing")


def _first_layer_takes_ids(ctx: Context) -> bool:
    card_layers = ctx.card.get("layers")
    first = ctx.layers[0].type if ctx.layers else ""
    if isinstance(card_layers, list) and card_layers and isinstance(card_layers[0], dict):
        first = str(card_layers[0].get("type", first))
    return first in ID_INPUT_LAYERS


def _first_layer_share(ctx: Context, tag: str, focus: np.ndarray) -> float | None:
    """The median share (saturated, dead) of the first layer's units, unless it is
    the output layer (a confident output is saturated by design)."""
    shares = ctx.ls(tag)
    if shares is None or not shares.shape[1] or 0 in ctx.output_layer_indices():
        return None
    return median(shares[focus, 0])


@detector("unscaled_inputs")
def unscaled_inputs(ctx: Context) -> Finding | None:
    max_abs_series = ctx.s(tags.INPUT_MAX_ABS)
    if max_abs_series is None or _first_layer_takes_ids(ctx):
        return None
    focus = ctx.focus()
    max_abs = median(max_abs_series[focus]) or median(max_abs_series)
    if max_abs is None:
        return None
    std = median(ctx.s(tags.INPUT_STD)) if ctx.s(tags.INPUT_STD) is not None else None
    mean = median(ctx.s(tags.INPUT_MEAN)) if ctx.s(tags.INPUT_MEAN) is not None else None
    # Not centred: the inputs' mean is at least their spread (standardised data
    # has mean ~0 and std ~1; raw iris features: mean 3.5, std 2).
    off_centre = mean is not None and std is not None and abs(mean) >= max(std, 1.0)
    if max_abs < UNSCALED_SATURATING_MAX_ABS and not off_centre:
        return None
    first_saturated = _first_layer_share(ctx, tags.LAYER_SATURATED_FRACTION, focus)
    if max_abs < UNSCALED_MAX_ABS and not (
        ctx.any_stall and (first_saturated or 0.0) >= FIRST_LAYER_SATURATED
    ):
        return None
    strong = max_abs >= UNSCALED_STRONG_MAX_ABS
    if ctx.any_stall:
        severity = SEVERITY_ERROR
        # Confidence grows with how far off the scale is: 0.6 at 1e2, 0.9 from 1e4.
        confidence = min(0.9, 0.6 + 0.15 * math.log10(max_abs / UNSCALED_MAX_ABS))
        if (first_saturated or 0.0) >= FIRST_LAYER_SATURATED:
            # The saturated first layer is the mechanism itself, observed.
            confidence = max(confidence, 0.6)
        epochs = ctx.epochs_of(ctx.stalled)
    elif strong:
        severity = SEVERITY_WARNING
        confidence = 0.45
        epochs = ctx.epochs_of(np.isfinite(max_abs_series))
    else:
        return None  # inputs in the hundreds on a run that learns: no finding
    detail = ""
    if first_saturated is not None and first_saturated >= FIRST_LAYER_SATURATED:
        detail = f"; {fmt_pct(first_saturated)} of the first layer's units are saturated"
    spread = f" (mean {fmt_num(mean)}, std {fmt_num(std)})" if std is not None else ""
    return Finding(
        code="unscaled_inputs",
        severity=severity,
        confidence=confidence,
        epochs=epochs,
        layers=[ctx.layer_name(0)] if ctx.layers else [],
        evidence=(
            f"Inputs reach |x| = {fmt_num(max_abs)}{spread}{detail}. Pre-activations scale with "
            "the inputs, so a single update swings the first layer across its whole range and "
            "gradients are dominated by the largest feature."
        ),
        fix=(
            "Scale the inputs before fit(): standardise each feature (a keras.layers."
            "Normalization layer adapted on the training data, or (x - mean) / std), or divide "
            "pixel values by 255."
        ),
        explains=(
            "saturated_activations",
            "exploding_gradients",
            "vanishing_gradients",
            "dead_units",
            "prediction_collapse",
            "learning_rate_too_large",
        ),
    )


def _repeats(ctx: Context) -> tuple[np.ndarray, np.ndarray] | None:
    """(epochs with one distinct batch, epochs where each batch repeats 4+ times)."""
    distinct = ctx.s(tags.BATCHES_DISTINCT)
    seen = ctx.s(tags.BATCHES_SEEN)
    if distinct is None or seen is None:
        return None
    with np.errstate(invalid="ignore"):
        same = (seen >= 2) & (distinct <= 1)
        low = (seen >= 4) & (distinct / np.maximum(seen, 1) <= REPEATED_LOW_SHARE)
    return same, low


@detector("repeated_batches")
def repeated_batches(ctx: Context) -> Finding | None:
    distinct = ctx.s(tags.BATCHES_DISTINCT)
    seen = ctx.s(tags.BATCHES_SEEN)
    repeats = _repeats(ctx)
    if repeats is None or distinct is None or seen is None or _inputs_constant(ctx):
        return None  # identical samples make identical batches: constant_inputs says it
    same, low = repeats
    fix = (
        "The input pipeline yields the same batch over and over: "
        "tf.data.Dataset.from_tensors(...).repeat() makes ONE element; use "
        "from_tensor_slices((x, y)).shuffle(len(x)).batch(32).repeat(), and make sure a Python "
        "generator or keras.utils.PyDataset advances its index."
    )
    if same.any():
        epochs = ctx.epochs_of(same)
        logged = np.isfinite(seen)
        share = same.sum() / max(int(logged.sum()), 1)
        return Finding(
            code="repeated_batches",
            severity=SEVERITY_ERROR,
            confidence=0.95 if share >= 0.5 else 0.8,
            epochs=epochs,
            evidence=(
                f"All {_count(np.nanmedian(seen[same]))} training batches of epochs "
                f"{fmt_epochs(epochs)} had the same content (1 distinct batch by fingerprint): "
                "the model trains on one batch, so a falling loss only shows it memorising it."
            ),
            fix=fix,
        )
    if low.any():
        epochs = ctx.epochs_of(low)
        ratio = float(np.nanmedian((seen / np.maximum(distinct, 1))[low]))
        return Finding(
            code="repeated_batches",
            severity=SEVERITY_WARNING,
            confidence=0.5,
            epochs=epochs,
            evidence=(
                f"Each distinct batch was seen about {fmt_num(ratio, 2)} times per epoch in epochs "
                f"{fmt_epochs(epochs)} (median {_count(np.nanmedian(distinct[low]))} distinct of "
                f"{_count(np.nanmedian(seen[low]))})."
            ),
            fix=(
                "If the data set is meant to be larger, check the pipeline's batching and "
                "repeat(); if it is small on purpose, lower steps_per_epoch to one pass."
            ),
        )
    return None


@detector("class_imbalance")
def class_imbalance(ctx: Context) -> Finding | None:
    shares = ctx.baselines.class_shares
    if shares is None or shares.size < 2 or ctx.multi_label:
        return None
    repeats = _repeats(ctx)
    if repeats is not None and (repeats[0] | repeats[1]).any():
        # The label counts are those of the few batches the pipeline repeats,
        # not of the data set: repeated_batches says what is wrong.
        return None
    present = shares[shares > 0]
    if present.size < 2:
        return None  # constant labels: reported by its own detector
    majority = float(shares.max())
    smallest = float(shares.min())
    ratio = majority / smallest if smallest > 0 else math.inf
    ratio_text = f"{fmt_num(ratio, 2)}:1" if math.isfinite(ratio) else "some classes never appear"
    majority_class = int(np.argmax(shares))
    fix = (
        f"Predicting class {majority_class} for everything already scores {fmt_pct(majority)}. "
        "Pass class_weight= to fit() (e.g. total / (K * count) per class) or resample, and "
        "judge the model by per-class recall, F1 or AUC instead of accuracy; also check that "
        "the features carry signal for the minority classes."
    )
    if ctx.acc is not None and ratio >= IMBALANCE_ERROR_RATIO:
        focus = ctx.stalled if ctx.any_stall else _tail(ctx)
        tolerance = max(AT_MAJORITY_MIN, AT_MAJORITY_FRACTION * (1 - majority))
        with np.errstate(invalid="ignore"):
            at_majority = np.abs(ctx.acc - majority) <= tolerance
        accuracy = median(ctx.acc[focus])
        if accuracy is not None and abs(accuracy - majority) <= tolerance:
            confidence = 0.8
            top = ctx.s(tags.PRED_TOP_CLASS_SHARE)
            collapse = ""
            if top is not None:
                top_share = median(top[focus])
                if top_share is not None and top_share >= 0.95:
                    confidence = 0.9
                    collapse = f", and {fmt_pct(top_share)} of the probe is predicted as one class"
            epochs = ctx.epochs_of(at_majority & (focus | ctx.stalled))
            return Finding(
                code="class_imbalance",
                severity=SEVERITY_ERROR,
                confidence=confidence,
                epochs=epochs,
                evidence=(
                    f"Labels are imbalanced {ratio_text} (class {majority_class} is "
                    f"{fmt_pct(majority)}); accuracy {fmt_pct(accuracy)} sits at that "
                    f"majority rate in epochs {fmt_epochs(epochs)}{collapse}: nothing beyond the "
                    "class frequencies was learned."
                ),
                fix=fix,
            )
    # With class_weight the user has already answered the imbalance.
    if ratio > IMBALANCE_WARNING_RATIO and ctx.card.get("sample_weighted") is not True:
        return Finding(
            code="class_imbalance",
            severity=SEVERITY_WARNING,
            confidence=0.3,
            epochs=ctx.epochs_of(np.ones(ctx.n, dtype=bool)),
            evidence=(
                f"Labels are imbalanced {ratio_text} (class {majority_class} is "
                f"{fmt_pct(majority)}); accuracy alone can hide a model that ignores the "
                "minority classes."
            ),
            fix=fix,
        )
    return None


# Regression targets on a scale a fresh linear head cannot reach in reasonable
# time: default initialisers make its outputs O(1), and an optimizer moves the
# bias by about the learning rate per step, so targets of RMS >= 100 (prices,
# counts, the diabetes set's 25..346) take thousands of steps just to reach
# their mean. Our choice: RMS sqrt(mean^2 + variance) >= 100; the common advice
# (standardise targets) applies well below that, but below it runs do converge.
UNSCALED_TARGET_RMS = 100.0


def _target_scale(ctx: Context) -> tuple[float, str] | None:
    """(RMS of the targets, how we know it): from the logged label statistics, or,
    without them, from a regression loss that says how far predictions miss."""
    mean_series = ctx.s(tags.LABEL_MEAN)
    variance_series = ctx.s(tags.LABEL_VARIANCE)
    if mean_series is not None and variance_series is not None:
        mean, variance = median(mean_series), median(variance_series)
        if mean is None or variance is None or variance < 0:
            return None
        return math.sqrt(mean * mean + variance), (
            f"The regression targets have mean {fmt_num(mean)} and std "
            f"{fmt_num(math.sqrt(variance))} (from the logged label statistics)"
        )
    if ctx.loss is None:
        return None
    level = median(ctx.loss[ctx.stalled])
    if level is None or level <= 0:
        return None
    scale = error_scale_of_loss(ctx.card.get("loss"), level)
    if scale is None:
        return None
    unit = "by" if scale == level else "by about"
    return scale, (
        f"The {ctx.card.get('loss')} loss stays around {fmt_num(level)}: predictions miss the "
        f"targets {unit} {fmt_num(scale)} on average, the scale of the targets themselves (read "
        "from the loss; no target statistics were logged)"
    )


@detector("unscaled_targets", needs_callback=False)
def unscaled_targets(ctx: Context) -> Finding | None:
    if not ctx.any_stall or ctx.classifier:
        return None
    measured = _target_scale(ctx)
    if measured is None:
        return None
    rms, described = measured
    if rms < UNSCALED_TARGET_RMS:
        return None
    activation = ctx.card.get("output_activation")
    if isinstance(activation, str) and activation.lower() not in ("linear", "relu"):
        return None  # a bounded output: loss_output_mismatch says the targets are out of reach
    epochs = ctx.epochs_of(ctx.stalled)
    confidence = min(0.9, 0.6 + 0.1 * math.log10(rms / UNSCALED_TARGET_RMS))
    if not ctx.is_callback or ctx.s(tags.LABEL_MEAN) is None:
        confidence -= 0.15  # inferred from the loss, not measured
    return Finding(
        code="unscaled_targets",
        severity=SEVERITY_ERROR,
        confidence=confidence,
        epochs=epochs,
        evidence=(
            f"{described}, while a freshly "
            "initialised output layer predicts values near 0: the loss is dominated by the "
            "target scale, and each step moves the prediction by about the learning rate, so "
            f"the loss stalled in epochs {fmt_epochs(epochs)}."
        ),
        fix=(
            "Standardise the targets before fit() (y_scaled = (y - y.mean()) / y.std(), and "
            "invert predictions with y_pred * std + mean), or divide them by a fixed scale; "
            "keep the output layer linear."
        ),
        explains=(
            "learning_rate_too_small",
            "exploding_gradients",
            "dead_units",
            "prediction_collapse",
            "vanishing_gradients",
            "learning_rate_too_large",
        ),
    )
