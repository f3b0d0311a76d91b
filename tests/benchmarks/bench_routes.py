"""Latency of the Stagnation tab's routes on a large logdir, beside TensorBoard's.

    python tests/benchmarks/bench_routes.py [--runs 100 --epochs 300 --layers 30]

Builds (once, cached under /tmp) a logdir of R runs x E epochs x L layers in
the summary format, plus one plain Keras-style run `reference/train` whose
`epoch_loss` has E points. Then, for each loader (the Python EventMultiplexer,
and TensorBoard's Rust data server when installed), serves our plugin and
TensorBoard's scalars plugin from one TensorBoardWSGI and prints:

- cold `/runs`: the first request, which reads and analyses every run;
- cold `/report` + `/series`: first requests for one run on a fresh plugin;
- warm `/runs`, `/report`, `/series` (median of N; targets 300 / 100 / 100 ms);
- TensorBoard's `/data/plugin/scalars/scalars?run=reference/train&tag=epoch_loss`
  (E points of one tag: what its scalar chart fetches per run and tag; it has
  no cache, so warm and cold are the same work).

Warm answers of ours come from the cache but still list every run through the
data provider to check fingerprints: that listing is most of their cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import synthetic_logdir  # noqa: E402
from benchmarks.providers import python_provider, rust_provider  # noqa: E402
from tensorboard.backend import application  # noqa: E402
from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboard.plugins import base_plugin  # noqa: E402
from tensorboard.plugins.scalar import metadata as scalar_metadata  # noqa: E402
from tensorboard.plugins.scalar import scalars_plugin  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402
from werkzeug import test as werkzeug_test  # noqa: E402

from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin  # noqa: E402

REFERENCE_RUN = "reference/train"
REFERENCE_TAG = "epoch_loss"


def build_logdir(runs: int, epochs: int, layers: int) -> str:
    root = "/tmp/tb_stagnation_bench_routes"
    os.makedirs(root, exist_ok=True)
    logdir = synthetic_logdir.build(runs, epochs, layers, root=root)
    reference = os.path.join(logdir, REFERENCE_RUN)
    if not os.path.isdir(reference):
        _write_keras_style_scalars(reference, epochs)
    return logdir


def _write_keras_style_scalars(run_dir: str, epochs: int) -> None:
    """`epoch_loss` as keras.callbacks.TensorBoard writes it (plugin "scalars")."""
    writer = EventFileWriter(run_dir)
    for epoch in range(epochs):
        value = summary_pb2.Summary.Value(
            tag=REFERENCE_TAG,
            tensor=tensor_util.make_tensor_proto(np.float32(1.0 / (epoch + 1))),
        )
        if epoch == 0:
            value.metadata.CopyFrom(scalar_metadata.create_summary_metadata("", ""))
        summary = summary_pb2.Summary(value=[value])
        writer.add_event(event_pb2.Event(step=epoch, wall_time=1.7e9 + epoch, summary=summary))
    writer.close()


def make_client(provider, logdir: str, analyze):
    context = base_plugin.TBContext(data_provider=provider, logdir=logdir)
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


def median_ms(client, url: str, repeat: int) -> tuple[float, int]:
    samples = [timed(client, url) for _ in range(repeat)]
    return statistics.median(ms for ms, _ in samples), samples[-1][1]


def bench(name: str, provider_factory, logdir: str, analyze, run: str, repeat: int) -> None:
    report_url = f"/data/plugin/stagnation/report?run={run}"
    series_url = f"/data/plugin/stagnation/series?run={run}"
    runs_url = "/data/plugin/stagnation/runs"
    scalars_url = f"/data/plugin/scalars/scalars?run={REFERENCE_RUN}&tag={REFERENCE_TAG}"
    start = time.perf_counter()
    with provider_factory(logdir) as provider:
        print(f"\n[{name}] loaded in {time.perf_counter() - start:.1f} s")
        client = make_client(provider, logdir, analyze)
        rows = [
            ("cold /runs (reads + analyses every run)", *timed(client, runs_url)),
        ]
        fresh = make_client(provider, logdir, analyze)
        rows.append(("cold /report (one run, fresh plugin)", *timed(fresh, report_url)))
        rows.append(("then /series (same run, cached read)", *timed(fresh, series_url)))
        for label, url in (
            ("warm /runs", runs_url),
            ("warm /report", report_url),
            ("warm /series", series_url),
            (f"TensorBoard scalars route ({REFERENCE_TAG}, 1 tag)", scalars_url),
        ):
            rows.append((f"{label} (median of {repeat})", *median_ms(client, url, repeat)))
        for label, ms, size in rows:
            print(f"  {label:<58} {ms:9.1f} ms  {size / 1024:8.1f} kB gzipped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--loaders", default="python,rust")
    args = parser.parse_args()

    from plugin_support import real_or_fake_analyze

    analyze = real_or_fake_analyze()
    print(f"analysis: {analyze.__module__}.{analyze.__name__}")
    start = time.perf_counter()
    logdir = build_logdir(args.runs, args.epochs, args.layers)
    print(f"logdir {logdir} ready in {time.perf_counter() - start:.1f} s")
    run = "run_0000"  # stalls halfway: the analysis does its full work
    loaders = {"python EventMultiplexer": python_provider, "rust data server": rust_provider}
    for name, factory in loaders.items():
        if name.split()[0] in args.loaders.split(","):
            bench(name, factory, logdir, analyze, run, args.repeat)


if __name__ == "__main__":
    main()
