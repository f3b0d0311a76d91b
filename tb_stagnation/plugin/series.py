"""RunData -> the `/series` JSON object (http_api.md): what the charts draw.

A pure function of the run and its report. Everything comes out aligned on one
`epochs` list so the browser never joins. JSON has no NaN, so each value is a
number, `null` (missing, or "does not apply") or one of the strings "NaN",
"Infinity", "-Infinity" (a logged non-finite value: evidence the page shows).

Long runs are cut into buckets of `stride` consecutive epochs so the answer
stays a few MB (5000 epochs x 200 layers would be ~100 MB otherwise). Pooling
keeps what a diagnosis looks for visible: a bucket holding a NaN shows NaN,
norms and shares keep the bucket's maximum, the rest its last value.
`stalled_epochs` is passed through whole, never downsampled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tb_stagnation.analysis.run_data import RunData
from tb_stagnation.plugin.jsonable import to_jsonable
from tb_stagnation.summary import lr_range_record, tags

# Cells (one value of one series at one epoch) in an answer before it gets
# downsampled. ~10 bytes of JSON each: a bound of about 2.5 MB.
MAX_CELLS = 250_000

_LAST = "last"  # keep the bucket's last value: curves whose shape matters
_MAX = "max"  # keep the bucket's largest value: spikes must survive pooling

# How a NaN in the run's arrays reads. The reader fills absent values with NaN
# too, so this is decided per series by what NaN most likely means there.
_EVIDENCE = True  # NaN is a logged non-finite value ("NaN")
_NOT_APPLICABLE = False  # NaN means "not logged / does not apply" (null)

# Series: (group, key in the answer, tag, pooling, NaN reading).
_GLOBAL = (
    ("grad_norm", tags.GRAD_GLOBAL_NORM, _MAX, _EVIDENCE),
    ("weight_norm", tags.WEIGHT_GLOBAL_NORM, _MAX, _EVIDENCE),
    ("update_norm", tags.UPDATE_GLOBAL_NORM, _MAX, _EVIDENCE),
    ("update_ratio", tags.UPDATE_GLOBAL_RATIO, _MAX, _EVIDENCE),
    ("nonfinite_fraction", tags.GRAD_NONFINITE_FRACTION, _MAX, _EVIDENCE),
)
_PREDICTIONS = (
    ("entropy", tags.PRED_ENTROPY, _LAST, _EVIDENCE),
    ("class_entropy", tags.PRED_CLASS_ENTROPY, _LAST, _EVIDENCE),
    ("top_class_share", tags.PRED_TOP_CLASS_SHARE, _LAST, _EVIDENCE),
    # FORMAT.md: absent at a fit's first epoch, which the reader fills with NaN.
    ("changed_share", tags.PRED_CHANGED_SHARE, _LAST, _NOT_APPLICABLE),
)
_INPUTS = (
    ("mean", tags.INPUT_MEAN, _LAST, _EVIDENCE),
    ("std", tags.INPUT_STD, _LAST, _EVIDENCE),
    ("max_abs", tags.INPUT_MAX_ABS, _MAX, _EVIDENCE),
)
_BATCHES = (
    ("distinct", tags.BATCHES_DISTINCT, _LAST, _NOT_APPLICABLE),
    ("seen", tags.BATCHES_SEEN, _LAST, _NOT_APPLICABLE),
)
# FORMAT.md: in `layers/*` vectors NaN means "does not apply to this layer"
# for the unit shares; a NaN norm is a real non-finite gradient or weight.
_LAYERS = (
    ("grad_norm", tags.LAYER_GRAD_NORM, _MAX, _EVIDENCE),
    ("update_ratio", tags.LAYER_UPDATE_RATIO, _MAX, _EVIDENCE),
    ("weight_norm", tags.LAYER_WEIGHT_NORM, _MAX, _EVIDENCE),
    ("dead_fraction", tags.LAYER_DEAD_FRACTION, _MAX, _NOT_APPLICABLE),
    ("saturated_fraction", tags.LAYER_SATURATED_FRACTION, _MAX, _NOT_APPLICABLE),
)


def build_series(run: RunData, report: Mapping[str, Any], max_cells: int = MAX_CELLS) -> dict:
    """The `/series` object of `run`; `report` is its `analyze_run` result."""
    num_epochs = run.num_epochs
    layer_count = len(run.layer_names) if _has_any(run.layer_stats, _LAYERS) else 0
    stride = choose_stride(num_epochs, _per_epoch_cells(run, layer_count), max_cells)
    buckets = _Buckets(num_epochs, stride)
    return {
        "run": run.name,
        "source": run.source,
        "epochs": buckets.epochs(run.epochs),
        "updated": run.updated,
        "metrics": _metrics(run, buckets),
        "learning_rate": _scalar(run, tags.LEARNING_RATE, _LAST, _EVIDENCE, buckets),
        "baselines": report.get("baselines"),
        "stalled_epochs": report.get("stalled_epochs", []),
        "global": _group(run, _GLOBAL, buckets),
        "predictions": _group(run, _PREDICTIONS, buckets),
        "inputs": _group(run, _INPUTS, buckets),
        "batches": _group(run, _BATCHES, buckets),
        "layers": _layers(run, buckets) if layer_count else None,
        "downsampled": {"stride": stride, "original_epochs": num_epochs} if stride > 1 else None,
        # The LR range test's record as stored: its own curve (one point per
        # sweep step, not per epoch), so never downsampled.
        "lr_range": _lr_range(run),
    }


def _lr_range(run: RunData) -> dict | None:
    record = getattr(run, "lr_range", None)
    if not isinstance(record, dict):
        return None
    # The documented fields (all a record of this version holds; a newer
    # one's extra fields are not part of the API). The reader admits no NaN;
    # a RunData made by hand gets the API's strings.
    return to_jsonable({key: record.get(key) for key in lr_range_record.FIELDS})


def choose_stride(num_epochs: int, cells_per_epoch: int, max_cells: int = MAX_CELLS) -> int:
    """The smallest stride that keeps the answer under `max_cells` cells."""
    if num_epochs == 0 or cells_per_epoch == 0:
        return 1
    max_buckets = max(1, max_cells // cells_per_epoch)
    return max(1, math.ceil(num_epochs / max_buckets))


def _per_epoch_cells(run: RunData, layer_count: int) -> int:
    scalar_count = sum(1 for tag in run.scalars if tag.startswith(tags.LOGS_PREFIX))
    scalar_count += sum(
        1
        for table in (_GLOBAL, _PREDICTIONS, _INPUTS, _BATCHES)
        for _, tag, _, _ in table
        if tag in run.scalars
    )
    layer_series = sum(1 for _, tag, _, _ in _LAYERS if tag in run.layer_stats)
    return 2 + scalar_count + layer_series * layer_count  # 2: epochs, learning rate


def _has_any(present: Mapping[str, Any], table: tuple) -> bool:
    return any(tag in present for _, tag, _, _ in table)


def _metrics(run: RunData, buckets: _Buckets) -> dict[str, list | None]:
    keys = [tag[len(tags.LOGS_PREFIX) :] for tag in run.scalars if tag.startswith(tags.LOGS_PREFIX)]

    # loss, val_loss, accuracy, val_accuracy, ...: each metric beside its val_.
    def order(key: str) -> tuple:
        base = key[4:] if key.startswith("val_") else key
        return (base != "loss", base, key != base)

    return {
        key: _scalar(run, tags.logs_tag(key), _LAST, _EVIDENCE, buckets)
        for key in sorted(keys, key=order)
    }


def _group(run: RunData, table: tuple, buckets: _Buckets) -> dict[str, list | None] | None:
    if not _has_any(run.scalars, table):
        return None
    return {
        key: _scalar(run, tag, pooling, nan_is_evidence, buckets)
        for key, tag, pooling, nan_is_evidence in table
    }


def _scalar(
    run: RunData, tag: str, pooling: str, nan_is_evidence: bool, buckets: _Buckets
) -> list | None:
    values = run.scalars.get(tag)
    if values is None:
        return None
    present = run.scalar_present.get(tag)
    return buckets.pool(values, pooling, nan_is_evidence, present).tolist()


def _layers(run: RunData, buckets: _Buckets) -> dict[str, Any]:
    names = list(run.layer_names)
    card_layers = (run.model_card or {}).get("layers")
    if not isinstance(card_layers, list) or len(card_layers) != len(names):
        card_layers = [{}] * len(names)  # the reader fell back to positional names
    answer: dict[str, Any] = {
        "names": names,
        "types": [_card_text(layer, "type") for layer in card_layers],
        "activations": [_card_text(layer, "activation") for layer in card_layers],
    }
    for key, tag, pooling, nan_is_evidence in _LAYERS:
        matrix = run.layer_stats.get(tag)
        if matrix is None:
            answer[key] = None
            continue
        matrix = _fit_columns(matrix, len(names))
        answer[key] = buckets.pool(matrix, pooling, nan_is_evidence).T.tolist()
    return answer


def _card_text(layer: Any, field: str) -> str | None:
    value = layer.get(field) if isinstance(layer, dict) else None
    return None if value is None else str(value)


def _fit_columns(matrix: np.ndarray, width: int) -> np.ndarray:
    """Pad or cut an [E, L'] matrix to L columns (older epochs may have fewer layers)."""
    if matrix.shape[1] == width:
        return matrix
    fitted = np.full((matrix.shape[0], width), np.nan)
    keep = min(width, matrix.shape[1])
    fitted[:, :keep] = matrix[:, :keep]
    return fitted


# -- pooling ------------------------------------------------------------------

# Marker codes pooled alongside the values, so that a NaN anywhere in a bucket
# wins over an infinity, which wins over a number.
_FINITE, _NEG_INF, _POS_INF, _NAN, _MISSING = 0, 1, 2, 3, -1


class _Buckets:
    """Consecutive groups of `stride` epochs; the last one may be shorter."""

    def __init__(self, num_epochs: int, stride: int) -> None:
        self.stride = stride
        self._starts = np.arange(0, num_epochs, stride)
        self._ends = np.minimum(self._starts + stride, num_epochs) - 1

    def epochs(self, epochs: np.ndarray) -> list[int]:
        # A bucket is labelled with its newest epoch: the state it ends in.
        return epochs[self._ends].astype(np.int64).tolist()

    def pool(
        self,
        values: np.ndarray,
        pooling: str,
        nan_is_evidence: bool,
        present: np.ndarray | None = None,
    ) -> np.ndarray:
        """[E] or [E, L] floats -> [B] or [B, L] JSON-ready objects.

        `present` (bool [E]), when the reader knows it, marks the epochs that
        logged a value; the others are missing whatever `nan_is_evidence` says.
        """
        values = np.asarray(values, dtype=np.float64)
        codes = _codes(values, nan_is_evidence)
        if present is not None and present.shape == codes.shape:
            codes[~present] = _MISSING
        if self.stride == 1 or len(self._starts) == 0:
            return _decode(values, codes)
        # The most alarming code of a bucket wins; it is _MISSING only when
        # nothing in the bucket was logged.
        worst = np.maximum.reduceat(codes, self._starts, axis=0)
        finite = np.where(codes == _FINITE, values, np.nan)
        if pooling == _MAX:
            with np.errstate(all="ignore"):
                pooled = np.fmax.reduceat(finite, self._starts, axis=0)
        else:
            pooled = _last_present(finite, self._starts)
        return _decode(pooled, worst)


def _codes(values: np.ndarray, nan_is_evidence: bool) -> np.ndarray:
    codes = np.full(values.shape, _FINITE, dtype=np.int8)
    codes[np.isnan(values)] = _NAN if nan_is_evidence else _MISSING
    codes[values == np.inf] = _POS_INF
    codes[values == -np.inf] = _NEG_INF
    return codes


def _last_present(finite: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per bucket, the last value that is not NaN (NaN if none)."""
    index = np.arange(finite.shape[0]).reshape((-1,) + (1,) * (finite.ndim - 1))
    present_index = np.where(np.isnan(finite), -1, index)
    last = np.maximum.reduceat(present_index, starts, axis=0)
    picked = np.take_along_axis(finite, np.maximum(last, 0), axis=0)
    return np.where(last >= 0, picked, np.nan)


_JSON_OF_CODE = {_NAN: "NaN", _POS_INF: "Infinity", _NEG_INF: "-Infinity", _MISSING: None}


def _decode(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Values as an object array: floats, None, or the non-finite strings."""
    out = _short_floats(np.where(codes == _FINITE, values, 0.0)).astype(object)
    for code, json_value in _JSON_OF_CODE.items():
        out[codes == code] = json_value
    return out


def _short_floats(values: np.ndarray, digits: int = 7) -> np.ndarray:
    """Round to `digits` significant digits, so JSON prints 0.1234567 and not
    0.12345670163631439 (float32 data widened to float64): half the bytes."""
    magnitude = np.floor(np.log10(np.abs(np.where(values == 0, 1.0, values))))
    shift = (digits - 1 - magnitude).astype(np.int64)
    # Powers of ten up to 1e22 are exact doubles, so dividing by one is
    # correctly rounded and Python prints the short decimal. Values needing a
    # larger shift (below 1e-16 or above 1e28) are kept as they are.
    exact = np.abs(shift) <= 22
    scale = np.power(10.0, np.abs(np.clip(shift, -22, 22)))
    with np.errstate(all="ignore"):
        rounded = np.where(
            shift >= 0, np.rint(values * scale) / scale, np.rint(values / scale) * scale
        )
    return np.where(exact & np.isfinite(rounded), rounded, values)
