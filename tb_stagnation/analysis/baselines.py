"""Baselines: what a model that learned nothing from its inputs scores.

A stalled model is one stuck at (or worse than) the *best constant predictor*:
the predictor that ignores the input and always outputs the label frequencies
(classification) or the label mean (regression). Its loss is

* cross-entropy (categorical / sparse): the label entropy H(p) = -sum p_k ln p_k;
* binary cross-entropy: the mean over output units of H_b(p_k), so it is also
  right when binary_crossentropy is (wrongly) used on a K-way one-hot output;
* mean squared error: the label variance (regression, `labels/variance`), or
  mean_k p_k (1 - p_k) on one-hot classification targets;

and its accuracy is the majority-class rate. None of the prior tools use these
(diagnosis-prior-art.md: "none of them tells a run that converged from a run
that stalled"); they are what lets us call a flat loss of 0.693 a stall and a
flat loss of 0.02 a converged model.

Runs logged by plain `keras.callbacks.TensorBoard` have no label statistics;
`estimate_from_curve` then recognises a loss stuck at ln K (the loss of a
uniform guess over K classes) and otherwise reports no baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tb_stagnation.analysis import series
from tb_stagnation.analysis.run_data import RunData

# The loss taxonomy's answers, importable from here as before (detectors use them).
from tb_stagnation.losses import (  # noqa: F401
    error_scale_of_loss,
    loss_family,
    normalize_name,
)
from tb_stagnation.names import shorten
from tb_stagnation.summary import tags

LOSS_KIND_CROSSENTROPY = "crossentropy"
LOSS_KIND_MSE = "mse"

# Keras's default learning rates (keras/src/optimizers/*.py, Keras 3.15): every
# optimizer defaults to 1e-3 except SGD (1e-2).
_DEFAULT_LR = {"sgd": 0.01}
DEFAULT_LR_FALLBACK = 0.001
# The rate an optimizer is designed to run at, where it differs from Keras 3's
# default: Adadelta's paper (Zeiler 2012) and Keras 2 use 1.0, Adagrad's
# Keras 2 default was 0.01. Keras 3 gives both 1e-3, at which Adadelta barely
# moves (keras-team/keras#13047). "Far below / above" is judged against this.
_WORKING_LR = {"adadelta": 1.0, "adagrad": 0.01}
# Rates are logged as float32: Adam(1e-2) reads 0.0099999998 and 1e-3 reads
# 0.0010000000475. Ratios of a rate to a reference get this much slack, so a
# rate set to exactly 10x or 1/10 of it counts as such.
RATE_SLACK = 1.01

# K for which a flat loss at ln K is recognised as "a uniform guess over K
# classes" in runs without label statistics. Beyond 10 the ln K values crowd
# together (ln 11 vs ln 12 differ by 8%) and a coincidence gets too likely.
LN_K_MAX_CLASSES = 10
# How close to ln K counts as "at" ln K: 0.5% relative. Our measurement: a
# model that learned nothing on balanced labels sits within 0.1% of ln K
# (deep sigmoid stack: 0.6936 vs ln 2 = 0.6931), while randomly initialised
# models start 2-10% away from it.
LN_K_TOLERANCE = 0.005
# A multi-output model's logged loss counts as the plain sum of its outputs'
# logged losses within this (float32 rounding of the per-epoch means).
SUM_RTOL = 1e-3


def default_learning_rate(optimizer_class: Any) -> float:
    """Keras's default learning rate of an optimizer class name (1e-3 when unknown)."""
    return _DEFAULT_LR.get(normalize_name(optimizer_class), DEFAULT_LR_FALLBACK)


def working_learning_rate(optimizer_class: Any) -> float:
    """The rate an optimizer is designed for (its Keras default unless noted above)."""
    name = normalize_name(optimizer_class)
    return _WORKING_LR.get(name, default_learning_rate(optimizer_class))


def learning_rate_reference_text(optimizer_class: Any) -> str:
    """How the evidence names `working_learning_rate` ("0.01, Keras's default for SGD")."""
    fmt_num = series.fmt_num
    rate = working_learning_rate(optimizer_class)
    name = optimizer_class if isinstance(optimizer_class, str) and optimizer_class else None
    if name is None:
        return f"{fmt_num(rate)}, Keras's Adam default"
    if rate != default_learning_rate(optimizer_class):
        return (
            f"{fmt_num(rate)}, the rate {name} is designed for; Keras 3's default "
            f"{fmt_num(default_learning_rate(optimizer_class))} is far below it"
        )
    return f"{fmt_num(rate)}, Keras's default for {name}"


