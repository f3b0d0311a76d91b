/**
 * Which charts a run gets, built from its series as plain data (no DOM), so
 * the choice is testable: a chart appears only when something was logged for
 * it, line charts overlay every shown run, and the run in focus brings the
 * stalled bands, the baselines and the clicked finding's highlight.
 */
import type { LrRange, Series } from "./api";
import type { HeatmapSpec } from "./heatmap";
import type { LineChartSpec, LineSeriesSpec, MarkerSpec } from "./lineChart";
import { groupMetrics } from "./metrics";
import { toSpansOnAxis, type Span } from "./ranges";
import { QUANTITY_COLORS, runColor } from "./theme";
import { hasAnyValue, matrixHasAnyValue, type Val } from "./values";

export interface Section {
  id: string;
  title: string;
  charts: LineChartSpec[];
  heatmaps: HeatmapSpec[];
}

export interface Focus {
  highlightEpochs: Span[];
  highlightLayers: ReadonlySet<string>;
}

const VAL_DASH = [5, 3];

export function buildSections(primary: Series, others: readonly Series[], focus: Focus): Section[] {
  const runs = [primary, ...others];
  const multi = runs.length > 1;
  const stalled = toSpansOnAxis(primary.stalledEpochs, primary.epochs);
  const common = { stalled, highlight: focus.highlightEpochs };
  const label = (s: Series, what: string) => (multi ? `${s.run} · ${what}` : what);

  /** One line per run for the same quantity; runs that lack it are skipped. */
  const perRun = (pick: (s: Series) => Val[] | null | undefined, what: string, smooth = true, dash?: number[]) =>
    runs.flatMap((s): LineSeriesSpec[] => {
      const v = pick(s);
      return hasAnyValue(v) ? [{ label: label(s, what), color: runColor(s.run), epochs: s.epochs, values: v as Val[], smooth, dash }] : [];
    });

  // ---- Training curves: loss, accuracy, other metrics, learning rate.
  const keys = new Set<string>();
  for (const s of runs) for (const k of Object.keys(s.metrics)) keys.add(k);
  const curves: LineChartSpec[] = [];
  for (const g of groupMetrics(Array.from(keys))) {
    const series = g.keys.flatMap((k) => perRun((s) => s.metrics[k], k, true, k.startsWith("val_") ? VAL_DASH : undefined));
    if (series.length === 0) continue;
    const spec: LineChartSpec = { id: g.id, title: g.title, series, ...common };
    if (g.kind === "loss") {
      const b = primary.baselines.constantLoss;
      spec.baselines = b !== null ? [{ label: "constant predictor", value: b }] : [];
      spec.help =
        b !== null
          ? "Dashed: the loss of a model that always predicts the label distribution. A loss stuck there has learned nothing from the inputs."
          : undefined;
    } else if (g.kind === "accuracy") {
      const m = primary.baselines.majorityRate;
      spec.baselines = m !== null ? [{ label: "majority class", value: m }] : [];
      spec.help = m !== null ? "Dashed: the accuracy of always predicting the most frequent class." : undefined;
    }
    curves.push(spec);
  }
  const lr = perRun((s) => s.learningRate, "learning rate", false);
  if (lr.length > 0) curves.push({ id: "learning_rate", title: "Learning rate", series: lr, logDefault: true, ...common });

  // ---- Gradients and updates: global norms, then the per-layer heatmaps.
  const grads: LineChartSpec[] = [];
  const g1 = perRun((s) => s.global.grad_norm, "gradient norm");
  if (g1.length) grads.push({ id: "global:grad_norm", title: "Gradient norm (all weights)", series: g1, logDefault: true, ...common });
  const g2 = perRun((s) => s.global.update_ratio, "update ratio");
  if (g2.length)
    grads.push({
      id: "global:update_ratio",
      title: "Update ratio ‖ΔW‖ / ‖W‖",
      help: "How much the weights moved this epoch, relative to their size. Around 1e-3 is typical; far below means the weights barely move.",
      series: g2,
      logDefault: true,
      ...common,
    });
  const wn = perRun((s) => s.global.weight_norm, "weight norm");
  if (wn.length)
    grads.push({
      id: "global:weight_norm",
      title: "Weight norm ‖W‖ (all weights)",
      help: "Shrinking toward 0: weight decay (or an L2 penalty) outweighs learning. Growing without bound: diverging.",
      series: wn,
      logDefault: true,
      ...common,
    });
  const un = perRun((s) => s.global.update_norm, "update norm");
  if (un.length)
    grads.push({
      id: "global:update_norm",
      title: "Update norm ‖ΔW‖ (all weights)",
      help: "How far the weights moved this epoch; divided by ‖W‖ it is the update ratio.",
      series: un,
      logDefault: true,
      ...common,
    });
  const nf = perRun((s) => s.global.nonfinite_fraction, "non-finite share");
  if (nf.some((s) => s.values.some((v) => v !== null && v !== 0)))
    grads.push({ id: "global:nonfinite", title: "Share of NaN / Inf gradient entries", series: nf, yRange: [0, 1], ...common });

  const heatmaps: HeatmapSpec[] = [];
  const L = primary.layers;
  if (L) {
    const details = L.names.map((_, i) => [L.types[i], L.activations[i]].filter(Boolean).join(", "));
    const base = {
      rowNames: L.names,
      rowDetails: details,
      epochs: primary.epochs,
      highlightRows: focus.highlightLayers,
      highlightEpochs: focus.highlightEpochs,
      stalled,
    };
    const add = (id: string, title: string, rows: Val[][] | null, kind: "log" | "linear", help: string) => {
      if (matrixHasAnyValue(rows)) heatmaps.push({ id, title, help, kind, rows: rows as Val[][], ...base });
    };
    add("layers:grad_norm", "Gradient norm per layer", L.gradNorm, "log",
      "Rows: layers with weights, input at the top. Dark rows near the input that stay dark mean vanishing gradients.");
    add("layers:update_ratio", "Update ratio per layer", L.updateRatio, "log",
      "‖ΔW‖ / ‖W‖ per epoch. A row far darker than the rest is a layer that is not learning.");
    add("layers:weight_norm", "Weight norm per layer", L.weightNorm, "log",
      "‖W‖ per epoch. A row that shrinks toward 0 is decaying away (weight decay too strong); one that grows without bound is diverging.");
    add("layers:dead_fraction", "Dead units per layer", L.deadFraction, "linear",
      "Share of ReLU-like units that never fire on the probe batch (blank: not a ReLU-like layer).");
    add("layers:saturated_fraction", "Saturated units per layer", L.saturatedFraction, "linear",
      "Share of sigmoid / tanh units stuck at their limits (blank: not a sigmoid / tanh layer).");
  }

  // ---- Predictions: the run in focus only (several quantities per run).
  const preds: LineChartSpec[] = [];
  const P = primary.predictions;
  if (P) {
    const q = (keys: string[]) =>
      keys.flatMap((k, i): LineSeriesSpec[] =>
        hasAnyValue(P[k]) ? [{ label: k, color: QUANTITY_COLORS[i % QUANTITY_COLORS.length] as string, epochs: primary.epochs, values: P[k] as Val[], smooth: true }] : [],
      );
    const ent = q(["entropy"]);
    if (ent.length)
      preds.push({
        id: "pred:entropy",
        title: "Prediction entropy",
        help: "Mean entropy of each prediction, 1 = uniform guess over the classes, 0 = fully confident.",
        series: ent,
        yRange: [0, 1],
        ...common,
      });
    const div = q(["class_entropy", "top_class_share", "changed_share"]);
    if (div.length)
      preds.push({
        id: "pred:diversity",
        title: "Predicted-class diversity",
        help: "class_entropy near 0 or top_class_share near 1: every input gets the same class. changed_share near 0: predictions stopped changing.",
        series: div,
        yRange: [0, 1],
        ...common,
      });
  }

  // ---- Data pipeline: batches and input scale, when logged.
  const data: LineChartSpec[] = [];
  const B = primary.batches;
  if (B && (hasAnyValue(B.distinct) || hasAnyValue(B.seen))) {
    data.push({
      id: "data:batches",
      title: "Training batches per epoch",
      help: "distinct below seen: the pipeline repeats the same batches.",
      series: ["seen", "distinct"].flatMap((k, i): LineSeriesSpec[] =>
        hasAnyValue(B[k]) ? [{ label: k, color: QUANTITY_COLORS[i] as string, epochs: primary.epochs, values: B[k] as Val[] }] : [],
      ),
      ...common,
    });
  }
  const I = primary.inputs;
  if (I && ["mean", "std", "max_abs"].some((k) => hasAnyValue(I[k]))) {
    data.push({
      id: "data:inputs",
      title: "Input statistics",
      help: "Inputs far outside [-1, 1] (max_abs) usually need scaling.",
      series: ["mean", "std", "max_abs"].flatMap((k, i): LineSeriesSpec[] =>
        hasAnyValue(I[k]) ? [{ label: k, color: QUANTITY_COLORS[i] as string, epochs: primary.epochs, values: I[k] as Val[] }] : [],
      ),
      ...common,
    });
  }

  const lrRange = buildLrRangeChart(runs);

  const sections: Section[] = [
    { id: "curves", title: "Training curves", charts: curves, heatmaps: [] },
    { id: "lr_range", title: "Which learning rate?", charts: lrRange ? [lrRange] : [], heatmaps: [] },
    { id: "gradients", title: "Gradients and updates", charts: grads, heatmaps },
    { id: "predictions", title: "Predictions", charts: preds, heatmaps: [] },
    { id: "data", title: "Data pipeline", charts: data, heatmaps: [] },
  ];
  return sections.filter((s) => s.charts.length + s.heatmaps.length > 0);
}

