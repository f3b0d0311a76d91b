import assert from "node:assert/strict";
import { test } from "node:test";
import { normalizeSeries, type Series } from "../src/api";
import { buildSections } from "../src/chartSpecs";

const noFocus = { highlightEpochs: [], highlightLayers: new Set<string>() };

function callbackRun(name: string, epochs = 4): Series {
  const e = Array.from({ length: epochs }, (_, i) => i);
  const v = e.map((i) => 1 / (i + 1));
  return normalizeSeries({
    run: name,
    source: "callback",
    epochs: e,
    metrics: { loss: v, val_loss: v, accuracy: v, val_accuracy: v },
    learning_rate: e.map(() => 1e-3),
    baselines: { constant_loss: 1.0986, majority_rate: 0.34, loss_kind: "crossentropy" },
    stalled_epochs: [1, 2],
    global: { grad_norm: v, update_ratio: v, nonfinite_fraction: e.map(() => 0) },
    predictions: { entropy: v, class_entropy: v, top_class_share: v, changed_share: [null, ...v.slice(1)] },
    inputs: { mean: v, std: v, max_abs: v },
    batches: { distinct: v, seen: v },
    layers: {
      names: ["dense", "dense_1"],
      types: ["Dense", "Dense"],
      activations: ["relu", "softmax"],
      grad_norm: [v, v],
      update_ratio: [v, v],
      weight_norm: [v, v],
      dead_fraction: [v, e.map(() => null)],
      saturated_fraction: [e.map(() => null), e.map(() => null)],
    },
    downsampled: null,
  });
}

test("a callback run gets every section; empty heatmaps and zero NaN-shares are left out", () => {
  const secs = buildSections(callbackRun("a"), [], noFocus);
  assert.deepEqual(secs.map((s) => s.id), ["curves", "gradients", "predictions", "data"]);
  const curves = secs[0]?.charts.map((c) => c.id);
  assert.deepEqual(curves, ["metric:loss", "metric:accuracy", "learning_rate"]);
  const loss = secs[0]?.charts[0];
  assert.deepEqual(loss?.baselines, [{ label: "constant predictor", value: 1.0986 }]);
  assert.deepEqual(loss?.stalled, [{ start: 1, end: 2 }]);
  assert.deepEqual(loss?.series.map((s) => [s.label, !!s.dash]), [
    ["loss", false],
    ["val_loss", true],
  ]);
  assert.deepEqual(secs[0]?.charts[1]?.baselines, [{ label: "majority class", value: 0.34 }]);
  const grads = secs[1];
  assert.deepEqual(grads?.charts.map((c) => c.id), ["global:grad_norm", "global:update_ratio"]);
  assert.deepEqual(grads?.heatmaps.map((h) => h.id), ["layers:grad_norm", "layers:update_ratio", "layers:weight_norm", "layers:dead_fraction"]);
  assert.equal(grads?.heatmaps[0]?.kind, "log");
  assert.equal(grads?.heatmaps[2]?.kind, "log");
  assert.equal(grads?.heatmaps[3]?.kind, "linear");
  assert.deepEqual(secs[2]?.charts.map((c) => c.id), ["pred:entropy", "pred:diversity"]);
});

test("a plain-Keras run gets only the curves it has", () => {
  const k = normalizeSeries({
    run: "k",
    source: "keras",
    epochs: [0, 1],
    metrics: { loss: [1, 1] },
    learning_rate: null,
    baselines: {},
    stalled_epochs: [],
    global: {},
    predictions: null,
    layers: null,
  });
  const secs = buildSections(k, [], noFocus);
  assert.deepEqual(secs.map((s) => s.id), ["curves"]);
  assert.deepEqual(secs[0]?.charts[0]?.baselines, []);
});

test("compared runs overlay line charts with run-prefixed labels; predictions stay with the focus run", () => {
  const secs = buildSections(callbackRun("a"), [callbackRun("b", 6)], noFocus);
  const loss = secs[0]?.charts[0];
  assert.deepEqual(loss?.series.map((s) => s.label), ["a · loss", "b · loss", "a · val_loss", "b · val_loss"]);
  assert.equal(secs.find((s) => s.id === "predictions")?.charts[0]?.series.length, 1);
});

test("the clicked finding's epochs and layers are passed to every chart", () => {
  const focus = { highlightEpochs: [{ start: 2, end: 3 }], highlightLayers: new Set(["dense_1"]) };
  const secs = buildSections(callbackRun("a"), [], focus);
  for (const s of secs) {
    for (const c of s.charts) assert.deepEqual(c.highlight, focus.highlightEpochs);
    for (const h of s.heatmaps) assert.ok(h.highlightRows?.has("dense_1"));
  }
});
