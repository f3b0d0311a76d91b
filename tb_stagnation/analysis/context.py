"""`Context`: one run's data cleaned up once for every detector.

It validates the RunData (arrays of the wrong shape are dropped with a note
rather than trusted), picks the loss and accuracy series, computes the
baselines and the stall flags, and offers small helpers so each detector stays
a few lines of threshold logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tb_stagnation import losses
from tb_stagnation.analysis import baselines, stall
from tb_stagnation.analysis.run_data import SOURCE_CALLBACK, RunData
from tb_stagnation.summary import tags

# Keras `logs` keys of the training accuracy, most specific first. Keras 3 logs
# metrics=["accuracy"] as "accuracy"; older code uses "acc" or the full names.
ACCURACY_KEYS = (
    "accuracy",
    "acc",
    "sparse_categorical_accuracy",
    "categorical_accuracy",
    "binary_accuracy",
)


# A learning rate this far from the optimizer's working rate (either way).
EXTREME_RATE_RATIO = 100.0


@dataclass
class LayerInfo:
    """A layer of the model card, aligned with the `layers/*` columns."""

    name: str
    type: str = ""
    activation: str | None = None
    trainable: bool | None = None
    params: int | None = None
    trainable_params: int | None = None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value:  # NaN
        return None
    return int(value)


def _epoch_steps(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    """(int64 epoch steps [E], which of them are usable [E]).

    Steps are int64 all the way: a float64 detour would round steps near
    2**63 (a corrupt or foreign event file holds any int64) onto one another
    or wrap them negative. Float input (hand-made RunData) must be finite and
    fit in int64.
    """
    array = np.asarray(raw if raw is not None else [])
    array = array.reshape(-1)
    if array.dtype.kind in "iub":
        return array.astype(np.int64), np.ones(array.shape[0], dtype=bool)
    try:
        floats = array.astype(np.float64)
    except (TypeError, ValueError):
        return np.zeros(array.shape[0], dtype=np.int64), np.zeros(array.shape[0], dtype=bool)
    valid = np.isfinite(floats) & (np.abs(floats) < 2.0**63)
    return np.where(valid, floats, 0).astype(np.int64), valid


class Context:
    """Everything a detector reads, aligned on the run's epochs with data."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self.notes: list[str] = []
        self.name = str(run.name)
        self.source = run.source
        self.is_callback = run.source == SOURCE_CALLBACK

        epochs, valid_epochs = _epoch_steps(run.epochs)
        total = epochs.shape[0]
        scalars = self._valid_series(run.scalars, total)
        present, from_reader = self._presence(getattr(run, "scalar_present", None), scalars, total)
        layer_stats = self._valid_matrices(run.layer_stats, total)
        counts = None
        if run.class_counts is not None:
            array = np.asarray(run.class_counts, dtype=np.float64)
            if array.ndim == 2 and array.shape[0] == total:
                counts = array
            else:
                self.notes.append("Ignored label counts whose shape does not match the epochs.")

        # Epochs where nothing at all was logged carry no information (a reader
        # aligning tags of different lengths fills them with NaN); drop them.
        # The reader's presence masks tell a logged NaN (evidence) from a gap;
        # without them, NaN counts as a gap unless some other value was logged.
        keep = valid_epochs
        if total:
            has_data = np.zeros(total, dtype=bool)
            for values in present.values():
                has_data |= values
            for matrix in layer_stats.values():
                has_data |= (~np.isnan(matrix)).any(axis=1)
            if counts is not None:
                has_data |= (~np.isnan(counts)).any(axis=1)
            if len(scalars) > 1 or layer_stats or counts is not None or present:
                keep &= has_data
            # Epochs without a training loss (a step only other tags used) are
            # gaps in the curve, not NaN losses.
            loss_tag = tags.logs_tag("loss")
            if loss_tag in from_reader and present[loss_tag].any():
                keep &= present[loss_tag]
        self.epochs = epochs[keep]
        self.n = int(self.epochs.shape[0])
        self.scalars = {tag: values[keep] for tag, values in scalars.items()}
        self.layer_stats = {tag: matrix[keep] for tag, matrix in layer_stats.items()}
        self.class_counts = counts[keep] if counts is not None else None

        self.card: dict = run.model_card if isinstance(run.model_card, dict) else {}
        # What the pre-flight saw before training (FORMAT.md `preflight`); {} when absent.
        preflight = getattr(run, "preflight", None)
        self.preflight: dict = preflight if isinstance(preflight, dict) else {}
        self.layers = self._layers(run)
        self.layer_names = [layer.name for layer in self.layers]

        self.loss_tag, self.loss = self._loss()
        self.acc_key, self.acc = self._accuracy()
        self.lr = self.s(tags.LEARNING_RATE)

        self.baselines = baselines.compute(
            RunData(
                name=run.name,
                source=run.source,
                epochs=self.epochs,
                scalars=self.scalars,
                class_counts=self.class_counts,
                model_card=self.card,
                preflight=self.preflight,
            )
        )
        heads = baselines.summed_loss_heads(
            self.card,
            [
                tag[len(tags.LOGS_PREFIX) :]
                for tag in self.scalars
                if tag.startswith(tags.LOGS_PREFIX)
            ],
            self.is_callback,
        )
        if self.loss is not None and len(heads) >= 2:
            prefix = "val_" if self.loss_tag == tags.logs_tag("val_loss") else ""
            baselines.for_summed_loss(
                self.baselines,
                heads,
                self.card,
                self.loss,
                {head: self.scalars.get(tags.logs_tag(f"{prefix}{head}_loss")) for head in heads},
            )
        elif self.loss is not None and not self.is_callback:
            baselines.from_output_layer(self.baselines, self.card)
            baselines.estimate_from_curve(self.baselines, self.loss)
        if self.loss is not None:
            self.stall = stall.detect(
                self.loss,
                self.acc,
                self.baselines,
                self.lr,
                self.collapsed_predictions(),
                update_ratio=self.s(tags.UPDATE_GLOBAL_RATIO),
                classifier=self.classifier,
                rate_extreme=self._rate_extreme(),
            )
        else:
            self.stall = stall.StallResult(flagged=np.zeros(self.n, dtype=bool))
        self.stalled = self.stall.flagged

    # --- validation -------------------------------------------------------
    @staticmethod
    def _presence(
        mapping: Any, scalars: dict, total: int
    ) -> tuple[dict[str, np.ndarray], set[str]]:
        """Per tag, where a value was logged (the reader's mask, else "not NaN"),
        and the tags whose mask came from the reader."""
        masks = {tag: ~np.isnan(values) for tag, values in scalars.items()}
        from_reader: set[str] = set()
        if isinstance(mapping, dict):
            for tag, mask in mapping.items():
                if tag not in scalars:
                    continue
                try:
                    array = np.asarray(mask, dtype=bool).reshape(-1)
                except (TypeError, ValueError):
                    continue
                if array.shape[0] == total:
                    masks[tag] = array | masks[tag]
                    from_reader.add(tag)
        return masks, from_reader

    def _valid_series(self, mapping: Any, total: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if not isinstance(mapping, dict):
            return out
        for tag, values in mapping.items():
            try:
                array = np.asarray(values, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                continue
            if array.shape[0] == total:
                out[str(tag)] = array
            else:
                self.notes.append(f"Ignored series {tag!s} whose length does not match the epochs.")
        return out

    def _valid_matrices(self, mapping: Any, total: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if not isinstance(mapping, dict):
            return out
        for tag, values in mapping.items():
            try:
                array = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                continue
            if array.ndim == 2 and array.shape[0] == total:
                out[str(tag)] = array
            else:
                self.notes.append(f"Ignored layer statistic {tag!s} whose shape does not match.")
        return out

    def _layers(self, run: RunData) -> list[LayerInfo]:
        names = [str(name) for name in (run.layer_names or [])]
        card_layers = self.card.get("layers")
        card_layers = card_layers if isinstance(card_layers, list) else []
        width = max((m.shape[1] for m in self.layer_stats.values()), default=0)
        count = max(len(names), len(card_layers), width)
        layers = []
        for i in range(count):
            entry = (
                card_layers[i] if i < len(card_layers) and isinstance(card_layers[i], dict) else {}
            )
            name = names[i] if i < len(names) else str(entry.get("name", f"layer_{i}"))
            trainable = entry.get("trainable")
            activation = entry.get("activation")
            layers.append(
                LayerInfo(
                    name=name,
                    type=str(entry.get("type", "")),
                    activation=activation if isinstance(activation, str) else None,
                    trainable=trainable if isinstance(trainable, bool) else None,
                    params=_int_or_none(entry.get("params")),
                    trainable_params=_int_or_none(entry.get("trainable_params")),
                )
            )
        return layers

    def _loss(self) -> tuple[str | None, np.ndarray | None]:
        for tag in (tags.logs_tag("loss"), tags.logs_tag("val_loss")):
            values = self.scalars.get(tag)
            if values is not None and values.size:
                if tag != tags.logs_tag("loss"):
                    self.notes.append("No training loss logged: the validation loss is used.")
                return tag, values
        return None, None

    def _accuracy(self) -> tuple[str | None, np.ndarray | None]:
        for key in ACCURACY_KEYS:
            values = self.s(tags.logs_tag(key))
            if values is not None:
                return key, values
        return None, None

    def _rate_extreme(self) -> np.ndarray | None:
        """Epochs whose learning rate is >= 100x or <= 1/100 of the rate the
        optimizer is designed for, when the optimizer is known."""
        if self.optimizer_class is None:
            return None
        rate = self.lr
        if rate is None:
            if self.card_learning_rate is None:
                return None
            rate = np.full(self.n, self.card_learning_rate)
        reference = self.default_lr
        slack = baselines.RATE_SLACK
        with np.errstate(invalid="ignore"):
            return (rate >= EXTREME_RATE_RATIO * reference / slack) | (
                rate <= reference / EXTREME_RATE_RATIO * slack
            )

    # --- helpers for detectors --------------------------------------------
    def collapsed_predictions(
        self, max_majority: float = stall.COLLAPSED_TOP_SHARE, *, majority_from_shares: bool = True
    ) -> np.ndarray | None:
        """Epochs where >= 99% of the probe got one class (stall.COLLAPSED_TOP_SHARE),
        or None when the labels' majority class reaches `max_majority`.

        The one definition of collapsed predictions, with two gates: the stall
        flags set them aside unless the labels themselves are that skewed
        (the default); the prediction_collapse finding asks for a model far
        more concentrated than its labels (predictions.COLLAPSE_MAX_MAJORITY).
        `majority_from_shares`: when the baselines give no majority rate (a
        summed multi-output loss, a weighted fit), take it from the label shares.
        """
        top = self.s(tags.PRED_TOP_CLASS_SHARE)
        majority = self.baselines.majority_rate
        shares = self.baselines.class_shares
        if majority is None and majority_from_shares and shares is not None and shares.size:
            # Set aside for a summed multi-output loss, still true of the labels.
            majority = float(shares.max())
        if top is None or (majority is not None and majority >= max_majority):
            return None
        if not self.baselines.labels_are_classes or self.multi_label:
            return None
        with np.errstate(invalid="ignore"):
            return top >= stall.COLLAPSED_TOP_SHARE

    def sane_epochs(self) -> np.ndarray:
        """Epochs whose loss and weights are finite: unit and prediction statistics
        of a network full of NaN describe the NaN, not the network."""
        mask = np.ones(self.n, dtype=bool)
        if self.loss is not None:
            mask &= np.isfinite(self.loss)
        weights = self.scalars.get(tags.WEIGHT_GLOBAL_NORM)
        if weights is not None:
            mask &= ~(np.isnan(weights) | np.isinf(weights))
        return mask

    def output_layer_indices(self) -> set[int]:
        """Indices of the output layers (by the card's output names, else the last layer)."""
        names = set()
        outputs = self.card.get("outputs")
        if isinstance(outputs, list):
            names = {o.get("name") for o in outputs if isinstance(o, dict)}
        found = {i for i, layer in enumerate(self.layers) if layer.name in names}
        if not found and self.layers:
            found = {len(self.layers) - 1}
        return found

    def s(self, tag: str) -> np.ndarray | None:
        """Per-epoch series of a scalar tag, or None when absent or never finite."""
        values = self.scalars.get(tag)
        if values is None or not np.isfinite(values).any():
            return None
        return values

    def has(self, tag: str) -> bool:
        """Whether the tag was logged at all (even if only NaN)."""
        return tag in self.scalars

    def ls(self, tag: str) -> np.ndarray | None:
        """[n, layers] matrix of a `layers/*` tag, or None when absent or never finite."""
        matrix = self.layer_stats.get(tag)
        if matrix is None or not np.isfinite(matrix).any():
            return None
        return matrix

    @property
    def any_stall(self) -> bool:
        return bool(self.stalled.any())

    def mostly_at_baseline(self, mask: np.ndarray) -> bool:
        """Whether most epochs of `mask` sit in the stall detector's "bad"
        zone: at about the constant predictor's loss, or above it."""
        zone = self.stall.zone
        if zone is None or not mask.any():
            return False
        return float((zone[mask] == stall.ZONE_BAD).mean()) >= 0.5

    def focus(self) -> np.ndarray:
        """Epochs to examine: the stalled ones if any, else all."""
        if self.any_stall:
            return self.stalled
        return np.ones(self.n, dtype=bool)

    def epochs_of(self, mask: np.ndarray) -> list[int]:
        return [int(e) for e in self.epochs[np.asarray(mask, dtype=bool)]]

    def layer_name(self, index: int) -> str:
        if 0 <= index < len(self.layers):
            return self.layers[index].name
        return f"layer_{index}"

    @property
    def optimizer_class(self) -> str | None:
        optimizer = self.card.get("optimizer")
        if isinstance(optimizer, dict) and isinstance(optimizer.get("class"), str):
            return optimizer["class"]
        return None

    @property
    def default_lr(self) -> float:
        """The rate the run's optimizer is designed for (baselines.working_learning_rate)."""
        return baselines.working_learning_rate(self.optimizer_class)

    @property
    def steps_per_epoch(self) -> float | None:
        """Training steps per epoch: `batches/seen`, else the model card's."""
        seen = self.s(tags.BATCHES_SEEN)
        if seen is not None:
            value = float(np.nanmedian(seen))
            if value >= 1:
                return value
        steps = _int_or_none(self.card.get("steps_per_epoch"))
        return float(steps) if steps and steps > 0 else None

    @property
    def card_learning_rate(self) -> float | None:
        """The learning rate the model card (or the logged Keras config) records."""
        optimizer = self.card.get("optimizer")
        value = optimizer.get("learning_rate") if isinstance(optimizer, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return None
        return float(value)

    def logged_epochs(self) -> np.ndarray:
        """Epochs where the callback wrote its per-epoch statistics."""
        mask = np.zeros(self.n, dtype=bool)
        for tag in (
            tags.BATCHES_SEEN,
            tags.GRAD_STEPS,
            tags.WEIGHT_GLOBAL_NORM,
            tags.LEARNING_RATE,
        ):
            values = self.scalars.get(tag)
            if values is not None:
                mask |= np.isfinite(values)
        return mask

    def nonfinite_data_epochs(self) -> tuple[np.ndarray, list[str]]:
        """Logged epochs whose input or label statistics are NaN/Inf, and which
        of "inputs" / "labels" they concern."""
        logged = self.logged_epochs()
        bad = np.zeros(self.n, dtype=bool)
        what: list[str] = []
        for tag, label in (
            (tags.INPUT_MEAN, "inputs"),
            (tags.INPUT_STD, "inputs"),
            (tags.INPUT_MAX_ABS, "inputs"),
            (tags.LABEL_MEAN, "labels"),
            (tags.LABEL_VARIANCE, "labels"),
        ):
            values = self.scalars.get(tag)
            if values is None:
                continue
            hit = ~np.isfinite(values) & logged
            if hit.any():
                bad |= hit
                if label not in what:
                    what.append(label)
        return bad, what

    @property
    def data_nonfinite(self) -> bool:
        """Whether the data itself holds NaN/Inf: then NaN losses and gradients
        come from it, whatever the rate or the network."""
        return bool(self.nonfinite_data_epochs()[0].any())

    @property
    def classifier(self) -> bool | None:
        """Whether the model classifies (its accuracy counts predicted classes), by the
        card's task or loss; None when nothing says."""
        task = self.task
        if task in ("classification", "binary"):
            return True
        if task == "regression":
            return False
        family = losses.loss_family(self.card.get("loss"))
        if family in ("categorical", "binary"):
            return True
        if family == "mse":
            return False
        return None

    @property
    def multi_label(self) -> bool:
        """Several sigmoid/binary units: the callback's 0/1 label histogram then
        pools every entry of every column, so it holds no per-class statistic
        (one-hot rows are "90% zeros" in a balanced 10-class problem)."""
        width = baselines.output_width(self.card)
        binary = self.task == "binary" or losses.loss_family(self.card.get("loss")) == "binary"
        return binary and width is not None and width > 1

    @property
    def task(self) -> str | None:
        task = self.card.get("task")
        return task if isinstance(task, str) else None
