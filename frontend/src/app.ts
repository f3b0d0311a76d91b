/**
 * Wires the page together: polls ./runs, keeps the shown runs' report and
 * series cached (refetched only when a run's `updated` changes), and redraws
 * the main area when the data or the person's choices change.
 */
import { ApiError, fetchReport, fetchRuns, fetchSeries, type Report, type RunInfo, type RunsResponse, type Series } from "./api";
import { buildSections } from "./chartSpecs";
import { formatClock, formatWallTime } from "./clock";
import { el, replaceChildren } from "./dom";
import * as empty from "./emptyStates";
import { renderFindings } from "./findingsPanel";
import { Heatmap } from "./heatmap";
import { LineChart, type Zoom } from "./lineChart";
import { startPolling, type Poller } from "./poller";
import { toSpansOnAxis } from "./ranges";
import { RunList, statusBadge } from "./runList";
import { sortRuns } from "./runs";
import { renderSettings } from "./settings";
import { findingKeys, loadState, reconcile, shownRuns, Store, toggleCompare, toggleFinding, type UiState } from "./state";
import { onSchemeChange, runColor, runColors } from "./theme";

const SOURCE_LABELS: Record<string, string> = {
  callback: "StagnationCallback logs",
  keras: "keras.callbacks.TensorBoard logs",
  scalars: "another tool's scalars",
};

/** Often enough to feel live during training, rare enough to cost nothing. */
export const POLL_MS = 20_000;

interface RunData {
  /** The runs list's `updated` for this run when it was fetched. */
  fetchedFor: number | null;
  series: Series | null;
  report: Report | null;
  /** Why the last fetch of each failed; the last good data stays on screen. */
  seriesError: string | null;
  reportError: string | null;
  pending: boolean;
}

export class App {
  private store = new Store(loadState());
  private runList = new RunList(this.store);
  private runs: RunsResponse | null = null;
  private runsError: string | null = null;
  private lastOk: Date | null = null;
  private cache = new Map<string, RunData>();
  private charts: { destroy(): void }[] = [];
  private lineCharts = new Map<string, LineChart>();
  /** Each line chart's zoom (by chart id), kept across redraws; cleared when the focus moves. */
  private zooms = new Map<string, Zoom>();
  private poller: Poller | null = null;
  private firstLoad = true;

  private status = el("span", { class: "sg-status", attrs: { "aria-live": "polite" } });
  private updatedStamp = el("span", { class: "sg-updated" });
  private content = el("div", { class: "sg-content" });
  private main = el("main", { class: "sg-main" });

  constructor(private root: HTMLElement) {}

  start(): void {
    const refresh = el("button", {
      class: "sg-button",
      text: "↻ Refresh",
      title: `Reload runs now (the page also checks every ${POLL_MS / 1000} s)`,
      attrs: { type: "button" },
      on: { click: () => this.poller?.now() },
    });
    replaceChildren(this.main, [
      el("div", { class: "sg-toolbar" }, [this.status, el("span", { class: "sg-spacer" }), this.updatedStamp, refresh]),
      this.content,
    ]);
    const sidebar = el("aside", { class: "sg-sidebar" }, [renderSettings(this.store), this.runList.element]);
    replaceChildren(this.root, [el("div", { class: "sg-app" }, [sidebar, this.main])]);
    this.runList.render();
    this.renderMain();
    this.store.subscribe((s, prev) => this.onState(s, prev));
    onSchemeChange(() => this.renderMain());
    this.poller = startPolling(() => this.tick(), POLL_MS);
    this.poller.now();
  }

  private onState(s: UiState, prev: UiState): void {
    const selection = s.primary !== prev.primary || s.compare !== prev.compare;
    if (selection || s.filter !== prev.filter) this.runList.render();
    if (s.primary !== prev.primary) this.zooms.clear();
    if (selection) void this.loadShown();
    if (selection || s.finding !== prev.finding || s.logScale !== prev.logScale || s.smoothing !== prev.smoothing) {
      this.renderMain();
    }
  }

  private async tick(): Promise<void> {
    try {
      this.runs = await fetchRuns();
      this.runsError = null;
      this.lastOk = new Date();
    } catch (e) {
      this.runsError = message(e);
      this.renderToolbar();
      if (!this.runs) this.renderMain();
      return;
    }
    const names = sortRuns(this.runs.runs).map((r) => r.run);
    runColors.assign(names);
    const wasFirst = this.firstLoad;
    this.firstLoad = false;
    this.runList.setRuns(this.runs.runs);
    this.store.set(reconcile(this.store.get(), names, wasFirst));
    this.renderToolbar();
    const changed = await this.loadShown();
    // loadShown redraws when data arrived; the first answer must draw even
    // when there is nothing to fetch (no runs: the teaching empty state).
    if (wasFirst && !changed) this.renderMain();
  }

