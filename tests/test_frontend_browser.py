"""The Stagnation tab in a real browser, served by a real `tensorboard`.

Small Keras models train with `StagnationCallback` (one healthy, one with a
learning rate of 1e-7, one in a folder named like an XSS payload, one with a
learning-rate range test logged by `lr_range_test(..., log_dir=)`); more
runs are written with the summary writer directly (a layer named like an XSS
payload, which Keras refuses as a layer name, a 300-epoch x 30-layer run
for timing, a 400-epoch x 200-layer run the server downsamples, and two runs
that get new epochs while the page is open).
`tensorboard --logdir` serves them; Debian's chromium, driven by Playwright,
opens `/#stagnation` the way a person does.

Screenshots land in tests/artifacts/ (`stagnation_tab.png` is the one for the
README); the range-test chart's goes to demo/screenshots/lr_range_test.png,
which the README shows. Needs the `playwright` package and a chromium binary (set
TB_STAGNATION_CHROMIUM to point elsewhere); `.ci/run` installs both, and a
missing one fails these tests rather than skipping them. Playwright's own
browser download is never used.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from playwright import sync_api
from tensorboard_process import TensorBoardProcess

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=window.__xss=1>"
HEALTHY = "healthy"
STALLED = "stalled_lr_1e-7"
# Adam at 10: the rate kills units and collapses the predictions, findings the
# report lists as consequences of the rate (named after STALLED in the list).
TOO_LARGE = "too_large_lr_10"
HOSTILE_LAYERS = "hostile_layer_names"
PERF = "synthetic_300x30"
LIVE = "still_training"
# 200 layers x 400 epochs is past the series route's cell budget: pooled in pairs.
LONG = "synthetic_400x200"
# A stalled run (one finding) that grows while the page shows it zoomed.
LIVE_STALLED = "still_stalling"
# Trained at 1e-7 for 3 epochs, then lr_range_test(model, x, y, log_dir=...).
LR_RANGE = "with_lr_range_test"
ALL_RUNS = {
    HEALTHY,
    STALLED,
    TOO_LARGE,
    HOSTILE,
    HOSTILE_LAYERS,
    PERF,
    LIVE,
    LONG,
    LIVE_STALLED,
    LR_RANGE,
}
README_SCREENSHOTS = Path(__file__).parent.parent / "demo" / "screenshots"

CHROMIUM = (
    os.environ.get("TB_STAGNATION_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
    or "/usr/bin/chromium"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
START_TIMEOUT_S = 180
STATUS_ORDER = {"stalled": 0, "findings": 1, "error": 2, "healthy": 3, "empty": 4}


# -- the logdir ---------------------------------------------------------------


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = ((x[:, 0] + x[:, 1]) > 0).astype("int64")
    return x, y


def train(log_dir: str, learning_rate: float, epochs: int = 10):
    """A small classifier that Adam at 1e-2 learns and at 1e-7 cannot move."""
    import keras

    from tb_stagnation import StagnationCallback

    keras.utils.set_random_seed(0)
    x, y = training_data()
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(16, activation="relu", name="hidden_2"),
            keras.layers.Dense(2, activation="softmax", name="output"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=64,
        validation_split=0.25,
        verbose=0,
        callbacks=[StagnationCallback(log_dir=log_dir)],
    )
    return model


def write_synthetic(
    run_dir: str, epochs: int, layer_names: list[str], start: int = 0, flat: bool = False
) -> None:
    """A callback-format run written directly (FORMAT.md), no TensorFlow needed.

    `start` > 0 appends epochs in a new event file, as a resumed fit does.
    `flat`: the loss sits at the constant predictor's and the weights barely
    move (a run that stalls, with findings).
    """
    from tb_stagnation.summary import tags
    from tb_stagnation.summary.writer import SummaryWriter

    n = len(layer_names)
    writer = SummaryWriter(os.path.join(run_dir, tags.RUN_SUBDIR))
    writer.write_model_card(
        start,
        {
            "format_version": 1,
            "model_class": "Sequential",
            "loss": "sparse_categorical_crossentropy",
            "optimizer": {"class": "Adam", "learning_rate": 1e-3},
            "output_shape": [None, 3],
            "output_activation": "softmax",
            "task": "classification",
            "num_classes": 3,
            "layers": [
                {"name": name, "type": "Dense", "activation": "relu", "trainable": True}
                for name in layer_names
            ],
        },
    )
    total = start + epochs
    for epoch in range(start, total):
        loss = 1.0986 * math.exp(-epoch / (total / 5)) + 0.05
        depth = np.arange(n) / max(n - 1, 1)
        grad = 1e-1 * 10 ** (-2 * (1 - depth)) * (1 + 0.05 * math.sin(epoch))
        ratio = 1e-3 * 10 ** (-1 * (1 - depth)) * math.exp(-epoch / total)
        if flat:
            loss = 1.0986 + 1e-5 * math.sin(epoch)
            grad = grad * 1e-6
            ratio = np.full(n, 1e-9)
        writer.write_step(
            epoch,
            scalars={
                tags.logs_tag("loss"): loss,
                tags.logs_tag("val_loss"): loss + 0.03,
                tags.logs_tag("accuracy"): 1 - loss / 1.2,
                tags.logs_tag("val_accuracy"): 1 - loss / 1.15,
                tags.LEARNING_RATE: 1e-3,
                tags.GRAD_GLOBAL_NORM: float(np.sqrt((grad**2).sum())),
                tags.WEIGHT_GLOBAL_NORM: 10.0,
                tags.UPDATE_GLOBAL_NORM: 10.0 * float(ratio.mean()),
                tags.UPDATE_GLOBAL_RATIO: float(ratio.mean()),
                tags.GRAD_NONFINITE_FRACTION: 0.0,
                tags.PRED_ENTROPY: max(0.05, 1 - epoch / total),
                tags.PRED_CLASS_ENTROPY: 0.99,
                tags.PRED_TOP_CLASS_SHARE: 0.35,
                **({tags.PRED_CHANGED_SHARE: 0.1 * math.exp(-epoch / 30)} if epoch else {}),
            },
            layer_stats={
                tags.LAYER_GRAD_NORM: grad,
                tags.LAYER_WEIGHT_NORM: np.full(n, 3.0),
                tags.LAYER_UPDATE_NORM: 3.0 * ratio,
                tags.LAYER_UPDATE_RATIO: ratio,
                tags.LAYER_DEAD_FRACTION: 0.1 * depth,
                tags.LAYER_SATURATED_FRACTION: np.full(n, np.nan),
            },
            class_counts=[170, 171, 171],
        )
    writer.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser_logdir")
    train(str(root / HEALTHY), 1e-2)
    train(str(root / STALLED), 1e-7)
    train(str(root / TOO_LARGE), 10.0, epochs=8)
    # A folder name may hold markup; Keras layer names may not (its name
    # scopes reject "<", "=" and spaces), hence the synthetic run below.
    train(str(root / HOSTILE), 1e-2, epochs=4)
    write_synthetic(str(root / HOSTILE_LAYERS), 6, ["dense", HOSTILE, "output"])
    write_synthetic(str(root / PERF), 300, [f"dense_{i}" for i in range(30)])
    write_synthetic(str(root / LIVE), 3, ["dense", "output"])
    write_synthetic(str(root / LONG), 400, [f"dense_{i}" for i in range(200)])
    write_synthetic(str(root / LIVE_STALLED), 6, ["dense", "output"], flat=True)
    import tb_stagnation

    model = train(str(root / LR_RANGE), 1e-7, epochs=3)
    x, y = training_data()
    # The model is not modified: a copy is swept, the record goes to the run.
    tb_stagnation.lr_range_test(model, x, y, log_dir=str(root / LR_RANGE))
    return root


# -- the server ---------------------------------------------------------------


class TensorBoard(TensorBoardProcess):
    """The real server the page talks to (Python loader, reloading every second)."""

    def __init__(self, logdir: Path) -> None:
        super().__init__(logdir, load_fast=False)

    def wait_started(self) -> str:
        def answers() -> bool:
            with urllib.request.urlopen(self.url + "data/plugins_listing", timeout=5):
                return True

        self.wait_until(answers, "tensorboard to start", START_TIMEOUT_S)
        return self.url

    def api(self, route: str, **params: str):
        query = (
            ("?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)) if params else ""
        )
        with urllib.request.urlopen(
            f"{self.url}data/plugin/stagnation/{route}{query}", timeout=60
        ) as r:
            return json.loads(r.read())


@pytest.fixture(scope="module")
def server(logdir):
    tb = TensorBoard(logdir)
    try:
        tb.wait_started()
        # Open the page only once TensorBoard has loaded every run, so the
        # first poll of the page sees them all.
        deadline = time.monotonic() + START_TIMEOUT_S
        runs: dict = {}
        while time.monotonic() < deadline:
            try:
                runs = {r["run"]: r for r in tb.api("runs")["runs"]}
            except OSError:
                runs = {}
            if ALL_RUNS <= set(runs) and all(runs[r]["epochs"] > 0 for r in ALL_RUNS):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"runs never all listed; got {sorted(runs)}\n" + tb.log()[-3000:])
        yield tb
    finally:
        tb.stop()


# -- the browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    assert os.path.exists(CHROMIUM), (
        f"no chromium at {CHROMIUM}: install Debian's chromium or set TB_STAGNATION_CHROMIUM"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Tab:
    """TensorBoard's page, the Stagnation iframe in it, and what the console said."""

    def __init__(self, browser, url: str, color_scheme: str = "light") -> None:
        self.context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, color_scheme=color_scheme
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.goto(url + "#stagnation")
        # Playwright only processes events inside its own calls: wait with its
        # locators, never with time.sleep.
        iframe = self.page.locator("iframe")
        iframe.first.wait_for(timeout=60_000)
        self.frame = iframe.first.element_handle().content_frame()
        assert self.frame is not None and "plugin_entry.html?name=stagnation" in self.frame.url
        self.frame.locator(".sg-run").first.wait_for(timeout=60_000)

    def _on_console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text} @ {msg.location.get('url', '')}")

    def row(self, run: str):
        return self.frame.locator(f".sg-run[data-run={json.dumps(run)}]")

    def select(self, run: str) -> None:
        self.row(run).click()
        title = self.frame.locator(".sg-run-title")
        self.frame.wait_for_function(
            "name => document.querySelector('.sg-run-title')?.textContent === name", arg=run
        )
        assert title.text_content() == run
        # Drawn once the diagnosis (or its error) is on screen.
        self.frame.locator(".sg-findings, .sg-error").first.wait_for(timeout=30_000)

    def screenshot(self, name: str, height: int | None = None) -> None:
        """The viewport; `height` makes it taller for one shot.

        The tab scrolls inside its iframe, so a full-page shot would not help.
        """
        ARTIFACTS.mkdir(exist_ok=True)
        size = self.page.viewport_size
        if height:
            self.page.set_viewport_size({"width": size["width"], "height": height})
            self.page.wait_for_timeout(300)  # charts follow the resize
        self.page.screenshot(path=str(ARTIFACTS / name))
        if height:
            self.page.set_viewport_size(size)

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def tab(browser, server):
    t = Tab(browser, server.url)
    yield t
    t.close()


