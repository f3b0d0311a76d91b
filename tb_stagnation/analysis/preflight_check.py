"""What the pre-flight reports: the report's own analysis run on the facts the
callback gathered before training went far (`preflight.run_data`), narrowed to
the codes a pre-flight can judge (`preflight.PREFLIGHT_CODES`).

A module of its own so that `preflight` (which the report reads stored
pre-flight findings with) never imports the report back.
"""

from __future__ import annotations

from typing import Any

from tb_stagnation.analysis.preflight import PREFLIGHT_CODES, run_data
from tb_stagnation.analysis.report import analyze_run


def check(
    card: dict | None,
    facts: dict,
    scalars: dict | None = None,
    class_counts: Any = None,
    step: int = 0,
    keep_explained: bool = False,
) -> list[dict]:
    """The findings (report JSON) the pre-flight reports, most likely first.

    Findings that another one explains (a consequence) are left out unless
    `keep_explained`: the block names causes.
    """
    report = analyze_run(run_data("preflight", card, facts, scalars, class_counts, step))
    return [
        finding
        for finding in report["findings"]
        if finding["code"] in PREFLIGHT_CODES
        and (keep_explained or not finding.get("explained_by"))
    ]
