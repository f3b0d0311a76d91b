"""Findings and reports as text: the one place a diagnosis becomes words.

Used by `tb-stagnation report` (the table and each unhealthy run's findings),
the pre-flight warning printed after the first batch, and the message printed
when `stop_on_stall` ends training. All three show a finding the same way:
its code, severity and confidence, what it is likely a consequence of, the
evidence and the fix (`finding_lines`). The report lays them out as labelled
lines under a numbered head (`evidence:` / `fix:`); inside `fit` they read as
a sentence and a `Fix:` line (`compact=True`), like Keras's own messages.

Reads report JSON (http_api.md) only; no numpy work, no TensorFlow.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from tb_stagnation.analysis.findings import SEVERITY_ERROR
from tb_stagnation.analysis.series import fmt_epochs
from tb_stagnation.analysis.status import (
    STATUS_EMPTY,
    STATUS_ERROR,
    STATUS_FINDINGS,
    STATUS_HEALTHY,
    STATUS_STALLED,
    run_status,
)
from tb_stagnation.names import printable, shorten

# Console width of the messages printed inside `fit` (Keras prints unwrapped).
CONSOLE_WIDTH = 100


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with "..."."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wrap(text: str, width: int, indent: int) -> str:
    """`text` as a paragraph indented by `indent`, continuation lines 2 further."""
    pad = " " * indent
    return textwrap.fill(
        text,
        width=max(width, indent + 20),
        initial_indent=pad,
        subsequent_indent=pad + "  ",
        break_long_words=True,
        break_on_hyphens=False,
    )


def finding_lines(
    finding: Mapping[str, Any],
    width: int = CONSOLE_WIDTH,
    *,
    number: int | None = None,
    lead: str = "",
    compact: bool = False,
) -> list[str]:
    """One finding (report JSON) as text lines.

    The report layout (`compact=False`): a head line "1. code  severity
    confidence  epochs  (likely a consequence of X)", then `layers:`,
    `evidence:` and `fix:` lines. The console layout (`compact=True`), for
    messages inside `fit`: "<lead>code (warning, likely a consequence of X):
    evidence" (an error unmarked), then "Fix: ...".
    """
    code = finding.get("code", "")
    severity = finding.get("severity", "")
    confidence = float(finding.get("confidence") or 0.0)
    cause = finding.get("explained_by")
    if compact:
        # Inside fit an error is the default and goes unmarked; the numbers
        # (confidence, epochs) are the report's.
        notes = [] if severity == SEVERITY_ERROR else [str(severity)]
        if cause:
            notes.append(f"likely a consequence of {cause}")
        tag = f" ({', '.join(notes)})" if notes else ""
        lines = textwrap.wrap(
            printable(f"{lead}{code}{tag}: {finding.get('evidence', '')}"),
            width,
            initial_indent="  ",
            subsequent_indent="    ",
        )
        lines.extend(
            textwrap.wrap(
                printable(f"Fix: {finding.get('fix', '')}"),
                width,
                initial_indent="    ",
                subsequent_indent="    ",
            )
        )
        return lines
    head = f"{number}. " if number is not None else ""
    lines = [
        f"  {head}{lead}{code}  {severity}  confidence {confidence:.2f}  "
        f"epochs {clip(fmt_epochs(finding.get('epochs', [])), 40)}"
        + (f"  (likely a consequence of {cause})" if cause else "")
    ]
    layers = finding.get("layers") or []
    if layers:
        lines.append(wrap("layers: " + ", ".join(printable(n) for n in layers), width, 5))
    lines.append(wrap("evidence: " + printable(finding.get("evidence", "")), width, 5))
    lines.append(wrap("fix: " + printable(finding.get("fix", "")), width, 5))
    return lines


# --- the pre-flight warning and the stop-on-stall message (inside fit) ---------


def preflight_block(
    findings: Sequence[Mapping[str, Any]], facts: Mapping[str, Any], where: str | None = None
) -> str:
    """The pre-flight warning: what was checked, then each finding."""
    errors = sum(1 for f in findings if f.get("severity") == SEVERITY_ERROR)
    count = len(findings)
    if errors:
        verb = "stop" if count != 1 else "stops"
        head = f"{count} problem{'s' if count != 1 else ''} that {verb} this model from learning"
    else:
        head = f"{count} warning{'s' if count != 1 else ''} about this training setup"
    samples = facts.get("samples")
    seen = (
        f"the model, its loss and the first {int(samples)} training samples"
        if isinstance(samples, (int, float)) and samples
        else "the model, its loss and the labels' shape"
    )
    lines = [f"tb_stagnation pre-flight: {head} (checked {seen}):"]
    for finding in findings:
        lines.extend(finding_lines(finding, compact=True))
        # The pre-flight's 20-sample test of the fix ("Checked: with ... this
        # model fits 20 samples in 40 steps"), or a hint that it could run one.
        note = finding.get("checked") or finding.get("check_hint")
        if isinstance(note, str) and note:
            lines.extend(
                textwrap.wrap(
                    printable(note),
                    CONSOLE_WIDTH,
                    initial_indent="    ",
                    subsequent_indent="    ",
                )
            )
    if where:
        lines.append(f"  (logged for the Stagnation tab and `tb-stagnation report` in {where})")
    return "\n".join(lines)


def stall_stop_lines(report: Mapping[str, Any], stopped_epoch: Any, patience: int) -> list[str]:
    """The message printed when stop_on_stall ends training: the stall and its
    most likely cause."""
    stalled = report.get("stalled_epochs") or []
    windows = report.get("stall_windows") or []
    kind = f" ({windows[-1]['kind']})" if windows else ""
    lines = [
        f"StagnationCallback: stopping training after epoch {stopped_epoch} "
        f"(stop_on_stall=True, patience={patience}): the loss stalled in epochs "
        f"{fmt_epochs(stalled)}{kind}."
    ]
    findings = report.get("findings") or []
    if findings:
        lines.extend(finding_lines(findings[0], lead="Most likely ", compact=True))
    return lines


# --- the CLI report ---------------------------------------------------------------


def summary_line(report: Mapping[str, Any]) -> str:
    """One sentence about a report (notebooks)."""
    status = run_status(report)
    if status == STATUS_ERROR:
        return f"could not be read: {report.get('error')}"
    if status == STATUS_EMPTY:
        return "no epochs yet"
    findings = report.get("findings") or []
    if status == STATUS_STALLED:
        top = findings[0]["code"] if findings else "no cause identified"
        epochs = fmt_epochs(report.get("stalled_epochs") or [])
        return f"stalled in epochs {epochs}; most likely {top}"
    if status == STATUS_FINDINGS:
        errors = [f for f in findings if f.get("severity") == SEVERITY_ERROR]
        return f"no stall, but {errors[0]['code']}"
    return "healthy"


def render_text(reports: Sequence[Mapping[str, Any]], width: int = 100) -> str:
    """The CLI report: the table, then the findings of every unhealthy run."""
    headers = ("RUN", "SOURCE", "EPOCHS", "STATUS", "STALLED", "TOP FINDING")
    statuses = [run_status(report) for report in reports]
    rows = []
    for report, status in zip(reports, statuses):
        findings = report.get("findings", [])
        top = "-"
        if findings and status != STATUS_HEALTHY:
            top = f"{findings[0]['code']} ({findings[0]['confidence']:.2f})"
        rows.append(
            (
                clip(printable(report.get("run", "")), 40),
                str(report.get("source", "")),
                str(report.get("epochs", 0)),
                status,
                clip(fmt_epochs(report.get("stalled_epochs", [])), 24),
                top,
            )
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    right = {2}  # EPOCHS is a number

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers)]
    out.extend(line(row) for row in rows)

    for report, status in zip(reports, statuses):
        if status in (STATUS_HEALTHY, STATUS_EMPTY):
            continue
        out.append("")
        name = printable(shorten(report.get("run", ""), 100))
        if status == STATUS_ERROR:
            out.append(f"{name}: {printable(report['error'])}")
            continue
        stalled = report.get("stalled_epochs", [])
        windows = report.get("stall_windows", [])
        if stalled:
            kinds = sorted({w.get("kind", "") for w in windows} - {""})
            kind_text = f" ({', '.join(kinds)})" if kinds else ""
            out.append(f"{name}: stalled in epochs {fmt_epochs(stalled)}{kind_text}")
        else:
            out.append(f"{name}: no stalled epoch, but an error finding")
        baselines = report.get("baselines") or {}
        if baselines.get("constant_loss") is not None:
            majority = baselines.get("majority_rate")
            majority_text = f", majority-class rate {majority:.3f}" if majority is not None else ""
            out.append(
                f"  baselines: constant-predictor loss {baselines['constant_loss']:.4g}"
                f"{majority_text}"
            )
        findings = report.get("findings", [])
        if not findings:
            out.append("  no cause identified")
        for number, finding in enumerate(findings, 1):
            out.extend(finding_lines(finding, width, number=number))
        for note in report.get("notes", []):
            out.append(wrap("note: " + printable(note), width, 2))

    counts = {status: statuses.count(status) for status in set(statuses)}
    summary = (
        f"{len(reports)} run{'s' if len(reports) != 1 else ''}: "
        f"{counts.get(STATUS_HEALTHY, 0)} healthy"
    )
    for status, words in (
        (STATUS_STALLED, "stalled"),
        (STATUS_FINDINGS, "with error findings"),
        (STATUS_EMPTY, "empty"),
        (STATUS_ERROR, "unreadable"),
    ):
        if counts.get(status):
            summary += f", {counts[status]} {words}"
    out.append("")
    out.append(summary + ".")
    return "\n".join(out) + "\n"
