"""Gradient detectors: exploding, zero and vanishing gradients.

Per-layer gradient norms are compared as RMS per parameter
(norm / sqrt(trainable params)), so a wide first layer is not mistaken for a
layer with large gradients, nor a small output layer for one with small ones.
"""

from __future__ import annotations

import numpy as np

from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.findings import (
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    Finding,
    detector,
)
from tb_stagnation.analysis.series import (
    column_medians,
    fmt_epochs,
    fmt_names,
    fmt_num,
    fmt_pct,
    median,
)
from tb_stagnation.summary import tags

# Exact zeros: float32 gradients with no path to the loss are exactly 0.0;
# anything above 1e-20 is a (vanishingly) small gradient, not a missing one.
ZERO_GRADIENT = 1e-20
# A layer has "zero gradients" when they are zero in at least half of the
# examined epochs (the evidence names those epochs). 90% missed a run whose
# gradients were exactly 0 in 9 of its 12 stalled epochs.
ZERO_SHARE = 0.5
# Vanishing: AUTOTRAINER flags norm(grad first layer) / norm(grad last layer)
# < 1e-3 (with the first < 1e-4); we compare RMS per parameter with the same
# 1e-3, and 1e-4 as "strong". Without a stall only < 1e-5 is worth a warning.
VANISHING_RATIO = 1e-3
VANISHING_STRONG_RATIO = 1e-4
VANISHING_WARNING_RATIO = 1e-5
# Exploding: any NaN/Inf gradient (SageMaker ExplodingTensor); a gradient norm
# larger than the weights' own norm by 10x or more (our measurement: healthy
# runs stay below 1x, the scenario with stddev=1 init reaches 1e5x before NaN);
# or the gradient norm growing >= 10x per epoch twice in a row.
EXPLODING_GRAD_TO_WEIGHT = 10.0
EXPLODING_GROWTH = 10.0
# Weights whose RMS per parameter is below 1e-3 carry no scale to compare a
# gradient with (default initialisers give 0.01-0.1 per parameter).
MIN_WEIGHT_RMS = 1e-3
# AUTOTRAINER: first/last layer gradient ratio above 70.
EXPLODING_LAYER_RATIO = 70.0


def _trainable_columns(ctx: Context, width: int) -> list[int]:
    return [i for i in range(width) if i >= len(ctx.layers) or ctx.layers[i].trainable is not False]


def _rms(ctx: Context, norms: np.ndarray) -> np.ndarray:
    """Per-parameter RMS of per-layer gradient norms ([n, L])."""
    width = norms.shape[1]
    counts = np.ones(width)
    for i in range(width):
        if i < len(ctx.layers):
            params = ctx.layers[i].trainable_params or ctx.layers[i].params
            if params and params > 0:
                counts[i] = params
    return norms / np.sqrt(counts)


def _weights_have_scale(ctx: Context, weight_norm: np.ndarray) -> bool:
    """Whether "the gradient is N times the weights" means anything: not when the
    weights are (almost) all zero, as after an all-zeros initialisation, where
    any gradient is "huge" relative to them."""
    params = ctx.card.get("trainable_params")
    if not isinstance(params, int) or isinstance(params, bool) or params <= 0:
        return True
    rms = median(weight_norm) / np.sqrt(params) if median(weight_norm) is not None else None
    return rms is None or rms >= MIN_WEIGHT_RMS


def _overlaps_stall(ctx: Context, mask: np.ndarray) -> bool:
    return bool((mask & ctx.stalled).any())