# -- the tests ----------------------------------------------------------------


def test_run_list_flags_the_stalled_run_first(tab, server):
    rows = tab.frame.locator(".sg-run").evaluate_all(
        "els => els.map(e => [e.dataset.run, e.dataset.status])"
    )
    statuses = dict(rows)
    assert set(statuses) == ALL_RUNS
    assert statuses[STALLED] == "stalled"
    # Stalled first, then findings, errors, the rest.
    ranks = [STATUS_ORDER[s] for _, s in rows]
    assert ranks == sorted(ranks)
    badge = tab.row(STALLED).locator(".sg-badge")
    assert badge.text_content().strip().lower() == "stalled"
    assert tab.frame.locator(".sg-updated").text_content().startswith("updated ")


def test_stalled_run_shows_its_top_finding_and_highlights_it(tab, server):
    tab.select(STALLED)
    top = next(r for r in server.api("runs")["runs"] if r["run"] == STALLED)["top_finding"]
    report = server.api("report", run=STALLED)
    assert report["findings"], "the stalled run has no finding"
    findings = tab.frame.locator(".sg-finding")
    assert findings.count() == len(report["findings"])
    first = findings.first
    assert first.get_attribute("data-code") == top == report["findings"][0]["code"]
    assert first.locator(".sg-finding-title").text_content() == report["findings"][0]["title"]
    # Stalled epochs shaded: the loss chart exists with its baseline when known.
    loss = tab.frame.locator('[data-chart="metric:loss"]')
    loss.wait_for()

    first.click()
    tab.frame.locator(".sg-finding.sg-selected").wait_for()
    assert tab.frame.locator(".sg-finding.sg-selected").get_attribute("data-code") == top
    target = report["findings"][0]
    if target["epochs"]:
        assert tab.frame.locator('[data-chart="metric:loss"]').get_attribute("data-highlight")
    if target["layers"]:
        rows = tab.frame.locator("[data-heatmap]").first.get_attribute("data-highlight-rows")
        assert int(rows) > 0
    tab.screenshot("stagnation_tab.png", height=1900)

    tab.frame.locator(".sg-finding.sg-selected").click()
    tab.frame.wait_for_function("() => !document.querySelector('.sg-finding.sg-selected')")
    assert tab.frame.locator('[data-chart="metric:loss"]').get_attribute("data-highlight") == ""


