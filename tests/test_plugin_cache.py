"""Caching of analyses: keyed by fingerprint, bounded, batched, thread-safe."""

import json
import threading
import time

import numpy as np
import pytest

from tb_stagnation.analysis.run_data import RunData
from tb_stagnation.plugin.analyses import AnalysisError, RunAnalyses
from tb_stagnation.plugin.fingerprint_cache import FingerprintCache
from tb_stagnation.reader.errors import UnknownRunError
from tb_stagnation.reader.provider_reader import RunListing


class FakeReader:
    """Stands in for ProviderReader; runs grow with `grow(name)`."""

    def __init__(self, names):
        self.steps = dict.fromkeys(names, 3)
        self.read_calls = []
        self.list_calls = 0

    def grow(self, name):
        self.steps[name] += 1

    def list_runs(self, memo=None):
        self.list_calls += 1
        return {
            name: RunListing(name, "callback", steps - 1, 1000.0 + steps, {"stagnation": name})
            for name, steps in self.steps.items()
        }

    def read_runs(self, listings):
        listings = list(listings)
        self.read_calls.append([listing.name for listing in listings])
        return [
            RunData(
                name=listing.name,
                source="callback",
                epochs=np.arange(listing.max_step + 1),
                scalars={"logs/loss": np.ones(listing.max_step + 1)},
            )
            for listing in listings
        ]


class CountingAnalyze:
    def __init__(self, fail_on=(), delay=0.0):
        self.calls = []
        self.fail_on = set(fail_on)
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, run):
        with self._lock:
            self.calls.append(run.name)
        time.sleep(self.delay)
        if run.name in self.fail_on:
            raise ValueError("boom\nsecond line")
        stalled = [int(e) for e in run.epochs] if run.name.startswith("stall") else []
        return {
            "run": run.name,
            "epochs": run.num_epochs,
            "healthy": not stalled,
            "stalled_epochs": stalled,
            "findings": [{"code": "warn_only", "severity": "warning"}],
            "baselines": {"constant_loss": float("nan")},
            "score": np.float32(0.5),
        }


def test_fingerprint_cache_misses_on_a_new_fingerprint_and_evicts_lru():
    cache = FingerprintCache(2)
    cache.put("a", 1, "A1")
    cache.put("b", 1, "B1")
    assert cache.get("a", 1) == "A1" and cache.get("a", 2) is None
    cache.put("c", 1, "C1")  # "b" is least recently used now
    assert cache.get("b", 1) is None and cache.get("a", 1) == "A1" and len(cache) == 2
    with pytest.raises(ValueError):
        FingerprintCache(0)


def test_runs_analyses_only_changed_runs_in_one_batched_read():
    reader, analyze = FakeReader(["a", "b", "stall"]), CountingAnalyze()
    analyses = RunAnalyses(analyze, clock=lambda: 42.0)
    first = analyses.runs(reader, "")
    assert sorted(analyze.calls) == ["a", "b", "stall"]
    assert reader.read_calls == [["a", "b", "stall"]]
    assert [row["run"] for row in first["runs"]] == ["stall", "a", "b"]  # stalled first
    assert first["updated"] == 42.0
    stall = first["runs"][0]
    assert stall["status"] == "stalled" and stall["stalled_epochs"] == 3
    assert stall["top_finding"] == "warn_only" and stall["healthy"] is False
    assert first["runs"][1]["status"] == "healthy"  # a warning alone is not a finding status

    assert analyses.runs(reader, "") == first  # nothing changed: nothing read
    assert reader.read_calls == [["a", "b", "stall"]]

    reader.grow("b")
    rows = {row["run"]: row for row in analyses.runs(reader, "")["runs"]}
    assert reader.read_calls[-1] == ["b"] and analyze.calls[-1] == "b"
    assert rows["b"]["epochs"] == 4


def test_report_and_series_share_one_read_and_follow_changes():
    reader, analyze = FakeReader(["a"]), CountingAnalyze()
    analyses = RunAnalyses(analyze)
    report = analyses.report(reader, "", "a")
    assert report["baselines"]["constant_loss"] == "NaN"  # JSON-ready
    assert report["score"] == 0.5 and type(report["score"]) is float
    series = json.loads(analyses.series_json(reader, "", "a"))
    assert series["epochs"] == [0, 1, 2] and reader.read_calls == [["a"]]
    reader.grow("a")
    assert json.loads(analyses.series_json(reader, "", "a"))["epochs"] == [0, 1, 2, 3]
    assert analyses.report(reader, "", "a")["epochs"] == 4
    assert reader.read_calls == [["a"], ["a"]] and analyze.calls == ["a", "a"]