@detector("exploding_gradients")
def exploding_gradients(ctx: Context) -> Finding | None:
    parts = []
    hits = np.zeros(ctx.n, dtype=bool)
    confidence = 0.0
    layers: list[str] = []

    if ctx.data_nonfinite:
        return None  # NaN gradients of NaN data: nonfinite_data says it
    nonfinite_share = ctx.s(tags.GRAD_NONFINITE_FRACTION)
    grad_norm_raw = ctx.scalars.get(tags.GRAD_GLOBAL_NORM)
    nonfinite = np.zeros(ctx.n, dtype=bool)
    if nonfinite_share is not None:
        with np.errstate(invalid="ignore"):
            nonfinite |= nonfinite_share > 0
    if grad_norm_raw is not None:
        nonfinite |= np.isinf(grad_norm_raw)
    if nonfinite.any():
        first = int(np.flatnonzero(nonfinite)[0])
        share = median(nonfinite_share[nonfinite]) if nonfinite_share is not None else None
        share_text = f" ({fmt_pct(share)} of entries)" if share is not None else ""
        parts.append(f"gradients contain NaN/Inf{share_text} from epoch {ctx.epochs[first]}")
        if grad_norm_raw is not None and np.isfinite(grad_norm_raw).any():
            at = int(np.nanargmax(np.where(np.isfinite(grad_norm_raw), grad_norm_raw, np.nan)))
            parts.append(
                f"the largest finite gradient norm was {fmt_num(grad_norm_raw[at])} "
                f"(epoch {ctx.epochs[at]})"
            )
        hits |= nonfinite
        confidence = 0.8
        per_layer = ctx.ls(tags.LAYER_NONFINITE_FRACTION)
        if per_layer is not None:
            with np.errstate(invalid="ignore"):
                bad_cols = np.flatnonzero((per_layer[nonfinite] > 0).any(axis=0))
            layers = [ctx.layer_name(int(i)) for i in bad_cols]

    grad_norm = ctx.s(tags.GRAD_GLOBAL_NORM)
    weight_norm = ctx.s(tags.WEIGHT_GLOBAL_NORM)
    if grad_norm is not None and weight_norm is not None and _weights_have_scale(ctx, weight_norm):
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = grad_norm / np.maximum(weight_norm, 1e-12)
            large = relative >= EXPLODING_GRAD_TO_WEIGHT
        if large.any():
            worst = float(np.nanmax(relative[large]))
            parts.append(
                f"the gradient norm reaches {fmt_num(float(np.nanmax(grad_norm[large])))}, "
                f"{fmt_num(worst)}x the weights' own norm"
            )
            hits |= large
            confidence = max(confidence, 0.7)
    if grad_norm is not None and ctx.n >= 3:
        with np.errstate(invalid="ignore", divide="ignore"):
            growth = grad_norm[1:] / np.maximum(grad_norm[:-1], 1e-30)
            rising = growth >= EXPLODING_GROWTH
        twice = rising[1:] & rising[:-1]
        if twice.any():
            at = int(np.flatnonzero(twice)[0]) + 1
            parts.append(
                f"the gradient norm grew >= {EXPLODING_GROWTH:.0f}x per epoch from epoch "
                f"{ctx.epochs[at - 1]} ({fmt_num(grad_norm[at - 1])} -> "
                f"{fmt_num(grad_norm[at + 1])})"
            )
            hits[at - 1 : at + 2] = True
            confidence = max(confidence, 0.7)
    layer_norms = ctx.ls(tags.LAYER_GRAD_NORM)
    if layer_norms is not None and not layers:
        cols = _trainable_columns(ctx, layer_norms.shape[1])
        if len(cols) >= 2:
            rms = _rms(ctx, layer_norms)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = rms[:, cols[0]] / rms[:, cols[-1]]
            focus = ctx.focus()
            value = median(ratio[focus])
            if value is not None and value > EXPLODING_LAYER_RATIO and hits.any():
                parts.append(
                    f"the first layer's gradients are {fmt_num(value)}x the last layer's "
                    "(per parameter)"
                )
                layers = [ctx.layer_name(cols[0])]
    if not confidence:
        return None
    loss = ctx.loss
    loss_bad = loss is not None and not np.isfinite(loss[hits]).all()
    severe = _overlaps_stall(ctx, hits) or loss_bad
    if not severe and not nonfinite.any():
        # Large but finite gradients while the loss keeps improving (typical in
        # the first epochs on unscaled inputs) did not stop anything: saying
        # "exploding" there would cry wolf on healthy training.
        return None
    if loss_bad:
        parts.append("the loss is NaN/Inf there")
    epochs = ctx.epochs_of(hits)
    return Finding(
        code="exploding_gradients",
        severity=SEVERITY_ERROR if severe else SEVERITY_WARNING,
        confidence=confidence if severe else min(confidence, 0.4),
        epochs=epochs,
        layers=layers,
        evidence=f"In epochs {fmt_epochs(epochs)} " + "; ".join(parts) + ".",
        explains=("dead_units", "saturated_activations", "prediction_collapse", "nonfinite_loss"),
        fix=(
            "Clip gradients (clipnorm=1.0 in the optimizer), lower the learning rate, and use a "
            "scaled initialisation (he_normal for ReLU, glorot_uniform otherwise) or "
            "BatchNormalization between layers."
        ),
    )


