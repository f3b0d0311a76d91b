/**
 * Puts several runs' series on one epoch axis for overlay charts. Runs may
 * have different epoch counts, or be downsampled with different strides.
 * Where a run has no point at an epoch the value is `undefined`, which uPlot
 * draws through; a `null` the run itself logged stays a visible gap.
 */
import type { Val } from "./values";

export interface Aligned {
  x: number[];
  /** One array per input series, same length as x. */
  ys: (Val | undefined)[][];
}

export function alignOnEpochs(parts: readonly { epochs: readonly number[]; values: readonly Val[] }[]): Aligned {
  const first = parts[0];
  // The common case (one run, or runs logged in lock-step) needs no join.
  if (first && parts.every((p) => sameAxis(p.epochs, first.epochs))) {
    return { x: first.epochs.slice(), ys: parts.map((p) => padTo(p.values, first.epochs.length)) };
  }
  const all = new Set<number>();
  for (const p of parts) for (const e of p.epochs) all.add(e);
  const x = Array.from(all).sort((a, b) => a - b);
  const index = new Map<number, number>();
  x.forEach((e, i) => index.set(e, i));
  const ys = parts.map((p) => {
    const y = new Array<Val | undefined>(x.length).fill(undefined);
    p.epochs.forEach((e, i) => {
      y[index.get(e) as number] = p.values[i] ?? null;
    });
    return y;
  });
  return { x, ys };
}

function sameAxis(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function padTo(values: readonly Val[], n: number): Val[] {
  const out = values.slice(0, n);
  while (out.length < n) out.push(null);
  return out;
}