def test_report_and_series_reuse_a_listing_of_runs_from_the_last_second():
    reader, analyze = FakeReader(["a", "b"]), CountingAnalyze()
    now = [100.0]
    analyses = RunAnalyses(analyze, monotonic=lambda: now[0])
    analyses.runs(reader, "exp")
    assert reader.list_calls == 1
    # The tab asks for /report and /series right after /runs: no listing again.
    now[0] += 0.5
    analyses.report(reader, "exp", "a")
    analyses.series_json(reader, "exp", "a")
    assert reader.list_calls == 1
    assert reader.read_calls == [["a", "b"], ["a"]]  # /runs keeps reports only; /series reads
    # Another experiment has no recent listing of its own.
    analyses.report(reader, "other", "a")
    assert reader.list_calls == 2
    # Older than the reuse window: listed again, and a grown run is seen.
    reader.grow("a")
    now[0] += 1.0
    assert analyses.report(reader, "exp", "a")["epochs"] == 4
    assert reader.list_calls == 3
    # A run the recent listing does not hold is listed, not refused.
    reader.steps["c"] = 3
    analyses.runs(reader, "exp")
    del reader.steps["c"]
    with pytest.raises(UnknownRunError):
        analyses.report(reader, "exp", "d")


def test_scopes_are_kept_apart():
    reader, analyze = FakeReader(["a"]), CountingAnalyze()
    analyses = RunAnalyses(analyze)
    analyses.report(reader, "exp1", "a")
    analyses.report(reader, "exp2", "a")
    assert analyze.calls == ["a", "a"]


def test_unknown_run():
    with pytest.raises(UnknownRunError):
        RunAnalyses(CountingAnalyze()).report(FakeReader(["a"]), "", "nope")


def test_a_failing_analysis_is_one_row_and_one_error_not_a_broken_list(caplog):
    reader, analyze = FakeReader(["a", "bad"]), CountingAnalyze(fail_on={"bad"})
    analyses = RunAnalyses(analyze)
    for _ in range(3):
        rows = {row["run"]: row for row in analyses.runs(reader, "")["runs"]}
    assert rows["a"]["status"] == "healthy"
    assert rows["bad"]["status"] == "error"
    assert rows["bad"]["error"] == "analysis failed: ValueError: boom second line"
    assert analyze.calls.count("bad") == 1  # the failure is cached until the run changes
    with pytest.raises(AnalysisError, match="boom"):
        analyses.report(reader, "", "bad")
    series = json.loads(analyses.series_json(reader, "", "bad"))  # charts still drawn
    assert series["epochs"] == [0, 1, 2] and series["stalled_epochs"] == []
    logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(logged) == 1 and logged[0].exc_info  # the traceback, once


def test_lru_bound_by_run_count():
    reader, analyze = FakeReader([f"r{i}" for i in range(10)]), CountingAnalyze()
    analyses = RunAnalyses(analyze, report_capacity=4, read_batch=3)
    assert len(analyses.runs(reader, "")["runs"]) == 10
    assert [len(names) for names in reader.read_calls] == [3, 3, 3, 1]  # batched reads
    assert len(analyses._reports) == 4


def test_concurrent_requests_do_not_tear_or_duplicate_work():
    reader, analyze = FakeReader([f"r{i}" for i in range(8)]), CountingAnalyze(delay=0.01)
    analyses = RunAnalyses(analyze)
    results, errors = [], []

    def worker(index):
        try:
            if index % 3 == 0:
                results.append(len(analyses.runs(reader, "")["runs"]))
            elif index % 3 == 1:
                results.append(analyses.report(reader, "", "r1")["run"])
            else:
                results.append(json.loads(analyses.series_json(reader, "", "r2"))["run"])
        except Exception as error:  # noqa: BLE001 - collected and asserted on
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(map(str, results)) == sorted(["8"] * 4 + ["r1"] * 4 + ["r2"] * 4)
    assert sorted(analyze.calls) == sorted(f"r{i}" for i in range(8))  # each run once
