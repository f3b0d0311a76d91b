"""Report assembly: `analyze_run(RunData) -> dict`, the per-run report object of
`plugin/http_api.md` (`GET /report`) and of `tb-stagnation report --json`.

Pure and deterministic: numpy only, no TensorFlow, no I/O. It never raises on
run data: a detector that fails is skipped with a note, so one bad series
cannot take down a TensorBoard page.
"""

from __future__ import annotations

import numpy as np

from tb_stagnation.analysis import (
    detectors,  # noqa: F401  (registers the detectors)
    preflight,
)
from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.findings import (
    CODE_ORDER,
    REGISTRY,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    Finding,
)
from tb_stagnation.analysis.presentation import summary_line
from tb_stagnation.analysis.run_data import SOURCE_CALLBACK, SOURCE_KERAS, SOURCE_SCALARS, RunData
from tb_stagnation.analysis.series import fmt_num
from tb_stagnation.analysis.status import is_healthy
from tb_stagnation.summary import tags

KERAS_ONLY_NOTE = (
    "Logged by keras.callbacks.TensorBoard only: stalls are flagged from the loss, accuracy and "
    "learning-rate curves alone. Add tb_stagnation.StagnationCallback(log_dir=...) to fit()'s "
    "callbacks for the full diagnosis (gradients, layers, labels, inputs, predictions)."
)
OTHER_TOOL_NOTE = (
    "Stalls are flagged from the loss curve (and accuracy, when logged) alone; the causes need "
    "data only tb_stagnation.StagnationCallback records in a Keras fit()."
)
_SOURCES = (SOURCE_CALLBACK, SOURCE_KERAS, SOURCE_SCALARS)

# A strong finding (error, confidence >= 0.75) of a lower tier caps the findings
# of higher tiers it overlaps just below its own confidence: "constant labels"
# outranks the collapsed predictions and tiny gradients it causes. An explicit
# `explains` link needs only confidence >= 0.5.
CAP_TIER_CONFIDENCE = 0.75
CAP_EXPLICIT_CONFIDENCE = 0.5
CAP_MARGIN = 0.05
# Below this a finding does not count as explaining a stall (for `no_progress`).
EXPLAINS_STALL_CONFIDENCE = 0.5


def _overlap(a: Finding, b: Finding) -> bool:
    if not a.epochs or not b.epochs:
        return True
    return bool(set(a.epochs) & set(b.epochs))


def rank(findings: list[Finding]) -> list[Finding]:
    """Order findings most likely first, demoting consequences below their causes."""
    roots = sorted(
        (f for f in findings if f.severity == SEVERITY_ERROR),
        key=lambda f: (f.tier, -f.confidence, CODE_ORDER.get(f.code, 99)),
    )
    for cause in roots:
        for other in findings:
            if other is cause or cause.explained_by == other.code:
                continue  # never demote the finding that explains this one
            explicit = other.code in cause.explains and cause.confidence >= CAP_EXPLICIT_CONFIDENCE
            by_tier = cause.tier < other.tier and cause.confidence >= CAP_TIER_CONFIDENCE
            if not (explicit or by_tier) or not _overlap(cause, other):
                continue
            if not explicit and cause.code in other.explains:
                continue  # the other finding claims to explain this one
            cap = max(cause.confidence - CAP_MARGIN, 0.05)
            if other.confidence > cap:
                other.confidence = cap
            # Only an explicit link names the cause: tiers rank, they do not explain.
            if explicit and other.explained_by is None:
                other.explained_by = cause.code
    return sorted(
        findings,
        key=lambda f: (
            -round(f.confidence, 4),
            0 if f.severity == SEVERITY_ERROR else 1,
            f.tier,
            CODE_ORDER.get(f.code, 99),
        ),
    )