@dataclass
class Baselines:
    """What a model that learned nothing scores on this run's labels."""

    constant_loss: float | None = None
    majority_rate: float | None = None
    loss_kind: str | None = None
    # Accuracy that predicting the majority class earns for the logged accuracy metric.
    accuracy_baseline: float | None = None
    class_shares: np.ndarray | None = None
    label_count: float = 0.0
    # "labels" (from logged label statistics), "estimated" (ln K from the curve),
    # "output" (ln C from the output layer a logged model config shows) or None.
    source: str | None = None
    # 1/C for a C-way classifier whose labels are unknown (plain-Keras runs):
    # the accuracy of a uniform guess, the reference for "clearly learned".
    chance_accuracy: float | None = None
    # False when the label values contradict a classification loss (regression
    # targets into binary_crossentropy): nothing may be said about classes.
    labels_are_classes: bool = True
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "constant_loss": series.json_number(self.constant_loss),
            "majority_rate": series.json_number(self.majority_rate),
            "loss_kind": self.loss_kind,
        }


def class_shares(run: RunData) -> tuple[np.ndarray | None, float]:
    """Label shares per class summed over every epoch, and the label count."""
    counts = run.class_counts
    if counts is None:
        return None, 0.0
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] == 0:
        return None, 0.0
    counts = np.where(np.isfinite(counts) & (counts > 0), counts, 0.0)
    total = counts.sum(axis=0)
    label_count = float(total.sum())
    if label_count <= 0:
        return None, 0.0
    return total / label_count, label_count


def entropy(shares: np.ndarray) -> float:
    """Shannon entropy (nats) of class shares: the cross-entropy of predicting
    the label frequencies, the constant predictor's loss."""
    shares = np.asarray(shares, dtype=np.float64)
    positive = shares[shares > 0]
    return float(-(positive * np.log(positive)).sum())


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    return np.nan_to_num(h, nan=0.0)


def output_width(card: dict | None) -> int | None:
    """The last dimension of the model's first output, from the model card."""
    if not isinstance(card, dict):
        return None
    shape = card.get("output_shape")
    if isinstance(shape, (list, tuple)) and shape:
        last = shape[-1]
        if isinstance(last, int) and not isinstance(last, bool) and last > 0:
            return last
    return None


def labels_outside_classes(family: str | None, labels: Any) -> str | None:
    """Why the first batch's labels are not the classes a cross-entropy loss counts
    (e.g. regression targets 25..346 into binary_crossentropy), or None.

    The callback histograms labels by the loss it is given; when the values
    contradict the loss, those counts describe nothing and no class statistic
    or class baseline may be computed from them (loss_output_mismatch says why).
    """
    if family not in ("binary", "categorical") or not isinstance(labels, dict):
        return None
    low, high = labels.get("min"), labels.get("max")
    if not (
        isinstance(low, (int, float))
        and math.isfinite(low)
        and isinstance(high, (int, float))
        and math.isfinite(high)
    ):
        return None
    if family == "binary" and (low < 0 or high > 1):
        return f"the labels range over {low:g} to {high:g}, not the 0/1 of a binary loss"
    shape = labels.get("shape")
    one_hot = isinstance(shape, list) and len(shape) >= 2 and shape[-1] not in (None, 1)
    if family == "categorical" and one_hot and (low < 0 or high > 1):
        return f"the one-hot labels range over {low:g} to {high:g}, not 0/1"
    return None


def compute(run: RunData) -> Baselines:
    """Baselines from the run's label statistics and model card (no curve needed)."""
    card = run.model_card if isinstance(run.model_card, dict) else {}
    family = loss_family(card.get("loss"))
    shares, label_count = class_shares(run)
    preflight = run.preflight if isinstance(run.preflight, dict) else {}
    not_classes = labels_outside_classes(family, preflight.get("labels"))
    if not_classes is not None and shares is not None:
        base = Baselines(class_shares=None, label_count=0.0, labels_are_classes=False)
        base.notes.append(
            f"No class statistics or baselines: {not_classes}, so they are not classes "
            "(see loss_output_mismatch)."
        )
        return base
    base = Baselines(class_shares=shares, label_count=label_count)
    if card.get("sample_weighted") is True and shares is not None:
        # class_weight / sample weights change both the loss a constant predictor
        # scores and what the model should predict (a class-weighted model is
        # meant to score below the majority rate): judge from the curve.
        base.notes.append(
            "fit() used class_weight or sample weights: the loss and accuracy are not compared "
            "with the constant-predictor baselines, which assume unweighted labels."
        )
        return base

    if shares is not None and shares.size >= 1:
        base.majority_rate = float(shares.max())
        # Keras 3 resolves metrics=["accuracy"] to categorical/binary/sparse
        # accuracy per output; all of them score max(p) for the majority guess
        # (measured: binary_crossentropy on a 3-way softmax logs categorical accuracy).
        base.accuracy_baseline = base.majority_rate
        base.source = "labels"
        width = output_width(card)
        if family == "categorical":
            base.constant_loss = entropy(shares)
            base.loss_kind = LOSS_KIND_CROSSENTROPY
        elif family == "binary":
            if shares.size == 2:
                base.constant_loss = float(_binary_entropy(shares[1:])[0])
            elif shares.size == 1:
                base.constant_loss = 0.0
            else:  # one-hot K-way labels: Keras averages BCE over the K units
                base.constant_loss = float(_binary_entropy(shares).mean())
            base.loss_kind = LOSS_KIND_CROSSENTROPY
        elif family == "mse":
            if shares.size == 2 and width in (1, None):
                p = shares[1]
                base.constant_loss = float(p * (1 - p))
            else:
                base.constant_loss = float((shares * (1 - shares)).mean())
            base.loss_kind = LOSS_KIND_MSE
    elif family == "mse":
        variance = run.scalar(tags.LABEL_VARIANCE)
        value = series.median(variance) if variance is not None else None
        if value is not None and value >= 0:
            base.constant_loss = value
            base.loss_kind = LOSS_KIND_MSE
            base.source = "labels"
    elif family in ("categorical", "binary"):
        base.loss_kind = LOSS_KIND_CROSSENTROPY
    return base


