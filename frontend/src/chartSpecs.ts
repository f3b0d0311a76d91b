/**
 * Which charts a run gets, built from its series as plain data (no DOM), so
 * the choice is testable: a chart appears only when something was logged for
 * it, line charts overlay every shown run, and the run in focus brings the
 * stalled bands, the baselines and the clicked finding's highlight.
 */
import type { Series } from "./api";
import type { HeatmapSpec } from "./heatmap";
import type { LineChartSpec, LineSeriesSpec } from "./lineChart";
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

  const sections: Section[] = [
    { id: "curves", title: "Training curves", charts: curves, heatmaps: [] },
    { id: "gradients", title: "Gradients and updates", charts: grads, heatmaps },
    { id: "predictions", title: "Predictions", charts: preds, heatmaps: [] },
    { id: "data", title: "Data pipeline", charts: data, heatmaps: [] },
  ];
  return sections.filter((s) => s.charts.length + s.heatmaps.length > 0);
}