def test_a_consequence_names_the_finding_that_explains_it(tab, server):
    tab.select(TOO_LARGE)
    findings = server.api("report", run=TOO_LARGE)["findings"]
    titles = {f["code"]: f["title"] for f in findings}
    explained = [f for f in findings if f.get("explained_by")]
    assert explained, "the run's report lists no consequence"
    tab.frame.locator(f'.sg-finding[data-code="{findings[0]["code"]}"]').wait_for()
    for finding in explained:
        line = tab.frame.locator(f'.sg-finding[data-code="{finding["code"]}"] .sg-consequence')
        assert line.get_attribute("data-explained-by") == finding["explained_by"]
        assert line.text_content() == (
            f"Likely a consequence of: {titles[finding['explained_by']]}"
        )
    # A finding nothing explains says nothing of the kind.
    top = tab.frame.locator(f'.sg-finding[data-code="{findings[0]["code"]}"]')
    assert top.locator(".sg-consequence").count() == 0


def test_switching_runs_and_comparing_keeps_the_selection(tab):
    tab.select(HEALTHY)
    tab.screenshot("healthy_run.png")
    tab.row(STALLED).locator(".sg-run-check").check()
    legend = tab.frame.locator('[data-chart="metric:loss"] .sg-legend')
    tab.frame.wait_for_function(
        "name => [...document.querySelectorAll('[data-chart=\"metric:loss\"] .sg-legend-label')]"
        ".some(e => e.textContent === name + ' · loss')",
        arg=STALLED,
    )
    assert f"{HEALTHY} · loss" in legend.text_content()
    tab.screenshot("compare_runs.png")
    # A refresh (what polling does) keeps focus and comparison.
    tab.frame.locator(".sg-toolbar .sg-button").click()
    tab.page.wait_for_timeout(1000)
    assert tab.frame.locator(".sg-run-title").text_content() == HEALTHY
    assert tab.row(STALLED).locator(".sg-run-check").is_checked()
    tab.frame.locator(".sg-chip-x").click()
    assert not tab.row(STALLED).locator(".sg-run-check").is_checked()


