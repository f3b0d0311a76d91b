"""The stall detector: which epochs made no meaningful progress while the model
was not at a good solution.

Definitions (arrays are indexed by epoch position, not epoch number):

* **Zone** of an epoch: `bad` when the loss is within 10% of the constant-
  predictor loss (or worse) or the accuracy is at the majority-class rate,
  `good` when the loss removed at least half of the constant-predictor loss and
  the accuracy covers at least half of the way from the majority rate to 1,
  `mid` in between. A converged run sits in `good` and is never flagged.
* **No progress** over a window of epochs [s, t]: none of these improved by
  more than a per-epoch tolerance times the window length, relative to the
  best value up to s: the loss below the constant-predictor loss; the accuracy
  above the majority rate; the raw loss and the raw accuracy together (a
  badly initialised model approaching the baseline from above). Learning the
  label frequencies alone (loss falling towards the baseline, accuracy rising
  towards the majority rate, predictions collapsed on one class) is not
  progress, nor is accuracy that ticks while the loss diverges. The first
  step of a window must not be progress itself, so a stall starts where
  progress stopped.
* A window is a **stall** when it spans at least 3 epochs, no epoch in it is
  `good`, and either all of it is `bad`, or (`mid`) there is positive evidence
  that learning stopped: the learning rate collapsed, or the loss oscillates or
  diverges. NaN/Inf losses are always stalled (divergence).

Windows are 3 epochs long at least, so a stall is flagged when its third epoch
is logged: within 2 epochs of its onset, and from the onset, not from epoch 0.
The union of all stall windows gives the flagged epochs; each contiguous run of
them is reported as one window with a kind (plateau, oscillation, divergence).

Runs without label statistics (plain `keras.callbacks.TensorBoard`) have no
baselines; the zone then comes from the curve itself (how far the loss fell and
the accuracy rose since the first epoch), at lower confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tb_stagnation.analysis import series
from tb_stagnation.analysis.baselines import Baselines, nearest_ln_k

ZONE_GOOD = 0
ZONE_MID = 1
ZONE_BAD = 2

KIND_PLATEAU = "plateau"
KIND_OSCILLATION = "oscillation"
KIND_DIVERGENCE = "divergence"

# --- thresholds ---------------------------------------------------------------
# Progress tolerance: a relative loss improvement of 0.5% per epoch (1% over the
# shortest window). Prior art: losslint calls < 1% median improvement a plateau;
# Keras ReduceLROnPlateau's min_delta=1e-4 is absolute and scale-blind, and
# DeepDiagnosis's exact-equality test misses every noisy plateau. Our
# measurement on the scenario runs (tests/scenarios.py): stalled runs move
# < 0.3%/epoch (lr 1e-7: 0.00%; deep sigmoid stack: 0.05-0.2%), healthy runs
# improve 5-25%/epoch until they reach the good zone.
LOSS_TOLERANCE = 0.005
# Without any baseline (curve basis): 0.125% per epoch, a quarter of the
# above. Our measurement: a rate 1/1000 of the default moves the loss < 0.01%
# per epoch; autoencoders and regressions converging towards an unknown floor
# still move 0.3-0.7% per epoch.
CURVE_LOSS_TOLERANCE = 0.00125
# Without a baseline, a loss that fell in every epoch of a window, in a run
# whose loss already fell >= 10% below its first epoch, is converging towards
# a floor we cannot see (a BCE autoencoder's floor is the targets' entropy, not
# 0), not stalled; a rate too small creeps from the start and never gets there.
CURVE_LEARNED_DROP = 0.10
# Progress of a loss still above the constant-predictor loss, when no accuracy
# tells learning from learning the target mean: 5% per epoch (10x the
# tolerance below the baseline). Our measurement: healthy regressions fall
# 25-40% per epoch from a first loss several times the label variance; a
# linear head creeping towards the mean of targets in the hundreds with Adam's
# default rate moves 0.1-3% per epoch.
ABOVE_BASELINE_TOLERANCE = 0.05
# Accuracy tolerance: 0.5 percentage points per epoch (1 point over 3 epochs);
# one probe sample of 256 is 0.4 points.
ACCURACY_TOLERANCE = 0.005
# Window length in epoch steps: 2 steps = 3 epochs, so a stall is flagged at
# its third epoch (issue: "within 3 epochs of onset").
MIN_LAG = 2
# Longest window examined; longer stalls are covered by overlapping windows.
MAX_LAG = 30
# Cells of the [lag, start] arrays `detect` makes at once.
_WINDOW_CELLS = 1 << 15

# Zones. Fraction g = 1 - loss / constant_loss of the constant-predictor loss
# the model removed (for MSE this is R^2). g < 0.1 is "at the baseline": a model
# that only learned the label frequencies lands at g ~ 0 +- 0.03 in our runs.
G_BAD = 0.1
# g >= 0.5 and accuracy >= majority + 0.5 * (1 - majority) is "converged well
# above the baseline" (issue: "accuracy well above the majority-class rate").
G_GOOD = 0.5
ACCURACY_GOOD_FRACTION = 0.5
# "At the majority rate": within max(1 point, 5% of the room above it).
ACCURACY_BAD_MIN_MARGIN = 0.01
ACCURACY_BAD_FRACTION = 0.05
# Collapsed predictions: >= 99% of the probe predicted as one class (2 samples
# of a 256-sample probe may differ). While collapsed, a falling loss is the
# output bias learning the label frequencies, not progress.
COLLAPSED_TOP_SHARE = 0.99
# A constant-predictor loss below this carries no scale (constant labels).
MIN_BASELINE = 1e-6

# Curve-only zones (no label statistics). Our choice, deliberately cautious:
# "good" = accuracy >= 95%, or the loss fell by half since the first epoch
# while accuracy rose 5 points; "bad" = loss at ln K, or the loss fell by less
# than a quarter and accuracy rose by less than 10 points since the first epoch.
CURVE_GOOD_ACCURACY = 0.95
CURVE_GOOD_LOSS_DROP = 0.5
CURVE_GOOD_ACCURACY_GAIN = 0.05
CURVE_BAD_LOSS_DROP = 0.25
CURVE_BAD_ACCURACY_GAIN = 0.10

# A cross-entropy below this is impossible for valid labels (float error
# stays far above it).
NEGATIVE_CROSSENTROPY = -1e-4
# Accuracy identical (to float32 round-off of a mean) in this many epochs in a
# row means no predicted class changed: a stall when no label statistics exist.
# Five epochs: a healthy model on a few hundred samples changes at least one
# prediction in five epochs unless it has converged at ~100% (excluded below).
FROZEN_ACCURACY_EPOCHS = 5
FROZEN_ACCURACY_TOLERANCE = 1e-7
FROZEN_ACCURACY_MAX = 0.99

# Learning-rate collapse: the rate fell to <= 1% of its earlier maximum (a
# schedule "driving it to nothing"; ReduceLROnPlateau's factor 0.1 needs two
# reductions to get there).
LR_COLLAPSE_RATIO = 0.01

# Oscillation: AUTOTRAINER flags accuracy swings >= 0.03 in >= 20% of epochs;
# we use the same share with accuracy swings >= 3 points or loss swings >= 3%.
SWING_LOSS = 0.03
SWING_ACCURACY = 0.03
SWING_SHARE = 0.2
# Divergence: the loss rose to at least twice its best value so far.
DIVERGENCE_FACTOR = 2.0

_EPS = 1e-12


@dataclass
class StallWindow:
    start: int  # index of the first stalled epoch
    end: int  # index of the last stalled epoch (inclusive)
    kind: str
    confidence: float


@dataclass
class StallResult:
    flagged: np.ndarray  # bool [n]
    windows: list[StallWindow] = field(default_factory=list)
    zone: np.ndarray | None = None  # int8 [n]
    lr_collapsed: np.ndarray | None = None  # bool [n]
    basis: str = "none"  # "baseline" | "curve" | "none"

    @property
    def any(self) -> bool:
        return bool(self.flagged.any())


def _margin(majority: float) -> float:
    return max(ACCURACY_BAD_MIN_MARGIN, ACCURACY_BAD_FRACTION * (1.0 - majority))


def usable_constant_loss(base: Baselines) -> float | None:
    value = base.constant_loss
    if value is None or not math.isfinite(value) or value <= MIN_BASELINE:
        return None
    return float(value)


def usable_accuracy_baseline(base: Baselines, acc: np.ndarray | None) -> float | None:
    value = base.accuracy_baseline
    if acc is None or value is None or not math.isfinite(value) or value >= 0.999:
        return None
    return float(value)


def clearly_learned_accuracy(acc: np.ndarray | None, base: Baselines, n: int) -> np.ndarray:
    """Where the accuracy covers at least half of the way from the majority rate
    (or, labels unknown, the chance rate 1/C) to 1: no noise can do that."""
    reference = usable_accuracy_baseline(base, acc)
    if reference is None:
        reference = base.chance_accuracy
    return _far_above(acc, reference, n)


def _far_above(acc: np.ndarray | None, reference: float | None, n: int) -> np.ndarray:
    """Where the accuracy covers at least half of the way from `reference` to 1."""
    if acc is None or reference is None:
        return np.zeros(n, dtype=bool)
    with np.errstate(invalid="ignore"):
        return acc >= reference + ACCURACY_GOOD_FRACTION * (1.0 - reference)


def zones(loss: np.ndarray, acc: np.ndarray | None, base: Baselines) -> tuple[np.ndarray, str]:
    """Zone of every epoch and the basis it was judged on."""
    n = loss.shape[0]
    finite = np.isfinite(loss)
    constant = usable_constant_loss(base)
    majority = usable_accuracy_baseline(base, acc)
    clearly_learned = clearly_learned_accuracy(acc, base, n)
    bad = np.zeros(n, dtype=bool)
    good = np.ones(n, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        if constant is not None or majority is not None:
            if constant is not None:
                g = 1.0 - loss / constant
                bad |= ~(g >= G_BAD)
                good &= g >= G_GOOD
            # A high loss with an accuracy far above the majority rate (or, labels
            # unknown, chance) is an overconfident model (unscaled inputs make
            # huge logits), not one at the baseline: it is not "bad".
            bad &= ~clearly_learned
            if majority is not None:
                assert acc is not None  # usable_accuracy_baseline needs an accuracy
                bad |= acc <= majority + _margin(majority)
                good &= clearly_learned
            basis = "baseline"
        else:
            basis = "curve"
            first = np.flatnonzero(finite)
            if first.size == 0:
                return np.full(n, ZONE_BAD, dtype=np.int8), basis
            l0 = loss[first[0]]
            drop = (l0 - loss) / max(abs(l0), _EPS)
            near_ln_k = np.array([nearest_ln_k(float(v)) is not None for v in loss], dtype=bool)
            if acc is not None:
                acc_finite = np.flatnonzero(np.isfinite(acc))
                a0 = acc[acc_finite[0]] if acc_finite.size else np.nan
                gain = acc - a0
                good = (acc >= CURVE_GOOD_ACCURACY) | (
                    (drop >= CURVE_GOOD_LOSS_DROP) & (gain >= CURVE_GOOD_ACCURACY_GAIN)
                )
                bad = near_ln_k | (
                    ~(drop >= CURVE_BAD_LOSS_DROP) & ~(gain >= CURVE_BAD_ACCURACY_GAIN)
                )
            else:
                good = drop >= CURVE_GOOD_LOSS_DROP
                bad = near_ln_k | ~(drop >= CURVE_BAD_LOSS_DROP)
            bad &= ~good
    zone = np.where(bad, ZONE_BAD, np.where(good, ZONE_GOOD, ZONE_MID)).astype(np.int8)
    zone[~finite] = ZONE_BAD
    return zone, basis


def lr_collapse(lr: np.ndarray | None, n: int) -> np.ndarray:
    """True where the learning rate is <= 1% of its maximum so far."""
    if lr is None:
        return np.zeros(n, dtype=bool)
    rate = np.where(np.isfinite(lr) & (lr >= 0), lr, np.nan)
    running = np.fmax.accumulate(np.where(np.isnan(rate), -np.inf, rate))
    with np.errstate(invalid="ignore"):
        return (rate <= LR_COLLAPSE_RATIO * running) & (running > 0)


def swings(loss: np.ndarray, acc: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per step j (from j-1 to j): a swing (loss moved >= 3% or accuracy >= 3 points),
    and an upswing (the loss rose >= 3% or the accuracy fell >= 3 points)."""
    n = loss.shape[0]
    swing = np.zeros(n, dtype=bool)
    up = np.zeros(n, dtype=bool)
    if n < 2:
        return swing, up
    with np.errstate(invalid="ignore", divide="ignore"):
        previous = np.maximum(np.abs(loss[:-1]), _EPS)
        change = (loss[1:] - loss[:-1]) / previous
        swing[1:] = np.abs(change) >= SWING_LOSS
        up[1:] = change >= SWING_LOSS
        if acc is not None:
            step = acc[1:] - acc[:-1]
            swing[1:] |= np.abs(step) >= SWING_ACCURACY
            up[1:] |= step <= -SWING_ACCURACY
    return swing, up