@detector("zero_gradients")
def zero_gradients(ctx: Context) -> Finding | None:
    norms = ctx.ls(tags.LAYER_GRAD_NORM)
    focus = ctx.focus()
    zero_layers: list[int] = []
    # Epochs where every reported layer's gradient is exactly 0, so the
    # evidence's "in epochs ..." holds for each of them.
    zero_epochs = focus.copy()
    if norms is not None:
        for i in _trainable_columns(ctx, norms.shape[1]):
            column = norms[:, i]
            logged = focus & np.isfinite(column)
            with np.errstate(invalid="ignore"):
                zero = logged & (column <= ZERO_GRADIENT)
            if logged.any() and zero.sum() >= ZERO_SHARE * logged.sum():
                zero_layers.append(i)
                zero_epochs &= zero
    global_norm = ctx.s(tags.GRAD_GLOBAL_NORM)
    global_zero = False
    if global_norm is not None:
        logged = focus & np.isfinite(global_norm)
        with np.errstate(invalid="ignore"):
            zero = logged & (global_norm <= ZERO_GRADIENT)
        global_zero = bool(logged.any()) and zero.sum() >= ZERO_SHARE * logged.sum()
        if global_zero and not zero_layers:
            zero_epochs = zero
    if zero_layers and not zero_epochs.any():
        return None
    if not zero_layers and not global_zero:
        return None
    names = [ctx.layer_name(i) for i in zero_layers]
    weights = ctx.ls(tags.LAYER_WEIGHT_NORM)
    zero_weight_layers = []
    if weights is not None:
        weight_medians = column_medians(weights, focus)
        for i in zero_layers:
            if i < len(weight_medians):
                value = weight_medians[i]
                if value is not None and value <= ZERO_GRADIENT:
                    zero_weight_layers.append(i)
    explains: tuple[str, ...] = ("vanishing_gradients", "learning_rate_too_small")
    if zero_weight_layers:
        confidence = 0.9
        zero_names = [ctx.layer_name(i) for i in zero_weight_layers]
        cause = (
            f"; the weights of {fmt_names(zero_names)} are exactly 0 as well: with an all-zero "
            "initialisation every hidden unit computes the same value and no gradient reaches "
            "the weights"
        )
        explains = explains + ("dead_units", "prediction_collapse")
    else:
        confidence = 0.65
        cause = (
            ": no gradient path reaches these weights (a non-differentiable operation, a "
            "stop_gradient, or units that never fire above them)"
        )
    if global_zero and not zero_layers:
        subject = "The gradient of the loss is exactly 0 for every weight"
        names = [layer.name for layer in ctx.layers]
    else:
        total = len(_trainable_columns(ctx, norms.shape[1])) if norms is not None else 0
        subject = (
            f"The gradients of {fmt_names(names)} ({len(names)} of {total} trainable layers) are "
            "exactly 0"
        )
    epochs = ctx.epochs_of(zero_epochs)
    severity = SEVERITY_ERROR if ctx.any_stall else SEVERITY_WARNING
    return Finding(
        code="zero_gradients",
        severity=severity,
        confidence=confidence if ctx.any_stall else min(confidence, 0.4),
        epochs=epochs,
        layers=names,
        evidence=f"{subject} in epochs {fmt_epochs(epochs)}{cause}.",
        fix=(
            "Nothing reaches these weights. Check the initialisers (kernel_initializer='zeros' "
            "keeps hidden units identical and at 0; use the defaults), non-differentiable "
            "operations between them and the loss (round, argmax, casts, stop_gradient), and "
            "layers whose units never fire."
        ),
        explains=explains,
    )