def _no_progress(ctx: Context, findings: list[Finding]) -> Finding | None:
    """The fallback finding for a stall no detector explains."""
    if not ctx.any_stall or ctx.loss is None:
        return None
    stalled_epochs = set(ctx.epochs_of(ctx.stalled))
    for finding in findings:
        if (
            finding.severity == SEVERITY_ERROR
            and finding.confidence >= EXPLAINS_STALL_CONFIDENCE
            and (not finding.epochs or stalled_epochs & set(finding.epochs))
        ):
            return None
    window = max(ctx.stall.windows, key=lambda w: w.end - w.start)
    part = ctx.loss[window.start : window.end + 1]
    finite = part[np.isfinite(part)]
    level = f"stays around {fmt_num(float(np.median(finite)))}" if finite.size else "is non-finite"
    first, last = int(ctx.epochs[window.start]), int(ctx.epochs[window.end])
    rest = part[1:][np.isfinite(part[1:])]
    if rest.size >= 2 and np.isfinite(part[0]):
        start, median = float(part[0]), float(np.median(rest))
        if max(abs(start), abs(median)) > 2 * min(abs(start), abs(median)):
            # "Stays around" would be false of a window that opens with the
            # epoch before a blow-up (or before a collapse to ~0).
            level = (
                f"goes from {fmt_num(start)} in epoch {first} to around {fmt_num(median)} in "
                f"epochs {int(ctx.epochs[window.start + 1])}-{last}"
            )
    base = ctx.baselines.constant_loss
    base_text = f" (a constant predictor scores {fmt_num(base)})" if base is not None else ""
    accuracy = ""
    if ctx.acc is not None:
        acc_part = ctx.acc[window.start : window.end + 1]
        acc_part = acc_part[np.isfinite(acc_part)]
        if acc_part.size >= 3 and float(np.ptp(acc_part)) <= 1e-6:
            accuracy = (
                f"; accuracy is exactly {acc_part[0]:.4f} in every one of these epochs, so the "
                "predicted classes never change"
            )
    epochs = ctx.epochs_of(ctx.stalled)
    if ctx.is_callback:
        fix = (
            "No logged statistic points to one cause. Check that the model can overfit 20 "
            "training samples; if it cannot, compare labels, output activation and loss, and "
            "inspect a batch right before fit()."
        )
    elif ctx.run.source == SOURCE_SCALARS:
        fix = (
            "Check that the model can overfit 20 training samples, that labels, output "
            "activation and loss agree, and that the learning rate suits the optimizer. For a "
            "Keras model, tb_stagnation.StagnationCallback(log_dir=...) in fit() measures the "
            "causes (gradients, layers, labels, inputs)."
        )
    else:
        fix = (
            "Add tb_stagnation.StagnationCallback(log_dir=...) to fit() to see gradients, "
            "layers, labels and inputs. Meanwhile check that the model can overfit 20 training "
            "samples and that labels, output activation and loss agree."
        )
    return Finding(
        code="no_progress",
        severity=SEVERITY_WARNING,
        confidence=0.3,
        epochs=epochs,
        evidence=(
            (
                f"The loss {level}{base_text} ({window.kind})"
                if level.startswith("goes")
                else f"The loss {level} in epochs {first}-{last}{base_text} ({window.kind})"
            )
            + f"{accuracy}."
        ),
        fix=fix,
    )


# Findings a plain-Keras run gets from the model config Keras logged.
CONFIG_CODES = (
    "loss_output_mismatch",
    "frozen_layers",
    "dropout_too_high",
    "vanishing_gradients",
    "zero_gradients",
)
# They rest on the config alone (no labels, no gradients): lower confidence.
CONFIG_CONFIDENCE_FACTOR = 0.9
CONFIG_SOURCE_TEXT = " (Read from the model config that keras.callbacks.TensorBoard logged.)"


def _mark_config_findings(ctx: Context, findings: list[Finding]) -> None:
    """Say what a plain-Keras run's static findings rest on, at lower confidence."""
    for finding in findings:
        if finding.code in CONFIG_CODES:
            finding.evidence += CONFIG_SOURCE_TEXT
            finding.confidence *= CONFIG_CONFIDENCE_FACTOR


LABELS_UNSEEN_NOTE = (
    "No labels or model outputs were seen during training: the model's train_step does not "
    "call compute_loss (it computes its own loss), so label statistics, the constant-predictor "
    "baselines and the prediction checks are missing; gradients, updates, units and the probe "
    "are still measured. Computing the loss with self.compute_loss(x=x, y=y, y_pred=y_pred) in "
    "train_step lets the callback see them."
)