class _Track:
    """One series whose improvement over windows of epochs counts as progress.

    Stored as "lower is better"; a missing or excluded epoch is +inf (it never
    improves a window). `best[s]` is the best value up to s; a window (s, s + lag]
    holds the best value over its epochs (`_window_extremes`).
    """

    def __init__(
        self,
        values: np.ndarray,
        *,
        higher_is_better: bool,
        relative: bool,
        tolerance,
        excluded: np.ndarray | None = None,
    ):
        sign = -1.0 if higher_is_better else 1.0
        values = sign * np.asarray(values, dtype=np.float64)
        reference = np.where(np.isnan(values), np.inf, values)
        # An excluded epoch (collapsed predictions) never counts as progress
        # itself, but its value still is where a window starts from: right after
        # initialisation nearly every input gets the same class, and a model
        # that leaves that state is learning (issue: windows from epoch 0 had
        # nothing to compare with and read as "no progress").
        self.values = reference if excluded is None else np.where(excluded, np.inf, reference)
        self.best = np.minimum.accumulate(reference)
        self.relative = relative
        self.tolerance = tolerance

    def progressed(self, starts: np.ndarray, lags: np.ndarray) -> np.ndarray:
        """[lag, start]: whether the window (s, s + lag] improved on the best
        value up to s by more than the tolerance per epoch. `starts` and `lags`
        are consecutive; cells whose window runs past the end are meaningless
        (the caller masks them)."""
        window = _window_extremes(self.values, starts, lags, np.minimum, np.inf)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            reference = self.best[starts]
            gain = reference - window
            if self.relative:
                gain = gain / np.maximum(np.abs(reference), _EPS)
            # No valid value before the window: nothing to have progressed from.
            return (gain > self.tolerance * lags[:, None]) & np.isfinite(reference)


