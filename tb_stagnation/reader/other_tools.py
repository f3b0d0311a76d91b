"""Runs written by other tools: a loss curve found by its tag's name.

A custom training loop with `tf.summary`, PyTorch's `SummaryWriter` or
Lightning logs scalars under names of its own (`loss`, `train/loss`,
`Loss/train`, `train_loss_epoch`...), often once per step rather than once per
epoch. This module recognises the curves the analysis can use from the tag
names alone and turns them into the `logs/*` series of a `RunData`, averaged
into at most `MAX_POINTS` windows so that a per-step log reads like epochs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tb_stagnation.summary import tags

# A run logged every step has thousands of points whose batch-to-batch noise
# the stall rules (made for epoch means) would read as oscillation and
# plateaus; steps are averaged into at most this many windows, each as long
# as an epoch when another curve shows where epochs end.
MAX_POINTS = 30

# Words that may qualify a training curve's name without changing what it is.
_TRAIN_WORDS = frozenset(
    {"train", "training", "epoch", "avg", "average", "mean", "total", "step", "batch", "running"}
)
_VALIDATION_WORDS = frozenset({"val", "valid", "validation", "eval", "evaluation", "test", "dev"})
_LOSS_WORDS = frozenset({"loss"})
_ACCURACY_WORDS = frozenset({"acc", "accuracy"})
# Per-step variants read worse than an epoch's mean: prefer the epoch's.
_STEP_WORDS = frozenset({"step", "batch"})


@dataclass(frozen=True)
class CurveTags:
    """Which tag of a run holds each curve the analysis reads (None: absent)."""

    loss: str
    val_loss: str | None = None
    accuracy: str | None = None
    val_accuracy: str | None = None
    learning_rate: str | None = None

    def by_logs_key(self) -> dict[str, str]:
        """RunData tag -> the run's own tag, for the curves present."""
        mapping = {
            tags.logs_tag("loss"): self.loss,
            tags.logs_tag("val_loss"): self.val_loss,
            tags.logs_tag("accuracy"): self.accuracy,
            tags.logs_tag("val_accuracy"): self.val_accuracy,
            tags.LEARNING_RATE: self.learning_rate,
        }
        return {ours: theirs for ours, theirs in mapping.items() if theirs is not None}


def _words(tag: str) -> list[str]:
    return [word for word in re.split(r"[^a-z0-9]+", tag.lower()) if word]


def _curve_kind(tag: str) -> tuple[str, bool] | None:
    """("loss" | "accuracy", is_validation) when the name says so, else None."""
    words = set(_words(tag))
    for kind, kind_words in (("loss", _LOSS_WORDS), ("accuracy", _ACCURACY_WORDS)):
        named = words & kind_words
        if len(named) != 1:
            continue
        rest = words - named
        validation = bool(rest & _VALIDATION_WORDS)
        if rest - _TRAIN_WORDS - _VALIDATION_WORDS:
            return None  # "loss_scale", "kl/loss": some other quantity
        return kind, validation
    return None


def _is_learning_rate(tag: str) -> bool:
    words = _words(tag)
    return words[:1] == ["lr"] or words[:2] == ["learning", "rate"]


def _preference(tag: str) -> tuple[int, int, str]:
    return (int(bool(set(_words(tag)) & _STEP_WORDS)), len(tag), tag)


def find_curve_tags(run_tags: Iterable[str], loss_tag: str | None = None) -> CurveTags | None:
    """The curves among `run_tags`, or None when no training loss is among them.

    `loss_tag` names the training loss outright (`tb-stagnation report
    --loss-tag`); a run without that tag has none.
    """
    run_tags = sorted(set(run_tags))
    found: dict[tuple[str, bool], list[str]] = {}
    for tag in run_tags:
        kind = _curve_kind(tag)
        if kind is not None:
            found.setdefault(kind, []).append(tag)
    if loss_tag is not None:
        if loss_tag not in run_tags:
            return None
        loss = loss_tag
    elif found.get(("loss", False)):
        loss = min(found[("loss", False)], key=_preference)
    else:
        return None

    def best(kind: tuple[str, bool]) -> str | None:
        candidates = [tag for tag in found.get(kind, []) if tag != loss]
        return min(candidates, key=_preference) if candidates else None

    rates = [tag for tag in run_tags if _is_learning_rate(tag)]
    return CurveTags(
        loss=loss,
        val_loss=best(("loss", True)),
        accuracy=best(("accuracy", False)),
        val_accuracy=best(("accuracy", True)),
        learning_rate=min(rates, key=_preference) if rates else None,
    )