def test_hostile_run_and_layer_names_render_as_text(tab):
    assert tab.row(HOSTILE).locator(".sg-run-name").text_content() == HOSTILE
    tab.select(HOSTILE)
    assert tab.frame.locator(".sg-run-title").text_content() == HOSTILE

    tab.select(HOSTILE_LAYERS)
    heat = tab.frame.locator('[data-heatmap="layers:grad_norm"] canvas.sg-heatmap-canvas')
    heat.wait_for()
    heat.scroll_into_view_if_needed()
    box = heat.bounding_box()
    # Rows are 18 px below an 8 px epoch strip when there are few layers: row 1.
    tab.page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + 8 + 18 + 9)
    tip = tab.frame.locator('[data-heatmap="layers:grad_norm"] .sg-tooltip .sg-tip-head')
    tip.wait_for()
    assert tip.text_content() == HOSTILE
    tab.screenshot("hostile_names.png")

    for frame in (tab.frame, tab.page.main_frame):
        assert frame.evaluate("() => window.__xss") is None
    assert (
        tab.frame.evaluate(
            "() => document.querySelectorAll('img, script:not([type=module])').length"
        )
        == 0
    )


def test_render_time_of_a_300_epoch_30_layer_run(tab, capsys):
    start = time.perf_counter()
    tab.select(PERF)
    tab.frame.locator('[data-heatmap="layers:update_ratio"][data-highlight-rows]').wait_for()
    tab.frame.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    elapsed_ms = (time.perf_counter() - start) * 1000
    charts = tab.frame.locator("[data-chart]").count()
    heatmaps = tab.frame.locator("[data-heatmap]").count()
    line = (
        f"300 epochs x 30 layers: {elapsed_ms:.0f} ms from click to painted "
        f"({charts} charts, {heatmaps} heatmaps, fetch included)"
    )
    with capsys.disabled():
        print("\n" + line)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "render_time.txt").write_text(line + "\n", encoding="utf-8")
    assert heatmaps >= 2
    tab.screenshot("synthetic_300x30.png")


