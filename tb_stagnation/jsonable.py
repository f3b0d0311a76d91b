"""One JSON policy for everything the package answers with or writes.

JSON has no NaN, and the analysis may hand back numpy scalars and arrays,
tuples and non-finite floats. The rule for them lives here, and JSON is
encoded strictly (`allow_nan=False`: a stray NaN is an error here, never
invalid JSON in a browser or a CI job).

Non-finite numbers, by where the JSON goes:

- over HTTP, the tab's answers (`/runs`, `/report`, `/series`, http_api.md):
  the strings "NaN", "Infinity", "-Infinity", as TensorBoard's own
  `json_util` writes them: a NaN loss is evidence the page draws
  (`to_jsonable`, `dumps`).
- everywhere else, the results and records the package returns or writes
  (`analyze(...).to_json()`, `tb-stagnation report --json`,
  `OverfitResult.to_json`, `LRRangeResult.to_json`, the FORMAT.md records):
  `null`. Their numbers are statistics; one that could not be computed is
  absent (`finite_or_none`, `to_report_json`, `dumps_text`).

A report (`analyze_run`) holds no non-finite number in the first place (its
numbers go through `finite_or_none`), so `/report` and the CLI's per-run
object are the same JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

NONFINITE_STRINGS = "strings"  # HTTP answers: "NaN", "Infinity", "-Infinity"
NONFINITE_NULL = "null"  # results and records: null

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def finite_or_none(value: Any) -> float | None:
    """`value` as a float if it is a finite number (or converts to one), else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def to_jsonable(value: Any, nonfinite: str = NONFINITE_STRINGS) -> Any:
    """A copy of `value` made of dict, list, str, int, float, bool and None.

    `nonfinite`: NONFINITE_STRINGS (HTTP answers) or NONFINITE_NULL (results, records).
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isfinite(number):
            return number
        if nonfinite == NONFINITE_NULL:
            return None
        return "NaN" if math.isnan(number) else _NON_FINITE[number]
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item, nonfinite) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return [to_jsonable(item, nonfinite) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, nonfinite) for item in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(item, nonfinite) for item in sorted(value, key=str)]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def to_report_json(value: Any) -> Any:
    """`to_jsonable` for a result or record: non-finite numbers become null."""
    return to_jsonable(value, NONFINITE_NULL)


def dumps(value: Any) -> bytes:
    """Compact ASCII JSON of an already JSON-ready value, for HTTP answers.

    Run and layer names are user data. ASCII-only output, with `<`, `>` and
    `&` escaped too (they can only occur inside strings), means no byte of an
    answer can be read as markup even by a client that sniffs content.
    """
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.translate(_HTML_ESCAPES).encode("ascii")


def dumps_text(value: Any) -> str:
    """Indented JSON of an already JSON-ready value, for a terminal or a file."""
    return json.dumps(value, indent=2, allow_nan=False)


_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
