"""Per-epoch values from accumulators, weights and probe outputs: numpy only.

Every function here is pure, so the arithmetic is tested without training.
Tags are those of `tb_stagnation.summary.tags`; NaN marks a per-layer value
that does not apply, a scalar that does not apply is left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tb_stagnation.callback.graph_recorder import LabelPlan, Readout
from tb_stagnation.callback.model_info import TASK_BINARY, TASK_CLASSIFICATION, TASK_REGRESSION
from tb_stagnation.summary import tags


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )


def gradient_stats(readout: Readout, num_layers: int) -> tuple[dict, dict]:
    """Scalars and per-layer vectors of the gradients measured this epoch.

    Per-layer fields hold one entry per layer, then the global one (index `num_layers`).
    """
    grad = readout.grad
    mean_norms = _ratio(grad.norm_sum, grad.finite_steps)
    nonfinite = _ratio(grad.nonfinite, grad.entries)
    # Per-replica gradients: every replica measured each step; report steps of the model.
    steps = float(grad.measured_steps) / max(readout.gradient_replicas, 1)
    scalars = {tags.GRAD_STEPS: steps}
    if steps > 0:
        scalars[tags.GRAD_GLOBAL_NORM] = float(mean_norms[num_layers])
        scalars[tags.GRAD_NONFINITE_FRACTION] = float(nonfinite[num_layers])
    layer_stats = {
        tags.LAYER_GRAD_NORM: mean_norms[:num_layers],
        tags.LAYER_NONFINITE_FRACTION: nonfinite[:num_layers],
    }
    return scalars, layer_stats


def weight_stats(
    weight_squares: Sequence[float] | np.ndarray,
    update_squares: Sequence[float] | np.ndarray,
    layer_of_variable: Sequence[int],
    in_global: Sequence[bool],
    num_layers: int,
) -> tuple[dict, dict]:
    """Weight norms and the epoch's update (end - start), per layer and global.

    Per variable i: `weight_squares[i]` is |W_end|^2 and `update_squares[i]`
    |W_end - W_start|^2 (weight_snapshot.py measures both on the device);
    `layer_of_variable[i]` is its layer; `in_global[i]` says if it counts for
    the global values (the weights the model trains in this fit).
    """
    weight_sq = np.zeros(num_layers + 1)
    update_sq = np.zeros(num_layers + 1)
    has_weights = np.zeros(num_layers + 1, bool)
    for w, u, layer, is_global in zip(weight_squares, update_squares, layer_of_variable, in_global):
        targets = [layer] + ([num_layers] if is_global else [])
        for target in targets:
            weight_sq[target] += float(w)
            update_sq[target] += float(u)
            has_weights[target] = True
    weight_norm = np.where(has_weights, np.sqrt(weight_sq), np.nan)
    update_norm = np.where(has_weights, np.sqrt(update_sq), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(has_weights, update_norm / weight_norm, np.nan)
    scalars = {
        tags.WEIGHT_GLOBAL_NORM: float(weight_norm[num_layers]) if has_weights[num_layers] else 0.0,
        tags.UPDATE_GLOBAL_NORM: float(update_norm[num_layers]) if has_weights[num_layers] else 0.0,
    }
    scalars[tags.UPDATE_GLOBAL_RATIO] = float(ratio[num_layers])
    layer_stats = {
        tags.LAYER_WEIGHT_NORM: weight_norm[:num_layers],
        tags.LAYER_UPDATE_NORM: update_norm[:num_layers],
        tags.LAYER_UPDATE_RATIO: ratio[:num_layers],
    }
    return scalars, layer_stats


def data_stats(readout: Readout, label: LabelPlan | None) -> tuple[dict, np.ndarray | None]:
    """Input, batch-count and label statistics; the class counts if any."""
    data = readout.data
    scalars: dict = {}
    scalars[tags.BATCHES_SEEN] = float(data.batches) / max(readout.replicas, 1)
    if data.input_count > 0:
        scalars[tags.INPUT_MEAN] = float(data.input_sum / data.input_count)
    count = data.spread_count
    if count > 0:
        # Over the measured steps' batches: Chan et al.'s within-batch M2 plus
        # the between-batch spread.
        total = data.spread_sum
        variance = (data.spread_m2 + data.spread_q - total**2 / count) / count
        scalars[tags.INPUT_STD] = float(math.sqrt(max(variance, 0.0)))
        scalars[tags.INPUT_MAX_ABS] = float(readout.maxima.max_abs)
    class_counts = None
    if label is not None:
        block = data.labels[: label.width]
        if label.task in (TASK_CLASSIFICATION, TASK_BINARY):
            class_counts = block.astype(np.float64)
        elif label.task == TASK_REGRESSION:
            scalars.update(regression_label_stats(block, label.dims))
    return scalars, class_counts


def regression_label_stats(block: np.ndarray, dims: int) -> dict:
    """Mean and best-constant MSE of regression targets (one constant per target dim)."""
    rows = float(block[0])
    if rows <= 0:
        return {}
    m2, q, sums = block[1 : 1 + dims], block[1 + dims : 1 + 2 * dims], block[1 + 2 * dims :]
    per_dim_variance = (m2 + q - sums**2 / rows) / rows
    return {
        tags.LABEL_MEAN: float(np.sum(sums) / (rows * dims)),
        tags.LABEL_VARIANCE: float(max(np.mean(per_dim_variance), 0.0)),
    }


class DistinctBatches:
    """Counts distinct batch fingerprints of one epoch, per replica.

    Fingerprints are rounded to float32, so the last-bit differences a
    different reduction order may produce do not split a batch.
    """

    def __init__(self, replicas: int) -> None:
        self._seen: list[set] = [set() for _ in range(replicas)]

    def add(self, per_replica: Sequence[np.ndarray]) -> None:
        for seen, rows in zip(self._seen, per_replica):
            rounded = np.ascontiguousarray(np.asarray(rows, np.float64).reshape(-1, 3), np.float32)
            seen.update(row.tobytes() for row in rounded)

    def count(self) -> int:
        # Each replica sees its own shard of every batch; a pipeline that
        # repeats one batch repeats it on every replica.
        return max((len(seen) for seen in self._seen), default=0)

    def reset(self) -> None:
        for seen in self._seen:
            seen.clear()


def class_probabilities(
    outputs: np.ndarray, task: str, activation: str | None, from_logits: bool
) -> np.ndarray | None:
    """Turn a classification output into per-row class probabilities [N, K].

    Mirrors Keras's crossentropy: logits go through softmax/sigmoid, anything
    else is normalised to sum 1 and clipped, as the loss itself sees it.
    """
    if np.iscomplexobj(outputs):
        return None  # complex outputs are no class probabilities
    values = np.asarray(outputs, np.float64)
    eps = 1e-7
    if task == TASK_BINARY:
        p = values.reshape(-1)
        if from_logits:
            p = 1.0 / (1.0 + np.exp(-p))
        elif activation != "sigmoid":
            p = np.clip(p, eps, 1 - eps)
        return np.stack([1.0 - p, p], axis=1)
    if task == TASK_CLASSIFICATION:
        if values.ndim < 1 or values.shape[-1] < 1:
            return None
        rows = values.reshape(-1, values.shape[-1])
        if from_logits:
            shifted = rows - np.max(rows, axis=1, keepdims=True)
            e = np.exp(shifted)
            return e / np.sum(e, axis=1, keepdims=True)
        if activation == "softmax":
            return rows
        with np.errstate(divide="ignore", invalid="ignore"):
            rows = rows / np.sum(rows, axis=1, keepdims=True)
        return np.clip(rows, eps, 1 - eps)
    return None


def prediction_stats(
    probabilities: np.ndarray, previous_classes: np.ndarray | None
) -> tuple[dict, np.ndarray]:
    """Entropy, predicted-class spread and change of the probe's predictions."""
    probabilities = np.asarray(probabilities, np.float64)
    classes_k = probabilities.shape[1]
    predicted = np.argmax(probabilities, axis=1)
    scalars: dict = {}
    if classes_k >= 2 and probabilities.shape[0] > 0:
        log_k = math.log(classes_k)
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(probabilities > 0, probabilities * np.log(probabilities), 0.0)
        entropy = -np.sum(plogp, axis=1) / log_k
        # NaN predictions poison the mean on purpose: a NaN model is evidence.
        scalars[tags.PRED_ENTROPY] = float(np.mean(entropy))
        histogram = np.bincount(predicted, minlength=classes_k).astype(np.float64)
        share = histogram / histogram.sum()
        nonzero = share[share > 0]
        scalars[tags.PRED_CLASS_ENTROPY] = float(-np.sum(nonzero * np.log(nonzero)) / log_k)
        scalars[tags.PRED_TOP_CLASS_SHARE] = float(share.max())
        if previous_classes is not None:
            common = min(len(previous_classes), len(predicted))
            if common > 0:
                changed = predicted[:common] != previous_classes[:common]
                scalars[tags.PRED_CHANGED_SHARE] = float(np.mean(changed))
    return scalars, predicted


