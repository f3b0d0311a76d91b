/** Wall-clock text for the "updated" stamp. */

export function formatClock(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Seconds since the epoch (what the API sends) to HH:MM:SS, or "–". */
export function formatWallTime(seconds: number | null): string {
  return seconds === null || !Number.isFinite(seconds) ? "–" : formatClock(new Date(seconds * 1000));
}
