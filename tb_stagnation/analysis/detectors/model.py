"""Static checks from the model card: they hold whether or not the loss moves."""

from __future__ import annotations

import numpy as np

from tb_stagnation.analysis.baselines import loss_family, output_width
from tb_stagnation.analysis.context import Context
from tb_stagnation.analysis.detectors import label_encoding
from tb_stagnation.analysis.findings import (
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    Finding,
    detector,
)
from tb_stagnation.analysis.series import fmt_epochs, fmt_names, fmt_num, fmt_pct, median
from tb_stagnation.analysis.stall import NEGATIVE_CROSSENTROPY
from tb_stagnation.summary import tags

# Output ranges of bounded activations; regression targets outside them can
# never be reached (AUTOTRAINER, DeepDiagnosis, UMLAUT: "output range must
# cover the label range").

# Output activations whose values are raw scores, not probabilities.
LINEAR_LIKE = ("linear", "relu")

# A frozen layer's weights do not move: update ratio below 1e-12 (float32
# round-off of an unchanged tensor is exactly 0; SageMaker's UnchangedTensor
# uses allclose with rtol 1e-5 over 3 saves, which is far looser).
FROZEN_UPDATE_RATIO = 1e-12


def _output_name(ctx: Context) -> str:
    outputs = ctx.card.get("outputs")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
        name = outputs[0].get("name")
        if isinstance(name, str):
            return name
    return ctx.layers[-1].name if ctx.layers else "the output layer"


def _from_logits(card: dict) -> bool | None:
    """The from_logits flag of the diagnosed output's loss, when the card records it."""
    outputs = card.get("outputs")
    if isinstance(outputs, list):
        chosen = [o for o in outputs if isinstance(o, dict)]
        wanted = card.get("stats_output")
        named = [o for o in chosen if wanted is not None and o.get("name") == wanted]
        for output in named or chosen[:1]:
            if isinstance(output.get("from_logits"), bool):
                return output["from_logits"]
    for holder in (card.get("loss_config"), card):
        if isinstance(holder, dict) and isinstance(holder.get("from_logits"), bool):
            return holder["from_logits"]
    return None


def _negative_crossentropy_fix(ctx: Context) -> str:
    accuracy = ctx.acc[np.isfinite(ctx.acc)] if ctx.acc is not None else np.array([])
    if accuracy.size and float(np.max(accuracy)) <= 0.01:
        # Not one label equals a predicted class: the labels are measured values.
        return (
            "An accuracy of 0 says no label is a class the model can predict: these are "
            "regression targets. Use a linear output (Dense(1), no activation) with "
            "loss='mean_squared_error', and standardise the targets if they are large."
        )
    return (
        "Give the loss the labels it expects: one sigmoid unit with binary_crossentropy for "
        "0/1 labels; Dense(K, activation='softmax') with sparse_categorical_crossentropy for "
        "class ids 0..K-1; a linear output with mean_squared_error for measured values."
    )


def _negative_crossentropy(ctx: Context, family: str | None) -> tuple[int, float] | None:
    """(epoch, loss) of the first epoch whose cross-entropy is below zero."""
    if family not in ("categorical", "binary") or ctx.loss is None:
        return None
    with np.errstate(invalid="ignore"):
        below = np.flatnonzero(ctx.loss < NEGATIVE_CROSSENTROPY)
    if below.size == 0:
        return None
    return int(ctx.epochs[below[0]]), float(ctx.loss[below[0]])


