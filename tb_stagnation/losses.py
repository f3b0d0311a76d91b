"""The Keras loss taxonomy: what each loss says about the labels and the task.

One table (`LOSSES`) of every loss `keras.losses` exports (Keras 3.15), with
its aliases, answers for the whole package:

- `canonical_name`: one spelling of a loss, Keras's function name
  ("mse", "MSE", "MeanSquaredError" -> "mean_squared_error");
- `loss_task`: what the loss says the labels are (classification, binary,
  regression, or "unknown": the output activation decides);
- `loss_family`: the losses whose constant-predictor loss `baselines` knows
  (categorical / binary cross-entropy, mean squared error);
- `is_sparse`, `error_scale_of_loss`, `LossInfo.label_range`: the label
  encoding and value range the loss expects.

Read from what Keras computes (keras/src/losses/losses.py): hinge and
squared_hinge take -1/1 labels (0/1 labels are converted), poisson and
mean_squared_logarithmic_error compare non-negative targets,
categorical_generalized_cross_entropy one-hot encodes integer class ids,
kl_divergence compares probability distributions.

Pure names: no TensorFlow, no numpy. The callback's model card, the reader of
Keras's logged config, the analysis and `overfit_check` all ask here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

TASK_CLASSIFICATION = "classification"
TASK_BINARY = "binary"
TASK_REGRESSION = "regression"
# The loss does not say (a distance of distributions or vectors, a custom loss):
# the output activation decides.
TASK_UNKNOWN = "unknown"
TASKS = (TASK_CLASSIFICATION, TASK_BINARY, TASK_REGRESSION, TASK_UNKNOWN)
CLASS_TASKS = (TASK_CLASSIFICATION, TASK_BINARY)

# Losses whose best constant predictor `analysis.baselines` computes.
FAMILY_CATEGORICAL = "categorical"
FAMILY_BINARY = "binary"
FAMILY_MSE = "mse"

# How a regression loss value relates to the typical prediction error.
ERROR_ABSOLUTE = "absolute"  # the error in the targets' own units (MAE-like)
ERROR_SQUARED = "squared"  # its square (MSE)

_PROBABILITY = (0.0, 1.0)
_NON_NEGATIVE = (0.0, math.inf)
_SIGNED_UNIT = (-1.0, 1.0)


@dataclass(frozen=True)
class LossInfo:
    """What one Keras loss expects."""

    name: str  # Keras's function name, the canonical spelling
    task: str  # one of TASKS
    labels: str  # what y_true holds, in words
    # The values y_true may take (None: unbounded); class ids are integers in 0..K-1.
    label_range: tuple[float, float] | None
    family: str | None = None  # a FAMILY_* when the constant-predictor loss is known
    sparse: bool = False  # integer class ids, not one-hot rows
    error_scale: str | None = None  # an ERROR_* for regression losses read as an error
    aliases: tuple[str, ...] = ()  # other names Keras (2 or 3) accepts


LOSSES: tuple[LossInfo, ...] = (
    LossInfo(
        "binary_crossentropy",
        TASK_BINARY,
        "0/1 labels (or probabilities) per output unit",
        _PROBABILITY,
        family=FAMILY_BINARY,
        aliases=("bce",),
    ),
    LossInfo(
        "binary_focal_crossentropy",
        TASK_BINARY,
        "0/1 labels (or probabilities) per output unit",
        _PROBABILITY,
    ),
    LossInfo(
        "categorical_crossentropy",
        TASK_CLASSIFICATION,
        "one-hot rows (or probability rows), one column per class",
        _PROBABILITY,
        family=FAMILY_CATEGORICAL,
    ),
    LossInfo(
        "sparse_categorical_crossentropy",
        TASK_CLASSIFICATION,
        "integer class ids 0..K-1, one per sample",
        _NON_NEGATIVE,
        family=FAMILY_CATEGORICAL,
        sparse=True,
    ),
    LossInfo(
        "categorical_focal_crossentropy",
        TASK_CLASSIFICATION,
        "one-hot rows (or probability rows), one column per class",
        _PROBABILITY,
    ),
    LossInfo(
        "categorical_generalized_cross_entropy",
        TASK_CLASSIFICATION,
        "integer class ids 0..K-1 (Keras one-hot encodes them)",
        _NON_NEGATIVE,
        sparse=True,
    ),
    LossInfo(
        "categorical_hinge",
        TASK_CLASSIFICATION,
        "one-hot rows, one column per class",
        _PROBABILITY,
    ),
    LossInfo("hinge", TASK_BINARY, "-1/1 labels (0/1 labels are converted)", _SIGNED_UNIT),
    LossInfo("squared_hinge", TASK_BINARY, "-1/1 labels (0/1 labels are converted)", _SIGNED_UNIT),
    LossInfo(
        "mean_squared_error",
        TASK_REGRESSION,
        "real-valued targets",
        None,
        family=FAMILY_MSE,
        error_scale=ERROR_SQUARED,
        aliases=("mse",),
    ),
    LossInfo(
        "mean_absolute_error",
        TASK_REGRESSION,
        "real-valued targets",
        None,
        error_scale=ERROR_ABSOLUTE,
        aliases=("mae",),
    ),
    LossInfo(
        "mean_absolute_percentage_error",
        TASK_REGRESSION,
        "real-valued targets away from 0",
        None,
        aliases=("mape",),
    ),
    LossInfo(
        "mean_squared_logarithmic_error",
        TASK_REGRESSION,
        "non-negative targets (Keras clips below 0)",
        _NON_NEGATIVE,
        aliases=("msle",),
    ),
    # Huber(delta=1) and log-cosh grow like |error| for large errors.
    LossInfo(
        "huber",
        TASK_REGRESSION,
        "real-valued targets",
        None,
        error_scale=ERROR_ABSOLUTE,
        aliases=("huber_loss",),
    ),
    LossInfo(
        "log_cosh",
        TASK_REGRESSION,
        "real-valued targets",
        None,
        error_scale=ERROR_ABSOLUTE,
        aliases=("logcosh",),
    ),
    LossInfo("poisson", TASK_REGRESSION, "non-negative counts or rates", _NON_NEGATIVE),
    LossInfo(
        "kl_divergence",
        TASK_UNKNOWN,
        "probability distributions (Keras clips to [eps, 1])",
        _PROBABILITY,
        aliases=("kld", "kullback_leibler_divergence"),
    ),
    LossInfo("cosine_similarity", TASK_UNKNOWN, "vectors (only their direction counts)", None),
    LossInfo("ctc", TASK_UNKNOWN, "label sequences of class ids", None),
    LossInfo("dice", TASK_UNKNOWN, "0/1 masks", _PROBABILITY),
    LossInfo("tversky", TASK_UNKNOWN, "0/1 masks", _PROBABILITY),
    LossInfo("circle", TASK_UNKNOWN, "integer class ids of embeddings", None),
)


def normalize_name(name: Any) -> str:
    """Keras loss/optimizer names in one spelling: "Sparse_Categorical..." -> letters only.

    Class names ("MeanSquaredError"), function names ("mean_squared_error") and
    upper-case aliases ("MSE") all meet here.
    """
    if not isinstance(name, str):
        return ""
    return re.sub(r"[^a-z]", "", name.lower())


_BY_KEY: dict[str, LossInfo] = {}
for _info in LOSSES:
    for _spelling in (_info.name, *_info.aliases):
        _BY_KEY[normalize_name(_spelling)] = _info
del _info, _spelling

# A custom loss's name (a function or class of the user's) is read by its
# words, as people name them: "weighted_categorical_crossentropy", "masked_mse".
_CLASSIFICATION_WORDS = re.compile(r"categorical")
_BINARY_WORDS = re.compile(r"binary|hinge")
_REGRESSION_WORDS = re.compile(r"squared|absolute|huber|log_?cosh|poisson|mse|mae")


def loss_info(name: Any) -> LossInfo | None:
    """The table entry of a Keras loss name, alias or class name; None for another loss."""
    return _BY_KEY.get(normalize_name(name))


def canonical_name(name: Any) -> Any:
    """Keras's function name of a built-in loss ("MSE" -> "mean_squared_error");
    any other name unchanged."""
    info = loss_info(name)
    return info.name if info is not None else name


def loss_task(name: Any) -> str:
    """What the loss says the labels are: a TASK_*.

    Built-in losses answer from the table; a custom loss by the words of its
    name; TASK_UNKNOWN when nothing says (the output activation decides).
    """
    if not isinstance(name, str) or not name:
        return TASK_UNKNOWN
    info = loss_info(name)
    if info is not None:
        return info.task
    lower = name.lower()
    if _CLASSIFICATION_WORDS.search(lower):
        return TASK_CLASSIFICATION
    if _BINARY_WORDS.search(lower):
        return TASK_BINARY
    if _REGRESSION_WORDS.search(lower):
        return TASK_REGRESSION
    return TASK_UNKNOWN


def is_sparse(name: Any) -> bool:
    """Whether a classification loss takes integer class ids (not one-hot rows)."""
    info = loss_info(name)
    if info is not None:
        return info.sparse
    return isinstance(name, str) and "sparse" in name.lower()


def loss_family(name: Any) -> str | None:
    """ "categorical", "binary", "mse" or None: the losses whose constant-predictor
    loss `analysis.baselines` computes."""
    info = loss_info(name)
    return info.family if info is not None else None


def error_scale_of_loss(name: Any, value: float) -> float | None:
    """The typical prediction error a regression loss value implies (MAE: the
    value; MSE: its square root), or None for other losses."""
    info = loss_info(name)
    scale = info.error_scale if info is not None else None
    if scale == ERROR_ABSOLUTE:
        return value
    if scale == ERROR_SQUARED:
        return math.sqrt(value)
    return None


def infer_task(
    activation: str | None, loss: str | None, width: int | None
) -> tuple[str, int | None, bool | None]:
    """(task, num_classes, sparse_labels) of one model output.

    The loss decides first (it says what the labels are), then the output
    activation: a softmax is a classifier even under a regression loss, which
    the diagnosis reports as a mismatch from the card. A regression loss on a
    sigmoid output (an autoencoder of pixels in [0, 1]) compares values, not
    classes. `sparse_labels` is None when the labels must decide.
    """
    task = loss_task(loss)
    if task == TASK_CLASSIFICATION:
        return TASK_CLASSIFICATION, width, is_sparse(loss)
    if task == TASK_BINARY:
        return TASK_BINARY, 2, None
    if activation == "softmax" and width is not None and width >= 2:
        return TASK_CLASSIFICATION, width, None
    if task == TASK_REGRESSION:
        return TASK_REGRESSION, None, None
    if activation == "sigmoid":
        return TASK_BINARY, 2, None
    return TASK_UNKNOWN, None, None


def loss_name_and_logits(loss: Any) -> tuple[str | None, bool]:
    """Canonical Keras name of a loss given as `compile` takes it (a string, a
    loss function or a `keras.losses.Loss`), and its `from_logits`.

    Reads attributes only: no Keras import.
    """
    if loss is None:
        return None, False
    if isinstance(loss, str):
        name = loss
    else:
        function = getattr(loss, "fn", None)
        name = (
            getattr(function, "__name__", None)
            or getattr(loss, "name", None)
            or getattr(loss, "__name__", None)
            or type(loss).__name__
        )
    kwargs = getattr(loss, "fn_kwargs", None) or {}
    from_logits = bool(kwargs.get("from_logits", getattr(loss, "from_logits", False)))
    return canonical_name(str(name)), from_logits