def test_a_downsampled_run_says_so(tab, server, capsys):
    downsampled = server.api("series", run=LONG)["downsampled"]
    assert downsampled["original_epochs"] == 400 and downsampled["stride"] >= 2
    start = time.perf_counter()
    tab.select(LONG)
    banner = tab.frame.locator(".sg-banner", has_text="Long run")
    banner.wait_for()
    tab.frame.locator('[data-heatmap="layers:grad_norm"]').wait_for()
    tab.frame.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    elapsed_ms = (time.perf_counter() - start) * 1000
    assert banner.text_content().startswith(
        f"Long run: each point pools {downsampled['stride']} of the 400 epochs"
    )
    with capsys.disabled():
        print(f"\n400 epochs x 200 layers (downsampled): {elapsed_ms:.0f} ms from click to painted")
    tab.screenshot("synthetic_400x200.png")


def test_new_epochs_appear_without_losing_the_selection(tab, server, logdir):
    tab.select(LIVE)
    tab.row(HEALTHY).locator(".sg-run-check").check()
    facts = tab.frame.locator(".sg-run-facts")
    assert facts.text_content().startswith("3 epochs")
    write_synthetic(str(logdir / LIVE), 3, ["dense", "output"], start=3)
    deadline = time.monotonic() + 60
    while next(r for r in server.api("runs")["runs"] if r["run"] == LIVE)["epochs"] < 6:
        assert time.monotonic() < deadline, "TensorBoard never loaded the new epochs"
        time.sleep(0.5)
    # The page polls every 20 s; the refresh button runs the same poll now.
    tab.frame.locator(".sg-toolbar .sg-button").click()
    tab.frame.wait_for_function(
        "() => document.querySelector('.sg-run-facts')?.textContent.startsWith('6 epochs')"
    )
    # A chart of the focus run alone (the loss chart also spans the compared run).
    tab.frame.locator('[data-chart="pred:entropy"][data-epochs="6"]').wait_for()
    assert tab.frame.locator(".sg-run-title").text_content() == LIVE
    assert tab.row(HEALTHY).locator(".sg-run-check").is_checked()
    tab.row(HEALTHY).locator(".sg-run-check").uncheck()


def test_lr_range_test_chart(tab, server):
    from tb_stagnation.overfit import fmt_rate

    record = server.api("series", run=LR_RANGE)["lr_range"]
    assert record is not None and record["learning_rates"]
    tab.select(LR_RANGE)
    chart = tab.frame.locator('[data-chart="lr_range"]')
    chart.wait_for()
    assert chart.locator(".sg-card-title").text_content() == "Learning-rate range test"
    assert tab.frame.locator('[data-section="lr_range"]').count() == 1
    # One point per step tried, on a log axis of rates.
    assert chart.get_attribute("data-epochs") == str(len(record["learning_rates"]))
    markers = chart.get_attribute("data-markers").split("; ")
    if record["suggested_lr"] is not None:
        assert f"suggested {fmt_rate(record['suggested_lr'])}" in markers
    if record["divergence_lr"] is not None:
        assert f"diverges {fmt_rate(record['divergence_lr'])}" in markers
    assert f"current {fmt_rate(1e-7)}" in markers
    legend = chart.locator(".sg-legend").text_content()
    if record["reference_loss"] is not None:
        assert "constant predictor" in legend
    captions = chart.locator(".sg-card-caption").all_text_contents()
    assert captions[0] == record["message"]
    epoch = record["epoch"]
    assert captions[1].startswith(
        "ran outside fit()" if epoch is None else f"ran after epoch {epoch}"
    )
    # A tooltip like the other charts', headed by the rate under the cursor.
    plot = chart.locator(".u-over")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    tab.page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    head = chart.locator(".sg-tooltip .sg-tip-head")
    head.wait_for()
    assert head.text_content().startswith("learning rate ")
    assert chart.locator(".sg-tooltip .sg-tip-row").count() >= 1
    tab.page.mouse.move(0, 0)
    README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chart.screenshot(path=str(README_SCREENSHOTS / "lr_range_test.png"))
    tab.screenshot("lr_range_test_tab.png")


