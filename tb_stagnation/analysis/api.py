"""`analyze(logdir)`: the diagnosis of every run in a logdir, for notebooks and the CLI.

Example:

```python
import tb_stagnation

result = tb_stagnation.analyze("logs")
for run in result.runs:
    print(run["run"], run["stalled_epochs"], [f["code"] for f in run["findings"]])
for warning in result.warnings:
    print("warning:", warning)
```

`tb-stagnation report LOGDIR --json` prints `result.to_json()`; its table is
rendered from the same result (`analysis.presentation.render_text`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from tb_stagnation.analysis.report import analyze_run
from tb_stagnation.analysis.run_data import RunData
from tb_stagnation.analysis.status import run_status
from tb_stagnation.jsonable import to_report_json
from tb_stagnation.names import shorten
from tb_stagnation.reader.errors import LogdirError

SCHEMA_VERSION = 1


class FindingReport(TypedDict, total=False):
    """One cause, most likely first in `RunReport.findings` (http_api.md)."""

    code: str
    severity: str  # "error" or "warning"
    confidence: float  # 0..1
    epochs: list[int]
    layers: list[str]
    evidence: str
    fix: str
    title: str
    explained_by: str  # only when a higher-ranked finding explains this one


class StallWindow(TypedDict):
    start: int
    end: int
    kind: str  # "plateau", "oscillation", "divergence", ...
    confidence: float


class BaselineReport(TypedDict):
    constant_loss: float | None
    majority_rate: float | None
    loss_kind: str | None  # "crossentropy", "mse" or None


class RunReport(TypedDict, total=False):
    """One run's report: `analyze_run`'s object (http_api.md `GET /report`).

    A run that could not be read has an `error` line and `healthy: false`.
    """

    run: str
    source: str  # "callback", "keras" or "scalars"
    epochs: int
    healthy: bool
    stalled_epochs: list[int]
    findings: list[FindingReport]
    stall_windows: list[StallWindow]
    baselines: BaselineReport
    notes: list[str]
    error: str


@dataclass
class Analysis:
    """What `analyze` found in a logdir.

    Attributes:
        runs: one report per analysed run, sorted by name.
        warnings: what the reader had to skip or guess, one line each: the
            notes of a run's reading ("<run>: <note>", also among that run's
            `notes`), then files and folders that belong to no run. A logdir
            without runs has one warning saying why.
        run_names: every run of the logdir, also those `run_pattern` left out.
        schema: the version of this object's JSON (`to_json`).

    `result["runs"]` and `result["schema"]` still work as on the dict that
    `analyze` used to return.
    """

    runs: list[RunReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    run_names: list[str] = field(default_factory=list)
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """`{"schema": 1, "runs": [...], "warnings": [...]}`: plain JSON, no NaN
        (the package's JSON policy for reports, tb_stagnation/jsonable.py)."""
        return to_report_json({"schema": self.schema, "runs": self.runs, "warnings": self.warnings})

    def statuses(self) -> dict[str, str]:
        """Each run's status ("stalled", "findings", "error", "healthy", "empty")."""
        return {str(report.get("run")): run_status(report) for report in self.runs}

    @property
    def healthy(self) -> bool:
        """Whether every analysed run is healthy (the CLI's exit status 0)."""
        return all(report.get("healthy", True) for report in self.runs)

    def __getitem__(self, key: str) -> Any:
        # The dict `analyze` returned before it was typed.
        if key in ("schema", "runs", "warnings"):
            return getattr(self, key)
        raise KeyError(key)


class RunPatternError(ValueError):
    """`run_pattern` is not a valid regular expression."""


def compile_pattern(run_pattern: str | None) -> re.Pattern | None:
    """The compiled `--run` pattern; raises RunPatternError with a one-line reason."""
    if run_pattern is None:
        return None
    try:
        return re.compile(run_pattern)
    except re.error as error:
        raise RunPatternError(f"invalid run pattern {run_pattern!r}: {error}") from None


def select_runs(names: list[str], pattern: re.Pattern | None) -> list[str]:
    """Run names matching `pattern` anywhere (re.search), in the given order."""
    if pattern is None:
        return list(names)
    return [name for name in names if pattern.search(name)]


def run_report(run: RunData) -> RunReport:
    """`analyze_run(run)`, or for a run that could not be read (`run.error`)
    its empty report marked `"error": "<why>"` and `healthy: false`: an
    unreadable run is not a healthy one, and the other runs are still reported."""
    report = analyze_run(run)
    if run.error:
        report["error"] = run.error
        report["healthy"] = False
    return report  # type: ignore[return-value]


def analyze(
    logdir: str,
    run_pattern: str | None = None,
    loss_tag: str | None = None,
    *,
    load_timeout: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> Analysis:
    """Diagnose every run of `logdir` (those whose name matches `run_pattern`).

    Args:
        logdir: the folder given to `tensorboard --logdir` (or a remote path
            TensorBoard reads, e.g. gs://...).
        run_pattern: a regular expression; only runs whose logical name (the
            `log_dir` relative to `logdir`) contains a match are analysed.
        loss_tag: the training loss's tag in runs written by other tools
            (`tf.summary`, PyTorch, Lightning) when no name rule finds it.
        load_timeout: seconds TensorBoard's data server may take to load the
            logdir (default: the reader's).
        progress: called with the seconds waited so far while it loads.

    Returns:
        An `Analysis`: one report per run (`tb_stagnation.analysis.report.
        analyze_run`'s object, http_api.md), sorted by name, and the load
        warnings. A run that could not be read has an `"error"` line
        (`run_report`). `to_json()` is what `tb-stagnation report --json` prints.

    Raises:
        tb_stagnation.reader.errors.LogdirError: the logdir cannot be read,
            or holds no run while some of its folders could not be read.
        RunPatternError: `run_pattern` is not a valid regular expression.
    """
    pattern = compile_pattern(run_pattern)
    from tb_stagnation.reader.logdir import open_logdir

    result = Analysis()
    with open_logdir(
        logdir, load_timeout=load_timeout, progress=progress, loss_tag=loss_tag
    ) as source:
        result.run_names = source.list_runs()
        if not result.run_names:
            if source.unreadable_folders:
                # "No runs" would hide that the runs may be in a folder we cannot read.
                raise LogdirError(source.no_runs_reason())
            result.warnings.append(source.no_runs_reason())
            return result
        # Analysed batch by batch: 1,000 runs never sit in memory at once.
        for run in source.iter_runs(select_runs(result.run_names, pattern)):
            result.runs.append(run_report(run))
            # What the reader had to skip or guess (a newer format, a corrupt
            # file...): a note of the run, and a warning of the whole load,
            # since a text report shows no notes of healthy runs.
            result.warnings.extend(f"{shorten(run.name)}: {note}" for note in run.notes)
        listed = {m for listing in source.listings().values() for m in listing.members.values()}
        result.warnings.extend(
            warning.message for warning in source.load_warnings if warning.run not in listed
        )
    return result
