"""`RunData`: one logical run, as the analysis sees it.

The analysis's input contract, so it lives with the analysis: the reader fills
it from TensorBoard's data provider, and the analysis reads only this, so it
never touches TensorBoard and is testable on plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SOURCE_CALLBACK = "callback"
SOURCE_KERAS = "keras"
# Scalars written by another tool (a custom loop's tf.summary, PyTorch's
# SummaryWriter, Lightning): only the curves found by name (reader/other_tools.py).
SOURCE_SCALARS = "scalars"


@dataclass
class RunData:
    """Everything known about one logical run, aligned on `epochs`.

    Attributes:
        name: the logical run name (the `log_dir` relative to the logdir).
        source: "callback" when StagnationCallback data exists, "keras" for
            keras.callbacks.TensorBoard's logs, "scalars" for another tool's.
        epochs: sorted epoch steps, int64, shape [E].
        scalars: tag (from `summary.tags`, e.g. "logs/loss") -> float64 [E],
            NaN where that epoch has no value. Plain-Keras runs are mapped to the
            same tags (`epoch_loss` in train/ -> "logs/loss", in validation/ ->
            "logs/val_loss", `epoch_learning_rate` -> "optimizer/learning_rate").
        scalar_present: tag -> bool [E], True where that epoch logged a value
            (so a logged NaN, which is evidence, differs from an epoch that
            logged nothing, e.g. `val_loss` under `validation_freq`).
        layer_names: layers in model-card order (input to output).
        layer_stats: `layers/*` tag -> float64 [E, L], NaN where missing.
        class_counts: float64 [E, K] label histogram per epoch, or None.
        model_card: the newest model card (FORMAT.md), or None.
        preflight: the newest pre-flight record (FORMAT.md), or None.
        lr_range: the newest LR range test record (FORMAT.md `lr_range`: the
            test's verdict, suggestion and curve, and the `epoch` after which
            it ran, null before training), as stored; None when none was
            logged or it was unreadable (a note then says so).
        updated: wall time (s) of the newest value in the run, 0 if none.
        notes: things a reader of the report should know (skipped data, newer
            format versions, truncated files).
        error: why the run could not be read at all (it is then empty), or None.
        weight_histograms: plain-Keras runs logged with histogram_freq > 0:
            layer name -> `keras_histograms.WeightHistograms`, whether its
            weight histograms changed between the logged epochs.
    """

    name: str
    source: str
    epochs: np.ndarray
    scalars: dict[str, np.ndarray] = field(default_factory=dict)
    scalar_present: dict[str, np.ndarray] = field(default_factory=dict)
    layer_names: list[str] = field(default_factory=list)
    layer_stats: dict[str, np.ndarray] = field(default_factory=dict)
    class_counts: np.ndarray | None = None
    model_card: dict[str, Any] | None = None
    preflight: dict[str, Any] | None = None
    lr_range: dict[str, Any] | None = None
    updated: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    weight_histograms: dict[str, Any] = field(default_factory=dict)

    @property
    def num_epochs(self) -> int:
        return int(self.epochs.shape[0])

    def scalar(self, tag: str) -> np.ndarray | None:
        """The series of `tag`, or None when the run never logged it."""
        return self.scalars.get(tag)

    def layer_stat(self, tag: str) -> np.ndarray | None:
        """The [E, L] matrix of a `layers/*` tag, or None when never logged."""
        return self.layer_stats.get(tag)
