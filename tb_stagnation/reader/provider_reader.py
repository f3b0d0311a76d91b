"""Reads logical runs out of any TensorBoard `DataProvider` into `RunData`.

The plugin hands it `context.data_provider`; the CLI hands it the provider of
the logdir it opened. Going through the provider (never the event files) is
what makes the Rust data server, remote logdirs and TensorBoard's reloads work.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Any

import numpy as np
from tensorboard import context as tb_context
from tensorboard import errors as tb_errors
from tensorboard.data import provider as tb_provider

from tb_stagnation.analysis.run_data import SOURCE_CALLBACK, SOURCE_KERAS, SOURCE_SCALARS, RunData
from tb_stagnation.reader import keras_config, keras_histograms, other_tools, run_names
from tb_stagnation.reader.decode_bounds import TooLargeError, bounded_decoding
from tb_stagnation.reader.errors import UnknownRunError
from tb_stagnation.reader.listing_memo import Listing, ListingMemo
from tb_stagnation.reader.point_series import (
    ScalarSeries,
    TensorSeries,
    positions_in,
    union_of_steps,
)
from tb_stagnation.summary import metadata, tags
from tb_stagnation.summary.lr_range_record import parse_lr_range_record

# TensorBoard's built-in scalars plugin: what keras.callbacks.TensorBoard writes.
_KERAS_PLUGIN = "scalars"
# Where keras.callbacks.TensorBoard(write_graph=True) puts `model.to_json()`.
_KERAS_MODEL_PLUGIN = "graph_keras_model"
_KERAS_MODEL_TAG = "keras"
# Scalar tags keras.callbacks.TensorBoard writes (update_freq="batch" adds batch_*).
_KERAS_TAG_PREFIXES = (tags.KERAS_EPOCH_PREFIX, "batch_")
# A model config larger than this is no model we can use (a hostile file).
_MAX_KERAS_CONFIG_BYTES = 32 << 20
_KERAS_CONFIG_UNUSABLE = (
    "The model config logged by keras.callbacks.TensorBoard is unreadable; the "
    "static checks were skipped."
)
# Ask for every point. The provider's own retention (samples_per_plugin, which
# our TBLoader sets to "all" for this plugin) is the only limit.
_ALL_POINTS = 1 << 30

_KNOWN_SCALAR_PREFIXES = (
    tags.LOGS_PREFIX,
    "optimizer/",
    "gradients/",
    "weights/",
    "updates/",
    "predictions/",
    "inputs/",
    "batches/",
    "labels/",
)
_KNOWN_TENSOR_TAGS = frozenset(tags.LAYER_STATS) | {
    tags.LABEL_CLASS_COUNTS,
    tags.MODEL_CARD,
    tags.PREFLIGHT,
    tags.LR_RANGE,
}
# What TensorBoard's loaders raise on a value they cannot decode into numpy.
_DATA_ERRORS = (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError)
# Cells of one [epochs, width] matrix (a `layers/*` tag, the class counts):
# 16M float64, 128 MB. Every vector is bounded (decode_bounds), but a few
# epochs of a huge width beside thousands of narrow ones would still make a
# matrix of billions of cells.
MAX_MATRIX_CELLS = 1 << 24
# Why a tag was skipped, per TensorBoard run: tag -> one of these.
_MALFORMED = "malformed"
_TOO_LARGE = "too large"
# Runs the provider calls of a listing side by side (see `_all_at_once`).
# Enough for a few requests at once; more only queue, never deadlock (a
# caller runs one call itself and the pool's calls wait on nothing).
_LISTING_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tb_stagnation_list")


@dataclass(frozen=True)
class RunListing:
    """What is cheap to know about a logical run: enough to list it and to
    tell whether it changed since it was last analysed."""

    name: str
    source: str
    max_step: int  # the newest epoch (batch/* tags aside)
    updated: float
    members: Mapping[str, str]
    # Tags that reached `max_step`: TensorBoard's Python loader adds an event's
    # values one at a time, so this grows while the newest epoch is loading.
    newest_tags: int = 0

    @property
    def fingerprint(self) -> tuple:
        return (self.source, self.max_step, self.updated, self.newest_tags)


class ProviderReader:
    """Lists and reads logical runs through one data provider."""

    def __init__(
        self,
        data_provider: tb_provider.DataProvider,
        ctx: tb_context.RequestContext | None = None,
        experiment_id: str = "",
        loss_tag: str | None = None,
    ) -> None:
        """`loss_tag` names the training loss of runs written by other tools;
        by default it is found by name (reader/other_tools.py)."""
        self._provider = data_provider
        self._ctx = ctx or tb_context.RequestContext()
        self._experiment_id = experiment_id
        self._loss_tag = loss_tag

    # -- listing --------------------------------------------------------------

    def list_runs(self, memo: ListingMemo | None = None) -> dict[str, RunListing]:
        """Every logical run with our data or Keras's epoch scalars.

        With `memo` (kept between calls, one per experiment), our data is
        listed in full only for the runs that changed since its last use.
        """
        (ours, our_tensors), keras = _all_at_once(
            (lambda: self._list_ours(None, None))
            if memo is None
            else (lambda: memo.listings(self._list_ours)),
            lambda: self._list_scalars(_KERAS_PLUGIN),
        )
        grouped = run_names.group_runs(list(ours) + list(our_tensors) + list(keras))
        # Before the loop: a custom loop's `test/` folder joins its `train/` sibling.
        ungrouped = run_names.ungrouped_runs(keras, grouped)
        listings = {}
        for name, logical in grouped.items():
            stagnation_run = logical.member(run_names.ROLE_STAGNATION)
            our_series = {
                **our_tensors.get(stagnation_run or "", {}),
                **ours.get(stagnation_run or "", {}),
            }
            # An LR range test's record alone (`lr_range_test(log_dir=D)` before
            # any fit with our callback) makes no callback run: the epochs, if
            # any, are Keras's or another tool's, and the record joins them.
            record = our_series.get(tags.LR_RANGE)
            if set(our_series) == {tags.LR_RANGE}:
                our_series = {}
            if our_series:
                series = list(our_series.values())
                epoch_series = [
                    ts for tag, ts in our_series.items() if not tag.startswith(tags.BATCH_PREFIX)
                ]
                source = SOURCE_CALLBACK
            else:
                series = [
                    ts
                    for role in (run_names.ROLE_TRAIN, run_names.ROLE_VALIDATION)
                    for tag, ts in keras.get(logical.member(role) or "", {}).items()
                    if tag.startswith(tags.KERAS_EPOCH_PREFIX)
                ]
                if not series:
                    other = self._other_tool_listing(logical, keras, record)
                    if other is not None:
                        listings[name] = other
                    elif record is not None:
                        # Only the record: a run with no epoch yet, which shows the test.
                        listings[name] = RunListing(
                            name=name,
                            source=SOURCE_CALLBACK,
                            max_step=record.max_step,
                            updated=_newest_wall_time([record]),
                            members=dict(logical.members),
                        )
                    continue
                epoch_series = series
                source = SOURCE_KERAS
            max_step = max(ts.max_step for ts in epoch_series or series)
            listings[name] = RunListing(
                name=name,
                source=source,
                max_step=max_step,
                # A record added later changes the answer: it counts as an update.
                updated=_newest_wall_time([*series, *([record] if record else [])]),
                members=dict(logical.members),
                newest_tags=sum(1 for ts in epoch_series if ts.max_step == max_step),
            )
        for name, logical in ungrouped.items():
            other = self._other_tool_listing(logical, keras)
            if other is not None:
                listings.setdefault(name, other)
        return listings

    def _other_tool_listing(
        self,
        logical: run_names.LogicalRun,
        scalars: Mapping[str, Mapping[str, Any]],
        record: Any = None,
    ) -> RunListing | None:
        """A run of another tool's scalars, listed when a training loss is found
        among its tags by name (or is the `loss_tag` given)."""
        train = logical.member(run_names.ROLE_TRAIN) or logical.member(run_names.ROLE_SCALARS)
        by_tag = scalars.get(train or "", {})
        if any(tag.startswith(_KERAS_TAG_PREFIXES) for tag in by_tag):
            return None  # Keras's own callback, before its first epoch ended
        curves = other_tools.find_curve_tags(by_tag, self._loss_tag)
        if curves is None:
            return None
        series = [
            ts for member in logical.members.values() for ts in scalars.get(member, {}).values()
        ]
        max_step = max(ts.max_step for ts in series)
        return RunListing(
            name=logical.name,
            source=SOURCE_SCALARS,
            max_step=max_step,
            updated=_newest_wall_time([*series, *([record] if record else [])]),
            members=dict(logical.members),
            newest_tags=sum(1 for ts in series if ts.max_step == max_step),
        )

    # -- reading --------------------------------------------------------------

    def read_run(self, name: str) -> RunData:
        """One logical run; raises UnknownRunError when the logdir lacks it."""
        listings = self.list_runs()
        if name not in listings:
            raise UnknownRunError(name)
        return self.read_runs([listings[name]])[0]

    def read_runs(self, listings: Iterable[RunListing]) -> list[RunData]:
        """Several runs, with one provider call per data kind for all of them.

        Each run is read as a listing taken just before the reads saw it:
        epochs after its newest step are left out. TensorBoard may load more
        between one read and the next (scalars, then tensors); without the
        cut an answer could hold an epoch that some tags have and others not.

        An exception while reading stays with its run: the batch is read
        again run by run, and a run that still fails comes back empty, its
        `error` saying why. TensorBoard's own errors meant for the user (an
        unknown experiment) are raised as they are.
        """
        listings = list(listings)
        try:
            return self._read_runs(listings)
        except tb_errors.PublicError:
            raise
        except Exception as error:  # noqa: BLE001 - one bad run must not hide the others
            if len(listings) == 1:
                return [_unreadable_run(listings[0], error)]
        return [run for listing in listings for run in self.read_runs([listing])]

    def _read_runs(self, listings: list[RunListing]) -> list[RunData]:
        callback_runs = [
            listing.members[run_names.ROLE_STAGNATION]
            for listing in listings
            if listing.source == SOURCE_CALLBACK
        ]
        keras_runs = [
            member
            for listing in listings
            if listing.source in (SOURCE_KERAS, SOURCE_SCALARS)
            for role, member in listing.members.items()
            if role != run_names.ROLE_STAGNATION
        ]
        our_scalars: Mapping[str, Mapping[str, ScalarSeries]] = {}
        our_tensors: Mapping[str, Mapping[str, TensorSeries]] = {}
        our_contents: dict[str, dict[str, bytes]] = {}
        newest: dict[str, int] = {}
        skipped: dict[str, dict[str, str]] = {}  # TensorBoard run -> tag -> why skipped
        if callback_runs:
            our_contents, newest = self._plugin_contents(callback_runs)
            our_scalars = self._read_scalars(metadata.PLUGIN_NAME, callback_runs, skipped)
            our_tensors = self._read_tensors(metadata.PLUGIN_NAME, callback_runs, skipped)
        keras_scalars = self._read_scalars(_KERAS_PLUGIN, keras_runs, skipped) if keras_runs else {}
        # Runs of Keras or another tool whose stagnation/ folder holds an LR range test.
        record_runs = [
            listing.members[run_names.ROLE_STAGNATION]
            for listing in listings
            if listing.source != SOURCE_CALLBACK and run_names.ROLE_STAGNATION in listing.members
        ]
        record_contents: dict[str, dict[str, bytes]] = {}
        record_tensors: Mapping[str, Mapping[str, TensorSeries]] = {}
        if record_runs:
            record_contents = self._plugin_contents(record_runs)[0]
            record_tensors = self._read_tensors(
                metadata.PLUGIN_NAME, record_runs, skipped, only_tags=[tags.LR_RANGE]
            )
        keras_configs: dict[str, Any] = {}
        keras_histograms_by_run: Mapping[str, Mapping[str, TensorSeries]] = {}
        keras_train_runs = [
            listing.members[run_names.ROLE_TRAIN]
            for listing in listings
            if listing.source == SOURCE_KERAS and run_names.ROLE_TRAIN in listing.members
        ]
        if keras_train_runs:
            keras_configs = self._read_keras_configs(keras_train_runs)
            # histogram_freq > 0: which layers' weights changed (keras_histograms.py).
            keras_histograms_by_run = self._read_tensors(
                keras_histograms.PLUGIN_NAME, keras_train_runs, skipped
            )

        runs = []
        for listing in listings:
            if listing.source == SOURCE_CALLBACK:
                member = listing.members[run_names.ROLE_STAGNATION]
                run = _callback_run_data(
                    listing,
                    our_scalars.get(member, {}),
                    our_tensors.get(member, {}),
                    our_contents.get(member, {}),
                    newest.get(member, listing.max_step),
                )
            elif listing.source == SOURCE_SCALARS:
                run = _other_tool_run_data(listing, keras_scalars, self._loss_tag)
            else:
                run = _keras_run_data(listing, keras_scalars)
                train = listing.members.get(run_names.ROLE_TRAIN, "")
                run.weight_histograms = keras_histograms.weight_histograms(
                    keras_histograms_by_run.get(train, {})
                )
                config = keras_configs.get(train)
                if isinstance(config, str):
                    run.notes.append(config)
                elif config is not None:
                    run.model_card = config
            record_run = listing.members.get(run_names.ROLE_STAGNATION)
            if listing.source != SOURCE_CALLBACK and record_run is not None:
                content = record_contents.get(record_run, {}).get(tags.LR_RANGE)
                usable = (
                    _usable_tags({tags.LR_RANGE: content}, run.notes) if content is not None else ()
                )
                if tags.LR_RANGE in usable:
                    run.lr_range = _newest_lr_range(
                        record_tensors.get(record_run, {}).get(tags.LR_RANGE), run.notes
                    )
            why = {
                tag: reason
                for member in listing.members.values()
                for tag, reason in skipped.get(member, {}).items()
            }
            malformed = sorted(tag for tag, reason in why.items() if reason == _MALFORMED)
            too_large = sorted(tag for tag, reason in why.items() if reason == _TOO_LARGE)
            if malformed:
                run.notes.append(
                    "Skipped tags whose values TensorBoard could not decode (malformed "
                    f"tensors): {', '.join(malformed)}."
                )
            if too_large:
                run.notes.append(
                    "Skipped tags whose tensors claim more entries than the reader accepts "
                    f"(a damaged or hostile file): {', '.join(too_large)}."
                )
            runs.append(run)
        return runs

    # -- provider calls -------------------------------------------------------

    def _read_keras_configs(self, runs: list[str]) -> dict[str, Any]:
        """Per Keras `train/` run: a model card from the model config Keras logged
        (reader/keras_config.py), or a note saying why it could not be used.
        Runs without the config (write_graph=False, a subclassed model) are absent."""
        if not runs:
            return {}
        run_filter = tb_provider.RunTagFilter(runs=runs, tags=[_KERAS_MODEL_TAG])
        try:
            with bounded_decoding():
                sequences = self._provider.read_blob_sequences(
                    self._ctx,
                    experiment_id=self._experiment_id,
                    plugin_name=_KERAS_MODEL_PLUGIN,
                    downsample=_ALL_POINTS,
                    run_tag_filter=run_filter,
                )
        except _DATA_ERRORS + (tb_errors.PublicError,) as error:
            if len(runs) > 1:  # one run's hostile claim must not cost the others their card
                return {
                    run: card
                    for one in runs
                    for run, card in self._read_keras_configs([one]).items()
                }
            if isinstance(error, TooLargeError):
                return {runs[0]: _KERAS_CONFIG_UNUSABLE}
            return {}
        out: dict[str, Any] = {}
        for run, by_tag in sequences.items():
            points = by_tag.get(_KERAS_MODEL_TAG) or []
            if not points:
                continue
            newest = max(points, key=lambda point: (point.step, point.wall_time))
            out[run] = self._keras_card(newest)
        return out

    def _keras_card(self, point: Any) -> Any:
        unusable = _KERAS_CONFIG_UNUSABLE
        try:
            with bounded_decoding():
                blob = self._provider.read_blob(self._ctx, blob_key=point.values[0].blob_key)
            if len(blob) > _MAX_KERAS_CONFIG_BYTES:
                return unusable
            card = keras_config.model_card(json.loads(blob.decode("utf-8")))
        except (*_DATA_ERRORS, UnicodeDecodeError, RecursionError, tb_errors.PublicError):
            return unusable
        return card if card is not None else unusable

    def _list_scalars(
        self, plugin_name: str, run_tag_filter: tb_provider.RunTagFilter | None = None
    ) -> Listing:
        return self._provider.list_scalars(
            self._ctx,
            experiment_id=self._experiment_id,
            plugin_name=plugin_name,
            run_tag_filter=run_tag_filter,
        )

    def _list_ours(
        self,
        scalar_filter: tb_provider.RunTagFilter | None,
        tensor_filter: tb_provider.RunTagFilter | None,
    ) -> tuple[Listing, Listing]:
        """Our plugin's scalars and tensors. A run that failed at its first step
        has a model card and a pre-flight record (tensors) and no epoch yet; it
        is listed all the same."""
        scalars, tensors = _all_at_once(
            lambda: self._list_scalars(metadata.PLUGIN_NAME, scalar_filter),
            lambda: self._provider.list_tensors(
                self._ctx,
                experiment_id=self._experiment_id,
                plugin_name=metadata.PLUGIN_NAME,
                run_tag_filter=tensor_filter,
            ),
        )
        return scalars, tensors

    def _plugin_contents(
        self, runs: list[str]
    ) -> tuple[dict[str, dict[str, bytes]], dict[str, int]]:
        """Per run: tag -> plugin content, and the newest epoch step (batch/*
        tags aside) of its scalars and tensors, as they are now."""
        run_filter = tb_provider.RunTagFilter(runs=runs)
        contents: dict[str, dict[str, bytes]] = {}
        newest: dict[str, int] = {}
        for listing in (
            self._provider.list_scalars(
                self._ctx,
                experiment_id=self._experiment_id,
                plugin_name=metadata.PLUGIN_NAME,
                run_tag_filter=run_filter,
            ),
            self._provider.list_tensors(
                self._ctx,
                experiment_id=self._experiment_id,
                plugin_name=metadata.PLUGIN_NAME,
                run_tag_filter=run_filter,
            ),
        ):
            for run, by_tag in listing.items():
                for tag, ts in by_tag.items():
                    contents.setdefault(run, {})[tag] = ts.plugin_content
                    if not tag.startswith(tags.BATCH_PREFIX):
                        newest[run] = max(newest.get(run, ts.max_step), ts.max_step)
        return contents, newest

    def _read_scalars(
        self, plugin_name: str, runs: list[str], skipped: dict[str, dict[str, str]]
    ) -> Mapping[str, Mapping[str, ScalarSeries]]:
        read = getattr(self._provider, "read_scalar_series", None) or _as_series(
            self._provider.read_scalars, ScalarSeries.from_points
        )
        return self._read_narrowing(read, self._provider.list_scalars, plugin_name, runs, skipped)

    def _read_tensors(
        self,
        plugin_name: str,
        runs: list[str],
        skipped: dict[str, dict[str, str]],
        only_tags: list[str] | None = None,
    ) -> Mapping[str, Mapping[str, TensorSeries]]:
        read = getattr(self._provider, "read_tensor_series", None) or _as_series(
            self._provider.read_tensors, TensorSeries.from_points
        )
        return self._read_narrowing(
            read,
            self._provider.list_tensors,
            plugin_name,
            runs,
            skipped,
            only_tags,
        )

    def _read_narrowing(
        self,
        read,
        list_,
        plugin_name: str,
        runs: list[str],
        skipped: dict[str, dict[str, str]],
        only_tags: list[str] | None = None,
    ) -> dict[str, Mapping[str, Any]]:
        """`read` of every point of `runs` (of `only_tags`, when given), in one
        call when the data allow it.

        TensorBoard's loaders raise on a value they cannot decode (a "scalar"
        holding two floats or none, from a foreign or corrupt writer), which
        would fail every run of the call. Then the read is narrowed to one run,
        then to one tag; tags that still fail are added to `skipped[run]`.
        A tensor claiming more entries than decode_bounds accepts fails the
        same way, before anything is allocated. Errors that are not about the
        data (a lost server, an unknown experiment) are raised as they are.
        """

        def read_points(run_filter: tb_provider.RunTagFilter):
            with bounded_decoding():
                return read(
                    self._ctx,
                    experiment_id=self._experiment_id,
                    plugin_name=plugin_name,
                    downsample=_ALL_POINTS,
                    run_tag_filter=run_filter,
                )

        try:
            return dict(read_points(tb_provider.RunTagFilter(runs=runs, tags=only_tags)))
        except _DATA_ERRORS:
            if len(runs) > 1:
                result: dict[str, Mapping[str, Any]] = {}
                for run in runs:
                    result.update(
                        self._read_narrowing(read, list_, plugin_name, [run], skipped, only_tags)
                    )
                return result
        (run,) = runs
        listed = list_(
            self._ctx,
            experiment_id=self._experiment_id,
            plugin_name=plugin_name,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=only_tags),
        )
        by_tag: dict[str, Any] = {}
        for tag in sorted(listed.get(run, {})):
            try:
                points = read_points(tb_provider.RunTagFilter(runs=[run], tags=[tag]))
            except _DATA_ERRORS as error:
                reason = _TOO_LARGE if isinstance(error, TooLargeError) else _MALFORMED
                skipped.setdefault(run, {})[tag] = reason
                continue
            by_tag.update(points.get(run, {}))
        return {run: by_tag} if by_tag else {}


def _as_series(read_points: Callable[..., Any], series_of: Callable[[Any], Any]):
    """A provider's `read_scalars` or `read_tensors`, each tag's points made
    into a series (point_series.py) as they arrive."""

    def read(*args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
        return {
            run: {tag: series_of(points) for tag, points in by_tag.items()}
            for run, by_tag in read_points(*args, **kwargs).items()
        }

    return read


def _all_at_once(*calls: Callable[[], Any]) -> list[Any]:
    """The results of `calls`, made concurrently; the first error is raised.

    Over the Rust data server each call is a gRPC round trip, and a listing
    takes three. An answer that follows another on the same connection
    within a few ms waits ~40 ms for a delayed TCP ACK (the server does not
    set TCP_NODELAY): one after the other, the three cost ~90 ms. Side by
    side, each on a connection of its own (grpc_lanes.py), ~2.5 ms. gRPC
    waits without the GIL; with the Python loader the calls take turns on
    it, as before.
    """
    first, *rest = calls
    futures = [_LISTING_POOL.submit(call) for call in rest]
    try:
        results = [first()]
    finally:
        # Even when `first` raised: no call outlives the request that made it.
        futures_wait(futures)
    return results + [future.result() for future in futures]


def _newest_wall_time(series: Iterable[Any]) -> float:
    """The newest finite wall time, 0 if none: an event file can hold NaN or
    Inf there (a foreign or corrupt writer), which no JSON answer can carry
    and which would make the run's fingerprint differ from itself."""
    times = [float(ts.max_wall_time) for ts in series]
    return max((t for t in times if math.isfinite(t)), default=0.0)


# -- assembling RunData -------------------------------------------------------


def _callback_run_data(
    listing: RunListing,
    scalars: Mapping[str, ScalarSeries],
    tensors: Mapping[str, TensorSeries],
    contents: Mapping[str, bytes],
    max_step: int,
) -> RunData:
    notes: list[str] = []
    usable = _usable_tags(contents, notes)
    epoch_scalars = {
        tag: points
        for tag, points in scalars.items()
        if tag in usable and not tag.startswith(tags.BATCH_PREFIX)
    }
    layer_tensors = {
        tag: tensors[tag] for tag in tags.LAYER_STATS if tag in tensors and tag in usable
    }
    class_points = (
        tensors.get(tags.LABEL_CLASS_COUNTS) if tags.LABEL_CLASS_COUNTS in usable else None
    )

    epochs = union_of_steps([*epoch_scalars.values(), *layer_tensors.values()], max_step)
    tag_series: list[ScalarSeries | TensorSeries] = [
        *epoch_scalars.values(),
        *layer_tensors.values(),
    ]
    if class_points is not None:
        tag_series.append(class_points)
    if _newest_epoch_in_flight(epochs, [series for series in tag_series if len(series)]):
        epochs = epochs[:-1]

    scalar_series, scalar_present = _aligned_scalars(epoch_scalars, epochs)
    matrices, too_large = {}, []
    vector_tags = [*layer_tensors.items()]
    if class_points is not None:
        vector_tags.append((tags.LABEL_CLASS_COUNTS, class_points))
    for tag, points in vector_tags:
        if not len(points):
            continue
        matrix = _align_vectors(points, epochs)
        if matrix is None:
            too_large.append(tag)
        else:
            matrices[tag] = matrix
    if too_large:
        notes.append(
            f"Skipped tags whose vectors would make a matrix of more than {MAX_MATRIX_CELLS:,} "
            f"entries (a damaged or hostile file): {', '.join(sorted(too_large))}."
        )
    class_counts = matrices.pop(tags.LABEL_CLASS_COUNTS, None)
    run = RunData(
        name=listing.name,
        source=SOURCE_CALLBACK,
        epochs=epochs,
        scalars=scalar_series,
        scalar_present=scalar_present,
        layer_stats=matrices,
        class_counts=class_counts,
        model_card=_newest_model_card(tensors.get(tags.MODEL_CARD), notes)
        if tags.MODEL_CARD in usable
        else None,
        preflight=_newest_preflight(tensors.get(tags.PREFLIGHT), notes)
        if tags.PREFLIGHT in usable
        else None,
        lr_range=_newest_lr_range(tensors.get(tags.LR_RANGE), notes)
        if tags.LR_RANGE in usable
        else None,
        updated=listing.updated,
        notes=notes,
    )
    run.layer_names = _layer_names(run, notes)
    return run


def _unreadable_run(listing: RunListing, error: BaseException) -> RunData:
    """The empty RunData of a run whose reading raised, saying why."""
    detail = " ".join(str(error).split())[:300]
    reason = f"The run could not be read ({type(error).__name__}" + (
        f": {detail})." if detail else ")."
    )
    return RunData(
        name=listing.name,
        source=listing.source,
        epochs=np.zeros(0, dtype=np.int64),
        updated=listing.updated,
        notes=[reason],
        error=reason,
    )


def _newest_epoch_in_flight(
    epochs: np.ndarray, tag_series: list[ScalarSeries | TensorSeries]
) -> bool:
    """Whether the newest epoch is still being loaded.

    The callback writes an epoch as one event, but TensorBoard's Python loader
    adds its values one at a time, so a request can land between two of them.
    A tag that every earlier epoch has and the newest lacks is that case (tags
    missing now and then, like `val_*` under `validation_freq`, never count);
    the epoch shows up whole at the next read.
    """
    if len(epochs) < 3:
        return False
    for series in tag_series:
        positions, found = positions_in(epochs, series.steps)
        has = np.zeros(len(epochs), dtype=bool)
        has[positions[found]] = True
        if not has[-1] and has[:-1].all():
            return True
    return False


def _keras_run_data(
    listing: RunListing, keras_scalars: Mapping[str, Mapping[str, ScalarSeries]]
) -> RunData:
    by_tag: dict[str, ScalarSeries] = {}
    for role, prefix in ((run_names.ROLE_TRAIN, ""), (run_names.ROLE_VALIDATION, "val_")):
        member = listing.members.get(role)
        for keras_tag, points in keras_scalars.get(member or "", {}).items():
            if not keras_tag.startswith(tags.KERAS_EPOCH_PREFIX):
                continue
            if keras_tag == tags.KERAS_LEARNING_RATE:
                by_tag.setdefault(tags.LEARNING_RATE, points)
                continue
            key = keras_tag[len(tags.KERAS_EPOCH_PREFIX) :]
            by_tag[tags.logs_tag(prefix + key)] = points
    epochs = union_of_steps(by_tag.values(), listing.max_step)
    scalars, scalar_present = _aligned_scalars(by_tag, epochs)
    return RunData(
        name=listing.name,
        source=SOURCE_KERAS,
        epochs=epochs,
        scalars=scalars,
        scalar_present=scalar_present,
        updated=listing.updated,
    )


def _other_tool_run_data(
    listing: RunListing, scalars: Mapping[str, Mapping[str, ScalarSeries]], loss_tag: str | None
) -> RunData:
    train = listing.members.get(run_names.ROLE_TRAIN) or listing.members.get(run_names.ROLE_SCALARS)
    points = scalars.get(train or "", {})
    curves = other_tools.find_curve_tags(points, loss_tag)
    if curves is None:  # the tag went away between listing and reading
        return RunData(name=listing.name, source=SOURCE_SCALARS, epochs=np.zeros(0, np.int64))
    # RunData tag -> the tag of the train run, or (another run, its tag).
    wanted: dict[str, str | tuple[str, str]] = dict(curves.by_logs_key())
    validation = listing.members.get(run_names.ROLE_VALIDATION)
    if validation is not None:
        # Beside a train/ folder, the validation folder's "loss" is the validation loss.
        val_points = scalars.get(validation, {})
        val_curves = other_tools.find_curve_tags(val_points)
        if val_curves is not None:
            for key, theirs in (
                ("val_loss", val_curves.loss),
                ("val_accuracy", val_curves.accuracy),
            ):
                if theirs is not None and tags.logs_tag(key) not in wanted:
                    wanted[tags.logs_tag(key)] = (validation, theirs)
    by_tag = {}
    for ours, source in wanted.items():
        member, theirs = source if isinstance(source, tuple) else (train, source)
        series = scalars.get(member or "", {}).get(theirs)
        if series is None:
            continue
        kept = (series.steps <= listing.max_step) & series.numeric
        values = list(zip(series.steps[kept].tolist(), series.values[kept].tolist()))
        if values:
            by_tag[ours] = values
    loss_key = tags.logs_tag("loss")
    if loss_key not in by_tag:
        return RunData(name=listing.name, source=SOURCE_SCALARS, epochs=np.zeros(0, np.int64))
    windowed = other_tools.window_curves(by_tag, loss_key)
    notes = [
        "Logged by another tool: the training loss is read from "
        f"`{curves.loss}`"
        + "".join(
            f", {name} from `{tag}`"
            for name, tag in (
                ("the accuracy", curves.accuracy),
                ("the learning rate", curves.learning_rate),
            )
            if tag
        )
        + ". Pass --loss-tag TAG to `tb-stagnation report` to choose another tag.",
        *windowed.notes,
    ]
    for key in (tags.logs_tag("accuracy"), tags.logs_tag("val_accuracy")):
        if key in windowed.scalars:
            windowed.scalars[key] = other_tools.accuracy_as_fraction(
                windowed.scalars[key], key, notes
            )
    return RunData(
        name=listing.name,
        source=SOURCE_SCALARS,
        epochs=windowed.epochs,
        scalars=windowed.scalars,
        scalar_present=windowed.present,
        updated=listing.updated,
        notes=notes,
    )


def _usable_tags(contents: Mapping[str, bytes], notes: list[str]) -> set[str]:
    """Tags whose metadata we understand; the rest are named in a note."""
    usable, malformed, unknown = set(), [], []
    newest_version = metadata.FORMAT_VERSION
    for tag, content in contents.items():
        try:
            parsed = metadata.parse_plugin_content(content)
        except ValueError:
            malformed.append(tag)
            continue
        newest_version = max(newest_version, parsed.version)
        known = tag in _KNOWN_TENSOR_TAGS or tag.startswith(_KNOWN_SCALAR_PREFIXES)
        if known or tag.startswith(tags.BATCH_PREFIX):
            usable.add(tag)
        else:
            unknown.append(tag)
    if newest_version > metadata.FORMAT_VERSION:
        notes.append(
            f"Written by a newer tb_stagnation (format version {newest_version}; this reader "
            f"knows {metadata.FORMAT_VERSION}): known fields were used"
            + (f", these were ignored: {', '.join(sorted(unknown))}." if unknown else ".")
        )
    elif unknown:
        notes.append(f"Ignored tags this version does not know: {', '.join(sorted(unknown))}.")
    if malformed:
        notes.append(f"Ignored tags with unreadable metadata: {', '.join(sorted(malformed))}.")
    return usable


def _align_scalars(series: ScalarSeries, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values [E] (NaN where absent) and a presence mask [E]."""
    values = np.full(len(epochs), np.nan)
    present = np.zeros(len(epochs), dtype=bool)
    positions, found = positions_in(epochs, series.steps)
    found &= series.numeric
    # Points come sorted by step; on a duplicate step fancy assignment keeps the last.
    values[positions[found]] = series.values[found]
    present[positions[found]] = True
    return values, present


def _aligned_scalars(by_tag: Mapping[str, ScalarSeries], epochs: np.ndarray):
    """(scalars, scalar_present) dicts for RunData."""
    aligned = {tag: _align_scalars(series, epochs) for tag, series in by_tag.items()}
    return (
        {tag: values for tag, (values, _) in aligned.items()},
        {tag: present for tag, (_, present) in aligned.items()},
    )


def _align_vectors(series: TensorSeries, epochs: np.ndarray) -> np.ndarray | None:
    """The [E, width] matrix of a tag's vectors (NaN where absent); None when
    it would hold more than MAX_MATRIX_CELLS entries."""
    positions, found = positions_in(epochs, series.steps)
    if not found.any():
        return np.full((len(epochs), 0), np.nan)
    if series.is_matrix:
        assert isinstance(series.rows, np.ndarray)  # is_matrix says so
        width = series.rows.shape[1]
        if len(epochs) * width > MAX_MATRIX_CELLS:
            return None
        matrix = np.full((len(epochs), width), np.nan)
        # On a duplicate step fancy assignment keeps the last, as below.
        matrix[positions[found]] = series.rows[found]
        return matrix
    arrays = {}
    for position, array in zip(positions[found].tolist(), _found_rows(series.rows, found)):
        arrays[position] = array
    width = max((int(np.size(array)) for array in arrays.values()), default=0)
    if len(epochs) * width > MAX_MATRIX_CELLS:
        return None
    vectors = {}
    for position, array in arrays.items():
        try:
            vectors[position] = np.asarray(array, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            continue  # a foreign or corrupt tensor: that epoch stays NaN
    width = max((len(vector) for vector in vectors.values()), default=0)
    matrix = np.full((len(epochs), width), np.nan)
    for position, vector in vectors.items():
        matrix[position, : len(vector)] = vector
    return matrix


def _found_rows(rows: Any, found: np.ndarray) -> list[Any]:
    return [row for row, keep in zip(rows, found.tolist()) if keep]


def _newest_model_card(points: TensorSeries | None, notes: list[str]) -> dict[str, Any] | None:
    if not points:
        return None
    newest = max(points, key=lambda point: (point.step, point.wall_time))
    try:
        raw = np.asarray(newest.numpy).reshape(-1)[0]
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        card = json.loads(text)
    except (IndexError, UnicodeDecodeError, ValueError):
        notes.append("The model card is unreadable; static checks were skipped.")
        return None
    if not isinstance(card, dict):
        notes.append("The model card is not a JSON object; static checks were skipped.")
        return None
    return card


def _newest_preflight(points: TensorSeries | None, notes: list[str]) -> dict[str, Any] | None:
    """The newest pre-flight record (it is rewritten as its checks complete)."""
    if not points:
        return None
    newest = max(points, key=lambda point: (point.step, point.wall_time))
    try:
        raw = np.asarray(newest.numpy).reshape(-1)[0]
        record = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
    except (IndexError, UnicodeDecodeError, ValueError):
        record = None
    if not isinstance(record, dict):
        notes.append("The pre-flight record is unreadable; its checks were skipped.")
        return None
    return record


def _newest_lr_range(points: TensorSeries | None, notes: list[str]) -> dict[str, Any] | None:
    """The LR range test record written last (FORMAT.md); None with a note when
    that one is unreadable. An older record never stands in for it: it was
    superseded.

    Last written, not highest step: TensorBoard's data server drops the
    records of a tag at or after the step of a later one (a restart, to it),
    so a test run on its own (step 0) after a fit's test (step N) is all it
    keeps; the Python loader keeps both, in the order they were written. Both
    agree on the last one, which is also the highest step when steps grow.
    """
    if not points:
        return None
    newest = points[-1]
    try:
        array = np.asarray(newest.numpy)
        if array.size != 1:
            raise ValueError(f"it is a tensor of {array.size:,} values, not one string")
        record = parse_lr_range_record(array.reshape(-1)[0])
    except (ValueError, TypeError) as error:
        notes.append(
            f"The LR range test record (step {int(newest.step)}) is unreadable: {error}; "
            "it was ignored."
        )
        return None
    return record


def _layer_names(run: RunData, notes: list[str]) -> list[str]:
    width = max((matrix.shape[1] for matrix in run.layer_stats.values()), default=0)
    card_layers = (run.model_card or {}).get("layers")
    names: list[str] = []
    if isinstance(card_layers, list):
        for layer in card_layers:
            name = layer.get("name") if isinstance(layer, dict) else None
            names.append(str(name) if name is not None else f"layer_{len(names)}")
    if width and len(names) != width:
        if names:
            notes.append(
                f"The model card names {len(names)} layers but the statistics have {width}; "
                "layers are shown by position."
            )
        names = [f"layer_{i}" for i in range(width)]
    return names
