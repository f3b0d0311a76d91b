/**
 * TensorBoard's scalar smoothing: an exponential moving average with the
 * start-up bias removed, so the first points are not dragged towards zero.
 * Same formula as TensorBoard's scalar dashboard, so a user who knows the
 * slider there reads ours the same way. Weight 0 returns the data unchanged.
 */
import type { Val } from "./values";

export function smoothEma(values: readonly Val[], weight: number): Val[] {
  const w = Math.min(Math.max(weight, 0), 0.999);
  if (w === 0 || values.length === 0) return values.slice();
  // TensorBoard leaves constant series alone: debiasing would otherwise bend
  // a perfectly flat (stalled!) line.
  const first = values.find((v) => v !== null && Number.isFinite(v));
  const isConstant = values.every((v) => v === null || !Number.isFinite(v) || v === first);
  if (isConstant) return values.slice();
  let last = 0;
  let count = 0;
  const out = new Array<Val>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as Val;
    // Missing and non-finite points pass through: they are shown as such,
    // and must not poison every later smoothed value.
    if (v === null || !Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * w + (1 - w) * v;
    count++;
    out[i] = last / (1 - Math.pow(w, count));
  }
  return out;
}
