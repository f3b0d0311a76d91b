"""A run's status, the one answer the CLI table, the tab's run list (`/runs`)
and the report's `healthy` flag give.

- "error": the run could not be read or analysed (`report` is None or has an
  `error` line);
- "empty": no epoch logged yet;
- "stalled": at least one stalled epoch;
- "findings": no stall, but an error-severity finding;
- "healthy": neither.

A report is `healthy` when it has no stalled epoch and no error finding
(`is_healthy`); an empty run with a stored pre-flight error is "empty" yet not
healthy. Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tb_stagnation.analysis.findings import SEVERITY_ERROR

STATUS_STALLED = "stalled"
STATUS_FINDINGS = "findings"
STATUS_ERROR = "error"
STATUS_HEALTHY = "healthy"
STATUS_EMPTY = "empty"
STATUSES = (STATUS_STALLED, STATUS_FINDINGS, STATUS_ERROR, STATUS_HEALTHY, STATUS_EMPTY)


def _severity(finding: Any) -> Any:
    if isinstance(finding, Mapping):
        return finding.get("severity")
    return getattr(finding, "severity", None)


def has_error_finding(findings: Iterable[Any] | None) -> bool:
    """Whether any finding (report JSON or `Finding`) has the error severity."""
    return any(_severity(finding) == SEVERITY_ERROR for finding in findings or ())


def is_healthy(stalled_epochs: Iterable[Any] | None, findings: Iterable[Any] | None) -> bool:
    """No stalled epoch and no error finding."""
    return not list(stalled_epochs or ()) and not has_error_finding(findings)


def run_status(report: Mapping[str, Any] | None, epochs: int | None = None) -> str:
    """The status of a run from its report (http_api.md); `epochs` overrides the
    report's count (the tab counts the epochs it read, before analysis)."""
    if report is None or report.get("error"):
        return STATUS_ERROR
    count = report.get("epochs") if epochs is None else epochs
    if not count:
        return STATUS_EMPTY
    if report.get("stalled_epochs"):
        return STATUS_STALLED
    if has_error_finding(report.get("findings")):
        return STATUS_FINDINGS
    return STATUS_HEALTHY
