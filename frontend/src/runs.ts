/** Run list logic: the regex filter and the order runs are listed in. */
import type { RunInfo, RunStatus } from "./api";

export interface CompiledFilter {
  regex: RegExp | null; // null: show every run
  error: string | null; // set when the text is not a valid regex
}

/**
 * Case-insensitive like TensorBoard's run filter. An invalid pattern must not
 * throw out of an input handler; the caller shows `error` and keeps every run.
 */
export function compileFilter(text: string): CompiledFilter {
  if (text.trim() === "") return { regex: null, error: null };
  try {
    return { regex: new RegExp(text, "i"), error: null };
  } catch (e) {
    return { regex: null, error: e instanceof Error ? e.message : String(e) };
  }
}

export function filterRuns<T extends { run: string }>(runs: readonly T[], f: CompiledFilter): T[] {
  const re = f.regex;
  return re ? runs.filter((r) => re.test(r.run)) : runs.slice();
}

// The backend's order (http_api.md), re-applied so the list never depends on it.
const STATUS_RANK: Record<RunStatus, number> = { stalled: 0, findings: 1, error: 2, healthy: 3, empty: 4 };

/** Runs that need attention first (stalled, findings, analysis errors), then by name, numbers in numeric order (run2 < run10). */
export function sortRuns(runs: readonly RunInfo[]): RunInfo[] {
  return runs.slice().sort((a, b) => {
    const d = (STATUS_RANK[a.status] ?? 4) - (STATUS_RANK[b.status] ?? 4);
    if (d !== 0) return d;
    return compareNames(a.run, b.run);
  });
}

export function compareNames(a: string, b: string): number {
  const c = a.localeCompare(b, "en", { numeric: true, sensitivity: "base" });
  return c !== 0 ? c : a < b ? -1 : a > b ? 1 : 0;
}

export const STATUS_LABEL: Record<RunStatus, string> = {
  stalled: "stalled",
  findings: "findings",
  error: "error",
  healthy: "healthy",
  empty: "empty",
};

export const STATUS_HELP: Record<RunStatus, string> = {
  stalled: "At least one epoch is flagged as stalled.",
  findings: "No stalled epoch, but an error-level finding exists.",
  error: "The analysis of this run failed; the charts still show what was logged.",
  healthy: "Nothing flagged.",
  empty: "No epoch logged yet.",
};