def _window_extremes(
    values: np.ndarray, starts: np.ndarray, lags: np.ndarray, extreme: np.ufunc, pad: float
) -> np.ndarray:
    """[lag, start]: `extreme` (np.minimum or np.maximum) of values[s + 1 .. s + lag]
    for consecutive `starts` and `lags`, `pad` past the end. Each window is the
    one a lag shorter and one more epoch: one accumulation over a strided view
    whose row l is the epochs l + 1 after each start."""
    first, longest = int(starts[0]), int(lags[-1])
    needed = len(starts) + longest - 1
    segment = values[first + 1 : first + 1 + needed]
    if len(segment) < needed:
        segment = np.concatenate([segment, np.full(needed - len(segment), pad)])
    shifted = np.lib.stride_tricks.sliding_window_view(segment, len(starts))
    return extreme.accumulate(shifted, axis=0)[int(lags[0]) - 1 :]


def _criteria(
    loss: np.ndarray,
    acc: np.ndarray | None,
    constant: float | None,
    majority: float | None,
    excluded: np.ndarray,
    clearly_learned: np.ndarray | None = None,
) -> list[list[_Track]]:
    """Ways a window can show progress; a criterion holds when all its tracks improve.

    With a constant-predictor loss C: the loss improving below C; the accuracy
    improving above the majority rate; or (approaching C from above, as a
    badly initialised model does) the raw loss falling *and* the raw accuracy
    rising together. Learning the label frequencies alone (loss falling towards
    C, accuracy rising towards the majority rate, predictions collapsed on one
    class) satisfies none of them. Without accuracy (regression), the loss
    improving below C, or falling by ABOVE_BASELINE_TOLERANCE per epoch above it.
    Without baselines: the raw loss or the raw accuracy improving.
    `excluded` epochs (non-finite loss, collapsed predictions) never count.
    """

    def loss_track(values, tolerance=LOSS_TOLERANCE):
        values = np.where(nonfinite, np.nan, values)
        return _Track(
            values,
            higher_is_better=False,
            relative=True,
            tolerance=tolerance,
            excluded=excluded,
        )

    def acc_track(values):
        return _Track(
            values,
            higher_is_better=True,
            relative=False,
            tolerance=ACCURACY_TOLERANCE,
            excluded=excluded,
        )

    nonfinite = ~np.isfinite(loss)
    if acc is not None:
        # Accuracy that ticks up while the loss is NaN, more than twice its best
        # so far, or more than twice the constant-predictor loss (an exploding
        # model) is noise, not learning.
        best = np.fmin.accumulate(loss)
        with np.errstate(invalid="ignore"):
            diverged = nonfinite | ~(loss <= DIVERGENCE_FACTOR * np.abs(best))
            if constant is not None:
                # ... unless the accuracy is far above the majority (or chance)
                # rate: that much is no noise, whatever the loss says.
                exploded = ~(loss <= DIVERGENCE_FACTOR * constant)
                if clearly_learned is not None:
                    exploded &= ~clearly_learned
                diverged |= exploded
        acc = np.where(diverged, np.nan, acc)
    if constant is None:
        # No baseline says where the floor is: a loss still falling steadily,
        # even slowly, may be converging towards it, so only a loss that is
        # essentially flat (as a rate too small leaves it) counts as no progress.
        criteria = [[loss_track(loss, CURVE_LOSS_TOLERANCE)]]
        if acc is not None:
            criteria.append([acc_track(acc)])
        return criteria
    if acc is None:
        # Above the constant-predictor loss a falling loss may only be the model
        # learning the target mean (the regression twin of learning the label
        # frequencies), so it counts there when it falls decisively: at least
        # ABOVE_BASELINE_TOLERANCE per epoch. Below the baseline every
        # improvement counts.
        return [
            [loss_track(np.minimum(loss, constant))],
            [loss_track(loss, ABOVE_BASELINE_TOLERANCE)],
        ]
    criteria = [[loss_track(np.minimum(loss, constant))]]
    if majority is not None:
        criteria.append([acc_track(np.maximum(acc, majority + _margin(majority)))])
        criteria.append([loss_track(loss), acc_track(acc)])
    else:
        criteria.append([acc_track(acc)])
    return criteria


