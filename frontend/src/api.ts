/**
 * The HTTP API client (tb_stagnation/plugin/http_api.md) and the checks that
 * turn its JSON into typed objects.
 *
 * URLs are relative ("./runs"): the page lives in an iframe whose <base> is
 * the plugin's route prefix, which keeps --path_prefix and /experiment/<id>/
 * working. Every field is checked on the way in, so a backend that is a
 * version ahead or behind degrades to "not logged" instead of a blank tab.
 */
import { parseJsonRobust, parseMatrix, parseSeries, parseValue, type Val } from "./values";

export type RunStatus = "healthy" | "stalled" | "findings" | "error" | "empty";

export interface RunInfo {
  run: string;
  source: string; // "callback" | "keras" | "scalars" (another tool's loss curve)
  epochs: number;
  status: RunStatus;
  healthy: boolean;
  stalledEpochs: number;
  topFinding: string | null;
  updated: number | null; // wall time (s) of the run's newest value
  error: string | null; // set with status "error": why the analysis failed
}

export interface RunsResponse {
  runs: RunInfo[];
  updated: number | null;
}

export interface Finding {
  code: string;
  title: string;
  severity: string; // "error" | "warning"
  confidence: number | null;
  epochs: number[];
  layers: string[];
  evidence: string;
  fix: string;
  // The code of a higher-ranked finding that likely causes this one, or null.
  explainedBy: string | null;
}

export interface StallWindow {
  start: number;
  end: number;
  kind: string;
  confidence: number | null;
}

export interface Baselines {
  constantLoss: number | null;
  majorityRate: number | null;
  lossKind: string | null;
}

export interface Report {
  run: string;
  source: string;
  epochs: number;
  healthy: boolean;
  stalledEpochs: number[];
  findings: Finding[];
  stallWindows: StallWindow[];
  baselines: Baselines;
  notes: string[];
  /** Set when the run's data could not be read at all (the report is then empty). */
  error: string | null;
}

export interface LayerSeries {
  names: string[];
  types: string[];
  activations: (string | null)[];
  gradNorm: Val[][] | null;
  updateRatio: Val[][] | null;
  weightNorm: Val[][] | null;
  deadFraction: Val[][] | null;
  saturatedFraction: Val[][] | null;
}

export interface Series {
  run: string;
  source: string;
  epochs: number[];
  updated: number | null;
  metrics: Record<string, Val[]>;
  learningRate: Val[] | null;
  baselines: Baselines;
  stalledEpochs: number[];
  global: Record<string, Val[]>;
  predictions: Record<string, Val[]> | null;
  inputs: Record<string, Val[]> | null;
  batches: Record<string, Val[]> | null;
  layers: LayerSeries | null;
  downsampled: Downsampled | null;
  lrRange: LrRange | null;
}

export interface Downsampled {
  stride: number;
  originalEpochs: number;
}

export type LrRangeVerdict = "suggested" | "never_falls" | "diverges_at_start" | "nonfinite" | "untrainable";

/** The run's learning-rate range test (`lr_range_test(..., log_dir=)`), one point per step. */
export interface LrRange {
  /** The epoch after which the test ran; null: run outside fit() (by `lr_range_test(log_dir=...)`). */
  epoch: number | null;
  verdict: LrRangeVerdict;
  suggestedLr: number | null;
  divergenceLr: number | null;
  steepestLr: number | null;
  minLossLr: number | null;
  referenceLoss: number | null;
  learningRates: Val[];
  losses: Val[];
  smoothed: Val[];
  optimizer: string;
  currentLr: number | null;
  minLr: number;
  maxLr: number;
  steps: number;
  start: string;
  nonfiniteData: boolean;
  message: string;
}

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : null;
}
function str(v: unknown, fallback = ""): string {
  return typeof v === "string" ? v : v === null || v === undefined ? fallback : String(v);
}
function num(v: unknown): number | null {
  const x = parseValue(v);
  return x !== null && Number.isFinite(x) ? x : null;
}
function numList(v: unknown): number[] {
  return Array.isArray(v) ? v.map(num).filter((x): x is number => x !== null) : [];
}
function strList(v: unknown): string[] {
  return Array.isArray(v) ? v.map((x) => str(x)) : [];
}
/** A dict of series; every entry that is not an array is dropped. */
function seriesDict(v: unknown): Record<string, Val[]> | null {
  const o = obj(v);
  if (!o) return null;
  const out: Record<string, Val[]> = {};
  for (const [k, raw] of Object.entries(o)) {
    const s = parseSeries(raw);
    if (s) out[k] = s;
  }
  return out;
}

