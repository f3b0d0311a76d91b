/**
 * Heatmap column downsampling. A canvas cannot show more epoch columns than it
 * has pixels; drawing 5000 columns into 900 pixels costs time and shows
 * aliasing instead of data. Columns are therefore merged into at most one per
 * pixel, and the page says so. Non-finite values win their bucket: a single NaN
 * epoch is exactly what a person must not lose in an average.
 */
import type { ScaleKind } from "./colorScale";
import type { Val } from "./values";

export interface Bucket {
  start: number; // first index, inclusive
  end: number; // last index, exclusive
}

/** Splits n columns into at most maxCols contiguous, near-equal buckets. */
export function buckets(n: number, maxCols: number): Bucket[] {
  const cols = Math.max(1, Math.floor(maxCols));
  if (n <= cols) return Array.from({ length: n }, (_, i) => ({ start: i, end: i + 1 }));
  const out: Bucket[] = [];
  for (let c = 0; c < cols; c++) {
    const start = Math.floor((c * n) / cols);
    const end = Math.floor(((c + 1) * n) / cols);
    if (end > start) out.push({ start, end });
  }
  return out;
}

/**
 * One row merged per bucket: geometric mean of positive values for log-scaled
 * quantities (an arithmetic mean would let one large epoch hide a vanishing
 * stretch), arithmetic mean for shares. All-null buckets stay null; buckets
 * mostly of exact zeros stay 0 (a zero gradient is a finding, and the log of
 * zero has no place in a geometric mean).
 */
export function aggregateRow(row: readonly Val[], bs: readonly Bucket[], kind: ScaleKind): Val[] {
  const out = new Array<Val>(bs.length);
  for (let b = 0; b < bs.length; b++) {
    const { start, end } = bs[b] as Bucket;
    if (end - start === 1) {
      out[b] = row[start] ?? null;
      continue;
    }
    let sum = 0;
    let n = 0;
    let zeros = 0;
    let nonFinite: number | null = null;
    for (let i = start; i < end && i < row.length; i++) {
      const v = row[i];
      if (v === null || v === undefined) continue;
      if (!Number.isFinite(v)) {
        // NaN outranks infinities: it is the worse news.
        if (nonFinite === null || Number.isNaN(v)) nonFinite = v;
        continue;
      }
      if (kind === "log") {
        if (v <= 0) zeros++;
        else {
          sum += Math.log(v);
          n++;
        }
      } else {
        sum += v;
        n++;
      }
    }
    if (nonFinite !== null) out[b] = nonFinite;
    else if (n === 0 && zeros === 0) out[b] = null;
    else if (zeros > n) out[b] = 0;
    else out[b] = kind === "log" ? Math.exp(sum / n) : sum / n;
  }
  return out;
}
