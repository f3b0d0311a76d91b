/**
 * Value -> colour for the heatmaps, and the ticks of their legends.
 *
 * Gradient norms and update ratios span many decades (1e-12 ... 1e2), and the
 * diagnosis lives in the small end, so they are mapped on a log scale; shares
 * (dead / saturated units) are in [0, 1] and mapped linearly. Exact zeros and
 * non-finite values get their own swatches instead of being clamped into the
 * ramp, because "this layer's gradient is exactly 0" and "this layer went NaN"
 * are findings, not extremes of a range.
 */
import type { Val } from "./values";

export type ScaleKind = "log" | "linear";
export type RGB = readonly [number, number, number];

/** Viridis control points: perceptually uniform, readable on light and dark. */
const VIRIDIS: readonly RGB[] = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 74, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [109, 205, 89],
  [180, 222, 44],
  [253, 231, 37],
];

export const ZERO_COLOR: RGB = [20, 20, 20];
export const NONFINITE_COLOR: RGB = [233, 30, 99];

/** Colour at t in [0, 1] along the ramp (clamped). */
export function ramp(t: number): RGB {
  const x = Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const a = VIRIDIS[i] as RGB;
  const b = VIRIDIS[i + 1] as RGB;
  return [
    Math.round(a[0] + (b[0] - a[0]) * f),
    Math.round(a[1] + (b[1] - a[1]) * f),
    Math.round(a[2] + (b[2] - a[2]) * f),
  ];
}

export interface Domain {
  kind: ScaleKind;
  /** In value units for linear; in log10 units for log. */
  lo: number;
  hi: number;
}

/**
 * The colour domain of a set of rows: log10 of the smallest positive and the
 * largest finite value, or [0, 1] for shares. A flat matrix still gets a
 * decade of room so the mapping does not divide by zero.
 */
export function domainOf(rows: readonly (readonly Val[])[], kind: ScaleKind): Domain {
  if (kind === "linear") {
    let lo = 0;
    let hi = 1;
    for (const row of rows)
      for (const v of row) {
        if (v === null || !Number.isFinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    return { kind, lo, hi };
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of rows)
    for (const v of row) {
      if (v === null || !Number.isFinite(v) || v <= 0) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  if (lo === Infinity) return { kind, lo: -1, hi: 0 };
  let llo = Math.log10(lo);
  let lhi = Math.log10(hi);
  if (lhi - llo < 1) {
    const mid = (llo + lhi) / 2;
    llo = mid - 0.5;
    lhi = mid + 0.5;
  }
  return { kind, lo: llo, hi: lhi };
}

/** Where a value sits in the domain, 0..1; null for values with a swatch of their own. */
export function position(v: number, d: Domain): number | null {
  if (!Number.isFinite(v)) return null;
  if (d.kind === "log") {
    if (v <= 0) return null;
    return clamp01((Math.log10(v) - d.lo) / (d.hi - d.lo));
  }
  return clamp01((v - d.lo) / (d.hi - d.lo || 1));
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/** 256 precomputed ramp colours: a heatmap colours up to a million cells per draw. */
const LUT: readonly RGB[] = Array.from({ length: 256 }, (_, i) => ramp(i / 255));

/** Cell colour; null = nothing logged (drawn as background). */
export function colorOf(v: Val, d: Domain): RGB | null {
  if (v === null) return null;
  if (!Number.isFinite(v)) return NONFINITE_COLOR;
  if (d.kind === "log" && v <= 0) return ZERO_COLOR;
  return LUT[Math.round((position(v, d) as number) * 255)] as RGB;
}

/** Legend ticks: whole decades for log (thinned to about `max`), quarters for linear. */
export function ticks(d: Domain, max = 6): { pos: number; label: string }[] {
  if (d.kind === "linear") {
    const out: { pos: number; label: string }[] = [];
    for (let i = 0; i <= 4; i++) {
      const v = d.lo + ((d.hi - d.lo) * i) / 4;
      out.push({ pos: i / 4, label: String(Number(v.toPrecision(3))) });
    }
    return out;
  }
  const first = Math.ceil(d.lo - 1e-9);
  const last = Math.floor(d.hi + 1e-9);
  const count = last - first + 1;
  const step = Math.max(1, Math.ceil(count / max));
  const out: { pos: number; label: string }[] = [];
  for (let e = first; e <= last; e += step) {
    out.push({ pos: (e - d.lo) / (d.hi - d.lo), label: decadeLabel(e) });
  }
  // A domain narrower than one decade boundary still needs two labels.
  if (out.length < 2) {
    return [
      { pos: 0, label: formatPow(d.lo) },
      { pos: 1, label: formatPow(d.hi) },
    ];
  }
  return out;
}

function decadeLabel(e: number): string {
  if (e === 0) return "1";
  if (e === 1) return "10";
  return `1e${e}`;
}

function formatPow(l: number): string {
  return Number(Math.pow(10, l).toPrecision(2)).toExponential(1).replace("e+", "e");
}
