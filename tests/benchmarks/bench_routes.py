"""Latency of the Stagnation tab's routes on a large logdir, beside TensorBoard's.

    python tests/benchmarks/bench_routes.py [--runs 100 --epochs 300 --layers 30]
    python tests/benchmarks/bench_routes.py --runs 1000 --repeat 7   # /runs at 1,000 runs
    python tests/benchmarks/bench_routes.py --keras-only [--runs 1000]  # runs Keras alone logged

Builds (once, cached under /tmp/tb_stagnation_bench_routes; 1,000 runs take
~6 min to write) a logdir of R runs x E epochs x L layers in the summary
format, plus one plain Keras-style run `reference/train` whose `epoch_loss`
has E points. Then, for each loader (the Python EventMultiplexer, and
TensorBoard's Rust data server when installed), serves our plugin and
TensorBoard's scalars plugin from one TensorBoardWSGI, analyses every run
once (the cold `/runs`) and prints, per loader:

- the warm answers, measured in N interleaved rounds (each round asks every
  route once, in a random order, so that noise from other processes falls
  on all of them alike), once back to back and once with a pause of 200 ms
  before each request (`--gap-ms`; see `interleaved` for why it matters),
  as medians, ratios first:
  - `/report` and `/series` of one run, each divided by TensorBoard's
    `/data/plugin/scalars/scalars?run=reference/train&tag=epoch_loss` (E points
    of one tag: what its scalar chart fetches per run and tag; it has no cache,
    so warm and cold are the same work). Target: a ratio of at most 1
    ("ok"); up to 1.05 is "par", the same cost within the noise;
  - `/runs` against its absolute target: 150 ms at 100 runs, 1 s at 1,000
    (at most 100 runs: 150 ms; at most 1,000: 1 s), and "of which the
    listing": `ProviderReader.list_runs(memo)` alone, the provider calls a
    warm `/runs` makes (the sentinel tags of every run, reader/listing_memo.py),
    beside "a full listing", what the first `/runs` and one every 5 minutes
    make (with the Python loader it visits every stored point);
  - TensorBoard's route itself, the denominator;
- the cold answers: the first `/runs` (reads and analyses every run), then on
  a fresh plugin the first `/report` and the `/series` after it.

`/report` and `/series` are timed twice: alone (a plugin that never answers
`/runs`) and right after a `/runs`, as the tab asks for them, when they reuse
that answer's listing (plugin/analyses.py, LISTING_REUSE_SECONDS).
Warm answers of ours come from the cache but otherwise ask the data provider for
the listing of their run (of every run for `/runs`) to check fingerprints:
three provider calls, made side by side: over the Rust data server three gRPC
calls where TensorBoard's route makes one, each on a connection of its own
(reader/grpc_lanes.py; on one connection they cost ~40 ms, `interleaved`).
TensorBoard's Python provider scans the metadata of every run for any call
but a read of one run's one tag, so with that loader the ratios grow with
the number of runs. `--keras-only` builds runs as keras.callbacks.TensorBoard
alone logs them (epoch scalars in `train/` and `validation/`), which
`/runs` lists in full every time (no sentinel tags of ours to watch).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import synthetic_logdir  # noqa: E402
from benchmarks.providers import python_provider, rust_provider, tensorboard_flags  # noqa: E402
from tensorboard.backend import application  # noqa: E402
from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboard.plugins import base_plugin  # noqa: E402
from tensorboard.plugins.scalar import scalars_plugin  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402
from werkzeug import test as werkzeug_test  # noqa: E402

from tb_stagnation.plugin.stagnation_plugin import (  # noqa: E402
    StagnationPlugin,
    _with_column_reads,
)
from tb_stagnation.reader.listing_memo import ListingMemo  # noqa: E402
from tb_stagnation.reader.provider_reader import ProviderReader  # noqa: E402

ROOT = "/tmp/tb_stagnation_bench_routes"
REFERENCE_RUN = "reference/train"
REFERENCE_TAG = "epoch_loss"
# Issue 16: the page polls /runs; these keep it interactive.
RUNS_TARGET_MS = {100: 150.0, 1000: 1000.0}
LISTING = "listing"
FULL_LISTING = "full listing"
# Medians of the same work differ by a few percent from run to run here.
PAR = 1.05


def build_logdir(runs: int, epochs: int, layers: int, keras_only: bool = False) -> str:
    os.makedirs(ROOT, exist_ok=True)
    if keras_only:
        logdir = synthetic_logdir.build_keras_only(runs, epochs, root=ROOT)
    else:
        logdir = synthetic_logdir.build(runs, epochs, layers, root=ROOT)
    reference = os.path.join(logdir, REFERENCE_RUN)
    if not os.path.isdir(reference):
        _write_keras_style_scalars(reference, epochs)
    return logdir


def _write_keras_style_scalars(run_dir: str, epochs: int) -> None:
    """`epoch_loss` as keras.callbacks.TensorBoard writes it (plugin "scalars")."""
    writer = EventFileWriter(run_dir)
    for epoch in range(epochs):
        value = synthetic_logdir.keras_scalar(REFERENCE_TAG, 1.0 / (epoch + 1), epoch)
        summary = summary_pb2.Summary(value=[value])
        writer.add_event(event_pb2.Event(step=epoch, wall_time=1.7e9 + epoch, summary=summary))
    writer.close()


def make_client(provider, logdir: str, analyze):
    context = base_plugin.TBContext(
        data_provider=provider, logdir=logdir, flags=tensorboard_flags()
    )
    plugins = [StagnationPlugin(context, analyze=analyze), scalars_plugin.ScalarsPlugin(context)]
    app = application.TensorBoardWSGI(plugins, data_provider=provider)
    return werkzeug_test.Client(app)


def timed(client, url: str) -> tuple[float, int]:
    """(milliseconds, bytes on the wire) of one GET, gzip accepted as by a browser."""
    start = time.perf_counter()
    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}: {response.data[:200]!r}")
    return elapsed * 1000, len(response.data)


def timed_after(client, first_url: str, url: str) -> tuple[float, int]:
    """`timed(client, url)` right after an untimed GET of `first_url`."""
    client.get(first_url, headers={"Accept-Encoding": "gzip"})
    return timed(client, url)


def timed_listing(provider, memo: ListingMemo | None) -> tuple[float, int]:
    """(milliseconds, runs) of the provider calls alone that `/runs` starts
    with: with the memo a warm `/runs` keeps, or in full (the first `/runs`,
    and every REFRESH_ALL_SECONDS)."""
    start = time.perf_counter()
    runs = ProviderReader(provider).list_runs(memo)
    return (time.perf_counter() - start) * 1000, len(runs)


def interleaved(jobs: dict[str, Callable[[], tuple[float, int]]], rounds: int, gap_s: float):
    """Per label: (median ms, size) over `rounds` rounds that each run every
    job once, in a new random order each round, `gap_s` after the previous.

    The gap: over the Rust data server, a gRPC answer that follows another
    within a few ms waits ~40 ms for a delayed TCP ACK (the server does not
    set TCP_NODELAY). Back to back, every route pays that once. After a
    pause, as between a person's clicks or the page's polls, a call comes in
    ~2 ms; of calls made side by side on one connection, all but the first
    would still wait, which is why ours take a connection each.
    """
    labels = list(jobs)
    samples: dict[str, list[float]] = {label: [] for label in labels}
    sizes: dict[str, int] = {}
    order = random.Random(0)
    for _ in range(rounds):
        for label in order.sample(labels, len(labels)):
            time.sleep(gap_s)
            ms, sizes[label] = jobs[label]()
            samples[label].append(ms)
    return {label: (statistics.median(samples[label]), sizes[label]) for label in labels}


def runs_target(runs: int) -> float | None:
    return next((ms for count, ms in sorted(RUNS_TARGET_MS.items()) if runs <= count), None)


def bench(name: str, provider_factory, logdir: str, analyze, run: str, args) -> None:
    prefix = "/data/plugin/stagnation"
    tensorboard = "TensorBoard scalars"
    urls = {
        "/report": f"{prefix}/report?run={run}",
        "/series": f"{prefix}/series?run={run}",
        "/runs": f"{prefix}/runs",
        tensorboard: f"/data/plugin/scalars/scalars?run={REFERENCE_RUN}&tag={REFERENCE_TAG}",
    }
    start = time.perf_counter()
    with provider_factory(logdir) as provider:
        print(f"\n[{name}] {args.runs} runs loaded in {time.perf_counter() - start:.1f} s")
        client = make_client(provider, logdir, analyze)
        cold = [("cold /runs (reads + analyses every run)", *timed(client, urls["/runs"]))]
        fresh = make_client(provider, logdir, analyze)
        cold.append(("cold /report (one run, fresh plugin)", *timed(fresh, urls["/report"])))
        cold.append(("then /series (same run, read cached)", *timed(fresh, urls["/series"])))
        del fresh
        jobs = {label: functools.partial(timed, client, url) for label, url in urls.items()}
        # Alone: a plugin that never answers /runs, so it always lists the run.
        alone = make_client(provider, logdir, analyze)
        for label in ("/report", "/series"):
            jobs[label] = functools.partial(timed, alone, urls[label])
        # As the tab asks: right after a /runs, whose listing they reuse.
        tab = make_client(provider, logdir, analyze)
        for label in ("/report", "/series"):
            jobs[f"{label} after /runs"] = functools.partial(
                timed_after, tab, urls["/runs"], urls[label]
            )
        # Through the provider the plugin reads with (its own connections).
        ours = _with_column_reads(provider, tensorboard_flags())
        jobs[LISTING] = functools.partial(timed_listing, ours, ListingMemo())
        jobs[FULL_LISTING] = functools.partial(timed_listing, ours, None)
        interleaved(jobs, 1, 0)  # first-use costs out of the medians
        for gap_ms in (float(gap) for gap in args.gap_ms.split(",")):
            warm = interleaved(jobs, args.repeat, gap_ms / 1000)
            print(f"  warm, median of {args.repeat} interleaved rounds, {gap_ms:g} ms apart:")
            print_warm(warm, tensorboard, args.runs)
        for label, ms, size in cold:
            print(f"  {label:<47} {ms:9.1f} {size / 1024:11.1f}")


def print_warm(warm: dict[str, tuple[float, int]], tensorboard: str, runs: int) -> None:
    base_ms = warm[tensorboard][0]
    print(f"  {'':<24} {'ratio':>22} {'ms':>9} {'kB gzipped':>11}")
    for label in ("/report", "/series", "/report after /runs", "/series after /runs"):
        ms, size = warm[label]
        ratio = ms / base_ms
        verdict = "ok" if ratio <= 1.0 else "par" if ratio <= PAR else "SLOWER"
        text = f"{ratio:5.2f} x TB's  {verdict:<6}"
        print(f"  {label:<24} {text:>22} {ms:9.1f} {size / 1024:11.1f}")
    ms, size = warm["/runs"]
    target = runs_target(runs)
    if target is None:
        text = "(no target)"
    else:
        text = f"{ms / target:5.2f} x {target:.0f} ms  {'ok' if ms <= target else 'MISSED'}"
    print(f"  {'/runs':<24} {text:>22} {ms:9.1f} {size / 1024:11.1f}")
    ms, _ = warm[LISTING]
    print(f"  {'  of which the listing':<24} {'':>22} {ms:9.1f}")
    ms, _ = warm[FULL_LISTING]
    print(f"  {'  a full listing':<24} {'(first /runs, every 5 min)':>22} {ms:9.1f}")
    ms, size = warm[tensorboard]
    label = f"TB scalars ({REFERENCE_TAG})"
    print(f"  {label:<24} {'1.00':>22} {ms:9.1f} {size / 1024:11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--loaders", default="python,rust")
    parser.add_argument(
        "--gap-ms", default="0,200", help="pause before each request; one table per value"
    )
    parser.add_argument(
        "--keras-only",
        action="store_true",
        help="runs as keras.callbacks.TensorBoard alone logs them (--layers is unused)",
    )
    args = parser.parse_args()

    from plugin_support import plugin_analyze

    analyze = plugin_analyze()
    print(f"analysis: {analyze.__module__}.{analyze.__name__}")
    start = time.perf_counter()
    logdir = build_logdir(args.runs, args.epochs, args.layers, args.keras_only)
    print(f"logdir {logdir} ready in {time.perf_counter() - start:.1f} s")
    run = "run_0000"  # stalls halfway: the analysis does its full work
    loaders = {"python EventMultiplexer": python_provider, "rust data server": rust_provider}
    for name, factory in loaders.items():
        if name.split()[0] in args.loaders.split(","):
            bench(name, factory, logdir, analyze, run, args)


if __name__ == "__main__":
    main()
