"""Unit detectors: dead ReLU units and saturated sigmoid/tanh units."""

from __future__ import annotations

import numpy as np

from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.findings import SEVERITY_ERROR, Finding, detector
from tb_stagnation.analysis.series import column_medians, fmt_epochs, fmt_pct
from tb_stagnation.summary import tags

# Dead units. AUTOTRAINER and DeepDiagnosis flag a layer when >= 70% of its
# outputs are <= 0; SageMaker when > 50% of the units are active < 1% of the
# time. Our statistic is stricter (units that never fire on the probe), so 70%
# is a warning and >= 90% means the layer blocks almost every gradient path.
DEAD_WARNING = 0.7
DEAD_BLOCKING = 0.9
# Saturation: DeepDiagnosis flags > 50% of pre-activations beyond +-5.
# Output layers are skipped: a confident sigmoid/softmax output is saturated by design.
SATURATED = 0.5
ZERO_WEIGHTS = 1e-20


def _layer_medians(ctx: Context, matrix: np.ndarray, focus: np.ndarray) -> list[float | None]:
    return column_medians(matrix, focus)


@detector("dead_units")
def dead_units(ctx: Context) -> Finding | None:
    dead = ctx.ls(tags.LAYER_DEAD_FRACTION)
    if dead is None:
        return None
    focus = ctx.focus() & ctx.sane_epochs()
    if not focus.any():
        return None
    shares = _layer_medians(ctx, dead, focus)
    outputs = ctx.output_layer_indices()
    weights = ctx.ls(tags.LAYER_WEIGHT_NORM)
    weight_medians = column_medians(weights, focus) if weights is not None else []
    rows = []
    for i, share in enumerate(shares):
        # A relu output layer is checked too: a dead output unit predicts 0 for
        # every input. (The statistic is only logged for ReLU-family layers.)
        if share is None or share < DEAD_WARNING:
            continue
        if i in outputs and (ctx.layers[i].activation if i < len(ctx.layers) else None) != "relu":
            continue
        if i < len(weight_medians):
            weight = weight_medians[i]
            if weight is not None and weight <= ZERO_WEIGHTS:
                continue  # all-zero weights: zero_gradients explains it better
        rows.append((i, share))
    if not rows:
        return None
    blocking = [(i, s) for i, s in rows if s >= DEAD_BLOCKING]
    names = [ctx.layer_name(i) for i, _ in rows]
    described = ", ".join(f"{ctx.layer_name(i)} {fmt_pct(s)}" for i, s in rows)
    epochs = ctx.epochs_of(focus)
    if ctx.any_stall and blocking:
        severity = SEVERITY_ERROR
        confidence = 0.9 if any(s >= 0.999 for _, s in blocking) else 0.85
    elif ctx.any_stall:
        severity = SEVERITY_ERROR
        confidence = 0.55
    else:
        # Units that never fire on the probe while the loss keeps improving
        # stop nothing: saying so on healthy training is noise.
        return None
    grad_text = ""
    grads = ctx.ls(tags.LAYER_GRAD_NORM)
    if grads is not None and blocking:
        grad_medians = column_medians(grads, focus)[: blocking[-1][0] + 1]
        zero = [i for i, value in enumerate(grad_medians) if (value or 0.0) <= 1e-20]
        if zero:
            grad_text = (
                f"; no gradient reaches {len(zero)} layer(s) at or below them "
                "(gradient norm exactly 0)"
            )
    return Finding(
        code="dead_units",
        severity=severity,
        confidence=confidence,
        epochs=epochs,
        layers=names,
        evidence=(
            f"Share of ReLU units that never fire on the probe in epochs {fmt_epochs(epochs)}: "
            f"{described}{grad_text}. A unit that never fires outputs 0 and passes no gradient."
        ),
        fix=(
            "Check the bias initialisers (a large negative bias kills every unit), lower the "
            "learning rate (one huge step can push all units negative), use he_normal "
            "initialisation, or switch to LeakyReLU / ELU."
        ),
        explains=("zero_gradients", "vanishing_gradients", "prediction_collapse"),
    )


@detector("saturated_activations")
def saturated_activations(ctx: Context) -> Finding | None:
    saturated = ctx.ls(tags.LAYER_SATURATED_FRACTION)
    if saturated is None:
        return None
    focus = ctx.focus() & ctx.sane_epochs()
    if not focus.any():
        return None
    shares = _layer_medians(ctx, saturated, focus)
    # A confident classifier's sigmoid/softmax output is saturated by design.
    outputs = ctx.output_layer_indices()
    rows = [
        (i, s)
        for i, s in enumerate(shares)
        if s is not None and s >= SATURATED and i not in outputs
    ]
    if not rows:
        return None
    names = [ctx.layer_name(i) for i, _ in rows]
    epochs = ctx.epochs_of(focus)
    described = ", ".join(f"{ctx.layer_name(i)} {fmt_pct(s)}" for i, s in rows)
    if ctx.any_stall:
        severity = SEVERITY_ERROR
        confidence = 0.75 if max(s for _, s in rows) >= 0.9 else 0.6
    else:
        return None  # saturated but learning: nothing stalled, nothing to report
    return Finding(
        code="saturated_activations",
        severity=severity,
        confidence=confidence,
        epochs=epochs,
        layers=names,
        evidence=(
            f"Share of sigmoid/tanh units saturated on the probe in epochs {fmt_epochs(epochs)}: "
            f"{described}. A saturated unit sits at its flat end and passes almost no gradient."
        ),
        fix=(
            "Scale the inputs, lower the learning rate, use ReLU in hidden layers, or add "
            "BatchNormalization before the activation."
        ),
        explains=("vanishing_gradients", "zero_gradients", "prediction_collapse"),
    )
