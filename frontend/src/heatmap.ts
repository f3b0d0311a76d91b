/**
 * Layers x epochs heatmap on a plain <canvas> (uPlot has no heatmap, and a
 * few hundred lines here are smaller than any heatmap library).
 *
 * Rows are layers from input (top) to output (bottom), columns are epochs.
 * Columns are merged down to the canvas's pixel width (downsample.ts) and the
 * card says so. The tooltip shows the exact value, or the merged value and the
 * epoch range it covers. Labels are drawn with fillText, which never
 * interprets markup, so hostile layer names are inert here.
 */
import { aggregateRow, buckets, type Bucket } from "./downsample";
import { colorOf, domainOf, NONFINITE_COLOR, ramp, ticks, ZERO_COLOR, type Domain, type RGB, type ScaleKind } from "./colorScale";
import { el, replaceChildren } from "./dom";
import type { Span } from "./ranges";
import { chartTheme, type ChartTheme } from "./theme";
import { formatValue, type Val } from "./values";

export interface HeatmapSpec {
  id: string;
  title: string;
  help?: string;
  kind: ScaleKind;
  rowNames: string[];
  rowDetails?: string[]; // "Dense, relu": shown in the tooltip
  epochs: readonly number[];
  rows: readonly (readonly Val[])[];
  highlightRows?: ReadonlySet<string>;
  highlightEpochs?: readonly Span[];
  stalled?: readonly Span[];
}

const LABEL_W = 150;
const AXIS_H = 18;
const TRACK_H = 6; // stalled / highlighted epochs strip above the cells
const MAX_ROW_H = 18;
const MIN_ROW_H = 3;

interface Layout {
  cssW: number;
  cellsX: number;
  cellsW: number;
  cellsY: number;
  rowH: number;
  cssH: number;
  bs: Bucket[];
  agg: Val[][];
}

export class Heatmap {
  readonly element: HTMLElement;
  private canvas: HTMLCanvasElement;
  private legend: HTMLElement;
  private note: HTMLElement;
  private tooltip: HTMLElement;
  private wrap: HTMLElement;
  private spec: HeatmapSpec;
  private domain: Domain;
  private layout: Layout | null = null;
  private resizeObserver: ResizeObserver;
  private lastWidth = 0;