@dataclass
class Windowed:
    """Curves aligned on windows of the loss curve's steps."""

    epochs: np.ndarray  # int64 [W]: 0..W-1, or the logged steps when they are 0..W-1
    scalars: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    notes: list[str]


def window_curves(points_by_tag: Mapping[str, list[tuple[int, float]]], loss: str) -> Windowed:
    """Every curve averaged over the windows that split the loss curve's steps.

    `points_by_tag` maps RunData tags to (step, value) pairs; `loss` is the
    RunData tag of the training loss, whose steps define the windows. A window
    holds consecutive logged steps, so a curve logged once per epoch at the
    global step (Lightning's validation loss) falls into the window of its
    step. Non-finite values are kept: a NaN loss is evidence.

    A loss logged per step keeps its first step as point 0: the model before
    it learned, the reference that progress is measured from (a first window's
    mean would hide a loss that blew up in its first steps).
    """
    loss_steps = np.unique(np.array([step for step, _ in points_by_tag[loss]], dtype=np.int64))
    epoch_ends = _epoch_ends(points_by_tag, loss_steps)
    split = epoch_ends if epoch_ends is not None else loss_steps
    per_window = max(1, -(-len(split) // MAX_POINTS))
    if epoch_ends is None and per_window == 1:
        # One point per logged step already reads like epochs.
        edges = loss_steps
    else:
        # Window w holds the loss steps in (edges[w-1], edges[w]].
        edges = np.unique(np.concatenate(([loss_steps[0]], split[per_window - 1 :: per_window])))
        if edges[-1] < loss_steps[-1]:
            edges = np.append(edges, loss_steps[-1])  # the loss's last steps after the last mark
    consecutive = np.array_equal(edges, np.arange(len(edges)))
    epochs = edges if consecutive else np.arange(len(edges), dtype=np.int64)
    notes = [_window_note(loss_steps, edges, epoch_ends, per_window)] if not consecutive else []
    scalars, present = {}, {}
    for tag, points in points_by_tag.items():
        steps = np.array([step for step, _ in points], dtype=np.int64)
        values = np.array([value for _, value in points], dtype=np.float64)
        windows = np.searchsorted(edges, steps, side="left")
        inside = windows < len(edges)
        # bincount adds a NaN into its window's sum: a NaN loss stays evidence.
        sums = np.bincount(windows[inside], weights=values[inside], minlength=len(edges))
        counts = np.bincount(windows[inside], minlength=len(edges)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            scalars[tag] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        present[tag] = counts > 0
    return Windowed(epochs=epochs.astype(np.int64), scalars=scalars, present=present, notes=notes)


def _window_note(
    loss_steps: np.ndarray, edges: np.ndarray, epoch_ends: np.ndarray | None, per_window: int
) -> str:
    logged = (
        f"Its loss was logged at {len(loss_steps)} steps ({int(loss_steps[0])} to "
        f"{int(loss_steps[-1])})"
    )
    if len(edges) == len(loss_steps):
        return f"{logged}; 'epoch' in this report counts logged points, not steps."
    if epoch_ends is not None:
        unit = "epoch" if per_window == 1 else f"{per_window} epochs"
        return (
            f"{logged}; the curves logged once per epoch mark {len(epoch_ends)} epochs. "
            f"'Epoch' 0 in this report is the first logged step (the model before it learned) "
            f"and each later 'epoch' is the mean over one {unit}."
        )
    return (
        f"{logged}; 'epoch' 0 in this report is the first logged step (the model before it "
        f"learned) and each later 'epoch' is the mean over a window of {per_window} logged steps."
    )


def _epoch_ends(
    points_by_tag: Mapping[str, list[tuple[int, float]]], loss_steps: np.ndarray
) -> np.ndarray | None:
    """The steps of a curve logged at regular intervals several loss steps
    apart (a validation loss written at each epoch's last global step), or None."""
    best = None
    for points in points_by_tag.values():
        steps = np.unique(np.array([step for step, _ in points], dtype=np.int64))
        if len(steps) < 3 or len(steps) * 2 > len(loss_steps):
            continue
        gaps = np.diff(steps)
        if gaps.min() < 0.9 * gaps.max():
            continue  # not one point per epoch
        if best is None or len(steps) > len(best):
            best = steps
    return best


def accuracy_as_fraction(values: np.ndarray, tag: str, notes: list[str]) -> np.ndarray:
    """Accuracy in [0, 1]; tools that log percentages get divided by 100."""
    finite = values[np.isfinite(values)]
    if finite.size and finite.max() > 1.0 and finite.max() <= 100.0 and finite.min() >= 0.0:
        notes.append(f"`{tag}` holds percentages; read as fractions.")
        return values / 100.0
    return values
