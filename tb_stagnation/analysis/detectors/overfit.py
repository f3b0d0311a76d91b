"""The tiny-subset test: a model that cannot fit 20 samples has a structural problem.

The result comes from `tb_stagnation.overfit_check`, run by the callback on
request (`StagnationCallback(overfit_check=True)`) and logged in the pre-flight
record (FORMAT.md `preflight`, `overfit`). Verdicts (see overfit.py):
"passed", "stuck" (the loss stayed above half of the reference loss: it cannot
learn), "slow" (it learns, but not near zero in the budget), "nonfinite" (the
loss became NaN/Inf), "negative" (a cross-entropy below 0: invalid labels).
"""

from __future__ import annotations

from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.findings import SEVERITY_ERROR, SEVERITY_WARNING, Finding, detector
from tb_stagnation.analysis.series import finite_json_number, fmt_num, fmt_pct


@detector("overfit_failure")
def overfit_failure(ctx: Context) -> Finding | None:
    result = ctx.preflight.get("overfit")
    if not isinstance(result, dict) or result.get("passed") is not False:
        return None
    verdict = result.get("verdict")
    samples = result.get("samples")
    steps = result.get("epochs")
    initial = finite_json_number(result.get("initial_loss"))
    best = finite_json_number(result.get("best_loss"))
    reference = finite_json_number(result.get("reference_loss"))
    what = result.get("reference") if isinstance(result.get("reference"), str) else "initial loss"
    size = f"{samples} training samples" if isinstance(samples, int) else "a few training samples"
    ran = ""
    if isinstance(steps, int):
        ran = f" for {steps} step{'s' if steps != 1 else ''}"
    subject = f"A copy of the model trained on {size}{ran}"
    all_epochs = [int(e) for e in ctx.epochs]
    fix = (
        "Check, in this order: that labels, output activation and loss agree, that the layers "
        "that must learn are trainable, the output layer's activation and width, and the "
        "learning rate (Keras defaults: Adam 1e-3, SGD 1e-2). After each change re-run "
        "tb_stagnation.overfit_check(model, x, y): it must drive the loss near 0."
    )
    if verdict == "nonfinite":
        return Finding(
            code="overfit_failure",
            severity=SEVERITY_ERROR,
            confidence=0.8,
            epochs=all_epochs,
            evidence=f"{subject}: the loss became NaN or Inf. {result.get('message', '')}".strip(),
            fix="Lower the learning rate, clip gradients (clipnorm=1.0), and check the samples "
            "for NaN/Inf and extreme values.",
        )
    if result.get("trainable_weights") == 0:
        return Finding(
            code="overfit_failure",
            severity=SEVERITY_ERROR,
            confidence=0.85,
            epochs=all_epochs,
            evidence=f"A copy of the model could not fit {size}: it has no trainable weights, so "
            f"its loss stays at {fmt_num(initial)} whatever it trains on.",
            fix=fix,
        )
    if verdict == "negative":
        return Finding(
            code="overfit_failure",
            severity=SEVERITY_ERROR,
            confidence=0.8,
            epochs=all_epochs,
            evidence=f"{subject}: the cross-entropy went below 0 (to {fmt_num(best)}), which "
            "no labels in [0, 1] allow: the labels do not fit the loss.",
            fix="Bring the labels into the range the loss expects (0/1 for binary "
            "cross-entropy, one-hot rows for categorical, ids 0..K-1 for sparse).",
        )
    loss_path = f"from {fmt_num(initial)} to {fmt_num(best)} at best"
    share = ""
    if best is not None and reference:
        share = f", {fmt_pct(best / reference)} of the {what} ({fmt_num(reference)})"
    if verdict == "slow":
        return Finding(
            code="overfit_failure",
            severity=SEVERITY_WARNING,
            confidence=0.4,
            epochs=all_epochs,
            evidence=f"{subject} brought the loss {loss_path}{share}, but not near 0: the "
            "model learns, slowly.",
            fix="The structure can learn; the steps are small. Raise the learning rate or try "
            "Adam, and scale the inputs.",
        )
    return Finding(
        code="overfit_failure",
        severity=SEVERITY_ERROR,
        confidence=0.85,
        epochs=all_epochs,
        evidence=f"{subject} could not fit them: the loss went {loss_path}{share}. A model "
        "that cannot memorise a handful of samples has a structural problem; more data or "
        "more epochs will not help.",
        fix=fix,
    )
