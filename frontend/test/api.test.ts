import assert from "node:assert/strict";
import { test } from "node:test";
import { normalizeReport, normalizeRun, normalizeRuns, normalizeSeries } from "../src/api";

test("runs response from http_api.md is read field by field", () => {
  const r = normalizeRuns({
    runs: [
      {
        run: "mlp_lr_too_small",
        source: "callback",
        epochs: 20,
        status: "stalled",
        healthy: false,
        stalled_epochs: 17,
        top_finding: "learning_rate_too_small",
        updated: 1795351145.2,
      },
    ],
    updated: 1795351150.0,
  });
  assert.equal(r.updated, 1795351150.0);
  assert.deepEqual(r.runs[0], {
    run: "mlp_lr_too_small",
    source: "callback",
    epochs: 20,
    status: "stalled",
    healthy: false,
    stalledEpochs: 17,
    topFinding: "learning_rate_too_small",
    updated: 1795351145.2,
    error: null,
  });
});

test("a run whose analysis failed keeps its error line", () => {
  const r = normalizeRun({ run: "x", epochs: 6, status: "error", healthy: false, error: "analysis failed: boom" });
  assert.equal(r?.status, "error");
  assert.equal(r?.error, "analysis failed: boom");
});

test("malformed runs are dropped, unknown statuses are inferred", () => {
  const r = normalizeRuns({ runs: [null, { nope: 1 }, { run: "a", epochs: 0, status: "weird" }, { run: "b", epochs: 3, healthy: false }] });
  assert.deepEqual(r.runs.map((x) => [x.run, x.status]), [
    ["a", "empty"],
    ["b", "findings"],
  ]);
  assert.deepEqual(normalizeRuns("nonsense"), { runs: [], updated: null });
  assert.equal(normalizeRun({ run: "<img src=x onerror=alert(1)>" })?.run, "<img src=x onerror=alert(1)>");
});

test("report: findings, windows, baselines, notes", () => {
  const rep = normalizeReport({
    run: "r",
    source: "keras",
    epochs: 20,
    healthy: false,
    stalled_epochs: [3, 4, 5],
    findings: [
      { code: "vanishing_gradients", severity: "error", confidence: 0.9, epochs: [3, 4], layers: ["dense_1"], evidence: "e", fix: "f", title: "Vanishing gradients" },
      { code: "no_title_here", severity: "warning", confidence: "NaN", epochs: "x", explained_by: "vanishing_gradients" },
      "junk",
    ],
    stall_windows: [{ start: 3, end: 19, kind: "plateau", confidence: 0.8 }, { start: 1 }],
    baselines: { constant_loss: 1.0986, majority_rate: 0.34, loss_kind: "crossentropy" },
    notes: ["Logged by keras.callbacks.TensorBoard only"],
  });
  assert.equal(rep.findings.length, 2);
  assert.equal(rep.findings[1]?.title, "no title here");
  assert.equal(rep.findings[0]?.explainedBy, null);
  assert.equal(rep.findings[1]?.explainedBy, "vanishing_gradients");
  assert.equal(rep.findings[1]?.confidence, null);
  assert.deepEqual(rep.findings[1]?.epochs, []);
  assert.deepEqual(rep.stallWindows, [{ start: 3, end: 19, kind: "plateau", confidence: 0.8 }]);
  assert.equal(rep.error, null);
  assert.equal(normalizeReport({ error: "unreadable" }).error, "unreadable");
  assert.deepEqual(rep.baselines, { constantLoss: 1.0986, majorityRate: 0.34, lossKind: "crossentropy" });
  assert.equal(rep.notes.length, 1);
  assert.deepEqual(normalizeReport(null).findings, []);
});

test("series: values parsed, optional blocks null, downsampling read", () => {
  const s = normalizeSeries({
    run: "r",
    source: "callback",
    epochs: [0, 5, 10],
    updated: 12.5,
    metrics: { loss: [1, "NaN", null], val_loss: "bad" },
    learning_rate: null,
    baselines: { constant_loss: 0.69, majority_rate: null, loss_kind: null },
    stalled_epochs: [5],
    global: { grad_norm: [1e-9, "Infinity", 0] },
    predictions: null,
    inputs: null,
    batches: null,
    layers: {
      names: ["dense", "dense_1"],
      types: ["Dense", "Dense"],
      activations: ["relu", null],
      grad_norm: [[1, 2, 3], [null, "NaN", 0]],
      update_ratio: [[1], [2]],
      weight_norm: [[1], [2]],
      dead_fraction: null,
      saturated_fraction: [[0.1], [0.2]],
    },
    downsampled: { stride: 5, original_epochs: 15 },
  });
  assert.deepEqual(s.epochs, [0, 5, 10]);
  assert.ok(Number.isNaN(s.metrics.loss?.[1] as number));
  assert.equal(s.metrics.val_loss, undefined);
  assert.equal(s.learningRate, null);
  assert.equal(s.global.grad_norm?.[1], Infinity);
  assert.equal(s.predictions, null);
  assert.equal(s.layers?.deadFraction, null);
  assert.ok(Number.isNaN(s.layers?.gradNorm?.[1]?.[1] as number));
  assert.deepEqual(s.layers?.activations, ["relu", null]);
  assert.deepEqual(s.downsampled, { stride: 5, originalEpochs: 15 });
  const empty = normalizeSeries({});
  assert.deepEqual(empty.epochs, []);
  assert.equal(empty.layers, null);
  assert.equal(empty.downsampled, null);
});
