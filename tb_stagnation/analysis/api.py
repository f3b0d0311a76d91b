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


def analyze(logdir: str, run_pattern: str | None = None) -> dict:
    """Diagnose every run of `logdir` (those whose name matches `run_pattern`).

    Args:
        logdir: the folder given to `tensorboard --logdir` (or a remote path
            TensorBoard reads, e.g. gs://...).
        run_pattern: a regular expression; only runs whose logical name (the
            `log_dir` relative to `logdir`) contains a match are analysed.

    Returns:
        `{"schema": 1, "runs": [report, ...]}`, one report per run as
        `tb_stagnation.analysis.report.analyze_run` builds it, sorted by name.

    Raises:
        tb_stagnation.reader.errors.LogdirError: the logdir cannot be read.
        RunPatternError: `run_pattern` is not a valid regular expression.
    """
    pattern = compile_pattern(run_pattern)
    from tb_stagnation.reader.logdir import open_logdir

    with open_logdir(logdir) as source:
        names = select_runs(source.list_runs(), pattern)
        reports = [analyze_run(run) for run in source.iter_runs(names)]
    return {"schema": SCHEMA_VERSION, "runs": reports}
