"""`tb-stagnation`: the diagnosis in a terminal or a CI job.

    tb-stagnation report LOGDIR [--run REGEX] [--json] [--timeout SECONDS]
    tb-stagnation --version

Exit status: 0 when every run is healthy, 1 when any run has a stalled epoch
or an error finding, 2 on a usage error or an unreadable LOGDIR (one line on
stderr, no traceback), 141 when the reader of stdout went away (`| head`).
Start-up stays light: TensorFlow is never imported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import textwrap
import time
from typing import Any, TextIO

from tb_stagnation.names import shorten

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
# 128 + SIGPIPE, what a shell reports for `cat big | head -1`: the output was
# cut short on purpose, which exit 2 ("usage error") would misreport.
EXIT_BROKEN_PIPE = 141

# How long TensorBoard's data server may take to load LOGDIR. The Rust server
# reads ~1M events/s, so a local logdir loads in seconds; what takes minutes
# is a remote one that never answers.
DEFAULT_TIMEOUT_S = 60.0
# A load this slow gets a line on stderr saying what it waits for, then one
# every PROGRESS_EVERY_S; quick loads stay silent.
PROGRESS_AFTER_S = 2.0
PROGRESS_EVERY_S = 10.0

_PROG = "tb-stagnation"
# Set to see the traceback of an unexpected internal error.
_DEBUG_ENV = "TB_STAGNATION_DEBUG"


class _UsageError(Exception):
    """A problem the user fixes on the command line; one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit(2) itself
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    from tb_stagnation import __version__

    parser = _Parser(
        prog=_PROG,
        description="Why does my Keras model's loss stay the same every epoch?",
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    report = commands.add_parser(
        "report",
        help="diagnose the runs of a logdir",
        description=(
            "Flag the epochs where learning stalled and rank the likely causes, for every run "
            "written by StagnationCallback or keras.callbacks.TensorBoard under LOGDIR. "
            "Exit status: 0 all runs healthy, 1 a run stalled or has an error finding, "
            "2 usage error or unreadable LOGDIR, 141 the reader of the output went away "
            "(| head)."
        ),
    )
    report.add_argument("logdir", metavar="LOGDIR", help="the folder given to tensorboard --logdir")
    report.add_argument(
        "--run",
        metavar="REGEX",
        help="only runs whose name contains a match of this regular expression",
    )
    report.add_argument(
        "--json",
        action="store_true",
        help='print {"schema": 1, "runs": [...]} instead of the table',
    )
    report.add_argument(
        "--loss-tag",
        metavar="TAG",
        help=(
            "for runs written by other tools (tf.summary, PyTorch, Lightning): the tag of the "
            "training loss, when its name is not one found by default (loss, train/loss, "
            "Loss/train, ...)"
        ),
    )
    report.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=(
            "give up when TensorBoard's data server has not loaded LOGDIR after this long "
            f"(default {DEFAULT_TIMEOUT_S:g})"
        ),
    )
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    stdout, stderr = sys.stdout, sys.stderr
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exit_:  # --help / --version
            return int(exit_.code or 0) if isinstance(exit_.code, int) else EXIT_USAGE
        if args.command != "report":
            raise _UsageError("missing command (try: tb-stagnation report LOGDIR)")
        return _report(
            args.logdir, args.run, args.json, stdout, args.timeout, stderr, args.loss_tag
        )
    except _UsageError as error:
        print(f"{_PROG}: error: {_one_line(str(error))}", file=stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `tb-stagnation report logs | head`
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=stderr)
        return 130
    except Exception as error:  # never a traceback for the user
        if os.environ.get(_DEBUG_ENV):
            raise
        print(
            f"{_PROG}: error: {type(error).__name__}: {_one_line(str(error))} "
            f"(set {_DEBUG_ENV}=1 for details)",
            file=stderr,
        )
        return EXIT_USAGE


