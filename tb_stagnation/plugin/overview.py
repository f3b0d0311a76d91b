"""The `/runs` answer: one row per run, out of its listing and its analysis."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tb_stagnation.analysis.status import (  # noqa: F401  (importable from here)
    STATUS_EMPTY,
    STATUS_ERROR,
    STATUS_FINDINGS,
    STATUS_HEALTHY,
    STATUS_STALLED,
    has_error_finding,
    run_status,
)
from tb_stagnation.reader.provider_reader import RunListing

# Runs that need a look come first (http_api.md).
_STATUS_RANK = {STATUS_STALLED: 0, STATUS_FINDINGS: 1, STATUS_ERROR: 2}


@dataclass(frozen=True)
class RunAnalysis:
    """What one analysis of a run produced: its report or why there is none."""

    epochs: int
    report: dict[str, Any] | None = None  # JSON-ready `analyze_run` result
    error: str | None = None  # one line, when the analysis raised


def run_row(listing: RunListing, analysis: RunAnalysis) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run": listing.name,
        "source": listing.source,
        "epochs": analysis.epochs,
        "updated": listing.updated,
    }
    if analysis.report is None:
        row.update(status=STATUS_ERROR, healthy=False, stalled_epochs=0, top_finding=None)
        row["error"] = analysis.error
        return row
    report = analysis.report
    stalled = report.get("stalled_epochs") or []
    findings = [item for item in report.get("findings") or [] if isinstance(item, dict)]
    # The analysis ranks findings, most likely cause first.
    top = findings[0].get("code") if findings else None
    row.update(
        # The epochs the tab read decide "empty", as the row shows them.
        status=run_status(report, epochs=analysis.epochs),
        healthy=bool(report.get("healthy", not (stalled or has_error_finding(findings)))),
        stalled_epochs=len(stalled),
        top_finding=top,
    )
    if report.get("error"):
        row["error"] = report["error"]
    return row


def overview(rows: Iterable[dict[str, Any]], now: float) -> dict[str, Any]:
    """The `/runs` object: rows sorted for the run list, and the answer time."""
    ordered = sorted(rows, key=lambda row: (_STATUS_RANK.get(row["status"], 3), row["run"]))
    return {"runs": ordered, "updated": now}
