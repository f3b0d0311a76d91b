"""Time of `tb-stagnation report LOGDIR --json` on a large logdir, and of the analysis alone.

    python tests/benchmarks/bench_analysis.py [--runs 100 --epochs 300 --layers 30]

Builds (once, cached under /tmp, with `SummaryWriter`: no TensorFlow) a logdir
of R runs x E epochs x L layers, a third of which stall halfway. Then prints:

- the wall time of the CLI as a subprocess, start-up included (target < 5 s);
- the time to read every run through the reader (`open_logdir`), in-process;
- the time of `analyze_run` over every run, alone (best of 3): the analysis
  must be a small part of the total.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import synthetic_logdir  # noqa: E402  (tests/benchmarks/synthetic_logdir.py)

TARGET_SECONDS = 5.0


def _cli_command(logdir: str) -> list[str]:
    script = shutil.which("tb-stagnation") or os.path.join(
        os.path.dirname(sys.executable), "tb-stagnation"
    )
    if os.path.exists(script):
        return [script, "report", logdir, "--json"]
    return [sys.executable, "-m", "tb_stagnation.cli", "report", logdir, "--json"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--layers", type=int, default=30)
    args = parser.parse_args()

    start = time.perf_counter()
    logdir = synthetic_logdir.build(args.runs, args.epochs, args.layers)
    print(f"logdir: {logdir} ({time.perf_counter() - start:.1f} s to build or find)")

    command = _cli_command(logdir)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    cli_seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        print(f"CLI failed ({done.returncode}): {done.stderr.strip()}")
        return 2
    runs = json.loads(done.stdout)["runs"]
    stalled = sum(1 for run in runs if run["stalled_epochs"])

    from tb_stagnation.analysis.report import analyze_run
    from tb_stagnation.reader.logdir import open_logdir

    start = time.perf_counter()
    with open_logdir(logdir) as source:
        data = source.read_runs(source.list_runs())
    read_seconds = time.perf_counter() - start

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for run in data:
            analyze_run(run)
        best = min(best, time.perf_counter() - start)

    verdict = "OK" if cli_seconds < TARGET_SECONDS else "SLOW"
    print(
        f"{args.runs} runs x {args.epochs} epochs x {args.layers} layers "
        f"({stalled} flagged as stalled)"
    )
    print(f"cli report --json (subprocess, start-up included): {cli_seconds:.2f} s  "
          f"[target < {TARGET_SECONDS:.0f} s: {verdict}]")  # fmt: skip
    print(f"read all runs (open_logdir, in-process):           {read_seconds:.2f} s")
    print(
        f"analyze_run, all runs (best of 3):                  {best:.3f} s "
        f"({1000 * best / max(len(data), 1):.1f} ms per run)"
    )
    return 0 if cli_seconds < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
