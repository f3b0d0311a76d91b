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
import math
import os
import shutil
import sys
import time
from typing import Any, NoReturn, TextIO

from tb_stagnation.names import printable as _printable
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
    def error(self, message: str) -> NoReturn:  # argparse would sys.exit(2) itself
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
        help=(
            'print {"schema": 1, "runs": [...], "warnings": [...]} instead of the table: '
            "tb_stagnation.analyze(LOGDIR).to_json()"
        ),
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
    from tb_stagnation.analysis.api import RunPatternError, analyze
    from tb_stagnation.jsonable import dumps_text
    from tb_stagnation.reader.errors import LogdirError

    progress = _LoadProgress(logdir, timeout, err if err is not None else sys.stderr)
    started = time.monotonic()
    try:
        result = analyze(logdir, run_pattern, loss_tag, load_timeout=timeout, progress=progress)
    except RunPatternError as error:
        raise _UsageError(str(error)) from None
    except LogdirError as error:
        message = str(error) or f"{logdir}: cannot be read"
        if time.monotonic() - started >= timeout:
            message += " (--timeout SECONDS waits longer)"
        raise _UsageError(message) from None
    if not result.run_names:
        raise _UsageError(result.warnings[0] if result.warnings else f"{logdir}: no runs found")
    if not result.runs:
        raise _UsageError(
            f"no run matches --run {shorten(repr(run_pattern))} "
            f"(runs: {_preview(result.run_names)})"
        )
    # The table shows no notes of healthy runs: what the reader had to skip or
    # guess is said on stderr too.
    for warning in result.warnings:
        _warn(warning)
    if as_json:
        out.write(dumps_text(result.to_json()))
        out.write("\n")
    else:
        from tb_stagnation.analysis.presentation import render_text

        out.write(render_text(result.runs, _width()))
    out.flush()
    return EXIT_HEALTHY if result.healthy else EXIT_UNHEALTHY


def __getattr__(name: str) -> Any:
    # `render_text` lives in analysis/presentation.py, imported on first use so
    # that `tb-stagnation --version` and usage errors never load the analysis.
    if name == "render_text":
        from tb_stagnation.analysis.presentation import render_text

        return render_text
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _width() -> int:
    columns = shutil.get_terminal_size((100, 24)).columns
    return min(max(columns, 60), 140)


def _warn(message: str) -> None:
    print(f"{_PROG}: warning: {_printable(message)}", file=sys.stderr)


def _one_line(text: str) -> str:
    # User data inside an error (a pattern, a path) must not bury the error.
    return shorten(" ".join(text.split()), 600) or "unknown error"


def _preview(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(_printable(shorten(n, 60)) for n in names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


def _json_safe(value: Any) -> Any:
    """What `--json` prints of `value`: the package's JSON policy for reports."""
    from tb_stagnation.jsonable import to_report_json

    return to_report_json(value)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