class _LoadProgress:
    """Says on stderr what a slow load waits for, and for how long it will."""

    def __init__(self, logdir: str, timeout: float, err: TextIO) -> None:
        self._logdir = _printable(shorten(logdir))
        self._timeout = timeout
        self._err = err
        self._next = PROGRESS_AFTER_S

    def __call__(self, elapsed: float) -> None:
        if elapsed < self._next:
            return
        if self._next == PROGRESS_AFTER_S:
            message = (
                f"loading {self._logdir}: waiting for TensorBoard's data server to read it "
                f"(gives up after {self._timeout:g} s; --timeout SECONDS changes that)"
            )
        else:
            message = (
                f"still loading {self._logdir}: {elapsed:.0f} s of at most {self._timeout:g} s"
            )
        print(f"{_PROG}: {message}", file=self._err, flush=True)
        self._next = (elapsed // PROGRESS_EVERY_S + 1) * PROGRESS_EVERY_S


def _report(
    logdir: str,
    run_pattern: str | None,
    as_json: bool,
    out: TextIO,
    timeout: float = DEFAULT_TIMEOUT_S,
    err: TextIO | None = None,
    loss_tag: str | None = None,
) -> int:
    from tb_stagnation.analysis.api import (
        SCHEMA_VERSION,
        RunPatternError,
        compile_pattern,
        select_runs,
    )
    from tb_stagnation.reader.errors import LogdirError

    try:
        pattern = compile_pattern(run_pattern)
    except RunPatternError as error:
        raise _UsageError(str(error)) from None
    from tb_stagnation.analysis.api import run_report
    from tb_stagnation.reader.logdir import open_logdir

    progress = _LoadProgress(logdir, timeout, err if err is not None else sys.stderr)
    started = time.monotonic()
    try:
        with open_logdir(
            logdir, load_timeout=timeout, progress=progress, loss_tag=loss_tag
        ) as source:
            names = source.list_runs()
            selected = select_runs(names, pattern)
            if not names:
                raise _UsageError(source.no_runs_reason())
            if not selected:
                raise _UsageError(
                    f"no run matches --run {shorten(repr(run_pattern))} (runs: {_preview(names)})"
                )
            # Analysed batch by batch: 1,000 runs never sit in memory at once.
            reports = []
            for run in source.iter_runs(selected):
                reports.append(run_report(run))
                # What the reader had to skip or guess (a newer format, a corrupt
                # file...) is a note of the report, and a warning here: the
                # text report shows no notes of healthy runs.
                for note in run.notes:
                    _warn(f"{shorten(run.name)}: {note}")
            listed = {m for listing in source.listings().values() for m in listing.members.values()}
            for warning in source.load_warnings:
                if warning.run not in listed:  # a file that holds no run at all
                    _warn(warning.message)
    except LogdirError as error:
        message = str(error) or f"{logdir}: cannot be read"
        if time.monotonic() - started >= timeout:
            message += " (--timeout SECONDS waits longer)"
        raise _UsageError(message) from None
    if as_json:
        json.dump(
            _json_safe({"schema": SCHEMA_VERSION, "runs": reports}),
            out,
            indent=2,
            allow_nan=False,
        )
        out.write("\n")
    else:
        out.write(render_text(reports, _width()))
    out.flush()
    unhealthy = any(not report.get("healthy", True) for report in reports)
    return EXIT_UNHEALTHY if unhealthy else EXIT_HEALTHY


# --- text rendering -----------------------------------------------------------


def _status(report: dict) -> str:
    if report.get("error"):  # the run could not be read
        return "error"
    if not report.get("epochs"):
        return "empty"
    if report.get("stalled_epochs"):
        return "stalled"
    if any(f.get("severity") == "error" for f in report.get("findings", [])):
        return "findings"
    return "healthy"


def render_text(reports: list[dict], width: int = 100) -> str:
    """The table, then the findings of every unhealthy run."""
    from tb_stagnation.analysis.series import fmt_epochs

    headers = ("RUN", "SOURCE", "EPOCHS", "STATUS", "STALLED", "TOP FINDING")
    rows = []
    for report in reports:
        findings = report.get("findings", [])
        top = "-"
        if findings and _status(report) != "healthy":
            top = f"{findings[0]['code']} ({findings[0]['confidence']:.2f})"
        rows.append(
            (
                _clip(_printable(report.get("run", "")), 40),
                str(report.get("source", "")),
                str(report.get("epochs", 0)),
                _status(report),
                _clip(fmt_epochs(report.get("stalled_epochs", [])), 24),
                top,
            )
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    right = {2}  # EPOCHS is a number

    def line(cells) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers)]
    out.extend(line(row) for row in rows)

    for report in reports:
        status = _status(report)
        if status in ("healthy", "empty"):
            continue
        out.append("")
        name = _printable(shorten(report.get("run", ""), 100))
        if status == "error":
            out.append(f"{name}: {_printable(report['error'])}")
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
            cause = finding.get("explained_by")
            out.append(
                f"  {number}. {finding['code']}  {finding['severity']}  "
                f"confidence {finding['confidence']:.2f}  "
                f"epochs {_clip(fmt_epochs(finding.get('epochs', [])), 40)}"
                + (f"  (likely a consequence of {cause})" if cause else "")
            )
            layers = finding.get("layers") or []
            if layers:
                out.append(_wrap("layers: " + ", ".join(_printable(n) for n in layers), width, 5))
            out.append(_wrap("evidence: " + _printable(finding.get("evidence", "")), width, 5))
            out.append(_wrap("fix: " + _printable(finding.get("fix", "")), width, 5))
        for note in report.get("notes", []):
            out.append(_wrap("note: " + _printable(note), width, 2))

    healthy = sum(1 for r in reports if _status(r) == "healthy")
    stalled_count = sum(1 for r in reports if _status(r) == "stalled")
    findings_count = sum(1 for r in reports if _status(r) == "findings")
    empty = sum(1 for r in reports if _status(r) == "empty")
    unreadable = sum(1 for r in reports if _status(r) == "error")
    summary = f"{len(reports)} run{'s' if len(reports) != 1 else ''}: {healthy} healthy"
    if stalled_count:
        summary += f", {stalled_count} stalled"
    if findings_count:
        summary += f", {findings_count} with error findings"
    if empty:
        summary += f", {empty} empty"
    if unreadable:
        summary += f", {unreadable} unreadable"
    out.append("")
    out.append(summary + ".")
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int, indent: int) -> str:
    pad = " " * indent
    return textwrap.fill(
        text,
        width=max(width, indent + 20),
        initial_indent=pad,
        subsequent_indent=pad + "  ",
        break_long_words=True,
        break_on_hyphens=False,
    )


def _width() -> int:
    columns = shutil.get_terminal_size((100, 24)).columns
    return min(max(columns, 60), 140)


def _printable(text: Any) -> str:
    """User data (run and layer names) without control characters that break a terminal."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def _warn(message: str) -> None:
    print(f"{_PROG}: warning: {_printable(message)}", file=sys.stderr)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(text: str) -> str:
    # User data inside an error (a pattern, a path) must not bury the error.
    return shorten(" ".join(text.split()), 600) or "unknown error"


def _preview(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(_printable(shorten(n, 60)) for n in names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


def _json_safe(value: Any) -> Any:
    """NaN/Inf -> None, recursively (analyze_run already avoids them; this is a guard)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
