"""The pre-flight: the report's static checks on the first batch, before training goes on.

`StagnationCallback` collects facts after the first training batch (the model
card, the labels' spec and range, the input and label statistics of that
batch) and asks `preflight_check.check` what cannot work, which runs the very
detectors of the report (`analyze_run`) on a one-step run made of those facts
(`run_data` here) and keeps the findings of `PREFLIGHT_CODES`: so the
pre-flight and the later diagnosis agree, with the same evidence and fixes.

The report itself re-derives these findings from the logged facts (FORMAT.md
`preflight`) and the epochs; `stored_findings` adds what the pre-flight
printed only for a run that logged no epoch (stopped during its first).

Pure numpy; no TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tb_stagnation.analysis.findings import Finding
from tb_stagnation.analysis.run_data import SOURCE_CALLBACK, RunData
from tb_stagnation.analysis.series import finite_or_none

# What the pre-flight reports: problems that no amount of training fixes.
PREFLIGHT_CODES = (
    "loss_output_mismatch",
    "constant_labels",
    "constant_inputs",
    "nonfinite_data",
    "unscaled_inputs",
    "frozen_layers",
    "overfit_failure",
)

# "Every label is one class" is judged on at least this many labels (or the
# whole first epoch, if shorter), not on the first batch alone: at a 99:1
# class ratio, 32 labels are all the majority class with probability 0.72,
# 512 labels with probability 0.006. The check waits a few batches for them.
LABELS_TO_CONFIRM = 512


def run_data(
    name: str,
    card: dict | None,
    facts: dict,
    scalars: dict | None = None,
    class_counts: Any = None,
    step: int = 0,
) -> RunData:
    """A one-step callback run holding what the pre-flight saw."""
    series = {tag: np.array([float(value)]) for tag, value in (scalars or {}).items()}
    counts = None
    if class_counts is not None:
        counts = np.asarray(class_counts, dtype=np.float64).reshape(1, -1)
    return RunData(
        name=name,
        source=SOURCE_CALLBACK,
        epochs=np.array([int(step)], dtype=np.int64),
        scalars=series,
        scalar_present={tag: np.array([True]) for tag in series},
        class_counts=counts,
        model_card=card,
        preflight=facts,
    )


def needs_more_labels(class_counts: Any, label_variance: Any, labels_seen: float) -> bool:
    """Whether "all labels are one class / one value" must wait for more labels."""
    if labels_seen >= LABELS_TO_CONFIRM:
        return False
    if class_counts is not None:
        counts = np.asarray(class_counts, dtype=np.float64).reshape(-1)
        counts = np.where(np.isfinite(counts), counts, 0.0)
        return counts.sum() > 0 and int(np.count_nonzero(counts > 0)) == 1
    variance = finite_or_none(label_variance)
    return variance is not None and variance <= 0.0


def stored_findings(ctx: Any, findings: list[Finding]) -> list[Finding]:
    """The pre-flight's printed findings a run without epochs would otherwise lose.

    Once an epoch is logged the detectors judge the run on its full data (and
    the pre-flight's facts), so only then are the stored ones left out.
    """
    if ctx.n > 0:
        return []
    stored = ctx.preflight.get("findings")
    if not isinstance(stored, list):
        return []
    present = {finding.code for finding in findings}
    extra = []
    for entry in stored:
        if not isinstance(entry, dict):
            continue
        code, evidence, fix = entry.get("code"), entry.get("evidence"), entry.get("fix")
        if not (isinstance(code, str) and isinstance(evidence, str) and isinstance(fix, str)):
            continue
        if code in present:
            continue
        severity = entry.get("severity")
        confidence = finite_or_none(entry.get("confidence"))
        layers = entry.get("layers")
        if not isinstance(layers, list):
            layers = []
        present.add(code)
        extra.append(
            Finding(
                code=code,
                severity=severity if severity in ("error", "warning") else "warning",
                confidence=min(max(confidence if confidence is not None else 0.5, 0.0), 1.0),
                evidence=evidence,
                fix=fix,
                layers=[str(name) for name in layers],
            )
        )
    return extra