def nearest_ln_k(value: float) -> int | None:
    """K (2..10) when `value` is within LN_K_TOLERANCE of ln K, else None."""
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    for k in range(2, LN_K_MAX_CLASSES + 1):
        reference = math.log(k)
        if abs(value - reference) <= LN_K_TOLERANCE * reference:
            return k
    return None


def estimate_from_curve(base: Baselines, loss: np.ndarray) -> None:
    """For runs without label statistics: a loss stuck at ln K suggests K balanced classes.

    Only the loss at the end of the run is used (the last three finite epochs
    must all be at the same ln K), so a curve that merely passes ln K on its
    way down is not mistaken for one.
    """
    if base.constant_loss is not None:
        return
    finite = loss[np.isfinite(loss)]
    if finite.size < 3:
        return
    ks = {nearest_ln_k(float(v)) for v in finite[-3:]}
    if len(ks) == 1 and None not in ks:
        k = ks.pop()
        assert k is not None  # `None not in ks` above
        base.constant_loss = math.log(k)
        base.loss_kind = LOSS_KIND_CROSSENTROPY
        base.source = "estimated"
        base.notes.append(
            f"No label statistics: the loss sits at ln {k} = {math.log(k):.4f}, the loss of a "
            f"uniform guess over {k} classes, so that is used as the constant-predictor loss "
            "(an estimate)."
        )


def from_output_layer(base: Baselines, card: dict | None) -> None:
    """For runs without label statistics whose model config is known (a plain-Keras
    run's logged config): the loss of a uniform guess over the output's classes.

    ln C for a C-way softmax and ln 2 for one sigmoid unit under a cross-entropy
    loss. It is the constant-predictor loss of balanced labels and an upper
    bound of it otherwise (imbalanced labels have a lower entropy), so a loss at
    or above it is certainly at the baseline; the accuracy baseline stays
    unknown (the majority rate needs the labels).
    """
    if base.constant_loss is not None or not isinstance(card, dict):
        return
    family = loss_family(card.get("loss"))
    width = output_width(card)
    activation = card.get("output_activation")
    classes = None
    if family == "categorical" and activation == "softmax" and width is not None and width >= 2:
        classes = width
    elif family == "binary" and activation == "sigmoid" and width == 1:
        classes = 2
    if classes is None:
        return
    base.constant_loss = math.log(classes)
    base.loss_kind = LOSS_KIND_CROSSENTROPY
    base.source = "output"
    base.chance_accuracy = 1.0 / classes
    base.notes.append(
        f"No label statistics: the loss of a uniform guess over the output's {classes} classes, "
        f"ln {classes} = {math.log(classes):.4f}, is used as the constant-predictor loss (an upper "
        "bound: imbalanced labels allow a lower one)."
    )


def summed_loss_heads(
    card: dict | None, logged_keys: Iterable[str], from_callback: bool
) -> list[str]:
    """The outputs whose losses Keras adds up into the logged `loss`, when there
    are two or more; else [].

    The callback's model card lists every output with its loss. A plain-Keras
    run's logged config names one output only, but Keras logs `<output>_loss`
    beside `loss` for each head of a multi-output model.
    """
    outputs = card.get("outputs") if isinstance(card, dict) else None
    if isinstance(outputs, list) and len(outputs) >= 2:
        return [
            str(output["name"])
            for output in outputs
            if isinstance(output, dict) and output.get("loss") and output.get("name") is not None
        ]
    if from_callback:
        return []
    heads = [
        key[: -len("_loss")]
        for key in logged_keys
        if key.endswith("_loss") and key != "loss" and not key.startswith("val_")
    ]
    return heads if len(heads) >= 2 else []


