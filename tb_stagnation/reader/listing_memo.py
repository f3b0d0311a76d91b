"""Our plugin's listing of every TensorBoard run, kept between `/runs` answers.

A provider's `list_scalars` answers the newest step and wall time of every
tag, and TensorBoard's Python loader finds them by visiting every stored
point: at 1,000 runs x 300 epochs x 28 tags, 1.1-1.6 s for each `/runs`.
Most runs have not changed since the last answer. This memo asks instead for
a few *sentinel* tags of every run and lists in full only the runs whose
sentinels moved, appeared or vanished.

Why a sentinel sees a new epoch: the callback writes all values of an epoch
in one event (summary/FORMAT.md), so the event that moves any other epoch tag
moves `logs/loss` and `batches/seen` too (Keras's logs and our recorder: two
producers, so one failing does not hide an epoch). `batch/*` points have
their own events and are all sentinels (they exist only when `update_freq`
asks for them; `batch/loss` is asked of every run). The model card,
pre-flight and LR range records are the sentinels of a run without epochs yet.

Two rules keep it exact where a sentinel alone is not:
- TensorBoard's Python loader adds an event's values one at a time, so a
  listing can catch an epoch half loaded. A run listed in full is listed in
  full again at the next answer, and counts as settled only when the two
  listings agree.
- Everything is listed in full again every `refresh_all_seconds`, which bounds
  how stale a run could get if one wrote epochs without any sentinel tag.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tensorboard.data import provider as tb_provider

from tb_stagnation.summary import tags

# tag -> time series, per TensorBoard run: what a provider's listing answers.
Listing = Mapping[str, Mapping[str, Any]]
# Our plugin's scalars and tensors, listed with these filters (None: all).
ListOurs = Callable[
    [tb_provider.RunTagFilter | None, tb_provider.RunTagFilter | None],
    tuple[Listing, Listing],
]

EPOCH_SENTINELS = (tags.LOGS_PREFIX + "loss", tags.BATCHES_SEEN)
# Asked of every run: a run's first batch point comes before its first epoch.
SENTINEL_SCALARS = (*EPOCH_SENTINELS, tags.BATCH_LOSS)
SENTINEL_TENSORS = (tags.MODEL_CARD, tags.PREFLIGHT, tags.LR_RANGE)
# Long enough that a full listing (1-2 s at 1,000 runs with the Python loader)
# is a rare cost; short enough that no run is stale for long.
REFRESH_ALL_SECONDS = 300.0


@dataclass(frozen=True)
class _RunEntry:
    scalars: Mapping[str, Any]
    tensors: Mapping[str, Any]
    # Every tag's newest step and wall time: what two listings must agree on.
    points: frozenset
    settled: bool
    # Scalar tags that show this run's changes (EPOCH_SENTINELS it has, else
    # its newest epoch tag; every batch/* tag).
    sentinels: frozenset[str]


class ListingMemo:
    """The listing of our plugin's data of every run, re-listed per run as it changes.

    One per experiment; `listings` is safe to call from several requests.
    """

    def __init__(
        self,
        refresh_all_seconds: float = REFRESH_ALL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._refresh_all_seconds = refresh_all_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._runs: dict[str, _RunEntry] = {}
        self._listed_all_at: float | None = None

    def listings(self, list_ours: ListOurs) -> tuple[Listing, Listing]:
        """Our scalars and tensors of every run, as `list_ours(None, None)` would answer."""
        # One listing at a time: a second request waits, then lists only what
        # changed since the first (the memo's state is never half updated).
        with self._lock:
            now = self._monotonic()
            if self._listed_all_at is None or now - self._listed_all_at > self._refresh_all_seconds:
                scalars, tensors = list_ours(None, None)
                self._update(set(self._runs) | set(scalars) | set(tensors), scalars, tensors)
                self._listed_all_at = now
            else:
                changed = self._changed_runs(list_ours)
                if changed:
                    only = tb_provider.RunTagFilter(runs=sorted(changed))
                    scalars, tensors = list_ours(only, only)
                    self._update(changed, scalars, tensors)
            return (
                {run: entry.scalars for run, entry in self._runs.items() if entry.scalars},
                {run: entry.tensors for run, entry in self._runs.items() if entry.tensors},
            )

    def _changed_runs(self, list_ours: ListOurs) -> set[str]:
        """Runs to list in full: unsettled, new, gone, or with a sentinel that moved."""
        sentinels = set(SENTINEL_SCALARS).union(*(e.sentinels for e in self._runs.values()))
        scalars, tensors = list_ours(
            tb_provider.RunTagFilter(tags=sorted(sentinels)),
            tb_provider.RunTagFilter(tags=SENTINEL_TENSORS),
        )
        changed = {run for run, entry in self._runs.items() if not entry.settled}
        for run in set(self._runs) | set(scalars) | set(tensors):
            entry = self._runs.get(run)
            if entry is None or not (
                _same(scalars.get(run, {}), entry.scalars, sentinels)
                and _same(tensors.get(run, {}), entry.tensors, SENTINEL_TENSORS)
            ):
                changed.add(run)
        return changed

    def _update(self, runs: Iterable[str], scalars: Listing, tensors: Listing) -> None:
        for run in runs:
            run_scalars, run_tensors = scalars.get(run, {}), tensors.get(run, {})
            if not run_scalars and not run_tensors:
                self._runs.pop(run, None)
                continue
            points = frozenset(
                (kind, tag, _newest(ts))
                for kind, by_tag in (("scalar", run_scalars), ("tensor", run_tensors))
                for tag, ts in by_tag.items()
            )
            previous = self._runs.get(run)
            self._runs[run] = _RunEntry(
                scalars=run_scalars,
                tensors=run_tensors,
                points=points,
                settled=previous is not None and previous.points == points,
                sentinels=_sentinels_of(run_scalars),
            )


def _sentinels_of(scalars: Mapping[str, Any]) -> frozenset[str]:
    batch = {tag for tag in scalars if tag.startswith(tags.BATCH_PREFIX)}
    epoch = {tag: ts for tag, ts in scalars.items() if tag not in batch}
    chosen = {tag for tag in EPOCH_SENTINELS if tag in epoch}
    if not chosen and epoch:
        # A run without either (a custom train_step's logs, a failed recorder):
        # its newest epoch tag.
        chosen = {max(epoch, key=lambda tag: (epoch[tag].max_step, tag))}
    return frozenset(chosen | batch)


def _same(listed: Mapping[str, Any], stored: Mapping[str, Any], sentinels: Iterable[str]) -> bool:
    """Whether the sentinels `listed` now are where the stored full listing had them."""
    for tag in sentinels:
        now, before = listed.get(tag), stored.get(tag)
        if (now is None) != (before is None):
            return False
        if now is not None and _newest(now) != _newest(before):
            return False
    return True


def _newest(ts: Any) -> tuple[int, float | str]:
    wall_time = float(ts.max_wall_time)
    # NaN is not equal to itself: a run whose file holds one would never settle.
    return int(ts.max_step), wall_time if not math.isnan(wall_time) else "nan"