const VERDICTS: readonly LrRangeVerdict[] = ["suggested", "never_falls", "diverges_at_start", "nonfinite", "untrainable"];

/** A positive finite rate, or null (a log axis cannot place anything else). */
function rate(v: unknown): number | null {
  const x = num(v);
  return x !== null && x > 0 ? x : null;
}

export function normalizeLrRange(v: unknown): LrRange | null {
  const o = obj(v);
  if (!o) return null;
  const learningRates = parseSeries(o.learning_rates) ?? [];
  const fit = (raw: unknown): Val[] => {
    // One value per rate: a short list is padded with gaps, a long one cut.
    const vals = parseSeries(raw) ?? [];
    return learningRates.map((_, i) => vals[i] ?? null);
  };
  let verdict = str(o.verdict) as LrRangeVerdict;
  if (!VERDICTS.includes(verdict)) verdict = "never_falls";
  const epoch = num(o.epoch);
  return {
    epoch: epoch !== null ? Math.round(epoch) : null,
    verdict,
    suggestedLr: rate(o.suggested_lr),
    divergenceLr: rate(o.divergence_lr),
    steepestLr: rate(o.steepest_lr),
    minLossLr: rate(o.min_loss_lr),
    referenceLoss: num(o.reference_loss),
    learningRates,
    losses: fit(o.losses),
    smoothed: fit(o.smoothed),
    optimizer: str(o.optimizer),
    currentLr: rate(o.current_lr),
    minLr: rate(o.min_lr) ?? 0,
    maxLr: rate(o.max_lr) ?? 0,
    steps: num(o.steps) ?? learningRates.length,
    start: str(o.start),
    nonfiniteData: o.nonfinite_data === true,
    message: str(o.message),
  };
}

const STATUSES: readonly RunStatus[] = ["healthy", "stalled", "findings", "error", "empty"];

export function normalizeRun(v: unknown): RunInfo | null {
  const o = obj(v);
  if (!o || (typeof o.run !== "string" && typeof o.run !== "number")) return null;
  const epochs = num(o.epochs) ?? 0;
  let status = str(o.status) as RunStatus;
  if (!STATUSES.includes(status)) status = epochs === 0 ? "empty" : o.healthy === false ? "findings" : "healthy";
  return {
    run: str(o.run),
    source: str(o.source, "callback"),
    epochs,
    status,
    healthy: o.healthy !== false,
    stalledEpochs: num(o.stalled_epochs) ?? 0,
    topFinding: typeof o.top_finding === "string" ? o.top_finding : null,
    updated: num(o.updated),
    error: typeof o.error === "string" && o.error ? o.error : null,
  };
}

export function normalizeRuns(v: unknown): RunsResponse {
  const o = obj(v);
  const list = o && Array.isArray(o.runs) ? o.runs : [];
  const runs = list.map(normalizeRun).filter((r): r is RunInfo => r !== null);
  return { runs, updated: o ? num(o.updated) : null };
}

export function normalizeBaselines(v: unknown): Baselines {
  const o = obj(v) ?? {};
  return {
    constantLoss: num(o.constant_loss),
    majorityRate: num(o.majority_rate),
    lossKind: typeof o.loss_kind === "string" ? o.loss_kind : null,
  };
}

export function normalizeFinding(v: unknown): Finding | null {
  const o = obj(v);
  if (!o) return null;
  const code = str(o.code, "finding");
  return {
    code,
    title: str(o.title) || code.replace(/_/g, " "),
    severity: str(o.severity, "warning"),
    confidence: num(o.confidence),
    epochs: numList(o.epochs),
    layers: strList(o.layers),
    evidence: str(o.evidence),
    fix: str(o.fix),
    explainedBy: str(o.explained_by) || null,
  };
}