  constructor(spec: HeatmapSpec) {
    this.spec = spec;
    this.domain = domainOf(spec.rows, spec.kind);
    this.canvas = el("canvas", { class: "sg-heatmap-canvas" });
    this.tooltip = el("div", { class: "sg-tooltip", attrs: { role: "tooltip" } });
    this.legend = el("div", { class: "sg-heat-legend" });
    this.note = el("p", { class: "sg-card-note" });
    this.wrap = el("div", { class: "sg-heatmap-wrap" }, [this.canvas, this.tooltip]);
    this.element = el("section", { class: "sg-card sg-heatmap", attrs: { "data-heatmap": spec.id } }, [
      el("header", { class: "sg-card-head" }, [el("h3", { class: "sg-card-title", text: spec.title })]),
      spec.help ? el("p", { class: "sg-card-help", text: spec.help }) : null,
      this.legend,
      this.wrap,
      this.note,
    ]);
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => this.tooltip.classList.remove("sg-visible"));
    this.resizeObserver = new ResizeObserver(() => {
      const w = this.wrap.clientWidth;
      if (w > 0 && Math.abs(w - this.lastWidth) > 1) this.render();
    });
    this.resizeObserver.observe(this.wrap);
  }

  update(spec: HeatmapSpec): void {
    this.spec = spec;
    this.domain = domainOf(spec.rows, spec.kind);
    this.render();
  }

  destroy(): void {
    this.resizeObserver.disconnect();
  }

  render(): void {
    const theme = chartTheme();
    const spec = this.spec;
    const cssW = Math.max(this.wrap.clientWidth, 240);
    this.lastWidth = cssW;
    const nRows = spec.rows.length;
    const nCols = spec.epochs.length;
    const labelW = Math.min(LABEL_W, Math.floor(cssW * 0.3));
    const cellsX = labelW + 6;
    const cellsW = Math.max(cssW - cellsX - 4, 10);
    const rowH = Math.max(MIN_ROW_H, Math.min(MAX_ROW_H, Math.floor(360 / Math.max(nRows, 1))));
    const cellsY = TRACK_H + 2;
    const cssH = cellsY + nRows * rowH + AXIS_H;
    const bs = buckets(nCols, cellsW);
    const agg = spec.rows.map((r) => aggregateRow(r, bs, spec.kind));
    this.layout = { cssW, cellsX, cellsW, cellsY, rowH, cssH, bs, agg };

    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(cssW * dpr);
    this.canvas.height = Math.round(cssH * dpr);
    this.canvas.style.width = `${cssW}px`;
    this.canvas.style.height = `${cssH}px`;
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    this.drawCells(ctx, theme);
    this.drawTrack(ctx, theme);
    this.drawLabels(ctx, theme);
    this.drawAxis(ctx, theme);
    this.drawHighlights(ctx);
    this.renderLegend();
    const hl = spec.highlightRows;
    this.element.setAttribute("data-highlight-rows", String(hl ? spec.rowNames.filter((n) => hl.has(n)).length : 0));
    this.note.textContent =
      bs.length < nCols
        ? `${nCols} epochs shown in ${bs.length} columns (one per pixel): each column is the ${
            spec.kind === "log" ? "geometric mean" : "mean"
          } of about ${Math.round(nCols / bs.length)} epochs, and NaN or Inf if any of them was. Hover for the epoch range.`
        : "";
  }

  private drawCells(ctx: CanvasRenderingContext2D, theme: ChartTheme): void {
    const L = this.layout as Layout;
    const cols = L.bs.length;
    const rows = L.agg.length;
    if (cols === 0 || rows === 0) return;
    // One pixel per cell in an offscreen image, scaled up without smoothing:
    // far cheaper than a fillRect per cell at 200 layers x 1000 columns.
    const img = new ImageData(cols, rows);
    const px = img.data;
    for (let r = 0; r < rows; r++) {
      const row = L.agg[r] as Val[];
      for (let c = 0; c < cols; c++) {
        const color = colorOf(row[c] ?? null, this.domain);
        const o = (r * cols + c) * 4;
        if (color) {
          px[o] = color[0];
          px[o + 1] = color[1];
          px[o + 2] = color[2];
          px[o + 3] = 255;
        }
      }
    }
    const off = document.createElement("canvas");
    off.width = cols;
    off.height = rows;
    off.getContext("2d")?.putImageData(img, 0, 0);
    ctx.fillStyle = theme.grid;
    ctx.fillRect(L.cellsX, L.cellsY, L.cellsW, rows * L.rowH);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, L.cellsX, L.cellsY, L.cellsW, rows * L.rowH);
  }

  /** Column range (in CSS px) covered by an epoch span, or null when off-axis. */
  private spanToPx(s: Span): [number, number] | null {
    const L = this.layout as Layout;
    const ep = this.spec.epochs;
    let first = -1;
    let last = -1;
    for (let i = 0; i < ep.length; i++) {
      const e = ep[i] as number;
      if (e >= s.start && e <= s.end) {
        if (first < 0) first = i;
        last = i;
      }
    }
    if (first < 0) return null;
    const colW = L.cellsW / L.bs.length;
    const c0 = L.bs.findIndex((b) => first >= b.start && first < b.end);
    const c1 = L.bs.findIndex((b) => last >= b.start && last < b.end);
    return [L.cellsX + c0 * colW, L.cellsX + (c1 + 1) * colW];
  }

  private drawTrack(ctx: CanvasRenderingContext2D, theme: ChartTheme): void {
    ctx.fillStyle = theme.stalled.replace(/[\d.]+\)$/, "0.9)");
    for (const s of this.spec.stalled ?? []) {
      const r = this.spanToPx(s);
      if (r) ctx.fillRect(r[0], 0, Math.max(r[1] - r[0], 1), TRACK_H);
    }
    ctx.fillStyle = "#f57c00";
    for (const s of this.spec.highlightEpochs ?? []) {
      const r = this.spanToPx(s);
      if (r) ctx.fillRect(r[0], 0, Math.max(r[1] - r[0], 1), TRACK_H * 0.6);
    }
  }

  private drawLabels(ctx: CanvasRenderingContext2D, theme: ChartTheme): void {
    const L = this.layout as Layout;
    const names = this.spec.rowNames;
    const hl = this.spec.highlightRows;
    ctx.font = theme.font;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    // Label every k-th row when rows are thinner than the text.
    const every = Math.max(1, Math.ceil(11 / L.rowH));
    for (let r = 0; r < L.agg.length; r++) {
      const name = names[r] ?? `layer ${r}`;
      const isHl = !!hl && hl.has(name);
      if (r % every !== 0 && !isHl) continue;
      ctx.fillStyle = isHl ? "#f57c00" : theme.text;
      ctx.font = isHl ? `bold ${theme.font}` : theme.font;
      ctx.fillText(truncate(ctx, name, L.cellsX - 10), L.cellsX - 6, L.cellsY + r * L.rowH + L.rowH / 2);
    }
  }

  private drawAxis(ctx: CanvasRenderingContext2D, theme: ChartTheme): void {
    const L = this.layout as Layout;
    const ep = this.spec.epochs;
    if (ep.length === 0) return;
    const y = L.cellsY + L.agg.length * L.rowH + 3;
    ctx.font = theme.font;
    ctx.fillStyle = theme.axis;
    ctx.textBaseline = "top";
    ctx.textAlign = "center";
    const colW = L.cellsW / L.bs.length;
    let c = 0;
    for (const i of epochTicks(ep, Math.max(2, Math.floor(L.cellsW / 60)))) {
      while (c < L.bs.length - 1 && (L.bs[c] as Bucket).end <= i) c++;
      ctx.fillText(String(ep[i]), L.cellsX + (c + 0.5) * colW, y);
    }
    ctx.textAlign = "right";
    ctx.fillText("epoch", L.cellsX - 6, y);
  }

  private drawHighlights(ctx: CanvasRenderingContext2D): void {
    const L = this.layout as Layout;
    const hl = this.spec.highlightRows;
    const bottom = L.cellsY + L.agg.length * L.rowH;
    ctx.strokeStyle = "#f57c00";
    ctx.lineWidth = 2;
    if (hl && hl.size > 0) {
      // One outline per run of adjacent highlighted layers, not one per row.
      let start = -1;
      const names = this.spec.rowNames;
      for (let r = 0; r <= names.length; r++) {
        const on = r < names.length && hl.has(names[r] as string);
        if (on && start < 0) start = r;
        if (!on && start >= 0) {
          ctx.strokeRect(L.cellsX - 1, L.cellsY + start * L.rowH, L.cellsW + 2, (r - start) * L.rowH);
          start = -1;
        }
      }
    }
    for (const s of this.spec.highlightEpochs ?? []) {
      const r = this.spanToPx(s);
      if (r) ctx.strokeRect(r[0], L.cellsY, Math.max(r[1] - r[0], 2), bottom - L.cellsY);
    }
  }

  private renderLegend(): void {
    const d = this.domain;
    // The ramp as a small canvas: a CSS gradient would need the stops in a style string.
    const bar = el("canvas", { class: "sg-heat-ramp" });
    bar.width = 200;
    bar.height = 10;
    const bctx = bar.getContext("2d");
    if (bctx) {
      for (let i = 0; i < 200; i++) {
        const c = ramp(i / 199);
        bctx.fillStyle = rgb(c);
        bctx.fillRect(i, 0, 1, 10);
      }
    }
    const tickRow = el(
      "div",
      { class: "sg-heat-ticks" },
      ticks(d, 4).map((t) =>
        el("span", {
          // End labels hang inward so they do not spill past the ramp.
          class: "sg-heat-tick" + (t.pos < 0.05 ? " sg-tick-start" : t.pos > 0.95 ? " sg-tick-end" : ""),
          text: t.label,
          attrs: { style: `left:${(t.pos * 100).toFixed(2)}%` },
        }),
      ),
    );
    const swatch = (c: RGB | null, label: string, cls = "") =>
      el("span", { class: "sg-legend-item" }, [
        el("span", { class: "sg-swatch sg-swatch-box " + cls, attrs: c ? { style: `--c:${rgb(c)}` } : {} }),
        label,
      ]);
    const hasZero = d.kind === "log" && this.spec.rows.some((r) => r.some((v) => v !== null && Number.isFinite(v) && v <= 0));
    const hasNonFinite = this.spec.rows.some((r) => r.some((v) => v !== null && !Number.isFinite(v)));
    replaceChildren(this.legend, [
      el("div", { class: "sg-heat-scale" }, [
        el("span", { class: "sg-heat-kind", text: d.kind === "log" ? "log scale" : "linear scale" }),
        el("div", { class: "sg-heat-rampbox" }, [bar, tickRow]),
      ]),
      hasZero ? swatch(ZERO_COLOR, "exactly 0") : null,
      hasNonFinite ? swatch(NONFINITE_COLOR, "NaN / Inf") : null,
      swatch(null, "not logged / n.a.", "sg-swatch-empty"),
    ]);
  }

  private hover(e: MouseEvent): void {
    const L = this.layout;
    if (!L) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    const c = Math.floor(((x - L.cellsX) / L.cellsW) * L.bs.length);
    const r = Math.floor((y - L.cellsY) / L.rowH);
    if (c < 0 || c >= L.bs.length || r < 0 || r >= L.agg.length) {
      this.tooltip.classList.remove("sg-visible");
      return;
    }
    const b = L.bs[c] as Bucket;
    const ep = this.spec.epochs;
    const name = this.spec.rowNames[r] ?? `layer ${r}`;
    const detail = this.spec.rowDetails?.[r];
    const v = (L.agg[r] as Val[])[c] ?? null;
    const merged = b.end - b.start > 1;
    const epochText = merged ? `epochs ${ep[b.start]}–${ep[b.end - 1]}` : `epoch ${ep[b.start]}`;
    const valueText = merged
      ? `${formatValue(v)} (${this.spec.kind === "log" ? "geometric mean" : "mean"} of ${b.end - b.start})`
      : formatValue(v);
    replaceChildren(this.tooltip, [
      el("div", { class: "sg-tip-head", text: name }),
      detail ? el("div", { class: "sg-tip-sub", text: detail }) : null,
      el("div", { class: "sg-tip-row" }, [el("span", { class: "sg-tip-label", text: epochText })]),
      el("div", { class: "sg-tip-row" }, [
        el("span", { class: "sg-tip-label", text: this.spec.title }),
        el("span", { class: "sg-tip-value" + (v !== null && !Number.isFinite(v) ? " sg-nonfinite" : ""), text: formatValue(v) === "–" ? "not logged" : valueText }),
      ]),
    ]);
    this.tooltip.classList.add("sg-visible");
    const wrapW = this.wrap.clientWidth;
    this.tooltip.style.top = `${Math.min(y + 14, L.cssH - 10)}px`;
    if (x > wrapW / 2) {
      this.tooltip.style.left = "";
      this.tooltip.style.right = `${wrapW - x + 12}px`;
    } else {
      this.tooltip.style.right = "";
      this.tooltip.style.left = `${x + 12}px`;
    }
  }
}

/**
 * Indices of the epochs to label: round epoch numbers (multiples of 1, 2, 5 x
 * 10^k) about maxLabels apart, so a 5000-epoch axis reads 0, 500, 1000, ...
 * rather than whatever epoch happens to start each pixel column.
 */
export function epochTicks(epochs: readonly number[], maxLabels: number): number[] {
  const n = epochs.length;
  if (n === 0) return [];
  const first = epochs[0] as number;
  const last = epochs[n - 1] as number;
  const raw = Math.max((last - first) / Math.max(maxLabels, 1), 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  let i = 0;
  for (let t = Math.ceil(first / step) * step; t <= last; t += step) {
    while (i < n - 1 && (epochs[i] as number) < t) i++;
    if (out[out.length - 1] !== i) out.push(i);
  }
  return out;
}

function rgb(c: RGB): string {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function truncate(ctx: CanvasRenderingContext2D, text: string, maxW: number): string {
  if (ctx.measureText(text).width <= maxW) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(text.slice(0, mid) + "…").width <= maxW) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, lo) + "…";
}
