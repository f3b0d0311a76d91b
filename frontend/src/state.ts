/**
 * What the person chose: the run in focus, runs overlaid for comparison, the
 * finding they clicked, per-chart log toggles, smoothing and the run filter.
 *
 * Polling replaces data, never this state, so a refresh cannot drop a
 * selection. It is also kept in localStorage so a reload of the TensorBoard
 * tab comes back to the same run.
 */

export interface UiState {
  primary: string | null;
  compare: string[]; // extra runs overlaid on line charts
  finding: { run: string; key: string } | null; // key = findingKey()
  logScale: Record<string, boolean>;
  smoothing: number;
  filter: string;
}

export const DEFAULT_STATE: UiState = {
  primary: null,
  compare: [],
  finding: null,
  logScale: {},
  smoothing: 0,
  filter: "",
};

/**
 * Identifies a finding across refetches: by run and code, never by position,
 * since a new epoch can reorder the list. A code listed twice (one finding
 * per layer group, say) gets its occurrence number from the second on.
 */
export function findingKey(run: string, code: string, occurrence = 0): string {
  return JSON.stringify([run, code, occurrence]);
}

/** The keys of a report's findings, in its order. */
export function findingKeys(run: string, findings: readonly { code: string }[]): string[] {
  const seen = new Map<string, number>();
  return findings.map((f) => {
    const n = seen.get(f.code) ?? 0;
    seen.set(f.code, n + 1);
    return findingKey(run, f.code, n);
  });
}

/** Runs drawn on line charts: the one in focus first, then the compared ones. */
export function shownRuns(s: UiState): string[] {
  const out: string[] = [];
  if (s.primary !== null) out.push(s.primary);
  for (const r of s.compare) if (!out.includes(r)) out.push(r);
  return out;
}

/**
 * Fits the state to the runs the server lists. At first load a remembered
 * selection that no longer exists (another logdir) is dropped and the first
 * listed run, the most urgent one, takes focus. Later, a run that vanishes
 * from one poll stays selected: logdir reloads can briefly hide runs.
 */
export function reconcile(s: UiState, runNames: readonly string[], firstLoad: boolean): UiState {
  const exists = new Set(runNames);
  let { primary, compare, finding } = s;
  if (firstLoad) {
    if (primary !== null && !exists.has(primary)) primary = null;
    compare = compare.filter((r) => exists.has(r));
  }
  if (primary === null && runNames.length > 0) primary = runNames[0] as string;
  if (finding && finding.run !== primary) finding = null;
  if (primary === s.primary && compare === s.compare && finding === s.finding) return s;
  return { ...s, primary, compare, finding };
}

export function selectPrimary(s: UiState, run: string): UiState {
  if (s.primary === run) return s;
  return { ...s, primary: run, finding: null };
}

export function toggleCompare(s: UiState, run: string): UiState {
  const compare = s.compare.includes(run) ? s.compare.filter((r) => r !== run) : [...s.compare, run];
  return { ...s, compare };
}

export function toggleFinding(s: UiState, run: string, key: string): UiState {
  const same = s.finding && s.finding.run === run && s.finding.key === key;
  return { ...s, finding: same ? null : { run, key } };
}

const STORAGE_KEY = "tb_stagnation.ui.v1";

export function loadState(): UiState {
  try {
    const raw = window.localStorage.getItem(STORAGE_KEY);
    if (!raw) return { ...DEFAULT_STATE };
    return sanitizeState(JSON.parse(raw));
  } catch {
    // Storage can be disabled (privacy settings, sandboxed iframes): start fresh.
    return { ...DEFAULT_STATE };
  }
}

export function saveState(s: UiState): void {
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  } catch {
    /* not persisting is fine */
  }
}

/** Accepts only well-formed fields from storage, which any other script could have written. */
export function sanitizeState(v: unknown): UiState {
  const o = (v && typeof v === "object" ? v : {}) as Record<string, unknown>;
  const logScale: Record<string, boolean> = {};
  if (o.logScale && typeof o.logScale === "object") {
    for (const [k, b] of Object.entries(o.logScale as Record<string, unknown>)) {
      if (typeof b === "boolean") logScale[k] = b;
    }
  }
  const sm = typeof o.smoothing === "number" && Number.isFinite(o.smoothing) ? o.smoothing : 0;
  return {
    primary: typeof o.primary === "string" ? o.primary : null,
    compare: Array.isArray(o.compare) ? o.compare.filter((x): x is string => typeof x === "string") : [],
    finding: null, // a finding is a momentary focus, not worth restoring
    logScale,
    smoothing: Math.min(Math.max(sm, 0), 0.99),
    filter: typeof o.filter === "string" ? o.filter : "",
  };
}

/** A tiny observable store: components subscribe, the app calls set(). */
export class Store {
  private listeners: ((s: UiState, prev: UiState) => void)[] = [];
  constructor(private state: UiState) {}

  get(): UiState {
    return this.state;
  }

  set(next: UiState): void {
    if (next === this.state) return;
    const prev = this.state;
    this.state = next;
    saveState(next);
    for (const l of this.listeners) l(next, prev);
  }

  update(fn: (s: UiState) => UiState): void {
    this.set(fn(this.state));
  }

  subscribe(fn: (s: UiState, prev: UiState) => void): void {
    this.listeners.push(fn);
  }
}
