/**
 * One per-epoch line chart card: uPlot for the drawing, plus what uPlot does
 * not know about this page: shaded stalled / highlighted epoch bands, dashed
 * baselines, markers for NaN / Inf points, a log/linear toggle, smoothing and
 * a tooltip that shows the exact logged value (including "NaN").
 *
 * Why uPlot: it draws thousands of points per series on a canvas in
 * milliseconds, has log scales and a synced cursor, and is ~50 KB. See
 * frontend/README.md.
 */
import uPlot from "uplot";
import { alignOnEpochs } from "./align";
import { formatTicks, logSplits } from "./axisTicks";
import { el, replaceChildren } from "./dom";
import { describeSpans, type Span } from "./ranges";
import { smoothEma } from "./smoothing";
import { chartTheme, type ChartTheme } from "./theme";
import { formatValue, nonFiniteIndices, toPlottable, type Val } from "./values";

export interface LineSeriesSpec {
  label: string;
  color: string;
  dash?: number[];
  epochs: readonly number[];
  values: readonly Val[];
  /** Smoothing applies to measured quantities, not to schedules such as the learning rate. */
  smooth?: boolean;
  /**
   * A smoothing the backend computed (aligned with `values`): drawn over the
   * faint raw line, as the page's own smoothing is, whatever the slider says.
   */
  smoothedValues?: readonly Val[];
}

/** A vertical line at one x value, labelled at the top of the plot. */
export interface MarkerSpec {
  label: string;
  value: number;
  color: string;
  dash?: number[];
}

/** The x range the person zoomed to (drag), kept across redraws. */
export type Zoom = [number, number];

export interface BaselineSpec {
  label: string;
  value: number;
}

export interface LineChartSpec {
  id: string;
  title: string;
  help?: string;
  series: LineSeriesSpec[];
  baselines?: BaselineSpec[];
  stalled?: Span[];
  highlight?: Span[];
  logDefault?: boolean;
  /** Fixed linear range, e.g. [0, 1] for shares. */
  yRange?: [number, number];
  /** What x is (tooltip head), "epoch" unless said; a log x axis for rates. */
  xLabel?: string;
  xLog?: boolean;
  /** Vertical lines: a suggested rate, the model's own rate, ... */
  markers?: MarkerSpec[];
  /** Lines under the plot (what the chart's numbers mean). */
  caption?: string[];
  /** Charts sharing a key share the cursor and the zoom; null: none. Default: the epoch charts' key. */
  syncKey?: string | null;
}

export interface LineChartOptions {
  log: boolean | undefined; // undefined: the chart's default
  smoothing: number;
  onToggleLog: (id: string, log: boolean) => void;
  /** The x range to show (a zoom kept from before a redraw); undefined: everything. */
  zoom?: Zoom | null;
}

const PLOT_HEIGHT = 200;
const SYNC_KEY = "stagnation-epochs";

/** What one drawn uPlot series stands for, for the tooltip. */
interface DrawnSeries {
  label: string;
  color: string;
  raw: (Val | undefined)[];
  smoothed: (Val | undefined)[] | null;
  isBaseline: boolean;
}

export class LineChart {
  readonly element: HTMLElement;
  private plotBox: HTMLElement;
  private legendBox: HTMLElement;
  private toggle: HTMLButtonElement;
  private plot: uPlot | null = null;
  private tooltip: HTMLElement;
  private resizeObserver: ResizeObserver;
  private spec: LineChartSpec;
  private opts: LineChartOptions;
  private log = false;
  /** The x range everything fits in, to tell a zoom from the full view. */
  private fullX: Zoom | null = null;

