"""Wall time and peak memory of the CLI and the routes on very large logdirs.

    python tests/benchmarks/bench_scale.py [--shapes 1000x30x10,1x5000x200] [--loaders python,rust]

Issue 7 ("Scale"): a logdir of 1,000 runs, or one run of 5,000 epochs x 200
layers, must stay within the memory a laptop has. Builds (once, cached under
/tmp, with `SummaryWriter`: no TensorFlow) a logdir per shape RUNSxEPOCHSxLAYERS,
then measures, each in a fresh Python subprocess so that peak RSS belongs to
that one job:

- `cli`: `tb-stagnation report LOGDIR --json` (`tb_stagnation.cli.main`, output
  to /dev/null), with the Rust data server (what the CLI picks when installed)
  and with the Python EventMultiplexer;
- `routes`: TensorBoard's WSGI app with our plugin over the loader
  (`MultiplexerDataProvider`, as `--load_fast=false`; the Rust data server over
  gRPC, as `--load_fast=true`): the load, then the first `/runs` (reads and
  analyses every run), `/report` and `/series` of the biggest run.

Peak RSS is `resource.getrusage(RUSAGE_SELF).ru_maxrss` of the measuring
process; the Rust data server is a child process and is reported apart
(`RUSAGE_CHILDREN`, once it exited). A row is flagged when a job takes more
than ~2 GB or a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/, for plugin_support

import synthetic_logdir  # noqa: E402  (tests/benchmarks/synthetic_logdir.py)

ROOT = "/tmp/tb_stagnation_bench_scale"
DEFAULT_SHAPES = "1000x30x10,1x5000x200"
LIMIT_MB = 2048
LIMIT_SECONDS = 60.0
# The run every shape has; in the 1-run logdir it is the 5000 x 200 one.
RUN = "run_0000"


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kilobytes


# -- the measured jobs (each runs in its own subprocess) ----------------------


def measure_cli(logdir: str, loader: str) -> dict:
    from tb_stagnation import cli
    from tb_stagnation.reader import logdir as reader_logdir

    if loader == "python":
        reader_logdir._data_server_binary = lambda: None  # what a machine without it does
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        saved, sys.stdout = sys.stdout, devnull
        try:
            status = cli.main(["report", logdir, "--json"])
        finally:
            sys.stdout = saved
    if status not in (0, 1):
        raise RuntimeError(f"tb-stagnation report exited {status}")
    return {"steps": {"report --json": time.perf_counter() - start}}


def measure_routes(logdir: str, loader: str) -> dict:
    from providers import python_provider, rust_provider, tensorboard_flags
    from tensorboard.backend import application
    from tensorboard.plugins import base_plugin
    from werkzeug import test as werkzeug_test

    from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin

    steps: dict[str, float] = {}
    sizes: dict[str, int] = {}
    start = time.perf_counter()
    provider_for = python_provider if loader == "python" else rust_provider
    with provider_for(logdir) as provider:
        steps["load"] = time.perf_counter() - start
        flags = tensorboard_flags()
        context = base_plugin.TBContext(data_provider=provider, logdir=logdir, flags=flags)
        plugin = StagnationPlugin(context)
        client = werkzeug_test.Client(application.TensorBoardWSGI([plugin], data_provider=provider))
        for route in ("/runs", f"/report?run={RUN}", f"/series?run={RUN}"):
            start = time.perf_counter()
            response = client.get("/data/plugin/stagnation" + route)
            steps[route.split("?")[0]] = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"{route}: HTTP {response.status_code}: {response.data[:200]!r}")
            sizes[route.split("?")[0]] = len(response.data)
        series = json.loads(response.data)
        downsampled = series["downsampled"]
    return {"steps": steps, "sizes": sizes, "downsampled": downsampled}


def _child_main(job: str, logdir: str, loader: str) -> None:
    result = (measure_cli if job == "cli" else measure_routes)(logdir, loader)
    result["rss_mb"] = _peak_mb(resource.RUSAGE_SELF)
    result["child_rss_mb"] = _peak_mb(resource.RUSAGE_CHILDREN)
    print("RESULT " + json.dumps(result))


# -- the driver -----------------------------------------------------------------


def run_job(job: str, logdir: str, loader: str) -> dict:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", job, logdir, loader],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1], "wall": wall}
    result = json.loads(lines[-1][len("RESULT ") :])
    result["wall"] = wall
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="RUNSxEPOCHSxLAYERS,...")
    parser.add_argument("--loaders", default="python,rust")
    parser.add_argument("--jobs", default="cli,routes")
    parser.add_argument(
        "--child", nargs=3, metavar=("JOB", "LOGDIR", "LOADER"), help=argparse.SUPPRESS
    )
    parser.add_argument("--build", metavar="SHAPE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_main(*args.child)
        return 0
    if args.build:
        runs, epochs, layers = (int(part) for part in args.build.split("x"))
        print(synthetic_logdir.build(runs, epochs, layers, root=ROOT))
        return 0

    os.makedirs(ROOT, exist_ok=True)
    logdirs = {}
    for shape in args.shapes.split(","):
        start = time.perf_counter()
        # Built in a process of its own: Linux keeps a process's peak RSS
        # across fork and exec, so a job started by a parent grown by the
        # build would report the parent's size as its own.
        built = subprocess.run(
            [sys.executable, __file__, "--build", shape], capture_output=True, text=True, check=True
        )
        logdirs[shape] = built.stdout.strip().splitlines()[-1]
        seconds = time.perf_counter() - start
        print(f"logdir {shape}: {logdirs[shape]} ({seconds:.1f} s to build or find)")

    header = (
        f"{'logdir':<12} {'job':<7} {'loader':<7} {'wall s':>7} {'peak RSS MB':>12} "
        f"{'server MB':>10}  steps (s) / answer sizes"
    )
    print("\n" + header + "\n" + "-" * len(header))
    flagged = 0
    for shape, logdir in logdirs.items():
        for job in args.jobs.split(","):
            for loader in args.loaders.split(","):
                result = run_job(job, logdir, loader)
                if "error" in result:
                    where = f"{shape:<12} {job:<7} {loader:<7} {result['wall']:7.1f}"
                    print(f"{where}  FAILED: {result['error']}")
                    flagged += 1
                    continue
                server = f"{result['child_rss_mb']:10.0f}" if loader == "rust" else f"{'-':>10}"
                steps = ", ".join(
                    f"{name} {seconds:.2f}" for name, seconds in result["steps"].items()
                )
                if result.get("sizes"):
                    steps += "; " + ", ".join(
                        f"{name} {size / 1e6:.2f} MB" for name, size in result["sizes"].items()
                    )
                if result.get("downsampled"):
                    steps += f"; series downsampled {result['downsampled']}"
                too_much = (
                    result["rss_mb"] > LIMIT_MB
                    or result["child_rss_mb"] > LIMIT_MB
                    or result["wall"] > LIMIT_SECONDS
                )
                flagged += too_much
                print(
                    f"{shape:<12} {job:<7} {loader:<7} {result['wall']:7.1f} "
                    f"{result['rss_mb']:12.0f} {server}  {steps}"
                    + ("  <-- TOO MUCH" if too_much else "")
                )
    print(f"\nlimits: {LIMIT_MB} MB per process, {LIMIT_SECONDS:.0f} s per job; {flagged} over")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
