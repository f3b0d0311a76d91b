"""Small numeric and formatting helpers shared by the stall detector and the detectors.

Everything here tolerates NaN/Inf and empty input: run data is user data and a
NaN loss is evidence, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

# The JSON policy's rule for one number, importable from here as before.
from tb_stagnation.jsonable import finite_or_none  # noqa: F401


def finite_json_number(value) -> float | None:
    """A finite int or float out of parsed JSON, else None (bools and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def as_float_array(values) -> np.ndarray:
    """A float64 copy of `values` (None -> empty)."""
    if values is None:
        return np.zeros(0, dtype=np.float64)
    return np.array(values, dtype=np.float64, copy=True)


def median(values) -> float | None:
    """Median of the finite entries, or None when there is none."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return None
    return float(np.median(array))


def column_medians(matrix: np.ndarray, rows: np.ndarray | None = None) -> list[float | None]:
    """Median of the finite entries of each column (None for a column with none).

    One vectorised pass instead of a median per layer: runs have 30+ layers.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        return []
    if rows is not None:
        matrix = matrix[np.asarray(rows, dtype=bool)]
    if matrix.shape[0] == 0:
        return [None] * matrix.shape[1]
    finite = np.isfinite(matrix)
    counts = finite.sum(axis=0)
    # Sorting puts NaN last; non-finite entries become NaN first. (np.nanmedian
    # along an axis goes through masked arrays and is ~10x slower.)
    ordered = np.sort(np.where(finite, matrix, np.nan), axis=0)
    columns = np.arange(matrix.shape[1])
    low = np.maximum(counts - 1, 0) // 2
    high = counts // 2
    high = np.minimum(high, matrix.shape[0] - 1)
    values = (ordered[low, columns] + ordered[high, columns]) / 2
    return [float(v) if c else None for v, c in zip(values, counts)]


def finite_max(values) -> float | None:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    array = array[np.isfinite(array)]
    return float(array.max()) if array.size else None


def finite_min(values) -> float | None:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    array = array[np.isfinite(array)]
    return float(array.min()) if array.size else None


def segments(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of True as inclusive (start, end) index pairs."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    if mask.size == 0 or not mask.any():
        return []
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(edges[i]), int(edges[i + 1] - 1)) for i in range(0, len(edges), 2)]


def json_number(value, digits: int = 6) -> float | None:
    """A JSON-safe number: None for NaN/Inf/None, else rounded to `digits` significant."""
    number = finite_or_none(value)
    if number is None:
        return None
    if number == 0:
        return 0.0
    return float(f"{number:.{digits}g}")


def fmt_num(value, digits: int = 3) -> str:
    """A number as a person reads it in evidence text: 0.693, 3e-9, 2.1e10, NaN."""
    if value is None:
        return "n/a"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Inf" if number > 0 else "-Inf"
    if number == 0:
        return "0"
    magnitude = abs(number)
    if 1e-3 <= magnitude < 1e5:
        exponent = math.floor(math.log10(magnitude))
        text = f"{number:.{max(0, digits - 1 - exponent)}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    mantissa, power = f"{number:.{max(digits - 1, 0)}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(power)}"


def fmt_pct(fraction) -> str:
    """A share as a percentage: 100%, 37%, 0.4%, <0.01%."""
    if fraction is None or not math.isfinite(float(fraction)):
        return "n/a"
    percent = 100.0 * float(fraction)
    if percent == 0:
        return "0%"
    if abs(percent) >= 10:
        return f"{percent:.0f}%"
    if abs(percent) >= 0.1:
        return f"{percent:.1f}%"
    if abs(percent) >= 0.01:
        return f"{percent:.2f}%"
    return "<0.01%"


def fmt_epochs(epochs: Iterable[int]) -> str:
    """Epoch numbers compactly: [3, 4, 5, 9] -> "3-5, 9"; [] -> "-"."""
    values = sorted({int(e) for e in epochs})
    if not values:
        return "-"
    parts = []
    start = prev = values[0]
    for value in values[1:]:
        if value == prev + 1:
            prev = value
            continue
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
        start = prev = value
    parts.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(parts)


def fmt_names(names: Sequence[str], limit: int = 4) -> str:
    """Layer names for evidence text, shortened after `limit`."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
