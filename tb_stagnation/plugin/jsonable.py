"""The tab's JSON: the package's one JSON policy (tb_stagnation/jsonable.py).

Kept as a module of the plugin so its routes and tests import it from here.
"""

from __future__ import annotations

from tb_stagnation.jsonable import (  # noqa: F401
    NONFINITE_NULL,
    NONFINITE_STRINGS,
    dumps,
    to_jsonable,
    to_report_json,
)
