/**
 * Tick labels for the line charts' y axes. uPlot's default prints fixed
 * decimals, which turns a gradient norm of 1e-9 into "0.000000001"; and a
 * plateau at 1.0986 needs enough decimals to tell 1.0985 from 1.0990.
 * Labels therefore take their precision from the ticks and their spacing.
 */

/** Labels for one axis; null splits (hidden by uPlot's log filter) get "". */
export function formatTicks(splits: readonly (number | null)[], log: boolean): string[] {
  if (log) return splits.map((v) => (v === null ? "" : formatLogTick(v)));
  const vals = splits.filter((v): v is number => v !== null && Number.isFinite(v));
  let step = Infinity;
  for (let i = 1; i < vals.length; i++) step = Math.min(step, Math.abs((vals[i] as number) - (vals[i - 1] as number)));
  const maxAbs = vals.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const useExp = maxAbs !== 0 && (maxAbs < 1e-3 || maxAbs >= 1e6);
  const decimals = Number.isFinite(step) && step > 0 ? exactDecimals(vals, step) : 2;
  return splits.map((v) => {
    if (v === null || !Number.isFinite(v)) return "";
    if (v === 0) return "0";
    if (useExp) {
      // Significant digits enough to separate neighbours.
      const digits = Number.isFinite(step) && step > 0 ? Math.max(1, Math.ceil(Math.log10(maxAbs / step)) + 1) : 2;
      return trimExp(v.toExponential(Math.min(digits - 1, 6)));
    }
    return v.toFixed(decimals);
  });
}

/**
 * Decimals that print every tick exactly: a spacing of 0.25 needs two
 * ("0.55", not "0.6"), one of 0.1 needs one. uPlot's splits carry float
 * noise (0.30000000000000004), hence the tolerance.
 */
function exactDecimals(values: readonly number[], step: number): number {
  let decimals = 0;
  for (const x of [...values, step]) {
    if (!Number.isFinite(x)) continue;
    let d = 0;
    while (d < 10) {
      const scaled = x * 10 ** d;
      if (Math.abs(scaled - Math.round(scaled)) < 1e-7 * Math.max(1, Math.abs(scaled))) break;
      d++;
    }
    decimals = Math.max(decimals, d);
  }
  return decimals;
}

export function formatLogTick(v: number): string {
  if (!Number.isFinite(v) || v <= 0) return "";
  const e = Math.log10(v);
  if (e >= -3 && e < 5) return String(Number(v.toPrecision(2)));
  return trimExp(v.toExponential(Math.abs(e - Math.round(e)) < 1e-9 ? 0 : 1));
}

function trimExp(s: string): string {
  // "1.50e-7" -> "1.5e-7", "1e+6" -> "1e6"
  return s.replace(/\.?0+e/, "e").replace("e+", "e");
}

/**
 * Tick positions for a log y axis: whole decades, thinned to about maxCount.
 * uPlot's own log splits walk every 1..9 x 10^k step, which costs seconds
 * when a diverging or vanishing quantity spans a hundred decades.
 */
export function logSplits(min: number, max: number, maxCount = 6): number[] {
  if (!(min > 0) || !(max > 0) || !Number.isFinite(min) || !Number.isFinite(max)) return [];
  const lo = Math.floor(Math.log10(min) + 1e-9);
  const hi = Math.ceil(Math.log10(max) - 1e-9);
  const step = Math.max(1, Math.ceil((hi - lo + 1) / maxCount));
  const out: number[] = [];
  for (let e = lo; e <= hi; e += step) {
    const v = Number(`1e${e}`);
    if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(v);
  }
  if (out.length >= 3) return out;
  // A decade or less on screen: round values inside it, 1-2-5 first.
  const inside = (ms: number[]) => {
    const vals: number[] = [];
    for (let e = lo - 1; e <= hi; e++) {
      for (const m of ms) {
        const v = Number(`${m}e${e}`);
        if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) vals.push(v);
      }
    }
    return vals;
  };
  const coarse = inside([1, 2, 5]);
  if (coarse.length >= 3) return coarse;
  const fine = inside([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  if (fine.length >= 2) return fine.filter((_, i) => i % Math.ceil(fine.length / maxCount) === 0);
  if (out.length === 2) return out;
  return [Number(min.toPrecision(2)), Number(max.toPrecision(2))];
}