@detector("loss_output_mismatch", needs_callback=False)
def loss_output_mismatch(ctx: Context) -> Finding | None:
    card = ctx.card
    if not card:
        return None
    loss = card.get("loss")
    family = loss_family(loss)
    activation = card.get("output_activation")
    activation = activation.lower() if isinstance(activation, str) else None
    width = output_width(card)
    output = _output_name(ctx)
    all_epochs = ctx.epochs_of(np.ones(ctx.n, dtype=bool))
    layers = [output] if output else []

    def finding(confidence, evidence, fix, severity=SEVERITY_ERROR):
        return Finding(
            code="loss_output_mismatch",
            severity=severity,
            confidence=confidence,
            epochs=all_epochs,
            layers=layers,
            evidence=evidence,
            fix=fix,
            explains=label_encoding.MISMATCH_EXPLAINS,
        )

    if activation == "softmax" and width == 1:
        return finding(
            0.97,
            f"The output layer {output} is a softmax over a single unit: it outputs 1.0 for "
            "every input, so the loss and accuracy cannot change.",
            "For two classes use Dense(1, activation='sigmoid') with binary_crossentropy, or "
            "Dense(2, activation='softmax') with sparse_categorical_crossentropy.",
        )
    if family == "binary" and activation == "softmax" and width is not None and width >= 3:
        return finding(
            0.9,
            f"Loss {loss} on a {width}-unit softmax output ({output}): binary cross-entropy "
            f"scores each of the {width} outputs as its own yes/no problem, which does not match "
            "one class per sample; the loss and accuracy are not what they seem.",
            "Use categorical_crossentropy with one-hot labels, or sparse_categorical_crossentropy "
            "with integer labels (binary_crossentropy is for one sigmoid unit, or multi-label "
            "sigmoid outputs).",
        )
    if family == "categorical" and width == 1:
        return finding(
            0.95,
            f"Loss {loss} on a 1-unit output ({output}): categorical cross-entropy needs one "
            "unit per class; with one unit the normalised prediction is always 1.0, so the loss "
            "is constant and nothing is learned.",
            "For two classes use Dense(1, activation='sigmoid') with binary_crossentropy, or "
            "Dense(2, activation='softmax') with sparse_categorical_crossentropy.",
        )
    # The first batch's labels against the loss and output (the pre-flight's facts).
    encoding = label_encoding.finding(ctx)
    if encoding is not None:
        return encoding
    negative = _negative_crossentropy(ctx, family)
    if negative is not None:
        epoch, value = negative
        return finding(
            0.9,
            f"The {loss} loss is {fmt_num(value)} at epoch {epoch}: a cross-entropy cannot be "
            "negative for labels in [0, 1], so the labels lie outside what the loss expects "
            "(class ids 0..K-1 or raw values fed to a binary or one-hot loss). The falling "
            "loss is not learning; the accuracy shows what the model really does.",
            _negative_crossentropy_fix(ctx),
        )
    from_logits = _from_logits(card)
    # Only an activation the card names: None means the callback could not see
    # it (a subclassed call, a Lambda), and "add a softmax" would then apply it twice.
    if family in ("categorical", "binary") and from_logits is False and activation in LINEAR_LIKE:
        return finding(
            0.6 if ctx.any_stall else 0.4,
            f"Loss {loss} expects probabilities (from_logits=False) but the output layer "
            f"{output} has a {activation} activation: its raw scores are clipped "
            "to [1e-7, 1] before the log, which flattens the loss and its gradient.",
            "Add activation='softmax' (or 'sigmoid' for one unit) to the output layer, or pass "
            "the loss as keras.losses.<Loss>(from_logits=True).",
            SEVERITY_ERROR if ctx.any_stall else SEVERITY_WARNING,
        )
    if (
        family in ("categorical", "binary")
        and from_logits is True
        and activation
        in (
            "softmax",
            "sigmoid",
        )
    ):
        return finding(
            0.5 if ctx.any_stall else 0.35,
            f"Loss {loss} has from_logits=True but the output layer {output} already applies "
            f"{activation}: probabilities are squashed a second time, which compresses the "
            "loss into a narrow band and weakens the gradient.",
            "Remove the output activation (keep from_logits=True) or set from_logits=False.",
            SEVERITY_ERROR if ctx.any_stall else SEVERITY_WARNING,
        )
    # Regression targets outside what the output activation can produce.
    variance_series = ctx.s(tags.LABEL_VARIANCE)
    mean_series = ctx.s(tags.LABEL_MEAN)
    if activation in (*label_encoding.OUTPUT_RANGES, "relu") and mean_series is not None:
        mean = median(mean_series)
        variance = median(variance_series) if variance_series is not None else None
        if variance is not None and variance < 0:
            variance = None
        if mean is None:
            return None
        if activation == "relu":
            if mean < 0:
                return finding(
                    0.7,
                    f"The output layer {output} uses relu, which cannot go below 0, but the "
                    f"regression targets average {fmt_num(mean)}.",
                    "Use a linear output (activation=None) for regression targets that can be "
                    "negative.",
                )
            return None
        low, high = label_encoding.OUTPUT_RANGES[activation]
        max_variance = (high - low) ** 2 / 4  # the largest variance of values in [low, high]
        outside = mean < low or mean > high or (variance is not None and variance > max_variance)
        if outside:
            spread = f" and std {fmt_num(variance**0.5)}" if variance is not None else ""
            return finding(
                0.9,
                f"The output layer {output} uses {activation}, which only produces values in "
                f"({fmt_num(low)}, {fmt_num(high)}), but the regression targets have mean "
                f"{fmt_num(mean)}{spread}: most targets are out of reach.",
                "Use a linear output (activation=None) for regression, or scale the targets into "
                f"the output's range ({fmt_num(low)}, {fmt_num(high)}).",
            )
    return None


