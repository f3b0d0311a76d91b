"""Plain JSON out of analysis results, with the API's non-finite convention.

The analysis may hand back numpy scalars and arrays, tuples and non-finite
floats; JSON has none of these. Non-finite floats become the strings "NaN",
"Infinity", "-Infinity" (http_api.md), as TensorBoard's own `json_util` does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def to_jsonable(value: Any) -> Any:
    """A copy of `value` made of dict, list, str, int, float, bool and None."""
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
        return "NaN" if math.isnan(number) else _NON_FINITE[number]
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return [to_jsonable(item) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(item) for item in sorted(value, key=str)]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def dumps(value: Any) -> bytes:
    """Compact ASCII JSON of an already JSON-ready value.

    Run and layer names are user data. ASCII-only output, with `<`, `>` and
    `&` escaped too (they can only occur inside strings), means no byte of an
    answer can be read as markup even by a client that sniffs content.
    `allow_nan=False` turns a stray NaN into an error here rather than invalid
    JSON in the browser.
    """
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.translate(_HTML_ESCAPES).encode("ascii")


_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
