"""Reads a report and the run's own logged numbers side by side.

`contradictions(report, run)` lists every statement of the report's evidence
that the logs contradict: epochs the run never logged, a learning rate, loss
or accuracy that no logged value matches, class statistics on a run whose
labels are no classes. It only checks statement shapes the report uses; an
unrecognised sentence is not a contradiction.
"""

from __future__ import annotations

import re

import numpy as np

from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.run_data import RunData

_NUMBER = r"(-?[0-9][0-9,]*\.?[0-9]*(?:e[+-]?[0-9]+)?)"
# fmt_num prints 3 significant digits: a printed value is within 0.5% of the
# logged one (2% leaves room for a median printed from float32 values).
_REL = 0.02

_CLASS_STATEMENTS = re.compile(
    r"class \d+ \(of \d+\)|majority-class|majority rate|Labels are imbalanced", re.IGNORECASE
)


def _value(text: str) -> float:
    return float(text.replace(",", ""))


def _matches(value: float, series: np.ndarray | None) -> bool:
    if series is None:
        return False
    finite = series[np.isfinite(series)]
    if finite.size == 0:
        return False
    scale = np.maximum(np.abs(finite), 1e-12)
    return bool((np.abs(finite - value) <= _REL * scale + 5e-4 * (np.abs(value) < 1)).any())


def contradictions(report: dict, run: RunData) -> list[str]:
    ctx = Context(run)
    logged = {int(e) for e in ctx.epochs}
    problems: list[str] = []
    for epoch in report.get("stalled_epochs", []):
        if epoch not in logged:
            problems.append(f"stalled epoch {epoch} was never logged")
    card_lr = None
    optimizer = ctx.card.get("optimizer")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("learning_rate"), (int, float)):
        card_lr = np.array([float(optimizer["learning_rate"])])
    for finding in report.get("findings", []):
        code, text = finding["code"], finding["evidence"]
        for epoch in finding.get("epochs", []):
            if epoch not in logged:
                problems.append(f"{code}: epoch {epoch} was never logged")
        for match in re.finditer(r"(?:at|from) epoch (\d+)", text):
            if int(match.group(1)) not in logged:
                problems.append(f"{code}: 'epoch {match.group(1)}' was never logged")
        for match in re.finditer(r"learning rate is " + _NUMBER, text):
            value = _value(match.group(1))
            if not (_matches(value, ctx.lr) or _matches(value, card_lr)):
                problems.append(f"{code}: learning rate {value} is not a logged rate")
        for match in re.finditer(r"loss is " + _NUMBER + r" at epoch (\d+)", text):
            value, epoch = _value(match.group(1)), int(match.group(2))
            if ctx.loss is None or epoch not in logged:
                continue
            at = ctx.loss[list(ctx.epochs).index(epoch)]
            if not _matches(value, np.array([at])):
                problems.append(f"{code}: loss {value} at epoch {epoch}, logged {at}")
        for match in re.finditer(r"accuracy is exactly ([0-9.]+)", text):
            if not _matches(_value(match.group(1)), ctx.acc):
                problems.append(f"{code}: accuracy {match.group(1)} was never logged")
        if _CLASS_STATEMENTS.search(text) and (
            ctx.task == "regression"
            or not ctx.baselines.labels_are_classes
            or ctx.baselines.class_shares is None
        ):
            problems.append(f"{code}: class statistics on labels that are no classes")
    return problems
