"""Tag names of the summary format, version 1 (see FORMAT.md).

Tags are plain ASCII that we choose; data strings a user controls (layer names,
metric names) never become a tag by themselves except for `logs/<key>`, where
the key is what Keras put in `logs` and is kept verbatim so the user recognises
it. Layer names travel inside the model card, aligned by index with the
per-layer tensors.
"""

from __future__ import annotations

# The folder inside the user's `log_dir` that StagnationCallback writes to.
# Keras's TensorBoard callback owns `train/` and `validation/`; TensorBoard's
# directory watcher wants one active event file per folder, so we keep out.
RUN_SUBDIR = "stagnation"

# --- per-epoch scalars: rank-0 float32, DATA_CLASS_SCALAR ------------------
LOGS_PREFIX = "logs/"  # + every key Keras passes in `logs` ("loss", "val_accuracy", ...)
LEARNING_RATE = "optimizer/learning_rate"

GRAD_GLOBAL_NORM = "gradients/global_norm"
GRAD_NONFINITE_FRACTION = "gradients/nonfinite_fraction"
GRAD_STEPS = "gradients/steps"  # training steps whose gradients were measured

WEIGHT_GLOBAL_NORM = "weights/global_norm"
UPDATE_GLOBAL_NORM = "updates/global_norm"
UPDATE_GLOBAL_RATIO = "updates/global_ratio"

PRED_ENTROPY = "predictions/entropy"  # mean per-sample entropy / log K, in [0, 1]
PRED_CLASS_ENTROPY = "predictions/class_entropy"  # entropy of predicted-class histogram / log K
PRED_TOP_CLASS_SHARE = "predictions/top_class_share"
PRED_CHANGED_SHARE = "predictions/changed_share"  # on the fixed probe, vs previous epoch

INPUT_MEAN = "inputs/mean"
INPUT_STD = "inputs/std"
INPUT_MAX_ABS = "inputs/max_abs"

BATCHES_DISTINCT = "batches/distinct"
BATCHES_SEEN = "batches/seen"

LABEL_MEAN = "labels/mean"  # regression only
LABEL_VARIANCE = "labels/variance"  # regression only: the loss of the best constant (MSE)

# --- per-epoch tensors: float32, DATA_CLASS_TENSOR --------------------------
# Rank 1, one entry per layer in model-card order; NaN where a statistic does
# not apply to a layer (dead units of a softmax layer, say).
LAYER_PREFIX = "layers/"
LAYER_GRAD_NORM = "layers/grad_norm"
LAYER_WEIGHT_NORM = "layers/weight_norm"
LAYER_UPDATE_NORM = "layers/update_norm"
LAYER_UPDATE_RATIO = "layers/update_ratio"
LAYER_NONFINITE_FRACTION = "layers/nonfinite_fraction"
LAYER_DEAD_FRACTION = "layers/dead_fraction"
LAYER_SATURATED_FRACTION = "layers/saturated_fraction"

LAYER_STATS = (
    LAYER_GRAD_NORM,
    LAYER_WEIGHT_NORM,
    LAYER_UPDATE_NORM,
    LAYER_UPDATE_RATIO,
    LAYER_NONFINITE_FRACTION,
    LAYER_DEAD_FRACTION,
    LAYER_SATURATED_FRACTION,
)

# Rank 1, one count per class, over every label the epoch's training steps saw.
LABEL_CLASS_COUNTS = "labels/class_counts"

# --- once per `fit`: rank-0 string tensor holding JSON, DATA_CLASS_TENSOR ---
MODEL_CARD = "model_card"
# What the pre-flight checked before training (the first batch's facts, its
# findings, the tiny-subset test): JSON like the model card, see FORMAT.md.
PREFLIGHT = "preflight"
# A learning-rate range test's curve and verdict (`lr_range_test(log_dir=...)`,
# or the callback's `lr_range_test=True`): JSON like the model card, see
# FORMAT.md. Its step is the epoch after which the test ran (0 before training).
LR_RANGE = "lr_range"

# --- optional finer cadence (update_freq=N): step is the global batch index -
BATCH_PREFIX = "batch/"
BATCH_LOSS = "batch/loss"
BATCH_GRAD_GLOBAL_NORM = "batch/grad_global_norm"

# --- what keras.callbacks.TensorBoard writes (read-only for us) ------------
KERAS_TRAIN_SUBDIR = "train"
KERAS_VALIDATION_SUBDIR = "validation"
KERAS_EPOCH_PREFIX = "epoch_"  # epoch_loss, epoch_accuracy, epoch_learning_rate
KERAS_LEARNING_RATE = "epoch_learning_rate"


def logs_tag(key: str) -> str:
    """The tag of a Keras `logs` entry such as "val_loss"."""
    return LOGS_PREFIX + key