  constructor(spec: LineChartSpec, opts: LineChartOptions) {
    this.spec = spec;
    this.opts = opts;
    this.toggle = el("button", {
      class: "sg-toggle",
      attrs: { type: "button", "aria-pressed": "false" },
      title: "Switch the y axis between linear and logarithmic",
      on: { click: () => this.opts.onToggleLog(this.spec.id, !this.log) },
    });
    this.legendBox = el("div", { class: "sg-legend" });
    this.plotBox = el("div", { class: "sg-plot" });
    this.tooltip = el("div", { class: "sg-tooltip", attrs: { role: "tooltip" } });
    this.element = el("section", { class: "sg-card sg-chart", attrs: { "data-chart": spec.id } }, [
      el("header", { class: "sg-card-head" }, [
        el("h3", { class: "sg-card-title", text: spec.title }),
        this.toggle,
      ]),
      spec.help ? el("p", { class: "sg-card-help", text: spec.help }) : null,
      this.legendBox,
      this.plotBox,
      ...(spec.caption ?? []).map((line) => el("p", { class: "sg-card-caption", text: line })),
    ]);
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.plotBox);
  }

  /** Draws (or redraws) with the current spec; call after the element is in the DOM. */
  render(): void {
    this.plot?.destroy();
    this.plot = null;
    const theme = chartTheme();
    const spec = this.spec;
    // What is highlighted, readable without pixels (browser tests, screen readers' inspectors).
    this.element.setAttribute("data-highlight", describeSpans(spec.highlight ?? [], 100));

    const anyPositive = spec.series.some((s) => s.values.some((v) => v !== null && Number.isFinite(v) && v > 0));
    this.log = anyPositive && (this.opts.log ?? spec.logDefault ?? false);
    this.toggle.textContent = this.log ? "log" : "linear";
    this.toggle.setAttribute("aria-pressed", String(this.log));
    this.toggle.disabled = !anyPositive;

    const { x, drawn, data, seriesOpts } = this.buildData(theme);
    this.element.setAttribute("data-epochs", String(x.length));
    const markers = (spec.markers ?? []).filter((m) => Number.isFinite(m.value) && (!spec.xLog || m.value > 0));
    this.element.setAttribute("data-markers", markers.map((m) => m.label).join("; "));
    this.renderLegend(drawn, drawn.some((d) => !d.isBaseline && nonFiniteIndices(d.raw).length > 0), markers);
    this.fullX = null;
    if (x.length === 0) {
      replaceChildren(this.plotBox, [el("div", { class: "sg-chart-empty", text: "Nothing logged yet." })]);
      return;
    }
    replaceChildren(this.plotBox, []);
    const halfStep = medianStep(x) / 2;
    const xLog = !!spec.xLog;
    const xLabel = spec.xLabel ?? "epoch";
    // Markers past the last point tried (a divergence the sweep stopped at) stay in view.
    const fullX = xRange(x, markers.map((m) => m.value), xLog);
    this.fullX = fullX;
    // uPlot asks for the data's extent at first and on a double-click reset: show the markers too.
    const x0 = x[0] as number;
    const x1 = x[x.length - 1] as number;
    const isDataExtent = (min: number | null, max: number | null) =>
      min === null || max === null || min === max || (min === x0 && max === x1);
    const sync = spec.syncKey === undefined ? SYNC_KEY : spec.syncKey;
    const nonFinite = drawn.filter((d) => !d.isBaseline).flatMap((d) => nonFiniteIndices(d.raw));

    const yScale: uPlot.Scale = this.log
      ? { distr: 3 as uPlot.Scale.Distr, log: 10 }
      : spec.yRange
        ? { range: spec.yRange }
        : { range: (_u, min, max) => padRange(min, max) };

    const options: uPlot.Options = {
      width: Math.max(this.plotBox.clientWidth, 200),
      height: PLOT_HEIGHT,
      legend: { show: false },
      cursor: {
        ...(sync !== null ? { sync: { key: sync, scales: ["x", null] as [string, null] } } : {}),
        drag: { x: true, y: false },
        y: false, // a horizontal crosshair reads as one more baseline
        points: { size: 6 },
      },
      scales: {
        x: xLog
          ? {
              time: false,
              distr: 3 as uPlot.Scale.Distr,
              log: 10,
              range: (_u, min, max) => (isDataExtent(min, max) ? fullX : [min, max]),
            }
          : {
              time: false,
              range: (_u, min, max) => (isDataExtent(min, max) ? fullX : [min, max]),
            },
        y: yScale,
      },
      axes: [
        xLog
          ? {
              ...axis(theme),
              size: 28,
              values: (_u, splits) => formatTicks(splits, true),
              splits: (_u: uPlot, _i: number, min: number, max: number) => logSplits(min, max, 9),
              filter: (_u: uPlot, splits: number[]) => splits,
            }
          : // Epochs are whole numbers: never a tick at 2.5.
            { ...axis(theme), size: 28, incrs: EPOCH_INCRS, values: (_u, splits) => splits.map((v) => (v === null ? "" : String(v))) },
        {
          ...axis(theme),
          size: 56,
          values: (_u, splits) => formatTicks(splits, this.log),
          // logSplits already thins its ticks; uPlot's own log filter would keep
          // only powers of ten, leaving a 0.2-1 range with the one label "1".
          ...(this.log
            ? {
                splits: (_u: uPlot, _i: number, min: number, max: number) => logSplits(min, max),
                filter: (_u: uPlot, splits: number[]) => splits,
              }
            : {}),
        },
      ],
      series: [{ label: xLabel }, ...seriesOpts],
      hooks: {
        drawClear: [(u) => drawBands(u, spec.stalled ?? [], theme.stalled, halfStep)],
        draw: [
          (u) => drawBands(u, spec.highlight ?? [], theme.highlight, halfStep, true),
          (u) => drawNonFinite(u, x, nonFinite, theme.nonfinite),
          (u) => drawMarkers(u, markers, theme.font),
        ],
        setCursor: [(u) => this.showTooltip(u, x, drawn, xLabel)],
        // The zoom, readable without pixels (browser tests): "" when everything shows.
        setScale: [(_u, key) => (key === "x" ? this.markZoom() : undefined)],
      },
    };
    this.plot = new uPlot(options, data as uPlot.AlignedData, this.plotBox);
    const zoom = this.opts.zoom;
    if (zoom && zoom[0] < zoom[1] && (!xLog || zoom[0] > 0)) this.plot.setScale("x", { min: zoom[0], max: zoom[1] });
    this.markZoom();
    this.plot.over.appendChild(this.tooltip);
    this.plot.over.addEventListener("mouseleave", () => this.tooltip.classList.remove("sg-visible"));
  }

  private markZoom(): void {
    const z = this.zoom();
    this.element.setAttribute("data-zoom", z ? `${Number(z[0].toPrecision(6))} ${Number(z[1].toPrecision(6))}` : "");
  }

  /** The x range shown when the person zoomed in, else null (everything shown). */
  zoom(): Zoom | null {
    const u = this.plot;
    const full = this.fullX;
    if (!u || !full) return null;
    const min = u.scales.x?.min;
    const max = u.scales.x?.max;
    if (min === undefined || max === undefined || min === null || max === null) return null;
    const span = this.spec.xLog ? Math.log10(full[1] / full[0]) : full[1] - full[0];
    const off = (a: number, b: number) => (this.spec.xLog ? Math.abs(Math.log10(a / b)) : Math.abs(a - b));
    const eps = Math.max(span, 1e-12) * 1e-6;
    return off(min, full[0]) <= eps && off(max, full[1]) <= eps ? null : [min, max];
  }

  update(spec: LineChartSpec, opts: LineChartOptions): void {
    this.spec = spec;
    this.opts = opts;
    this.render();
  }

  destroy(): void {
    this.resizeObserver.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private resize(): void {
    const w = this.plotBox.clientWidth;
    if (this.plot && w > 0 && Math.abs(w - this.plot.width) > 1) {
      this.plot.setSize({ width: w, height: PLOT_HEIGHT });
    }
  }

  private buildData(theme: ChartTheme) {
    const spec = this.spec;
    const smoothing = this.opts.smoothing;
    const parts = spec.series.map((s) => ({ epochs: s.epochs, values: s.values }));
    const aligned = alignOnEpochs(parts);
    const x = aligned.x;
    const drawn: DrawnSeries[] = [];
    const data: (number | null | undefined)[][] = [x];
    const seriesOpts: uPlot.Series[] = [];
    const plottable = (vals: readonly (Val | undefined)[]) => toPlottable(vals, this.log);

    spec.series.forEach((s, i) => {
      const raw = aligned.ys[i] as (Val | undefined)[];
      const doSmooth = !!s.smooth && smoothing > 0;
      let smoothed: (Val | undefined)[] | null = null;
      if (s.smoothedValues) {
        smoothed = alignOnEpochs([{ epochs: s.epochs, values: s.smoothedValues }, ...parts]).ys[0] as (Val | undefined)[];
        if (smoothed.length !== x.length) smoothed = null;
      } else if (doSmooth) {
        // Smooth along the run's own epochs, then align: gaps introduced by
        // other runs' epochs must not reset the moving average.
        smoothed = alignOnEpochs([{ epochs: s.epochs, values: smoothEma(s.values, smoothing) }, ...parts]).ys[0] as (
          | Val
          | undefined
        )[];
        if (smoothed.length !== x.length) smoothed = null;
      }
      if (smoothed) {
        // TensorBoard's look: the raw line faint behind the smoothed one.
        data.push(plottable(raw));
        seriesOpts.push({ label: s.label, stroke: fade(s.color), width: 1, dash: s.dash, points: { show: false } });
      }
      data.push(plottable(smoothed ?? raw));
      // Hollow points in the card's colour: uPlot's default white glares in dark mode.
      seriesOpts.push({ label: s.label, stroke: s.color, width: 1.6, dash: s.dash, points: { fill: theme.background } });
      drawn.push({ label: s.label, color: s.color, raw, smoothed, isBaseline: false });
    });

    for (const b of spec.baselines ?? []) {
      if (!Number.isFinite(b.value) || (this.log && b.value <= 0) || x.length === 0) continue;
      data.push(x.map(() => b.value));
      seriesOpts.push({ label: b.label, stroke: theme.baseline, width: 1.2, dash: [6, 4], points: { show: false } });
      drawn.push({ label: b.label, color: theme.baseline, raw: x.map(() => b.value), smoothed: null, isBaseline: true });
    }
    return { x, drawn, data, seriesOpts };
  }

  private renderLegend(drawn: DrawnSeries[], hasNonFinite: boolean, markers: readonly MarkerSpec[]): void {
    const items = drawn.map((d) =>
      el("span", { class: "sg-legend-item" + (d.isBaseline ? " sg-legend-baseline" : "") }, [
        el("span", { class: "sg-swatch" + (d.isBaseline ? " sg-swatch-dashed" : ""), attrs: { style: `--c:${safeColor(d.color)}` } }),
        el("span", { class: "sg-legend-label", text: d.isBaseline ? `${d.label} ${formatValue(d.raw[0] ?? null)}` : d.label }),
      ]),
    );
    for (const m of markers) {
      items.push(
        el("span", { class: "sg-legend-item sg-legend-marker" }, [
          el("span", { class: "sg-swatch sg-swatch-marker", attrs: { style: `--c:${safeColor(m.color)}` } }),
          el("span", { class: "sg-legend-label", text: m.label }),
        ]),
      );
    }
    if ((this.spec.stalled ?? []).length > 0) {
      items.push(el("span", { class: "sg-legend-item" }, [el("span", { class: "sg-swatch sg-swatch-stalled" }), "stalled epochs"]));
    }
    if (hasNonFinite) {
      items.push(el("span", { class: "sg-legend-item sg-nonfinite", text: "▼ NaN / Inf (not plotted; hover for the value)" }));
    }
    replaceChildren(this.legendBox, items);
  }

  private showTooltip(u: uPlot, x: number[], drawn: DrawnSeries[], xLabel: string): void {
    const idx = u.cursor.idx;
    const left = u.cursor.left ?? -1;
    if (idx === null || idx === undefined || left < 0) {
      this.tooltip.classList.remove("sg-visible");
      return;
    }
    const rows = [el("div", { class: "sg-tip-head", text: `${xLabel} ${formatValue(x[idx] ?? null)}` })];
    for (const d of drawn) {
      const v = d.raw[idx];
      if (v === undefined) continue; // this run has no point at this epoch
      // Smoothing passes missing and non-finite points through unchanged:
      // for those the raw value is the whole story.
      const sm = d.smoothed?.[idx];
      const text =
        sm !== undefined && sm !== null && v !== null && Number.isFinite(v)
          ? `${formatValue(sm)} (raw ${formatValue(v)})`
          : formatValue(v);
      rows.push(
        el("div", { class: "sg-tip-row" }, [
          el("span", { class: "sg-swatch", attrs: { style: `--c:${safeColor(d.color)}` } }),
          el("span", { class: "sg-tip-label", text: d.label }),
          el("span", { class: "sg-tip-value" + (v !== null && !Number.isFinite(v) ? " sg-nonfinite" : ""), text }),
        ]),
      );
    }
    replaceChildren(this.tooltip, rows);
    this.tooltip.classList.add("sg-visible");
    // Keep the tooltip inside the plot: flip to the left half past the middle.
    const overW = u.over.clientWidth;
    const top = Math.max(0, Math.min((u.cursor.top ?? 0) + 12, u.over.clientHeight - 20));
    this.tooltip.style.top = `${top}px`;
    if (left > overW / 2) {
      this.tooltip.style.left = "";
      this.tooltip.style.right = `${overW - left + 12}px`;
    } else {
      this.tooltip.style.right = "";
      this.tooltip.style.left = `${left + 12}px`;
    }
  }
}