def test_weight_norm_is_drawn(tab, server):
    tab.select(HEALTHY)
    layers = server.api("series", run=HEALTHY)["layers"]
    assert layers["weight_norm"]
    heat = tab.frame.locator('[data-heatmap="layers:weight_norm"]')
    heat.wait_for()
    assert heat.locator(".sg-card-title, h3").first.text_content() == "Weight norm per layer"
    assert heat.locator("canvas.sg-heatmap-canvas").count() == 1
    tab.frame.locator('[data-chart="global:weight_norm"]').wait_for()


def test_zoom_and_the_selected_finding_survive_new_data(tab, server, logdir):
    tab.select(LIVE_STALLED)
    finding = tab.frame.locator(".sg-finding").first
    key = finding.get_attribute("data-key")
    finding.click()
    tab.frame.locator(".sg-finding.sg-selected").wait_for()
    loss = tab.frame.locator('[data-chart="metric:loss"]')
    assert loss.get_attribute("data-epochs") == "6"
    # Drag across the middle of the loss chart: uPlot zooms the epoch axis.
    plot = loss.locator(".u-over")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    y = box["y"] + box["height"] / 2
    tab.page.mouse.move(box["x"] + box["width"] * 0.3, y)
    tab.page.mouse.down()
    tab.page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    tab.page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=5)
    tab.page.mouse.up()
    tab.frame.wait_for_function(
        "() => !!document.querySelector('[data-chart=\"metric:loss\"]')?.dataset.zoom"
    )
    zoom = loss.get_attribute("data-zoom")
    low, high = (float(v) for v in zoom.split())
    assert 0 < low < high < 5
    scroll = tab.frame.evaluate("() => document.querySelector('.sg-main').scrollTop")

    write_synthetic(str(logdir / LIVE_STALLED), 3, ["dense", "output"], start=6, flat=True)
    deadline = time.monotonic() + 60
    while next(r for r in server.api("runs")["runs"] if r["run"] == LIVE_STALLED)["epochs"] < 9:
        assert time.monotonic() < deadline, "TensorBoard never loaded the new epochs"
        time.sleep(0.5)
    tab.frame.locator(".sg-toolbar .sg-button").click()  # the poll, now
    tab.frame.locator('[data-chart="metric:loss"][data-epochs="9"]').wait_for()
    # Same place: the zoom, the finding, the scroll position.
    assert loss.get_attribute("data-zoom") == zoom
    selected = tab.frame.locator(".sg-finding.sg-selected")
    assert selected.count() == 1 and selected.get_attribute("data-key") == key
    code = selected.get_attribute("data-code")
    report = server.api("report", run=LIVE_STALLED)
    if next(f for f in report["findings"] if f["code"] == code)["epochs"]:
        assert loss.get_attribute("data-highlight")
    assert (
        abs(tab.frame.evaluate("() => document.querySelector('.sg-main').scrollTop") - scroll) < 2
    )
    # A double-click shows everything again, and that too survives a redraw.
    plot.dblclick()
    tab.frame.wait_for_function(
        "() => document.querySelector('[data-chart=\"metric:loss\"]')?.dataset.zoom === ''"
    )
    selected.click()  # clear the finding: a redraw
    tab.frame.wait_for_function("() => !document.querySelector('.sg-finding.sg-selected')")
    assert tab.frame.locator('[data-chart="metric:loss"]').get_attribute("data-zoom") == ""


def test_dark_theme_follows_the_system(browser, server):
    dark = Tab(browser, server.url, color_scheme="dark")
    try:
        dark.select(STALLED)
        background = dark.frame.evaluate("() => getComputedStyle(document.body).backgroundColor")
        r, g, b = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert r + g + b < 200, background
        dark.screenshot("stagnation_tab_dark.png")
        assert dark.errors == []
    finally:
        dark.close()


def test_no_console_errors(tab):
    # Last in the module: everything above ran in this tab.
    assert tab.errors == []