# Dead units: activations with no gradient at all for inputs <= 0. Leaky ReLU,
# PReLU, ELU, SELU, GELU and SiLU keep a gradient there, so "never positive"
# does not make a unit dead for them.
DEAD_ACTIVATIONS = frozenset({"relu", "relu6"})

# Saturation: a unit is saturated on a probe entry when its pre-activation is
# beyond +-5 (DeepDiagnosis's threshold; sigmoid'(5) is 1/38 of its peak,
# tanh'(5) 1/5500). The probe sees outputs, so `probe.py` applies the bound
# to them: sigmoid(z) <= sigmoid(-5) or >= sigmoid(5); |tanh(z)| >= tanh(5);
# hard_sigmoid / hard_tanh at their flat ends; softsign |z/(1+|z|)| >= 5/6.
# A unit counts as saturated when it is saturated on more than half of the
# probe entries (samples, and positions for convolutions).
SATURATION_PREACTIVATION = 5.0
SATURATED_ENTRY_SHARE = 0.5
SATURATING_ACTIVATIONS = frozenset({"sigmoid", "tanh", "hard_sigmoid", "hard_tanh", "softsign"})


def unit_fractions(
    unit_max: np.ndarray | None, unit_saturated_share: np.ndarray | None
) -> tuple[float, float]:
    """(dead fraction, saturated fraction) of a layer from per-unit probe summaries.

    `unit_max[u]` is unit u's largest output on the probe (ReLU-like layers),
    `unit_saturated_share[u]` the share of probe entries on which it is
    saturated (saturating layers); None where the statistic does not apply.
    """
    dead = math.nan
    saturated = math.nan
    if unit_max is not None and np.size(unit_max) > 0:
        dead = float(np.mean(np.asarray(unit_max) <= 0.0))
    if unit_saturated_share is not None and np.size(unit_saturated_share) > 0:
        saturated = float(np.mean(np.asarray(unit_saturated_share) > SATURATED_ENTRY_SHARE))
    return dead, saturated