export function normalizeReport(v: unknown): Report {
  const o = obj(v) ?? {};
  const windows = Array.isArray(o.stall_windows) ? o.stall_windows : [];
  return {
    run: str(o.run),
    source: str(o.source, "callback"),
    epochs: num(o.epochs) ?? 0,
    healthy: o.healthy !== false,
    stalledEpochs: numList(o.stalled_epochs),
    findings: (Array.isArray(o.findings) ? o.findings : [])
      .map(normalizeFinding)
      .filter((f): f is Finding => f !== null),
    stallWindows: windows
      .map((w) => {
        const wo = obj(w);
        const start = wo ? num(wo.start) : null;
        const end = wo ? num(wo.end) : null;
        return wo && start !== null && end !== null
          ? { start, end, kind: str(wo.kind, "plateau"), confidence: num(wo.confidence) }
          : null;
      })
      .filter((w): w is StallWindow => w !== null),
    baselines: normalizeBaselines(o.baselines),
    notes: strList(o.notes),
    error: typeof o.error === "string" && o.error ? o.error : null,
  };
}

function normalizeLayers(v: unknown): LayerSeries | null {
  const o = obj(v);
  if (!o) return null;
  const names = strList(o.names);
  return {
    names,
    types: strList(o.types),
    activations: Array.isArray(o.activations) ? o.activations.map((a) => (typeof a === "string" ? a : null)) : [],
    gradNorm: parseMatrix(o.grad_norm),
    updateRatio: parseMatrix(o.update_ratio),
    weightNorm: parseMatrix(o.weight_norm),
    deadFraction: parseMatrix(o.dead_fraction),
    saturatedFraction: parseMatrix(o.saturated_fraction),
  };
}

export function normalizeSeries(v: unknown): Series {
  const o = obj(v) ?? {};
  const ds = obj(o.downsampled);
  const stride = ds ? num(ds.stride) : null;
  return {
    run: str(o.run),
    source: str(o.source, "callback"),
    epochs: numList(o.epochs),
    updated: num(o.updated),
    metrics: seriesDict(o.metrics) ?? {},
    learningRate: parseSeries(o.learning_rate),
    baselines: normalizeBaselines(o.baselines),
    stalledEpochs: numList(o.stalled_epochs),
    global: seriesDict(o.global) ?? {},
    predictions: seriesDict(o.predictions),
    inputs: seriesDict(o.inputs),
    batches: seriesDict(o.batches),
    layers: normalizeLayers(o.layers),
    downsampled:
      ds && stride !== null ? { stride, originalEpochs: num(ds.original_epochs) ?? 0 } : null,
    lrRange: normalizeLrRange(o.lr_range),
  };
}

/** The body of every error answer (400, 404, 405, 414, 500). */
export interface ErrorBody {
  error: string;
}

/** An error a person can act on: the backend's own {"error"} line when it sent one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

async function getJson(url: string, signal?: AbortSignal): Promise<unknown> {
  let resp: Response;
  try {
    resp = await fetch(url, { signal, headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError("TensorBoard did not answer. Is it still running?", 0);
  }
  const text = await resp.text();
  let body: unknown = null;
  try {
    body = parseJsonRobust(text);
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const msg = (obj(body) as Partial<Record<keyof ErrorBody, unknown>> | null)?.error;
    throw new ApiError(
      typeof msg === "string" && msg ? msg : `${url} answered HTTP ${resp.status}.`,
      resp.status,
    );
  }
  if (body === null) throw new ApiError(`${url} did not answer with JSON.`, resp.status);
  return body;
}

export async function fetchRuns(signal?: AbortSignal): Promise<RunsResponse> {
  return normalizeRuns(await getJson("./runs", signal));
}

export async function fetchReport(run: string, signal?: AbortSignal): Promise<Report> {
  return normalizeReport(await getJson(`./report?run=${encodeURIComponent(run)}`, signal));
}

export async function fetchSeries(run: string, signal?: AbortSignal): Promise<Series> {
  return normalizeSeries(await getJson(`./series?run=${encodeURIComponent(run)}`, signal));
}
