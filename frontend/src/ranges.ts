/** Epoch lists to contiguous spans, for shaded bands and short labels. */

export interface Span {
  start: number;
  end: number; // inclusive
}

/** [3,4,5,9] -> [{3,5},{9,9}]; input order and duplicates do not matter. */
export function toSpans(epochs: readonly number[]): Span[] {
  const sorted = Array.from(new Set(epochs.filter((e) => Number.isFinite(e)))).sort((a, b) => a - b);
  const spans: Span[] = [];
  for (const e of sorted) {
    const last = spans[spans.length - 1];
    if (last && e === last.end + 1) last.end = e;
    else spans.push({ start: e, end: e });
  }
  return spans;
}

/**
 * Spans on a run's own epoch axis. A downsampled run's axis lists each
 * bucket's newest epoch (0..4 -> 4, 5..9 -> 9, ...) while stalled and finding
 * epochs stay original numbers, so each epoch is snapped to the first axis
 * value at or after it; neighbours on the axis then form one band instead of
 * many overlapping slivers. On a full axis this is plain toSpans.
 */
export function toSpansOnAxis(epochs: readonly number[], axis: readonly number[]): Span[] {
  if (axis.length === 0) return toSpans(epochs);
  const last = axis[axis.length - 1] as number;
  const hit = new Uint8Array(axis.length);
  for (const e of epochs) {
    if (!Number.isFinite(e) || e > last) continue;
    hit[firstAtOrAfter(axis, e)] = 1;
  }
  const spans: Span[] = [];
  for (let i = 0; i < axis.length; i++) {
    if (!hit[i]) continue;
    const prev = spans[spans.length - 1];
    if (prev && i > 0 && hit[i - 1]) prev.end = axis[i] as number;
    else spans.push({ start: axis[i] as number, end: axis[i] as number });
  }
  return spans;
}

/** Index of the first axis value >= e (axis ascending, e <= last value). */
function firstAtOrAfter(axis: readonly number[], e: number): number {
  let lo = 0;
  let hi = axis.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((axis[mid] as number) < e) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** "3–5, 9" : how a finding's epochs read in a sentence. */
export function describeSpans(spans: readonly Span[], max = 4): string {
  const parts = spans.slice(0, max).map((s) => (s.start === s.end ? `${s.start}` : `${s.start}–${s.end}`));
  if (spans.length > max) parts.push(`… (+${spans.length - max} more)`);
  return parts.join(", ");
}
