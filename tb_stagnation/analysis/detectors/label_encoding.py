"""The first batch's labels against the loss and the output layer.

Part of `loss_output_mismatch` (detectors/model.py calls `finding(ctx)`): the
model card says what the loss and the output expect, the pre-flight record
(FORMAT.md `preflight`, `labels`) says what the labels are: their shape and
dtype from the first batch's spec, their range from its values. The card-only
checks stay in model.py; these need the labels themselves:

- categorical_crossentropy with integer class ids, sparse_categorical_crossentropy
  with one-hot rows (Keras 3 refuses both at the first step, with a message
  about shapes; we say which loss fits the labels);
- class ids outside 0..K-1 for a sparse loss (a CPU step fails, a GPU step
  silently gives NaN);
- labels outside [0, 1] for binary or categorical cross-entropy (labels 1/2, or
  0..9 into one sigmoid unit: the loss is no cross-entropy then, and it trains);
- regression targets outside the output activation's range (targets 0..100
  into a sigmoid, negative targets into a relu).

Pure: numpy-free even; no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tb_stagnation.analysis.findings import SEVERITY_ERROR, SEVERITY_WARNING, Finding
from tb_stagnation.analysis.series import finite_json_number, fmt_num
from tb_stagnation.losses import TASK_REGRESSION, is_sparse, loss_family, loss_task

# What a bounded output activation can produce.
OUTPUT_RANGES = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0)}
# Targets out of range by at least this share of the output's range make an
# error (most targets out of reach); less is a warning (the extremes clipped).
FAR_OUT_OF_RANGE = 0.5
# Whole-number labels spanning more ids than this read as counts or measured
# values, not as class ids (a 253-way softmax for targets 25..346 is no fix).
MAX_CLASS_IDS = 20
# What a wrong label encoding explains when it is there.
MISMATCH_EXPLAINS = (
    "constant_labels",
    "class_imbalance",
    "prediction_collapse",
    "saturated_activations",
    "dead_units",
    "exploding_gradients",
    "zero_gradients",
    "vanishing_gradients",
    "nonfinite_loss",
    "overfit_failure",
    # An output that cannot change passes (nearly) no gradient: the steps are
    # tiny whatever the rate.
    "learning_rate_too_small",
)


@dataclass(frozen=True)
class Problem:
    """One contradiction between the labels and the loss or output."""

    confidence: float
    evidence: str
    fix: str
    severity: str = SEVERITY_ERROR
    # Keras refuses these labels itself at the first step (a shape error):
    # the pre-flight says so before that error, not after the first batch.
    fatal: bool = False
    # The change `fix` names, when it is one `overfit_check(fix=...)` can try
    # (a loss, an output activation): the pre-flight checks it on 20 samples.
    suggested_fix: dict | None = None


def stats_output(card: dict) -> dict:
    """The card's entry of the output the labels belong to (`stats_output`)."""
    outputs = [o for o in card.get("outputs") or [] if isinstance(o, dict)]
    wanted = card.get("stats_output")
    for output in outputs:
        if wanted is not None and output.get("name") == wanted:
            return output
    if outputs:
        return outputs[0]
    return {
        "name": None,
        "shape": card.get("output_shape"),
        "activation": card.get("output_activation"),
        "loss": card.get("loss"),
    }