# The trainable layers "do update" when their weights move by at least 1e-5
# of their norm per step (DeepDiagnosis's lower bound, as for the learning rate).
TRAINABLE_UPDATE_PER_STEP = 1e-5


def _trainable_part_updates(ctx: Context, frozen_idx: list[int]) -> bool:
    """Whether the layers left trainable do learn during the stall: then a frozen
    base is a deliberate transfer-learning setup, not what stopped the loss."""
    ratio = ctx.ls(tags.LAYER_UPDATE_RATIO)
    if ratio is None:
        return False
    cols = [i for i in range(ratio.shape[1]) if i not in frozen_idx]
    if not cols:
        return False
    medians = [median(ratio[ctx.stalled, i]) for i in cols]
    values = [v for v in medians if v is not None]
    steps = ctx.steps_per_epoch or 1.0
    return bool(values) and max(values) / steps >= TRAINABLE_UPDATE_PER_STEP


# Histograms logged at three epochs or more (two comparisons) before a layer
# whose histograms never changed counts as one whose weights never changed.
MIN_HISTOGRAM_EPOCHS = 3


def _unchanged_by_histograms(ctx: Context) -> tuple[list[str], list[str], list[int]]:
    """(layers whose weight histograms never changed, every layer with enough
    histograms, the epochs logged), from a plain-Keras run's histogram_freq."""
    usable = {
        name: track
        for name, track in (ctx.run.weight_histograms or {}).items()
        if len(track.epochs) >= MIN_HISTOGRAM_EPOCHS
    }
    order = {layer.name: i for i, layer in enumerate(ctx.layers)}
    names = sorted(usable, key=lambda name: (order.get(name, len(order)), name))
    still = [name for name in names if usable[name].never_changed]
    epochs = sorted({epoch for track in usable.values() for epoch in track.epochs})
    return still, names, epochs