@detector("vanishing_gradients")
def vanishing_gradients(ctx: Context) -> Finding | None:
    norms = ctx.ls(tags.LAYER_GRAD_NORM)
    if norms is None:
        return None
    cols = _trainable_columns(ctx, norms.shape[1])
    if len(cols) < 2:
        return None
    focus = ctx.focus()
    rms_medians = column_medians(_rms(ctx, norms), focus)
    # Reference: the last trainable layer with a non-zero gradient.
    reference = None
    ref_value = 0.0
    for i in reversed(cols):
        value = rms_medians[i]
        if value is not None and value > ZERO_GRADIENT:
            reference, ref_value = i, value
            break
    if reference is None:
        return None
    small = []
    ratios = {}
    for i in cols:
        if i >= reference:
            break
        value = rms_medians[i]
        if value is None or value <= ZERO_GRADIENT:
            continue  # exactly zero: zero_gradients, not vanishing
        ratio = value / ref_value
        ratios[i] = ratio
        if ratio < VANISHING_RATIO:
            small.append(i)
    if not small or cols[0] not in small:
        return None
    first_ratio = ratios[cols[0]]
    first_value = median(norms[focus, cols[0]])
    names = [ctx.layer_name(i) for i in small]
    if ctx.any_stall:
        severity = SEVERITY_ERROR
        confidence = 0.85 if first_ratio < VANISHING_STRONG_RATIO else 0.7
    elif first_ratio < VANISHING_WARNING_RATIO:
        severity = SEVERITY_WARNING
        confidence = 0.35
    else:
        return None
    activations = {
        (ctx.layers[i].activation or "").lower() for i in cols[:reference] if i < len(ctx.layers)
    }
    squashing = sorted(a for a in activations if a in ("sigmoid", "tanh", "softsign"))
    detail = (
        f"; the hidden layers use {'/'.join(squashing)}, whose derivative (<= 0.25 for sigmoid) "
        "shrinks the gradient at every layer"
        if squashing
        else ""
    )
    epochs = ctx.epochs_of(focus)
    depth = sum(1 for i in cols if i < reference)
    return Finding(
        code="vanishing_gradients",
        severity=severity,
        confidence=confidence,
        epochs=epochs,
        layers=names,
        evidence=(
            f"In epochs {fmt_epochs(epochs)} the first layer's gradient norm is "
            f"{fmt_num(first_value)}, {fmt_num(first_ratio)} of the last layer's per parameter "
            f"({len(small)} of {depth} layers below {ctx.layer_name(reference)} are under "
            f"{fmt_num(VANISHING_RATIO)}){detail}."
        ),
        fix=(
            "Use ReLU-family activations (relu, gelu) with he_normal initialisation in hidden "
            "layers, fewer layers, or BatchNormalization / residual connections; Adam also copes "
            "better than plain SGD with small gradients."
        ),
        explains=("learning_rate_too_small",),
    )


# Glorot & Bengio (2010): a sigmoid's derivative is at most 0.25, and tanh
# units whose kernels are not scaled to their fan-in (RandomUniform(0, 1),
# ones) start saturated; through four or more such hidden layers in a row the
# gradient reaching the first ones is a tiny fraction of the last one's.
SATURATING_STACK_DEPTH = 4
_FAN_IN_SCALED = ("glorot", "xavier", "he", "lecun", "orthogonal", "variancescaling")


def _initializer_key(layer: dict) -> str | None:
    """A card layer's kernel initialiser as one spelling: "RandomUniform" and
    "random_uniform" -> "randomuniform"; None when the card does not say."""
    initializer = layer.get("kernel_initializer")
    return initializer.replace("_", "").lower() if isinstance(initializer, str) else None


def _unmeasured_hidden_layers(ctx: Context) -> list[dict]:
    """The model card's hidden layers (the output layer's activation is the
    task's choice), for the config checks of a stalled run whose gradients were
    not measured (a plain-Keras past run); [] otherwise."""
    if ctx.ls(tags.LAYER_GRAD_NORM) is not None or not ctx.any_stall or not ctx.card:
        return []
    layers = [layer for layer in ctx.card.get("layers") or [] if isinstance(layer, dict)]
    return layers[:-1]


