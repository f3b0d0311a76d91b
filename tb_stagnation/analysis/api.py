"""`analyze(logdir)`: the diagnosis of every run in a logdir, for notebooks and the CLI.

Example:

```python
import tb_stagnation

result = tb_stagnation.analyze("logs")
for run in result["runs"]:
    print(run["run"], run["stalled_epochs"], [f["code"] for f in run["findings"]])
```
"""

from __future__ import annotations

import re

from tb_stagnation.analysis.report import analyze_run
from tb_stagnation.reader.errors import LogdirError
from tb_stagnation.reader.run_data import RunData

SCHEMA_VERSION = 1


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


def run_report(run: RunData) -> dict:
    """`analyze_run(run)`, or for a run that could not be read (`run.error`)
    its empty report marked `"error": "<why>"` and `healthy: false`: an
    unreadable run is not a healthy one, and the other runs are still reported."""
    report = analyze_run(run)
    if run.error:
        report["error"] = run.error
        report["healthy"] = False
    return report


def analyze(logdir: str, run_pattern: str | None = None, loss_tag: str | None = None) -> dict:
    """Diagnose every run of `logdir` (those whose name matches `run_pattern`).

    Args:
        logdir: the folder given to `tensorboard --logdir` (or a remote path
            TensorBoard reads, e.g. gs://...).
        run_pattern: a regular expression; only runs whose logical name (the
            `log_dir` relative to `logdir`) contains a match are analysed.
        loss_tag: the training loss's tag in runs written by other tools
            (`tf.summary`, PyTorch, Lightning) when no name rule finds it.

    Returns:
        `{"schema": 1, "runs": [report, ...]}`, one report per run as
        `tb_stagnation.analysis.report.analyze_run` builds it, sorted by name.
        A run that could not be read has an `"error"` line (`run_report`).

    Raises:
        tb_stagnation.reader.errors.LogdirError: the logdir cannot be read,
            or holds no run while some of its folders could not be read.
        RunPatternError: `run_pattern` is not a valid regular expression.
    """
    pattern = compile_pattern(run_pattern)
    from tb_stagnation.reader.logdir import open_logdir

    with open_logdir(logdir, loss_tag=loss_tag) as source:
        all_names = source.list_runs()
        if not all_names and source.unreadable_folders:
            # "No runs" would hide that the runs may be in a folder we cannot read.
            raise LogdirError(source.no_runs_reason())
        names = select_runs(all_names, pattern)
        reports = [run_report(run) for run in source.iter_runs(names)]
    return {"schema": SCHEMA_VERSION, "runs": reports}