def _shape_text(shape: list) -> str:
    dims = ["batch" if d is None and i == 0 else str(d) for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check(card: dict, labels: Any) -> Problem | None:
    """The first contradiction between `labels` (FORMAT.md) and the card, if any."""
    if not isinstance(card, dict) or not isinstance(labels, dict):
        return None
    output = stats_output(card)
    loss = output.get("loss") or card.get("loss")
    if not isinstance(loss, str):
        return None
    family = loss_family(loss)
    sparse = family == "categorical" and is_sparse(loss)
    logged_shape = output.get("shape")
    out_shape = logged_shape if isinstance(logged_shape, list) else []
    width = out_shape[-1] if len(out_shape) >= 2 and isinstance(out_shape[-1], int) else 1
    activation = output.get("activation")
    activation = activation.lower() if isinstance(activation, str) else None
    where = f" ({output['name']})" if output.get("name") else ""

    shape = labels.get("shape") if isinstance(labels.get("shape"), list) else None
    if shape is not None and out_shape:
        problem = _shape_problem(loss, sparse, family, width, len(out_shape), shape, labels)
        if problem is not None:
            return problem

    low, high = finite_json_number(labels.get("min")), finite_json_number(labels.get("max"))
    if low is None or high is None or not labels.get("count"):
        return None
    mean = finite_json_number(labels.get("mean"))
    whole = not labels.get("non_integer")
    span = f"{fmt_num(low)} to {fmt_num(high)}"
    if sparse and width >= 2:
        if low < 0 or high > width - 1 or not whole:
            odd = "" if whole else ", and some are not whole numbers"
            return Problem(
                0.95,
                f"Loss {loss} expects class ids 0 to {width - 1} (the output{where} has {width} "
                f"units), but the first batch's labels range over {span}{odd}: ids outside the "
                "output make the loss fail or NaN, fractions are cut to whole ids.",
                "Map the labels to 0..K-1 (np.unique(y, return_inverse=True)[1]) and give the "
                "output layer one unit per class.",
            )
        return None
    if family in ("binary", "categorical") and (low < 0 or high > 1):
        return _probability_labels(loss, family, width, low, high, whole, span)
    if loss_task(loss) == TASK_REGRESSION:
        return _target_range(loss, activation, where, low, high, mean, span)
    return None


def _shape_problem(
    loss: str, sparse: bool, family: str | None, width: int, out_rank: int, shape: list, labels
) -> Problem | None:
    rank = len(shape)
    last = shape[-1] if rank >= 2 else None
    dtype = labels.get("dtype")
    typed = f" {dtype}" if isinstance(dtype, str) else ""
    if family == "categorical" and not sparse and width >= 2:
        if rank < out_rank or (rank == out_rank and last == 1):
            return Problem(
                0.97,
                f"Loss {loss} expects one-hot labels with one column per class ({width}), but "
                f"the labels are{typed} class ids of shape {_shape_text(shape)}, one per "
                "sample; Keras stops at the first step with a shape error.",
                "Keep the integer labels and use loss='sparse_categorical_crossentropy', or "
                f"one-hot encode them: keras.utils.to_categorical(y, {width}).",
                fatal=True,
                suggested_fix={"loss": "sparse_categorical_crossentropy"},
            )
    if sparse and width >= 2 and rank == out_rank and last == width:
        return Problem(
            0.97,
            f"Loss {loss} expects one integer class id per sample, but the labels have shape "
            f"{_shape_text(shape)}, one column per output unit: they are one-hot encoded; Keras "
            "stops at the first step with a shape error.",
            "Use loss='categorical_crossentropy' for one-hot labels, or pass "
            "y.argmax(axis=-1) as the labels.",
            fatal=True,
            suggested_fix={"loss": "categorical_crossentropy"},
        )
    return None


def _probability_labels(
    loss: str,
    family: str,
    width: int,
    low: float,
    high: float,
    whole: bool,
    span: str,
) -> Problem:
    evidence = (
        f"Loss {loss} expects labels in [0, 1], but the first batch's labels range over "
        f"{span}: for such labels the loss is no cross-entropy (it has no minimum at the "
        "right answer and can go negative), yet training runs and reports numbers."
    )
    suggestion = None
    if family == "binary" and whole and low >= 0 and high - low == 1:
        fix = (
            f"The labels look like two classes coded {fmt_num(low)} and {fmt_num(high)}: map "
            f"them to 0 and 1 (y - {fmt_num(low)})."
        )
    elif (not whole or high - low + 1 > MAX_CLASS_IDS) and high - low >= 2:
        fix = (
            f"Targets spread over {span}{'' if whole else ' with fractions'} are regression "
            "targets, not classes: use a linear output (Dense(1), no activation) with "
            "loss='mean_squared_error', and standardise the targets ((y - mean) / std) if "
            "they are large."
        )
        if width == 1:
            suggestion = {"loss": "mean_squared_error", "output_activation": "linear"}
    elif family == "binary" and whole and low >= 0 and high - low >= 2 and width == 1:
        classes = int(high - low) + 1
        shift = f" after mapping them to 0..{classes - 1}" if low > 0 else ""
        fix = (
            f"The labels look like class ids of a {classes}-class problem: use "
            f"Dense({classes}, activation='softmax') with "
            f"loss='sparse_categorical_crossentropy'{shift}. For two classes, map the labels to "
            "0 and 1."
        )
    elif family == "binary":
        fix = (
            "Map the labels to 0 and 1 (e.g. (y == positive_value).astype('float32')), or scale "
            "soft targets into [0, 1]."
        )
    else:
        fix = (
            "One-hot encode class ids (keras.utils.to_categorical) or use "
            "sparse_categorical_crossentropy with integer labels; probabilities must lie in "
            "[0, 1] and sum to 1 per sample."
        )
    return Problem(0.95, evidence, fix, suggested_fix=suggestion)


def _target_range(
    loss: str,
    activation: str | None,
    where: str,
    low: float,
    high: float,
    mean: float | None,
    span: str,
) -> Problem | None:
    fix = (
        "Use a linear output (activation=None) for regression targets, or scale the targets "
        "into the output's range."
    )
    if activation == "relu":
        if high <= 0:
            confidence, severity, share = 0.9, SEVERITY_ERROR, "every target is"
        elif mean is not None and mean < 0:
            confidence, severity, share = 0.7, SEVERITY_ERROR, "most targets are"
        elif low < 0:
            confidence, severity, share = 0.45, SEVERITY_WARNING, "some targets are"
        else:
            return None
        return Problem(
            confidence,
            f"The output layer{where} uses relu, which cannot go below 0, but the first batch's "
            f"{loss} targets range over {span}: {share} negative and out of reach.",
            "Use a linear output (activation=None) for targets that can be negative.",
            severity,
            suggested_fix={"output_activation": "linear"},
        )
    if activation not in OUTPUT_RANGES:
        return None
    bottom, top = OUTPUT_RANGES[activation]
    overshoot = max(bottom - low, high - top, 0.0) / (top - bottom)
    if overshoot <= 0:
        return None
    far = overshoot >= FAR_OUT_OF_RANGE
    return Problem(
        0.9 if far else 0.5,
        f"The output layer{where} uses {activation}, which only produces values in "
        f"({fmt_num(bottom)}, {fmt_num(top)}), but the first batch's {loss} targets range over "
        f"{span}: targets outside that range can never be reached, and the loss stays high.",
        fix,
        SEVERITY_ERROR if far else SEVERITY_WARNING,
        suggested_fix={"output_activation": "linear"},
    )


def finding(ctx: Any) -> Finding | None:
    """`check` on a run's card and pre-flight labels, as a loss_output_mismatch finding."""
    problem = check(ctx.card, ctx.preflight.get("labels"))
    if problem is None:
        return None
    output = stats_output(ctx.card).get("name")
    return Finding(
        code="loss_output_mismatch",
        severity=problem.severity,
        confidence=problem.confidence,
        epochs=[int(e) for e in ctx.epochs],
        layers=[str(output)] if output else [],
        evidence=problem.evidence,
        fix=problem.fix,
        explains=MISMATCH_EXPLAINS,
    )