def _labels_seen(ctx: Context) -> bool:
    if ctx.class_counts is not None and np.nansum(ctx.class_counts) > 0:
        return True
    return ctx.s(tags.LABEL_MEAN) is not None or ctx.s(tags.LABEL_VARIANCE) is not None


def _empty_report(run: RunData, notes: list[str]) -> dict:
    return {
        "run": str(run.name),
        "source": run.source if run.source in _SOURCES else SOURCE_KERAS,
        "epochs": 0,
        "healthy": True,
        "stalled_epochs": [],
        "findings": [],
        "stall_windows": [],
        "baselines": {"constant_loss": None, "majority_rate": None, "loss_kind": None},
        "notes": notes,
    }


def analyze_run(run: RunData) -> dict:
    """Diagnose one run: stalled epochs, ranked causes, baselines, notes (http_api.md)."""
    # NaN/Inf are evidence here, not accidents: numpy's warnings about them are noise.
    with np.errstate(all="ignore"):
        return _analyze(run)


def _analyze(run: RunData) -> dict:
    notes = [str(note) for note in (run.notes or [])]
    try:
        ctx = Context(run)
    except Exception as error:  # malformed RunData: report it, never crash a page
        notes.append(f"The run's data could not be analysed ({type(error).__name__}: {error}).")
        return _empty_report(run, notes)
    notes.extend(ctx.notes)
    if run.source == SOURCE_SCALARS:
        notes.append(OTHER_TOOL_NOTE)
    elif not ctx.is_callback:
        notes.append(KERAS_ONLY_NOTE)

    findings: list[Finding] = []
    for det in REGISTRY:
        if det.needs_callback and not ctx.is_callback:
            continue
        try:
            result = det.function(ctx)
        except Exception as error:  # a detector bug must not hide the others
            notes.append(f"Detector {det.code} failed ({type(error).__name__}: {error}).")
            continue
        if result is None:
            continue
        findings.extend(result if isinstance(result, list) else [result])
    if not ctx.is_callback:
        _mark_config_findings(ctx, findings)
    # What the pre-flight printed, for a run stopped before its first epoch ended.
    findings.extend(preflight.stored_findings(ctx, findings))
    fallback = _no_progress(ctx, findings)
    if fallback is not None:
        findings.append(fallback)
    findings = rank(findings)

    if ctx.n == 0:
        notes.append("No epochs logged yet.")
    elif ctx.loss is None:
        notes.append("No loss logged: stalls cannot be judged; only the static checks ran.")
    elif ctx.n == 1:
        notes.append(
            "Only one epoch logged: progress cannot be judged yet (a stall needs 3 epochs)."
        )
    elif ctx.n == 2:
        notes.append("Only two epochs logged: a stall needs 3 epochs to be flagged.")
    elif ctx.stall.basis == "curve" and ctx.is_callback and ctx.baselines.source is None:
        notes.append(
            "No label statistics were logged, so stalls are judged from the curve shape alone "
            "(lower confidence)."
        )
    notes.extend(ctx.baselines.notes)
    if ctx.is_callback and ctx.card and ctx.n and not _labels_seen(ctx):
        notes.append(LABELS_UNSEEN_NOTE)

    stalled_epochs = ctx.epochs_of(ctx.stalled)
    windows = [
        {
            "start": int(ctx.epochs[w.start]),
            "end": int(ctx.epochs[w.end]),
            "kind": w.kind,
            "confidence": round(w.confidence, 2),
        }
        for w in ctx.stall.windows
    ]
    return {
        "run": ctx.name,
        "source": run.source if run.source in _SOURCES else SOURCE_KERAS,
        "epochs": ctx.n,
        "healthy": is_healthy(stalled_epochs, findings),
        "stalled_epochs": stalled_epochs,
        "findings": [f.to_json() for f in findings],
        "stall_windows": windows,
        "baselines": ctx.baselines.to_json(),
        "notes": _dedupe(notes),
    }


def _dedupe(notes: list[str]) -> list[str]:
    seen = set()
    out = []
    for note in notes:
        if note not in seen:
            seen.add(note)
            out.append(note)
    return out


__all__ = ["analyze_run", "rank", "summary_line"]
