"""Which layers' weights changed, from the histograms Keras's own callback logs.

`keras.callbacks.TensorBoard(histogram_freq=N)` writes, in `train/`, every N
epochs, a histogram of each weight (tag `<layer path>/<weight>/histogram`,
plugin `histograms`, a [buckets, 3] tensor of left edge, right edge, count).
A histogram is no weight: it cannot tell how far the weights moved, only that
they moved. So this module answers one question per layer, which it answers
exactly: did any of its weight histograms differ from the previous logged one?
A layer whose histograms never changed kept its weights (frozen, or no
gradient reached it); how much the others changed stays unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PLUGIN_NAME = "histograms"
_SUFFIX = "/histogram"
# A Keras histogram has 30 buckets; anything much larger is not one of them.
_MAX_CELLS = 3 * 1024


@dataclass
class WeightHistograms:
    """One layer: the epochs with a histogram of all its weights, and per epoch
    after the first whether any of them differed from the previous epoch's."""

    epochs: list[int] = field(default_factory=list)
    changed: list[bool] = field(default_factory=list)  # changed[i]: epochs[i] vs epochs[i - 1]

    @property
    def never_changed(self) -> bool:
        return len(self.epochs) >= 2 and not any(self.changed[1:])


def layer_of(tag: str) -> str | None:
    """ "sequential/dense/kernel/histogram" -> "dense" (the layer's own name)."""
    if not tag.endswith(_SUFFIX):
        return None
    parts = tag[: -len(_SUFFIX)].split("/")
    return parts[-2] if len(parts) >= 2 else None


def _array(point) -> np.ndarray | None:
    try:
        values = np.asarray(point.numpy, dtype=np.float64)
    except (TypeError, ValueError, AttributeError):
        return None
    if values.size > _MAX_CELLS:
        return None
    return values


def weight_histograms(points_by_tag: Mapping[str, Sequence]) -> dict[str, WeightHistograms]:
    """Per layer name, what its logged weight histograms show (layers whose
    histograms could not all be read are left out)."""
    by_layer: dict[str, dict[str, dict[int, np.ndarray | None]]] = {}
    for tag, points in points_by_tag.items():
        layer = layer_of(tag)
        if layer is None:
            continue
        arrays = {int(point.step): _array(point) for point in points}
        by_layer.setdefault(layer, {})[tag] = arrays
    result = {}
    for layer, read in by_layer.items():
        tags = {
            tag: {epoch: array for epoch, array in arrays.items() if array is not None}
            for tag, arrays in read.items()
        }
        if any(len(tags[tag]) != len(arrays) for tag, arrays in read.items()):
            continue  # a histogram that could not be read
        epochs = sorted(set.intersection(*(set(arrays) for arrays in tags.values())))
        changed = [False] + [
            any(
                not np.array_equal(arrays[epoch], arrays[previous], equal_nan=True)
                for arrays in tags.values()
            )
            for previous, epoch in zip(epochs, epochs[1:])
        ]
        result[layer] = WeightHistograms(epochs=epochs, changed=changed if epochs else [])
    return result