def uniform_guess_loss(output: Any) -> float | None:
    """The loss of a uniform guess for one output of the model card: ln C for a
    C-way softmax under a categorical loss, ln 2 for sigmoid units under a
    binary one (Keras averages it over the units); None otherwise.

    It is the constant-predictor loss of balanced labels and an upper bound of
    it otherwise."""
    if not isinstance(output, dict):
        return None
    family = loss_family(output.get("loss"))
    activation = output.get("activation")
    shape = output.get("shape")
    width = shape[-1] if isinstance(shape, (list, tuple)) and shape else None
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        return None
    if family == "categorical" and activation == "softmax" and width >= 2:
        return math.log(width)
    if family == "binary" and activation == "sigmoid":
        return math.log(2)
    return None


def _plain_sum(total: np.ndarray, parts: list[np.ndarray]) -> bool:
    """Whether the logged total is the unweighted sum of the logged parts at every
    epoch where all are finite (Keras logs each output's loss unweighted and the
    total with loss_weights and regularisation included)."""
    if any(part.shape != total.shape for part in parts):
        return False
    summed = np.sum(parts, axis=0)
    both = np.isfinite(total) & np.isfinite(summed)
    if not both.any():
        return False
    return bool(np.allclose(total[both], summed[both], rtol=SUM_RTOL, atol=1e-6))


def for_summed_loss(
    base: Baselines,
    heads: list[str],
    card: dict,
    total: np.ndarray,
    head_losses: dict[str, np.ndarray | None],
) -> None:
    """Baselines for the loss of a model with several outputs, which Keras logs
    as the sum of the outputs' losses: one output's baseline cannot judge it (a
    two-head model at both heads' baselines scores their sum, far above either).

    The constant-predictor loss becomes the sum of the outputs' own: the exact
    one of the output the label statistics describe, the uniform guess of each
    other (an upper bound). When a part is unknown, or the total is weighted,
    no loss baseline is given and the curve shape judges the stall. The
    accuracy references go either way: Keras logs one accuracy per output.
    """
    stats_output = card.get("stats_output")
    logged_outputs = card.get("outputs")
    outputs = logged_outputs if isinstance(logged_outputs, list) else []
    by_name = {o.get("name"): o for o in outputs if isinstance(o, dict)}
    exact = base.constant_loss if base.source == "labels" else None
    shown = ", ".join(shorten(name, 40) for name in heads)
    fmt = series.fmt_num
    intro = f"The model has {len(heads)} outputs with a loss ({shown}): the logged loss is "

    parts: list[tuple[str, float, bool]] = []  # (output, its constant loss, exact)
    reason = None
    curves = [head_losses.get(head) for head in heads]
    logged = [curve for curve in curves if curve is not None]
    if len(logged) < len(curves):
        reason = "not every output's own loss was logged"
    elif not _plain_sum(total, logged):
        reason = (
            "it is not the plain sum of the outputs' logged losses (loss_weights, or extra "
            "loss terms such as regularisation)"
        )
    else:
        for head in heads:
            if head == stats_output and exact is not None:
                parts.append((head, exact, True))
                continue
            bound = uniform_guess_loss(by_name.get(head))
            if bound is None:
                name = shorten(head, 40)
                reason = (
                    f"the logged model config does not describe output {name}"
                    if head not in by_name
                    else f"the constant-predictor loss of output {name} is unknown (no label "
                    "statistics of it, and no softmax or sigmoid under a cross-entropy loss)"
                )
                break
            parts.append((head, bound, False))

    base.majority_rate = None
    base.accuracy_baseline = None
    base.chance_accuracy = None
    if reason is not None:
        base.constant_loss = None
        base.loss_kind = None
        base.notes.append(
            intro + "not compared with a constant-predictor loss, which exists per output: "
            f"{reason}. Stalls are judged from the curve shape."
        )
        return
    base.constant_loss = float(sum(value for _, value, _ in parts))
    base.loss_kind = (
        LOSS_KIND_CROSSENTROPY
        if all(
            loss_family(by_name.get(head, {}).get("loss")) in ("categorical", "binary")
            for head in heads
        )
        else None
    )
    all_exact = all(is_exact for _, _, is_exact in parts)
    base.source = "labels" if all_exact else "output"
    terms = " + ".join(
        f"{fmt(value)} ({shorten(head, 40)}, "
        + ("from its labels" if is_exact else "a uniform guess")
        + ")"
        for head, value, is_exact in parts
    )
    bound_note = (
        "" if all_exact else " (an upper bound: a uniform guess is the baseline of balanced labels)"
    )
    base.notes.append(
        intro + "their sum, so the constant-predictor loss it is compared with is the sum of "
        f"theirs: {terms} = {fmt(base.constant_loss)}{bound_note}."
    )
