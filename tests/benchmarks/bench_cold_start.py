"""Cold start of the Stagnation tab: a fresh `tensorboard` until the run list is painted.

    python tests/benchmarks/bench_cold_start.py [--runs 100 --epochs 300 --layers 30 --repeat 3]

Builds (once, cached under /tmp/tb_stagnation_bench_routes, shared with
bench_routes.py) a logdir of R runs x E epochs x L layers in the summary
format. Then, per loader (`--load_fast=false`, TensorBoard's Python
EventMultiplexer; `--load_fast=true`, its Rust data server), N times: starts
a real `tensorboard --logdir` (tests/tensorboard_process.py; TensorBoard's
default reload interval), opens `/#stagnation` in Debian's headless chromium
through Playwright (as tests/test_frontend_browser.py does) as soon as the
server answers, and waits until the run list has rows and the next frame is
painted. Prints each repetition and the medians of:

- `server up`: from starting the process to its first HTTP answer;
- `page to list`: from opening the page to the painted run list;
- `start to list`: the sum, what a person who starts TensorBoard waits;
- the rows painted then, of R + 1 (bench_routes.py's Keras-style reference
  run is listed too): with the Python loader the first `/runs` may come
  while TensorBoard is still loading; the page asks again every 20 s.

Needs the `playwright` package and a chromium binary (TB_STAGNATION_CHROMIUM
overrides the path), like the browser tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/, for the browser test's helpers

from bench_routes import build_logdir  # noqa: E402
from playwright import sync_api  # noqa: E402
from tensorboard_process import TensorBoardProcess  # noqa: E402
from test_frontend_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

# TensorBoard's own default (`--reload_interval`): what a user gets.
RELOAD_INTERVAL_S = 5
START_TIMEOUT_S = 300
# Long enough for the page's second poll (20 s) after a first empty answer.
LIST_TIMEOUT_MS = 600_000
LOADERS = {"python": False, "rust": True}


def wait_answering(tensorboard: TensorBoardProcess) -> None:
    """Until the server answers; polled finer than wait_until's 0.3 s."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if tensorboard.process.poll() is not None:
            raise RuntimeError(f"tensorboard exited: {tensorboard.log()[-3000:]}")
        try:
            with urllib.request.urlopen(tensorboard.url + "data/plugins_listing", timeout=5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"tensorboard never answered: {tensorboard.log()[-3000:]}")


def page_to_list(browser, url: str) -> tuple[float, int]:
    """(seconds from opening the tab until its run list is painted, rows)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url + "#stagnation")
        # Not the first iframe: before TensorBoard has loaded data the page
        # may hold another one for a moment.
        deadline = time.monotonic() + LIST_TIMEOUT_MS / 1000
        while (frame := _stagnation_frame(page)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no Stagnation iframe; frames: {[f.url for f in page.frames]}")
            page.wait_for_timeout(20)  # Playwright handles events only inside its calls
        frame.locator(".sg-run").first.wait_for(timeout=LIST_TIMEOUT_MS)
        # Painted: the frame after the one that laid the rows out.
        frame.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        elapsed = time.perf_counter() - start
        return elapsed, frame.locator(".sg-run").count()
    finally:
        context.close()


def _stagnation_frame(page):
    return next((f for f in page.frames if "plugin_entry.html?name=stagnation" in f.url), None)


def one_start(browser, logdir: str, load_fast: bool) -> tuple[float, float, int]:
    start = time.perf_counter()
    tensorboard = TensorBoardProcess(logdir, load_fast=load_fast, reload_interval=RELOAD_INTERVAL_S)
    try:
        wait_answering(tensorboard)
        up = time.perf_counter() - start
        to_list, rows = page_to_list(browser, tensorboard.url)
        return up, to_list, rows
    finally:
        tensorboard.stop()
        os.unlink(tensorboard.log_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loaders", default="python,rust")
    args = parser.parse_args()

    start = time.perf_counter()
    logdir = build_logdir(args.runs, args.epochs, args.layers)
    print(f"logdir {logdir} ready in {time.perf_counter() - start:.1f} s")
    if not os.path.exists(CHROMIUM):
        sys.exit(
            f"no chromium at {CHROMIUM}: install Debian's chromium or set TB_STAGNATION_CHROMIUM"
        )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for loader in args.loaders.split(","):
                load_fast = LOADERS[loader]
                print(f"\n[--load_fast={str(load_fast).lower()}] {args.runs} runs")
                print(
                    f"  {'':<8}{'server up':>11}{'page to list':>14}{'start to list':>15}", end=""
                )
                print(f"{'rows':>6}")
                samples = []
                for i in range(args.repeat):
                    up, to_list, rows = one_start(browser, logdir, load_fast)
                    samples.append((up, to_list, rows))
                    print_row(f"#{i + 1}", up, to_list, rows)
                up, to_list, rows = (statistics.median(column) for column in zip(*samples))
                print_row("median", up, to_list, rows)
        finally:
            browser.close()


def print_row(label: str, up: float, to_list: float, rows: float) -> None:
    print(f"  {label:<8}{up:10.2f}s{to_list:13.2f}s{up + to_list:14.2f}s{rows:6.0f}")


if __name__ == "__main__":
    main()
