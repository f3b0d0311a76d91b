"""Findings, the catalogue of cause codes, and the detector registry.

A detector is one small function `detect(ctx) -> Finding | list[Finding] | None`
registered with `@detector(code)`. A new cause of stagnation is one new code in
`CODES`, one detector in `tb_stagnation/analysis/detectors/` and one scenario in
`tests/scenarios.py`; the report, CLI, routes and frontend pick it up unchanged.

Codes are stable: frontends, notebooks and CI scripts match on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"


@dataclass(frozen=True)
class CodeInfo:
    """A cause code: its title, and its tier in the causal chain.

    Tiers rank causes that explain other findings: 0 data/config mistakes (the
    root: "constant loss often starts with the dataset"), 1 optimisation
    settings, 2 mechanisms inside the network (gradients, units), 3 symptoms.
    A strong finding of a lower tier outranks the higher-tier findings it can
    explain (see `report.rank`).
    """

    code: str
    title: str
    tier: int


_CODE_LIST = [
    # tier 0: the data or the model configuration is wrong
    CodeInfo("constant_labels", "All labels are the same", 0),
    CodeInfo("constant_inputs", "All inputs are the same", 0),
    CodeInfo("nonfinite_data", "NaN or Inf in the training data", 0),
    CodeInfo("repeated_batches", "The pipeline repeats the same batch", 0),
    CodeInfo("loss_output_mismatch", "Loss does not match the output layer", 0),
    CodeInfo("frozen_layers", "Layers are frozen", 0),
    CodeInfo("unscaled_inputs", "Inputs are not scaled", 0),
    CodeInfo("unscaled_targets", "Regression targets are not scaled", 0),
    CodeInfo("dropout_too_high", "Dropout rate near 1", 0),
    # tier 1: optimisation settings
    CodeInfo("learning_rate_too_small", "Learning rate too small", 1),
    CodeInfo("learning_rate_too_large", "Learning rate too large", 1),
    CodeInfo("class_imbalance", "Accuracy sits at the majority-class rate", 1),
    # tier 2: mechanisms inside the network
    CodeInfo("exploding_gradients", "Exploding gradients", 2),
    CodeInfo("zero_gradients", "Zero gradients", 2),
    CodeInfo("vanishing_gradients", "Vanishing gradients", 2),
    CodeInfo("dead_units", "Dead ReLU units", 2),
    CodeInfo("saturated_activations", "Saturated activations", 2),
    # tier 3: symptoms, reported when nothing upstream explains them
    CodeInfo("prediction_collapse", "Every input gets the same prediction", 3),
    CodeInfo("nonfinite_loss", "The loss became NaN or Inf", 3),
    # The tiny-subset test failed: a symptom that something above stops learning.
    CodeInfo("overfit_failure", "The model cannot overfit a few samples", 3),
    CodeInfo("no_progress", "Loss stopped improving (cause not identified)", 3),
]

CODES: dict[str, CodeInfo] = {info.code: info for info in _CODE_LIST}
CODE_ORDER: dict[str, int] = {info.code: i for i, info in enumerate(_CODE_LIST)}


@dataclass
class Finding:
    """One likely cause, as the report shows it.

    `epochs` are epoch numbers (not indices); `layers` layer names from the
    model card. `explains` lists codes this finding is a likely root cause of
    (in addition to what the tiers imply), `explained_by` is filled by ranking.
    """

    code: str
    severity: str
    confidence: float
    evidence: str
    fix: str
    epochs: list[int] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    explains: Sequence[str] = ()
    explained_by: str | None = None

    @property
    def title(self) -> str:
        info = CODES.get(self.code)
        return info.title if info else self.code.replace("_", " ").capitalize()

    @property
    def tier(self) -> int:
        info = CODES.get(self.code)
        return info.tier if info else 2

    def to_json(self) -> dict:
        data = {
            "code": self.code,
            "severity": self.severity,
            "confidence": round(min(max(float(self.confidence), 0.0), 1.0), 2),
            "epochs": [int(e) for e in self.epochs],
            "layers": [str(name) for name in self.layers],
            "evidence": self.evidence,
            "fix": self.fix,
            "title": self.title,
        }
        if self.explained_by:
            data["explained_by"] = self.explained_by
        return data


DetectorFn = Callable[..., "Finding | list[Finding] | None"]


@dataclass(frozen=True)
class Detector:
    code: str
    function: DetectorFn
    # Whether the detector needs StagnationCallback data (skipped for plain-Keras runs).
    needs_callback: bool


REGISTRY: list[Detector] = []


def detector(code: str, *, needs_callback: bool = True) -> Callable[[DetectorFn], DetectorFn]:
    """Register a detector for `code` (one function per cause)."""
    if code not in CODES:
        raise ValueError(f"unknown finding code {code!r}: add it to findings.CODES")

    def register(function: DetectorFn) -> DetectorFn:
        REGISTRY.append(Detector(code=code, function=function, needs_callback=needs_callback))
        return function

    return register