/** A learning rate as people write it (the backend's fmt_rate): 0.1, 0.03, 3e-3, 1e-7. */
export function formatRate(rate: number): string {
  if (!Number.isFinite(rate) || rate <= 0) return String(rate);
  if (rate >= 0.01 && rate < 100) return String(Number(rate.toPrecision(2)));
  const [mantissa, exponent] = rate.toExponential(1).split("e") as [string, string];
  return `${mantissa.replace(/\.?0+$/, "")}e${Number(exponent)}`;
}

/** "ran after epoch 4" / "ran outside fit()" (a standalone test may come before or after training). */
export function whenRan(r: LrRange): string {
  return r.epoch === null ? "ran outside fit()" : `ran after epoch ${r.epoch}`;
}

/**
 * The loss axis of the range test: from the lowest loss to 1.5x where the
 * sweep started (or the constant predictor's loss, if higher). The sweep
 * stops once the loss blows up, often to 100x its start, which would flatten
 * the fall the suggestion is read from into a line at the bottom.
 */
export function lrRangeYRange(tests: readonly LrRange[]): [number, number] | undefined {
  let lo = Infinity;
  let start = -Infinity;
  let hi = -Infinity;
  for (const r of tests) {
    const curve = r.smoothed.some((v) => v !== null) ? r.smoothed : r.losses;
    const first = curve.find((v): v is number => v !== null && Number.isFinite(v));
    if (first !== undefined) start = Math.max(start, first);
    if (r.referenceLoss !== null) start = Math.max(start, r.referenceLoss);
    for (const v of [...r.losses, ...r.smoothed]) {
      if (v === null || !Number.isFinite(v)) continue;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (!Number.isFinite(lo) || !Number.isFinite(start) || start <= 0) return undefined;
  const top = Math.min(hi, 1.5 * start);
  if (!(top > lo)) return undefined;
  const pad = (top - lo) * 0.05;
  return [Math.max(lo - pad, lo >= 0 ? 0 : -Infinity), top + pad];
}

const LR_COLORS = { suggested: "#2e7d32", divergence: "#c62828", current: "#1565c0" };

/**
 * The learning-rate range test of the shown runs: loss (raw, faint, and the
 * backend's smoothing) against the rate on a log axis, with the suggested,
 * divergence and current rates of the run in focus (or the first shown run
 * that has a test) as vertical lines and its constant-predictor loss dashed.
 */
export function buildLrRangeChart(runs: readonly Series[]): LineChartSpec | null {
  const withTest = runs.filter((s): s is Series & { lrRange: LrRange } => s.lrRange !== null);
  const main = withTest[0];
  if (!main) return null;
  const multi = runs.length > 1;
  const series: LineSeriesSpec[] = withTest.flatMap((s): LineSeriesSpec[] => {
    const r = s.lrRange;
    // A log axis places positive rates only; the curve keeps its other points' order.
    const keep = r.learningRates.flatMap((lr, i) => (lr !== null && Number.isFinite(lr) && lr > 0 ? [i] : []));
    const values = keep.map((i) => r.losses[i] ?? null);
    if (!hasAnyValue(values)) return [];
    const smoothed = keep.map((i) => r.smoothed[i] ?? null);
    return [
      {
        label: multi ? `${s.run} · loss` : "loss",
        color: runColor(s.run),
        epochs: keep.map((i) => r.learningRates[i] as number),
        values,
        // The smoothed curve is empty when no step ran: the raw loss is then the line.
        smoothedValues: hasAnyValue(smoothed) ? smoothed : undefined,
      },
    ];
  });
  const r = main.lrRange;
  const markers: MarkerSpec[] = [];
  if (r.suggestedLr !== null) markers.push({ label: `suggested ${formatRate(r.suggestedLr)}`, value: r.suggestedLr, color: LR_COLORS.suggested });
  if (r.divergenceLr !== null)
    markers.push({ label: `diverges ${formatRate(r.divergenceLr)}`, value: r.divergenceLr, color: LR_COLORS.divergence, dash: [4, 3] });
  if (r.currentLr !== null)
    markers.push({ label: `current ${formatRate(r.currentLr)}`, value: r.currentLr, color: LR_COLORS.current, dash: [2, 3] });
  const yRange = lrRangeYRange(withTest.map((s) => s.lrRange));
  const cut = yRange !== undefined && withTest.some((s) => s.lrRange.losses.some((v) => v !== null && Number.isFinite(v) && v > yRange[1]));
  const facts = [
    whenRan(r),
    r.optimizer ? `${r.optimizer}` : "",
    `${r.learningRates.length} of ${r.steps} steps from ${formatRate(r.minLr)} to ${formatRate(r.maxLr)}`,
    r.start ? `from ${r.start}` : "",
    r.nonfiniteData ? "the batch with the NaN/Inf loss held NaN/Inf values" : "",
  ].filter(Boolean);
  return {
    id: "lr_range",
    title: "Learning-rate range test",
    help:
      "Training loss of a copy of the model while the learning rate grows each step (faint: each batch; solid: smoothed). " +
      "Pick a rate where the loss falls fastest, well before it blows up.",
    series,
    baselines: r.referenceLoss !== null ? [{ label: "constant predictor", value: r.referenceLoss }] : [],
    xLabel: "learning rate",
    xLog: true,
    markers,
    caption: [
      r.message,
      (multi ? `${main.run}: ` : "") + facts.join(" · "),
      cut ? "The y axis stops at 1.5x the loss the sweep started from: the loss beyond, where it blows up, is off the top (log scale or hover shows it)." : "",
    ].filter(Boolean),
    yRange,
    syncKey: "stagnation-lr-range",
  };
}