  /** Fetches report + series of every shown run that is new or has newer data. Returns whether anything changed. */
  private async loadShown(): Promise<boolean> {
    const byName = new Map<string, RunInfo>((this.runs?.runs ?? []).map((r) => [r.run, r]));
    const jobs = shownRuns(this.store.get()).map(async (name) => {
      const info = byName.get(name);
      const cached = this.cache.get(name);
      if (!info && !cached && this.runs) return false; // unknown run; reconcile will drop it
      const updated = info?.updated ?? null;
      const failed = !!cached && (cached.seriesError !== null || cached.reportError !== null);
      if (cached && (cached.pending || (cached.fetchedFor === updated && !failed))) return false;
      const entry: RunData = cached ?? {
        fetchedFor: null,
        series: null,
        report: null,
        seriesError: null,
        reportError: null,
        pending: false,
      };
      entry.pending = true;
      this.cache.set(name, entry);
      // Independent: when the analysis fails (/report 500) the charts still draw.
      const [report, series] = await Promise.allSettled([fetchReport(name), fetchSeries(name)]);
      if (report.status === "fulfilled") entry.report = report.value;
      if (series.status === "fulfilled") entry.series = series.value;
      entry.reportError = report.status === "rejected" ? message(report.reason) : null;
      entry.seriesError = series.status === "rejected" ? message(series.reason) : null;
      entry.fetchedFor = updated;
      entry.pending = false;
      return true;
    });
    const results = await Promise.all(jobs);
    const changed = results.some(Boolean);
    if (changed) this.renderMain();
    return changed;
  }

  private renderToolbar(): void {
    const runs = this.runs?.runs ?? [];
    const stalled = runs.filter((r) => r.status === "stalled").length;
    this.status.textContent = this.runs
      ? `${runs.length} run${runs.length === 1 ? "" : "s"}${stalled ? ` · ${stalled} stalled` : ""}`
      : "";
    this.updatedStamp.textContent = this.lastOk ? `updated ${formatClock(this.lastOk)}` : "";
    this.updatedStamp.classList.toggle("sg-stale", this.runsError !== null);
    this.updatedStamp.title = this.runsError
      ? `The last check failed: ${this.runsError}`
      : `Runs are checked every ${POLL_MS / 1000} s; charts refetch when a run logs a new epoch.`;
    if (this.runsError && this.lastOk) this.updatedStamp.textContent += " · offline";
  }

  private renderMain(): void {
    const scroll = this.main.scrollTop;
    // Keep the reader's place: the zoom of every chart survives new data.
    for (const [id, chart] of this.lineCharts) {
      const z = chart.zoom();
      if (z) this.zooms.set(id, z);
      else this.zooms.delete(id);
    }
    for (const c of this.charts) c.destroy();
    this.charts = [];
    this.lineCharts.clear();
    const s = this.store.get();
    const pending: (() => void)[] = [];
    replaceChildren(this.content, this.mainChildren(s, pending));
    for (const draw of pending) draw();
    this.main.scrollTop = scroll;
  }