const EPOCH_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000, 100000];

function axis(theme: ChartTheme): uPlot.Axis {
  return {
    stroke: theme.axis,
    font: theme.font,
    grid: { stroke: theme.grid, width: 1 },
    ticks: { stroke: theme.grid, width: 1, size: 4 },
  };
}

/** A few percent of air above and below, like TensorBoard's charts. */
export function padRange(min: number | null, max: number | null): [number, number] {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) {
    const d = Math.abs(min) * 0.1 || 1;
    return [min - d, max + d];
  }
  const pad = (max - min) * 0.05;
  return [min - pad, max + pad];
}

/** Median spacing of the epoch axis: a downsampled run's band must cover its stride. */
export function medianStep(x: readonly number[]): number {
  if (x.length < 2) return 1;
  const d: number[] = [];
  for (let i = 1; i < x.length; i++) d.push((x[i] as number) - (x[i - 1] as number));
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)] || 1;
}

/** The x range that holds every point and every marker. */
export function xRange(x: readonly number[], extra: readonly number[], log: boolean): Zoom {
  let min = Infinity;
  let max = -Infinity;
  for (const v of [...x, ...extra]) {
    if (!Number.isFinite(v) || (log && v <= 0)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!Number.isFinite(min)) return log ? [1e-7, 10] : [0, 1];
  if (min === max) return log ? [min / 10, max * 10] : [min - 1, max + 1];
  return [min, max];
}

/** Vertical lines with their labels along the top, staggered when they would overlap. */
function drawMarkers(u: uPlot, markers: readonly MarkerSpec[], font: string): void {
  if (markers.length === 0) return;
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  const dpr = devicePixelRatio;
  const placed = markers
    .map((m) => ({ m, px: u.valToPos(m.value, "x", true) }))
    .filter((p) => Number.isFinite(p.px) && p.px >= left - 1 && p.px <= left + width + 1)
    .sort((a, b) => a.px - b.px);
  ctx.save();
  ctx.font = font.replace(/(\d+(?:\.\d+)?)px/, (_, n: string) => `${Number(n) * dpr}px`);
  ctx.textBaseline = "top";
  ctx.textAlign = "left"; // uPlot leaves it as its last axis set it
  const rowEnds: number[] = [];
  for (const { m, px } of placed) {
    ctx.strokeStyle = m.color;
    ctx.lineWidth = 1.5 * dpr;
    ctx.setLineDash((m.dash ?? []).map((d) => d * dpr));
    ctx.beginPath();
    ctx.moveTo(px, top);
    ctx.lineTo(px, top + height);
    ctx.stroke();
    const w = ctx.measureText(m.label).width;
    // Right of the line, or left of it near the right edge; never outside the plot.
    const side = px + 4 * dpr + w > left + width ? px - 4 * dpr - w : px + 4 * dpr;
    const x0 = Math.max(left + 2 * dpr, Math.min(side, left + width - w - 2 * dpr));
    let row = rowEnds.findIndex((end) => end < x0);
    if (row === -1) row = rowEnds.length;
    rowEnds[row] = x0 + w + 6 * dpr;
    const y = top + (4 + row * 14) * dpr;
    ctx.fillStyle = m.color;
    ctx.fillText(m.label, x0, y);
  }
  ctx.restore();
}

function drawBands(u: uPlot, spans: readonly Span[], color: string, halfStep: number, outline = false): void {
  if (spans.length === 0) return;
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  ctx.fillStyle = color;
  for (const s of spans) {
    const x0 = u.valToPos(s.start - halfStep, "x", true);
    const x1 = u.valToPos(s.end + halfStep, "x", true);
    ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height);
    if (outline) {
      // Edges in the accent colour: the band stays visible over a stalled band.
      ctx.fillStyle = "#f57c00";
      const w = 2 * devicePixelRatio;
      ctx.fillRect(x0, top, w, height);
      ctx.fillRect(Math.max(x1, x0 + 2) - w, top, w, height);
      ctx.fillStyle = color;
    }
  }
  ctx.restore();
}

/** Small triangles along the top edge where a value was NaN or infinite. */
function drawNonFinite(u: uPlot, x: readonly number[], idxs: readonly number[], color: string): void {
  if (idxs.length === 0) return;
  const ctx = u.ctx;
  const s = 5 * devicePixelRatio;
  const top = u.bbox.top;
  ctx.save();
  ctx.fillStyle = color;
  for (const i of new Set(idxs)) {
    const px = u.valToPos(x[i] as number, "x", true);
    ctx.beginPath();
    ctx.moveTo(px - s, top);
    ctx.lineTo(px + s, top);
    ctx.lineTo(px, top + s * 1.4);
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}

function fade(color: string): string {
  return /^#[0-9a-f]{6}$/i.test(color) ? `${color}55` : color;
}

/** Colours come from our palette, but a style attribute still only gets a plain colour token. */
function safeColor(c: string): string {
  return /^(#[0-9a-f]{3,8}|rgba?\([\d\s.,%]+\)|[a-z]+)$/i.test(c) ? c : "#888";
}