def _frozen_by_histograms(
    ctx: Context, still: list[str], names: list[str], epochs: list[int]
) -> Finding | None:
    """Frozen layers seen in the weight histograms alone (no trainable flags
    logged): only when the loss stalled and the learning rate was not 0."""
    if not still or not ctx.any_stall:
        return None
    lr = ctx.lr
    if lr is not None and np.isfinite(lr).any() and float(np.nanmax(lr)) <= 0:
        return None  # a zero rate stops every layer: the learning-rate checks say so
    logged = fmt_epochs(epochs)
    if len(still) == len(names):
        return Finding(
            code="frozen_layers",
            severity=SEVERITY_ERROR,
            confidence=0.6,
            epochs=ctx.epochs_of(ctx.stalled),
            layers=still,
            evidence=(
                f"The weight histograms Keras logged (histogram_freq) of every layer "
                f"({fmt_names(still)}) are identical at epochs {logged}: no weight changed (the "
                "layers are frozen, or no gradient reaches them), so the loss cannot move."
            ),
            fix=(
                "Check model.trainable_weights: if it is empty or misses these layers, set "
                "layer.trainable = True and compile() again. If the weights are trainable, no "
                "gradient reaches them: check that the loss depends on the model's output."
            ),
        )
    if len(still) * 2 < len(names):
        return None
    return Finding(
        code="frozen_layers",
        severity=SEVERITY_ERROR,
        confidence=0.45,
        epochs=ctx.epochs_of(ctx.stalled),
        layers=still,
        evidence=(
            f"The weight histograms Keras logged (histogram_freq) of {fmt_names(still)} "
            f"({len(still)} of {len(names)} layers) are identical at epochs {logged}, while "
            "the other layers' changed: those layers are frozen or receive no gradient, and "
            "the loss stalled."
        ),
        fix=(
            "Set layer.trainable = True on the layers that must learn and compile() again; if "
            "they are trainable, look for what blocks their gradient (a stop_gradient, a "
            "non-differentiable op, dead units)."
        ),
    )


@detector("frozen_layers", needs_callback=False)
def frozen_layers(ctx: Context) -> Finding | None:
    card = ctx.card
    layers = ctx.layers
    still, histogram_layers, histogram_epochs = _unchanged_by_histograms(ctx)
    if not card and not layers:
        return _frozen_by_histograms(ctx, still, histogram_layers, histogram_epochs)
    frozen_idx = [
        i
        for i, layer in enumerate(layers)
        if layer.trainable is False or (layer.trainable_params == 0 and (layer.params or 0) > 0)
    ]
    total_trainable = card.get("trainable_params")
    total_trainable = (
        total_trainable
        if isinstance(total_trainable, int) and not isinstance(total_trainable, bool)
        else None
    )
    params = [layer.params or 0 for layer in layers]
    total_params = sum(params)
    frozen_params = sum(params[i] for i in frozen_idx)
    nothing_trains = total_trainable == 0 or (
        layers and len(frozen_idx) == len(layers) and total_params > 0
    )
    if not frozen_idx and not nothing_trains:
        return _frozen_by_histograms(ctx, still, histogram_layers, histogram_epochs)
    names = [layers[i].name for i in frozen_idx]
    update_text = ""
    if names and set(names) <= set(still):
        update_text = (
            "; the weight histograms Keras logged for them are identical at epochs "
            f"{fmt_epochs(histogram_epochs)}"
        )
    ratio = ctx.ls(tags.LAYER_UPDATE_RATIO)
    if ratio is not None and frozen_idx:
        cols = [i for i in frozen_idx if i < ratio.shape[1]]
        values = ratio[:, cols] if cols else None
        if values is not None and np.isfinite(values).any():
            moved = float(np.nanmax(np.abs(values)))
            if moved <= FROZEN_UPDATE_RATIO:
                update_text = "; their weights did not change at all (update ratio 0)"
    all_epochs = ctx.epochs_of(np.ones(ctx.n, dtype=bool))
    fix = (
        "Set layer.trainable = True on the layers that must learn (or model.trainable = True) "
        "and call compile() again: Keras reads the trainable flags when the model is compiled."
    )
    if nothing_trains:
        total_text = (
            f"0 of {total_params:,} parameters are trainable"
            if total_params
            else "the model has no trainable parameters"
        )
        named = f" (frozen: {fmt_names(names)})" if names else ""
        return Finding(
            code="frozen_layers",
            severity=SEVERITY_ERROR,
            confidence=0.97,
            epochs=all_epochs,
            layers=names,
            evidence=f"{total_text[0].upper()}{total_text[1:]}{named}{update_text}: "
            "no weight can change, so the loss and accuracy stay exactly the same.",
            fix=fix,
        )
    share = frozen_params / total_params if total_params else len(frozen_idx) / max(len(layers), 1)
    share_text = (
        f"{fmt_pct(share)} of the parameters ({frozen_params:,} of {total_params:,})"
        if total_params
        else f"{len(frozen_idx)} of {len(layers)} layers"
    )
    if ctx.any_stall and share >= 0.5 and not _trainable_part_updates(ctx, frozen_idx):
        return Finding(
            code="frozen_layers",
            severity=SEVERITY_ERROR,
            confidence=min(0.9, 0.5 + 0.4 * share),
            epochs=ctx.epochs_of(ctx.stalled),
            layers=names,
            evidence=(
                f"{fmt_names(names)} {'is' if len(names) == 1 else 'are'} frozen "
                f"(trainable=False): {share_text} cannot learn{update_text}, and the loss "
                "stalled."
            ),
            fix=fix + " If the freeze is intended (transfer learning), train the head first and "
            "then unfreeze the top of the base with a small learning rate.",
        )
    last_with_params = max((i for i, p in enumerate(params) if p > 0), default=None)
    if last_with_params is not None and last_with_params in frozen_idx:
        return Finding(
            code="frozen_layers",
            severity=SEVERITY_WARNING,
            confidence=0.4,
            epochs=all_epochs,
            layers=names,
            evidence=(
                f"The output layer {layers[last_with_params].name} is frozen "
                f"(trainable=False), along with {share_text} in total{update_text}."
            ),
            fix=fix,
        )
    return None


