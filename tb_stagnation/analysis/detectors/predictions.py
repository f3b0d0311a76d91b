"""Symptom detectors: collapsed predictions and non-finite losses."""

from __future__ import annotations

import numpy as np

from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.findings import SEVERITY_ERROR, Finding, detector
from tb_stagnation.analysis.series import finite_min, fmt_epochs, fmt_num, fmt_pct, median
from tb_stagnation.summary import tags

# Collapse (Context.collapsed_predictions: >= 99% of the probe predicted as one
# class) while the labels' majority class is below 90%, so the model is far
# more concentrated than the data. No prior tool checks this.
COLLAPSE_MAX_MAJORITY = 0.9
# Persisting over the last epochs makes it an error even when the loss moves.
COLLAPSE_TAIL = 3


@detector("prediction_collapse")
def prediction_collapse(ctx: Context) -> Finding | None:
    # Only the baselines' majority rate gates: a weighted fit (class_weight)
    # has none, and its weights un-skew the labels, so a collapse is the model's.
    collapsed = ctx.collapsed_predictions(
        max_majority=COLLAPSE_MAX_MAJORITY, majority_from_shares=False
    )
    if collapsed is None:
        return None
    top = ctx.s(tags.PRED_TOP_CLASS_SHARE)
    assert top is not None  # collapsed_predictions returns None without this series
    majority = ctx.baselines.majority_rate
    collapsed = collapsed & ctx.sane_epochs()
    if not collapsed.any():
        return None
    tail = np.zeros(ctx.n, dtype=bool)
    tail[max(0, ctx.n - COLLAPSE_TAIL) :] = True
    logged_tail = tail & np.isfinite(top)
    persists = logged_tail.any() and bool(collapsed[logged_tail].all())
    in_stall = ctx.any_stall and collapsed[ctx.stalled].mean() >= 0.5
    if not (persists or in_stall):
        return None
    mask = collapsed & (ctx.stalled if in_stall else np.ones(ctx.n, dtype=bool))
    epochs = ctx.epochs_of(mask)
    share = median(top[mask])
    label_text = (
        f" although the most common label is only {fmt_pct(majority)} of the data"
        if majority is not None
        else ""
    )
    changed = ctx.s(tags.PRED_CHANGED_SHARE)
    changed_text = ""
    if changed is not None:
        value = median(changed[mask])
        if value is not None and value == 0:
            changed_text = "; no prediction changed from one epoch to the next"
    return Finding(
        code="prediction_collapse",
        severity=SEVERITY_ERROR,
        confidence=0.7,
        epochs=epochs,
        evidence=(
            f"In epochs {fmt_epochs(epochs)} {fmt_pct(share)} of the probe samples get the same "
            f"predicted class{label_text}{changed_text}: the model ignores its inputs."
        ),
        fix=(
            "The network outputs the same answer for every input. Look at the causes above it; "
            "otherwise check that inputs vary and reach the model (print model.predict on a few "
            "different samples), and try a higher learning rate or class weights."
        ),
    )


@detector("nonfinite_loss", needs_callback=False)
def nonfinite_loss(ctx: Context) -> Finding | None:
    loss = ctx.loss
    if loss is None:
        return None
    bad = ~np.isfinite(loss)
    if not bad.any():
        return None
    first = int(np.flatnonzero(bad)[0])
    epochs = ctx.epochs_of(bad)
    before = ""
    if first > 0:
        best = finite_min(loss[:first])
        last = loss[first - 1]
        if best is not None and np.isfinite(last):
            before = f" (epoch {ctx.epochs[first - 1]}: {fmt_num(last)}; best {fmt_num(best)})"
    return Finding(
        code="nonfinite_loss",
        severity=SEVERITY_ERROR,
        confidence=0.5,
        epochs=epochs,
        evidence=(
            f"The loss is {fmt_num(loss[first])} from epoch {ctx.epochs[first]}{before}; "
            f"{len(epochs)} epoch(s) in all ({fmt_epochs(epochs)}). Once a weight is NaN every "
            "later update is NaN too."
        ),
        fix=(
            "Find where NaN enters: keras.callbacks.TerminateOnNaN stops at the first bad batch. "
            "Check the data (np.isfinite(x).all()), lower the learning rate, clip gradients "
            "(clipnorm=1.0), and keep log/sqrt/division inputs positive in custom losses."
        ),
    )
