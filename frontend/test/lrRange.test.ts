import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { normalizeLrRange, normalizeSeries, type Series } from "../src/api";
import { buildLrRangeChart, buildSections, formatRate, lrRangeYRange, whenRan } from "../src/chartSpecs";
import { xRange } from "../src/lineChart";

// esbuild bundles the test into .test-build/, next to test/.
const sample: unknown = JSON.parse(readFileSync(new URL("../test/fixtures/lr_range.json", import.meta.url), "utf8"));
const noFocus = { highlightEpochs: [], highlightLayers: new Set<string>() };

function run(name: string, lrRange: unknown): Series {
  return normalizeSeries({ run: name, source: "callback", epochs: [0, 1], metrics: { loss: [1, 0.9] }, lr_range: lrRange });
}

test("rates are written as people write them (the backend's fmt_rate)", () => {
  assert.equal(formatRate(0.003), "3e-3");
  assert.equal(formatRate(0.0035), "3.5e-3");
  assert.equal(formatRate(1e-7), "1e-7");
  assert.equal(formatRate(0.03), "0.03");
  assert.equal(formatRate(0.1), "0.1");
  assert.equal(formatRate(1.2), "1.2");
  assert.equal(formatRate(150), "1.5e2");
});

test("the lr_range record is read field by field, NaN kept as evidence", () => {
  const r = normalizeLrRange(sample);
  assert.ok(r);
  assert.equal(r.epoch, 4);
  assert.equal(r.verdict, "suggested");
  assert.equal(r.suggestedLr, 0.003);
  assert.equal(r.referenceLoss, 0.6931);
  assert.equal(r.learningRates.length, 9);
  assert.ok(Number.isNaN(r.losses[8]));
  assert.equal(r.smoothed[8], null);
  assert.equal(r.nonfiniteData, false);
  assert.equal(whenRan(r), "ran after epoch 4");
  assert.equal(whenRan({ ...r, epoch: null }), "ran outside fit()");
  assert.equal(normalizeLrRange(null), null);
  // An unknown verdict or a short list degrades instead of breaking the tab.
  const odd = normalizeLrRange({ verdict: "new_kind", learning_rates: [1e-3, 1e-2], losses: [1] });
  assert.equal(odd?.verdict, "never_falls");
  assert.deepEqual(odd?.losses, [1, null]);
});

test("the range-test chart: log x, raw + smoothed loss, the rates marked, the reference dashed", () => {
  const c = buildLrRangeChart([run("a", sample)]);
  assert.ok(c);
  assert.equal(c.title, "Learning-rate range test");
  assert.equal(c.xLog, true);
  assert.equal(c.xLabel, "learning rate");
  assert.equal(c.series.length, 1);
  assert.equal(c.series[0]?.smoothedValues?.length, 9);
  assert.deepEqual(c.markers?.map((m) => m.label), ["suggested 3e-3", "diverges 1.2", "current 1e-7"]);
  assert.deepEqual(c.baselines, [{ label: "constant predictor", value: 0.6931 }]);
  assert.equal(c.caption?.[0], "Suggested learning rate: 3e-3 (the loss falls fastest there).");
  assert.match(c.caption?.[1] ?? "", /^ran after epoch 4 · Adam · 9 of 100 steps from 1e-7 to 10/);
  assert.notEqual(c.syncKey, undefined); // not synced with the epoch charts
});

test("the chart appears only with a test, in its own section after the curves", () => {
  assert.equal(buildLrRangeChart([run("a", null)]), null);
  const ids = buildSections(run("a", sample), [], noFocus).map((s) => s.id);
  assert.deepEqual(ids.slice(0, 2), ["curves", "lr_range"]);
  assert.ok(!buildSections(run("a", null), [], noFocus).some((s) => s.id === "lr_range"));
  // Compared runs overlay their own curves; the markers are the focus run's.
  const two = buildLrRangeChart([run("a", sample), run("b", { ...(sample as object), suggested_lr: 0.01 })]);
  assert.deepEqual(two?.series.map((s) => s.label), ["a · loss", "b · loss"]);
  assert.equal(two?.markers?.[0]?.label, "suggested 3e-3");
});

test("non-positive rates are left off the log axis", () => {
  const c = buildLrRangeChart([run("a", { ...(sample as object), learning_rates: [0, null, 1e-3, 1e-2], losses: [1, 1, 0.9, 0.5], smoothed: [1, 1, 0.9, 0.6] })]);
  assert.deepEqual(c?.series[0]?.epochs, [1e-3, 1e-2]);
  assert.deepEqual(c?.series[0]?.values, [0.9, 0.5]);
});

test("the x range holds the points and the markers", () => {
  assert.deepEqual(xRange([1e-3, 1e-1], [2], true), [1e-3, 2]);
  assert.deepEqual(xRange([1e-3, 1e-1], [0, -1], true), [1e-3, 1e-1]);
  assert.deepEqual(xRange([0, 5], [], false), [0, 5]);
  assert.deepEqual(xRange([3], [], false), [2, 4]);
});

test("the loss axis stops at 1.5x the start: a blow-up does not flatten the fall", () => {
  const blown = normalizeLrRange({ ...(sample as object), losses: [0.7, 0.7, 0.6, 0.4, 0.3, 0.5, 5, 80, 300], smoothed: [0.7, 0.7, 0.6, 0.4, 0.3, 0.5, 3, 40, 200] });
  assert.ok(blown);
  const [lo, hi] = lrRangeYRange([blown]) ?? [NaN, NaN];
  assert.ok(lo < 0.3 && lo >= 0);
  assert.ok(hi > 1.05 && hi < 1.2);
  const c = buildLrRangeChart([run("a", { ...(sample as object), losses: [0.7, 0.7, 0.6, 0.4, 0.3, 0.5, 5, 80, 300] })]);
  assert.match(c?.caption?.[2] ?? "", /off the top/);
  // A curve that stays low keeps its own top, and says nothing of a cut.
  const calm = buildLrRangeChart([run("a", sample)]);
  assert.equal(calm?.caption?.length, 2);
  assert.ok((calm?.yRange?.[1] ?? 0) < 1);
});