  private mainChildren(s: UiState, pending: (() => void)[]): (HTMLElement | null)[] {
    if (!this.runs) {
      return [this.runsError ? empty.errorCard(this.runsError) : empty.loading("runs")];
    }
    if (this.runs.runs.length === 0) return [empty.noRuns()];
    if (s.primary === null) return [empty.noSelection()];
    const data = this.cache.get(s.primary);
    const info = this.runs.runs.find((r) => r.run === s.primary) ?? null;
    const head = this.runHeader(s, info, data?.series ?? null);
    if (!data || (!data.series && data.pending)) return [head, empty.loading(s.primary)];
    if (!data.series) return [head, empty.errorCard(data.seriesError ?? data.reportError ?? "No data.")];
    const series = data.series;
    const report = data.report;

    const out: (HTMLElement | null)[] = [head];
    if (data.seriesError) out.push(empty.errorCard(`Showing the last data received. ${data.seriesError}`));
    if (!info) out.push(el("p", { class: "sg-banner", text: "This run is no longer listed by TensorBoard; showing the last data received." }));
    if (series.downsampled) {
      out.push(
        el("p", {
          class: "sg-banner",
          text: `Long run: each point pools ${series.downsampled.stride} of the ${series.downsampled.originalEpochs} epochs (a NaN in a group shows; norms and shares keep the group's maximum).`,
        }),
      );
    }
    if (series.source === "scalars") {
      out.push(empty.otherTool(series.run));
    } else if (series.source === "keras" || (!series.layers && !series.predictions && series.epochs.length > 0)) {
      out.push(empty.kerasOnly(series.run));
    }
    if (series.epochs.length === 0) {
      out.push(empty.emptyRun());
      return out;
    }

    // The clicked finding: its epochs as bands, its layers as highlighted rows.
    const selected = s.finding && s.finding.run === s.primary ? s.finding.key : null;
    const keys = report ? findingKeys(report.run, report.findings) : [];
    const finding = report?.findings.find((_, i) => keys[i] === selected) ?? null;
    const focus = {
      highlightEpochs: finding ? toSpansOnAxis(finding.epochs, series.epochs) : [],
      highlightLayers: new Set(finding?.layers ?? []),
    };
    if (data.reportError || !report) {
      out.push(
        empty.errorCard(
          `${data.reportError ?? "The report is missing."} The charts below show what was logged.`,
          "No diagnosis for this run",
        ),
      );
    }
    if (report) {
      out.push(
        renderFindings(report, {
          selectedKey: finding ? selected : null,
          onToggle: (key) => this.store.update((st) => toggleFinding(st, series.run, key)),
        }),
      );
    }

    const others = shownRuns(s)
      .slice(1)
      .map((r) => this.cache.get(r)?.series)
      .filter((x): x is Series => !!x);
    for (const section of buildSections(series, others, focus)) {
      const grid = el("div", { class: "sg-grid" });
      for (const spec of section.charts) {
        const chart = new LineChart(spec, {
          log: s.logScale[spec.id],
          smoothing: s.smoothing,
          onToggleLog: (id, log) => this.store.update((st) => ({ ...st, logScale: { ...st.logScale, [id]: log } })),
          zoom: this.zooms.get(spec.id) ?? null,
        });
        this.charts.push(chart);
        this.lineCharts.set(spec.id, chart);
        grid.appendChild(chart.element);
        pending.push(() => chart.render());
      }
      const heat = section.heatmaps.map((spec) => {
        const h = new Heatmap(spec);
        this.charts.push(h);
        pending.push(() => h.render());
        return h.element;
      });
      out.push(
        el("section", { class: "sg-section", attrs: { "data-section": section.id } }, [
          el("h2", { class: "sg-section-title", text: section.title }),
          section.charts.length ? grid : null,
          ...heat,
        ]),
      );
    }
    return out;
  }

  private runHeader(s: UiState, info: RunInfo | null, series: Series | null): HTMLElement {
    const compared = shownRuns(s).slice(1);
    const facts: string[] = [];
    if (info) facts.push(`${info.epochs} epoch${info.epochs === 1 ? "" : "s"}`);
    const src = info?.source ?? series?.source;
    if (src) facts.push(SOURCE_LABELS[src] ?? "StagnationCallback logs");
    const last = info?.updated ?? series?.updated ?? null;
    if (last !== null) facts.push(`last value logged ${formatWallTime(last)}`);
    return el("header", { class: "sg-run-header" }, [
      el("div", { class: "sg-run-title-row" }, [
        el("span", { class: "sg-swatch sg-run-swatch", attrs: { style: `--c:${runColor(s.primary ?? "")}` } }),
        el("h1", { class: "sg-run-title", text: s.primary ?? "" }),
        info ? statusBadge(info.status) : null,
      ]),
      el("p", { class: "sg-run-facts", text: facts.join(" · ") }),
      compared.length
        ? el("div", { class: "sg-compare" }, [
            el("span", { class: "sg-label", text: "Compared with: " }),
            ...compared.map((r) =>
              el("span", { class: "sg-chip sg-chip-run" }, [
                el("span", { class: "sg-swatch", attrs: { style: `--c:${runColor(r)}` } }),
                r,
                el("button", {
                  class: "sg-chip-x",
                  text: "×",
                  title: "Stop comparing",
                  attrs: { type: "button", "aria-label": `Stop comparing ${r}` },
                  on: { click: () => this.store.update((st) => toggleCompare(st, r)) },
                }),
              ]),
            ),
          ])
        : null,
    ]);
  }
}

function message(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  return e instanceof Error ? e.message : String(e);
}