# Dropout "near 1": Keras's rate is the share of units DROPPED (TF1's keep_prob
# was the share kept, a classic mix-up). At 0.8 only a fifth of the signal gets
# through each training step; the usual range is 0.1-0.5.
DROPOUT_HIGH = 0.8
DROPOUT_EXTREME = 0.9


def _dropouts(card: dict) -> list[dict]:
    entries = card.get("dropout")
    if not isinstance(entries, list):
        return []
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        rate = entry.get("rate")
        if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate == rate:
            out.append(entry)
    return out


@detector("dropout_too_high", needs_callback=False)
def dropout_too_high(ctx: Context) -> Finding | None:
    high = [d for d in _dropouts(ctx.card) if float(d["rate"]) >= DROPOUT_HIGH]
    if not high:
        return None
    worst = max(float(d["rate"]) for d in high)
    if ctx.any_stall:
        severity = SEVERITY_ERROR
        confidence = 0.65 + 0.25 * min(1.0, (worst - DROPOUT_HIGH) / (1.0 - DROPOUT_HIGH))
        epochs = ctx.epochs_of(ctx.stalled)
    elif worst >= DROPOUT_EXTREME:
        severity = SEVERITY_WARNING
        confidence = 0.3
        epochs = ctx.epochs_of(np.ones(ctx.n, dtype=bool))
    else:
        return None
    described = ", ".join(
        f"{d.get('name')} {'rate' if d.get('kind') == 'rate' else d.get('kind')}="
        f"{fmt_num(float(d['rate']))}"
        for d in high
    )
    return Finding(
        code="dropout_too_high",
        severity=severity,
        confidence=confidence,
        epochs=epochs,
        layers=[str(d.get("name")) for d in high],
        evidence=(
            f"Dropout near 1 ({described}): in training only "
            f"{fmt_pct(1 - worst)} of the units pass their signal at each step, so the "
            "network sees mostly noise. Keras's rate is the share dropped, not the share kept."
        ),
        fix=(
            "Use a dropout rate between 0.1 and 0.5 (Dropout(0.2) keeps 80%); if 0.8-0.9 was "
            "meant as a keep probability, pass 1 - that."
        ),
        explains=("prediction_collapse", "dead_units", "no_progress", "class_imbalance"),
    )