def _saturating(layer: dict) -> str | None:
    """ "sigmoid", or "tanh with RandomUniform kernels", when the layer saturates
    by its activation and (for tanh) its initialiser; None otherwise."""
    activation = str(layer.get("activation") or "").lower()
    if activation in ("sigmoid", "hard_sigmoid"):
        return activation
    if activation not in ("tanh", "softsign"):
        return None
    initializer = layer.get("kernel_initializer")
    key = _initializer_key(layer)
    if key is None or key.startswith(_FAN_IN_SCALED):
        return None  # unknown (no claim), or scaled to the fan-in
    return f"{activation} with {initializer} kernels"


@detector("vanishing_gradients", needs_callback=False)
def saturating_stack(ctx: Context) -> Finding | None:
    """Vanishing gradients read from the model card when no gradient was measured
    (a plain-Keras past run): a deep stack of saturating hidden layers and a
    stall at the constant predictor's loss."""
    hidden = _unmeasured_hidden_layers(ctx)
    best: list[tuple[str, str]] = []
    current: list[tuple[str, str]] = []
    for layer in hidden:
        kind = _saturating(layer)
        current = [*current, (str(layer.get("name")), kind)] if kind else []
        if len(current) > len(best):
            best = current
    # A stall well below the baseline is no saturated network's.
    if len(best) < SATURATING_STACK_DEPTH or not ctx.mostly_at_baseline(ctx.stalled):
        return None
    stalled = ctx.stalled
    kinds = sorted({kind for _, kind in best})
    epochs = ctx.epochs_of(stalled)
    return Finding(
        code="vanishing_gradients",
        severity=SEVERITY_ERROR,
        confidence=0.45,
        epochs=epochs,
        layers=[name for name, _ in best],
        evidence=(
            f"{len(best)} hidden layers in a row ({fmt_names([name for name, _ in best])}) use "
            f"{' / '.join(kinds)}, and in epochs {fmt_epochs(epochs)} the loss sits at about "
            "the constant predictor's: through each such layer the gradient shrinks (a "
            "sigmoid's derivative is at most 0.25; tanh units whose kernels ignore the fan-in "
            "start saturated), so the first layers barely learn. No gradient was logged to "
            "measure it."
        ),
        fix=(
            "Use ReLU hidden layers with he_uniform or he_normal kernels (or keep tanh with "
            "glorot_uniform and add BatchNormalization)."
        ),
        explains=("saturated_activations", "prediction_collapse", "zero_gradients"),
    )


# A ReLU-family unit whose kernel and input are both zero outputs exactly 0,
# where its derivative is 0 too: a hidden layer initialised with zeros passes
# no gradient to itself or below, and only the layers after it (and biases) move.
_ZERO_AT_ZERO = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish")


@detector("zero_gradients", needs_callback=False)
def zero_initialised(ctx: Context) -> Finding | None:
    """Zero gradients read from the model card when none was measured (a
    plain-Keras past run): hidden ReLU layers whose kernels start at zeros."""
    zeroed = [
        str(layer.get("name"))
        for layer in _unmeasured_hidden_layers(ctx)
        if _initializer_key(layer) == "zeros"
        and str(layer.get("activation") or "").lower() in _ZERO_AT_ZERO
    ]
    if not zeroed or not ctx.mostly_at_baseline(ctx.stalled):
        return None
    stalled = ctx.stalled
    epochs = ctx.epochs_of(stalled)
    return Finding(
        code="zero_gradients",
        severity=SEVERITY_ERROR,
        confidence=0.5,
        epochs=epochs,
        layers=zeroed,
        evidence=(
            f"The kernels of {fmt_names(zeroed)} start at zeros (kernel_initializer='zeros') "
            "under a ReLU-type activation: every unit outputs 0, where its derivative is 0, so "
            "no gradient reaches these layers, and in epochs "
            f"{fmt_epochs(epochs)} the loss sits at about the constant predictor's. No gradient "
            "was logged to measure it."
        ),
        fix=(
            "Drop kernel_initializer='zeros': Keras's default glorot_uniform (or he_uniform for "
            "ReLU layers) gives every unit different weights."
        ),
        explains=("dead_units", "prediction_collapse", "vanishing_gradients"),
    )