def _one_epoch_drops(values: np.ndarray | None, n: int) -> np.ndarray:
    """True at epoch j when the value fell >= 100x from epoch j-1 to j."""
    drops = np.zeros(n, dtype=bool)
    if values is None or n < 2:
        return drops
    rate = np.where(np.isfinite(values) & (values >= 0), values, np.nan)
    with np.errstate(invalid="ignore"):
        drops[1:] = (rate[1:] <= LR_COLLAPSE_RATIO * rate[:-1]) & (rate[:-1] > 0)
    return drops


def detect(
    loss: np.ndarray,
    acc: np.ndarray | None,
    base: Baselines,
    lr: np.ndarray | None = None,
    collapsed_predictions: np.ndarray | None = None,
    update_ratio: np.ndarray | None = None,
    classifier: bool | None = None,
    rate_extreme: np.ndarray | None = None,
) -> StallResult:
    """Flag stalled epochs. `loss`, `acc`, `lr` are aligned float arrays (NaN allowed);
    `collapsed_predictions` marks epochs where (nearly) every probe sample got
    the same class, when the run logged predictions; `update_ratio` is the
    epoch's weight update norm over the weight norm, when logged."""
    loss = np.asarray(loss, dtype=np.float64).reshape(-1)
    n = loss.shape[0]
    if acc is not None:
        acc = np.asarray(acc, dtype=np.float64).reshape(-1)
        if acc.shape[0] != n or not np.isfinite(acc).any():
            acc = None
    flagged = np.zeros(n, dtype=bool)
    if n == 0:
        return StallResult(flagged=flagged)
    finite = np.isfinite(loss)
    if base.loss_kind == "crossentropy":
        # A cross-entropy below zero is no cross-entropy: the labels lie outside
        # what the loss expects (labels 0..9 into one sigmoid unit), and its
        # fall towards -inf is not learning.
        with np.errstate(invalid="ignore"):
            negative = loss < NEGATIVE_CROSSENTROPY
        loss = np.where(negative, np.nan, loss)
    else:
        negative = np.zeros(n, dtype=bool)
    zone, basis = zones(loss, acc, base)
    zone[negative] = ZONE_BAD
    collapsed = lr_collapse(lr, n)
    update_gone = lr_collapse(update_ratio, n)
    stopped = collapsed | update_gone
    # Where the step size was cut to <= 1% of its maximum: the learning rate
    # reaching it (at once, or by a schedule's last cut), or the updates falling
    # >= 100x in one epoch. With real progress right before, the run "stopped",
    # told apart from "converged": progress slowing towards a floor before any
    # cut (ReduceLROnPlateau cuts after a plateau), updates shrinking
    # geometrically as the gradient vanishes at an optimum.
    cliff = collapsed.copy()
    cliff[1:] &= ~collapsed[:-1]
    cliff |= _one_epoch_drops(update_ratio, n) & update_gone
    swing, up = swings(loss, acc)
    constant = usable_constant_loss(base)
    majority = usable_accuracy_baseline(base, acc)
    excluded = ~finite
    if collapsed_predictions is not None and collapsed_predictions.shape == (n,):
        excluded = excluded | collapsed_predictions
    criteria = _criteria(
        np.where(finite, loss, np.nan),
        acc,
        constant,
        majority,
        excluded,
        clearly_learned_accuracy(acc, base, n),
    )

    raw = np.where(finite, loss, np.nan)
    raw_for_max = np.where(finite, loss, np.inf)
    best_raw = np.fmin.accumulate(raw)

    def prefix(mask: np.ndarray) -> np.ndarray:
        return np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))

    not_good = prefix(zone != ZONE_GOOD)
    bad = prefix(zone == ZONE_BAD)
    collapsed_sum = prefix(collapsed)
    stopped_sum = prefix(stopped)
    # A learning rate >= 100x or <= 1/100 of the rate the optimizer is designed
    # for is, like a collapsed rate, positive evidence that a flat loss above
    # the good zone is a stall and not slow learning.
    extreme = (
        rate_extreme
        if rate_extreme is not None and rate_extreme.shape == (n,)
        else np.zeros(n, dtype=bool)
    )
    extreme_sum = prefix(extreme)
    swing_sum = prefix(swing)
    up_sum = prefix(up)
    falling = np.zeros(n, dtype=bool)
    learned_before = np.zeros(n, dtype=bool)
    if basis == "curve" and finite.any():
        with np.errstate(invalid="ignore"):
            falling[1:] = raw[1:] < raw[:-1]
            first_loss = abs(float(raw[np.flatnonzero(finite)[0]]))
            learned_before = best_raw <= (1.0 - CURVE_LEARNED_DROP) * first_loss
    falling_sum = prefix(falling)

    def progress(starts: np.ndarray, lags: np.ndarray) -> np.ndarray:
        progressed = np.zeros((len(lags), len(starts)), dtype=bool)
        for criterion in criteria:
            met = np.ones((len(lags), len(starts)), dtype=bool)
            for track in criterion:
                met &= track.progressed(starts, lags)
            progressed |= met
        return progressed

    marks = np.zeros(n + 1, dtype=np.int64)
    max_lag = min(MAX_LAG, n - 1)
    # A window must not open with a step of real progress: a stall starts
    # where progress stopped (the epoch of the learning-rate drop), not one
    # epoch earlier because a long window averages the last good step away.
    first_step = np.zeros(n, dtype=bool)
    if max_lag >= 1:
        first_step[: n - 1] = progress(np.arange(n - 1), np.array([1]))[0]
    # A run that learned and then stopped: the step size fell off a cliff at
    # epoch c right after real progress (into c-1 or c). It is a stall from c
    # even in the good zone, where a run that converged gradually is never
    # flagged.
    stopped_after_progress = cliff.copy()
    stopped_after_progress[:2] = False
    learning_before = np.zeros(n, dtype=bool)
    learning_before[2:] = first_step[1 : n - 1] | first_step[: n - 2]
    stopped_after_progress &= learning_before

    # Every window (s, s + lag] of MIN_LAG..MAX_LAG steps at once, [lag, start],
    # a block of starts at a time (bounded memory however long the run).
    lags = np.arange(MIN_LAG, max_lag + 1)
    block = max(1, _WINDOW_CELLS // max(len(lags), 1))
    for first in range(0, (n - MIN_LAG) if len(lags) else 0, block):
        starts = np.arange(first, min(first + block, n - MIN_LAG))
        ends = starts[None, :] + lags[:, None]
        inside = ends < n
        end = np.minimum(ends, n - 1)
        span = lags[:, None]
        progressed = progress(starts, lags) | first_step[starts]
        window_max_raw = _window_extremes(raw_for_max, starts, lags, np.maximum, -np.inf)
        with np.errstate(invalid="ignore"):
            diverging = window_max_raw >= DIVERGENCE_FACTOR * np.abs(best_raw[starts])
            if constant is not None:
                diverging &= window_max_raw > constant
        no_good = (not_good[end + 1] - not_good[starts]) == span + 1
        all_bad = (bad[end + 1] - bad[starts]) == span + 1
        converging = learned_before[starts] & (
            (falling_sum[end + 1] - falling_sum[starts + 1]) == span
        )
        all_bad &= ~converging
        lr_gone = (collapsed_sum[end + 1] - collapsed_sum[starts + 1]) == span
        swings_needed = np.maximum(1, np.ceil(SWING_SHARE * lags)).astype(np.int64)[:, None]
        oscillating = ((swing_sum[end + 1] - swing_sum[starts + 1]) >= swings_needed) & (
            (up_sum[end + 1] - up_sum[starts + 1]) >= 1
        )
        rate_off = (extreme_sum[end + 1] - extreme_sum[starts]) == span + 1
        stalled = ~progressed & no_good & (all_bad | lr_gone | oscillating | diverging | rate_off)
        stalled |= (
            ~progressed
            & stopped_after_progress[starts]
            & ((stopped_sum[end + 1] - stopped_sum[starts]) == span + 1)
        )
        stalled &= inside
        if stalled.any():
            lag_index, start_index = np.nonzero(stalled)
            np.add.at(marks, starts[start_index], 1)
            np.add.at(marks, ends[lag_index, start_index] + 1, -1)
    flagged = np.cumsum(marks[:n]) > 0
    flagged |= ~finite | negative
    if base.source != "labels" and classifier is not False and acc is not None:
        # Unless the accuracy is far above chance: a model that learned and
        # now improves its loss on inputs it already classifies right (a few
        # distinct inputs, a small data set) keeps its accuracy too.
        learned = _far_above(acc, base.chance_accuracy or 0.5, n)
        flagged |= _frozen_accuracy(acc, require_nonzero=classifier is None) & ~learned

    windows = []
    for first, last in series.segments(flagged):
        windows.append(
            _describe(
                first,
                last,
                loss,
                zone,
                collapsed,
                swing,
                up,
                basis,
                constant,
                base.source in ("estimated", "output"),
            )
        )
    return StallResult(
        flagged=flagged,
        windows=windows,
        zone=zone,
        lr_collapsed=collapsed,
        basis=basis,
    )


def _frozen_accuracy(acc: np.ndarray, require_nonzero: bool) -> np.ndarray:
    """Epochs inside runs of >= FROZEN_ACCURACY_EPOCHS epochs whose accuracy is
    exactly the same: no predicted class changed. Without label statistics this
    is what shows a stall whose loss still moves (a softmax over one unit, a
    negative cross-entropy, a model that predicts the majority class while its
    loss creeps). A model at (nearly) 100% accuracy is left alone; so is an
    accuracy of exactly 0 when nothing says the model classifies (the "accuracy"
    of a regression). The caller also leaves alone an accuracy far above chance."""
    n = acc.shape[0]
    out = np.zeros(n, dtype=bool)
    if n < FROZEN_ACCURACY_EPOCHS:
        return out
    with np.errstate(invalid="ignore"):
        same = np.zeros(n, dtype=bool)
        same[1:] = np.abs(acc[1:] - acc[:-1]) <= FROZEN_ACCURACY_TOLERANCE
        usable = np.isfinite(acc) & (acc < FROZEN_ACCURACY_MAX)
        if require_nonzero:
            usable &= acc > 0
    for first, last in series.segments(same):
        start = first - 1  # the epoch the run of equal values starts from
        if last - start + 1 >= FROZEN_ACCURACY_EPOCHS and usable[start : last + 1].all():
            out[start : last + 1] = True
    return out


def _describe(
    first: int,
    last: int,
    loss: np.ndarray,
    zone: np.ndarray,
    collapsed: np.ndarray,
    swing: np.ndarray,
    up: np.ndarray,
    basis: str,
    constant: float | None,
    estimated: bool,
) -> StallWindow:
    part = loss[first : last + 1]
    nonfinite = not np.isfinite(part).all()
    before = loss[: first + 1]
    before = before[np.isfinite(before)]
    best_before = float(before.min()) if before.size else None
    peak = series.finite_max(part)
    rising = (
        best_before is not None
        and peak is not None
        and peak >= DIVERGENCE_FACTOR * abs(best_before)
        and (constant is None or peak > constant)
        and peak > best_before
    )
    steps = last - first
    swing_count = int(swing[first + 1 : last + 1].sum()) if steps else 0
    up_count = int(up[first + 1 : last + 1].sum()) if steps else 0
    if nonfinite or rising:
        kind = KIND_DIVERGENCE
    elif steps and up_count and swing_count >= max(1, math.ceil(SWING_SHARE * steps)):
        kind = KIND_OSCILLATION
    else:
        kind = KIND_PLATEAU

    if nonfinite:
        confidence = 0.95
    elif basis == "baseline":
        share_bad = float((zone[first : last + 1] == ZONE_BAD).mean())
        confidence = 0.9 if share_bad >= 0.5 else 0.75
        if estimated:  # ln K guessed from the curve, not measured from labels
            confidence -= 0.2
    else:
        confidence = 0.55
        if any(nearest_ln_k(float(v)) is not None for v in part if np.isfinite(v)):
            confidence += 0.15
        if collapsed[first : last + 1].any() or kind == KIND_DIVERGENCE:
            confidence += 0.15
    return StallWindow(start=first, end=last, kind=kind, confidence=min(confidence, 0.95))
