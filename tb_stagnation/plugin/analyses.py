"""Analysis results per run, cached until the run changes.

A run's listing fingerprint (source, newest step, newest wall time, how many
tags reached the newest step) comes from the data provider's listings (three
calls; `/runs` lists in full only the runs whose sentinel tags moved,
reader/listing_memo.py) and changes whenever TensorBoard loads a new epoch;
`/report` and `/series` reuse the listing of a `/runs` from the last second.
Reports, small and needed for every run by `/runs`, live in a large LRU; the
`/series` answers, large and needed for the selected run only, in a small one,
gzipped once as TensorBoard would gzip them for every request.

Computation is serialised by one lock: it is CPU-bound Python under the GIL,
so running two at once would only duplicate work (a page load asks `/runs`,
`/report` and `/series` together). Cached answers never wait for it.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from tb_stagnation.analysis.run_data import RunData
from tb_stagnation.plugin import jsonable, overview
from tb_stagnation.plugin.error_log import OnceLogger
from tb_stagnation.plugin.fingerprint_cache import FingerprintCache
from tb_stagnation.plugin.overview import RunAnalysis
from tb_stagnation.plugin.series import build_series
from tb_stagnation.reader.errors import UnknownRunError
from tb_stagnation.reader.listing_memo import ListingMemo
from tb_stagnation.reader.provider_reader import ProviderReader, RunListing

Analyze = Callable[[RunData], Mapping[str, Any]]

# Enough for a logdir of thousands of runs: a report is a few kB. Fewer than
# the logdir's runs would make every `/runs` re-analyse the evicted ones.
DEFAULT_REPORT_CAPACITY = 10_000
# A `/series` answer is up to a few MB; the page shows one run at a time.
DEFAULT_SERIES_CAPACITY = 16
# Runs per read when `/runs` analyses many: bounds the memory of a cold start
# (a 5000-epoch x 200-layer run is ~60 MB of arrays) while keeping reads batched.
DEFAULT_READ_BATCH = 64
# What tensorboard.backend.http_util.Respond compresses with.
GZIP_LEVEL = 3
# `/report` and `/series` reuse the listing of a `/runs` answered this
# recently in the same experiment instead of listing again: the tab asks for
# the three together, and a listing is three data-server calls (over the Rust
# server, a call that follows another on one connection within a few ms waits
# ~40 ms for a delayed TCP ACK; reader/grpc_lanes.py). Far below
# TensorBoard's reload interval (5 s by default), so the answers are no
# staler than the data TensorBoard itself has loaded.
LISTING_REUSE_SECONDS = 1.0


class AnalysisError(Exception):
    """The analysis of a run raised; the message is one line for the user."""


class RunAnalyses:
    """Answers `/runs`, `/report` and `/series` from a reader, with caching.

    `scope` (the experiment id) keeps runs of different experiments apart.
    """

    def __init__(
        self,
        analyze: Analyze,
        report_capacity: int = DEFAULT_REPORT_CAPACITY,
        series_capacity: int = DEFAULT_SERIES_CAPACITY,
        read_batch: int = DEFAULT_READ_BATCH,
        clock: Callable[[], float] = time.time,
        listing_reuse_seconds: float = LISTING_REUSE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._analyze = analyze
        self._reports = FingerprintCache(report_capacity)
        self._series = FingerprintCache(series_capacity)
        self._read_batch = read_batch
        self._clock = clock
        self._compute_lock = threading.Lock()
        self._log = OnceLogger()
        self._listing_reuse_seconds = listing_reuse_seconds
        self._monotonic = monotonic
        # scope -> (when, the listing of every run): the newest `/runs` listing.
        self._recent_listings: dict[str, tuple[float, dict[str, RunListing]]] = {}
        # scope -> what `/runs` listed, re-listed per run as runs change: with
        # TensorBoard's Python loader a full listing visits every stored point.
        self._listing_memos: dict[str, ListingMemo] = {}

    # -- the three answers -----------------------------------------------------

    def runs(self, reader: ProviderReader, scope: str) -> dict[str, Any]:
        """The `/runs` object; analyses only the runs that changed."""
        memo = self._listing_memos.setdefault(scope, ListingMemo())
        listings = reader.list_runs(memo)
        self._recent_listings[scope] = (self._monotonic(), listings)
        found = self._cached_reports(scope, listings.values())
        stale = [listing for listing in listings.values() if listing.name not in found]
        if stale:
            found.update(self._analyze_many(reader, scope, stale))
        rows = [overview.run_row(listing, found[name]) for name, listing in listings.items()]
        return overview.overview(rows, self._clock())

    def report(self, reader: ProviderReader, scope: str, name: str) -> dict[str, Any]:
        """The `/report` object of run `name` (JSON-ready).

        Raises UnknownRunError or AnalysisError.
        """
        listing = self._listing(reader, scope, name)
        analysis = self._reports.get((scope, name), listing.fingerprint)
        if analysis is None:
            analysis, _ = self._analyze_one(reader, scope, listing)
        return _report_or_raise(analysis)

    def series_json(self, reader: ProviderReader, scope: str, name: str) -> bytes:
        """The `/series` answer of run `name`, encoded.

        A run whose analysis failed still gets its charts, without stall
        marks or baselines (`/report` says why). Raises UnknownRunError, or
        AnalysisError when the series itself cannot be built.
        """
        return gzip.decompress(self.series_gzip(reader, scope, name))

    def series_gzip(self, reader: ProviderReader, scope: str, name: str) -> bytes:
        """`series_json`, gzipped: what the route sends."""
        listing = self._listing(reader, scope, name)
        body = self._series.get((scope, name), listing.fingerprint)
        if body is None:
            _, body = self._analyze_one(reader, scope, listing)
        return body

    def _listing(self, reader: ProviderReader, scope: str, name: str) -> RunListing:
        """Run `name`'s listing: from a `/runs` of the last second, else listed now."""
        recent = self._recent_listings.get(scope)
        if recent is not None and self._monotonic() - recent[0] <= self._listing_reuse_seconds:
            listing = recent[1].get(name)
            if listing is not None:
                return listing
        listing = reader.list_runs().get(name)
        if listing is None:
            raise UnknownRunError(name)
        return listing

    # -- computing -------------------------------------------------------------

    def _cached_reports(self, scope: str, listings) -> dict[str, RunAnalysis]:
        found = {}
        for listing in listings:
            analysis = self._reports.get((scope, listing.name), listing.fingerprint)
            if analysis is not None:
                found[listing.name] = analysis
        return found

    def _analyze_many(
        self, reader: ProviderReader, scope: str, listings: list[RunListing]
    ) -> dict[str, RunAnalysis]:
        with self._compute_lock:
            # Another request may have analysed some while this one waited.
            found = self._cached_reports(scope, listings)
            todo = [listing for listing in listings if listing.name not in found]
            for start in range(0, len(todo), self._read_batch):
                chunk = todo[start : start + self._read_batch]
                for listing, run in zip(chunk, reader.read_runs(chunk)):
                    analysis = self._analysis_of(run)
                    self._reports.put(_key(scope, listing), listing.fingerprint, analysis)
                    found[listing.name] = analysis
        return found

    def _analyze_one(
        self, reader: ProviderReader, scope: str, listing: RunListing
    ) -> tuple[RunAnalysis, bytes]:
        """Reads the run once and caches both its report and its series (gzipped)."""
        key = _key(scope, listing)
        with self._compute_lock:
            analysis = self._reports.get(key, listing.fingerprint)
            body = self._series.get(key, listing.fingerprint)
            if analysis is not None and body is not None:
                return analysis, body
            (run,) = reader.read_runs([listing])
            if analysis is None:
                analysis = self._analysis_of(run)
                self._reports.put(key, listing.fingerprint, analysis)
            body = self._series_of(run, analysis.report or {})
            self._series.put(key, listing.fingerprint, body)
            return analysis, body

    def _analysis_of(self, run: RunData) -> RunAnalysis:
        # A run the reader could not read (`run.error`) gets the report that
        # `analyze()` gives it: empty, `healthy: false`, its `error` line.
        try:
            # The JSON policy of HTTP answers (tb_stagnation/jsonable.py).
            report = jsonable.to_jsonable(self._analyze(run))
        except Exception as error:  # noqa: BLE001 - one bad run must not break the others
            self._log.exception(f"analysis of run {run.name!r}", error)
            return RunAnalysis(run.num_epochs, error=_one_line("analysis failed", error))
        return RunAnalysis(run.num_epochs, report=report)

    def _series_of(self, run: RunData, report: dict[str, Any]) -> bytes:
        """The gzipped `/series` answer."""
        try:
            body = jsonable.dumps(build_series(run, report))
        except Exception as error:  # noqa: BLE001 - reported to the user as a 500
            self._log.exception(f"series of run {run.name!r}", error)
            raise AnalysisError(_one_line("building the series failed", error)) from None
        # TensorBoard gzipped it anew for every request: ~7 ms for a run of 300
        # epochs x 30 layers, more than the rest of a warm answer. Same level.
        return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def _key(scope: str, listing: RunListing) -> Hashable:
    return (scope, listing.name)


def _report_or_raise(analysis: RunAnalysis) -> dict[str, Any]:
    if analysis.report is None:
        raise AnalysisError(analysis.error)
    return analysis.report


def _one_line(what: str, error: BaseException) -> str:
    detail = " ".join(str(error).split())[:300]
    return f"{what}: {type(error).__name__}" + (f": {detail}" if detail else "")
