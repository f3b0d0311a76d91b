/**
 * Light and dark theme. Colours live in CSS custom properties (style.css)
 * switched by prefers-color-scheme; canvases cannot read CSS, so charts ask
 * this module for the current values and redraw when the scheme flips.
 */

const RUN_PALETTE = [
  // TensorBoard's run colours, ordered so that neighbours differ in hue: the
  // first runs listed (the stalled ones) are the ones compared most.
  "#ff7043",
  "#0077bb",
  "#009988",
  "#ee3377",
  "#33bbee",
  "#cc3311",
  "#9c27b0",
  "#8bc34a",
  "#607d8b",
  "#795548",
];

/**
 * Colours handed out in list order (stalled runs first get the first, most
 * distinct colours) and kept for the page's life, so a run never changes
 * colour when a new run appears. Ten runs get ten different colours, which a
 * hash of the name cannot promise.
 */
export class RunColors {
  private map = new Map<string, string>();

  assign(names: readonly string[]): void {
    for (const n of names) {
      if (!this.map.has(n)) this.map.set(n, RUN_PALETTE[this.map.size % RUN_PALETTE.length] as string);
    }
  }

  get(name: string): string {
    return this.map.get(name) ?? hashColor(name);
  }
}

export const runColors = new RunColors();

export function runColor(name: string): string {
  return runColors.get(name);
}

/** For a run not yet listed (e.g. restored from storage): stable per name. */
export function hashColor(name: string): string {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return RUN_PALETTE[(h >>> 0) % RUN_PALETTE.length] as string;
}

/** Distinct colours for several quantities of one run (prediction statistics). */
export const QUANTITY_COLORS = ["#f57c00", "#1976d2", "#7b1fa2", "#388e3c", "#c2185b"];

export interface ChartTheme {
  text: string;
  muted: string;
  grid: string;
  axis: string;
  background: string;
  stalled: string;
  highlight: string;
  baseline: string;
  nonfinite: string;
  font: string;
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export function chartTheme(): ChartTheme {
  return {
    text: cssVar("--sg-text", "#212121"),
    muted: cssVar("--sg-muted", "#616161"),
    grid: cssVar("--sg-grid", "rgba(0,0,0,0.08)"),
    axis: cssVar("--sg-axis", "#757575"),
    background: cssVar("--sg-card", "#ffffff"),
    stalled: cssVar("--sg-stalled-band", "rgba(229,57,53,0.12)"),
    highlight: cssVar("--sg-highlight-band", "rgba(245,124,0,0.28)"),
    baseline: cssVar("--sg-baseline", "#616161"),
    nonfinite: cssVar("--sg-nonfinite", "#e91e63"),
    font: "11px Roboto, system-ui, -apple-system, 'Segoe UI', 'Helvetica Neue', Arial, sans-serif",
  };
}

/** Calls fn whenever the OS / browser switches between light and dark. */
export function onSchemeChange(fn: () => void): () => void {
  const mq = window.matchMedia?.("(prefers-color-scheme: dark)");
  if (!mq) return () => {};
  mq.addEventListener("change", fn);
  return () => mq.removeEventListener("change", fn);
}
