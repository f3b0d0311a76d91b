import assert from "node:assert/strict";
import { test } from "node:test";
import { aggregateRow, buckets } from "../src/downsample";

test("no downsampling when the columns fit", () => {
  const b = buckets(5, 10);
  assert.equal(b.length, 5);
  assert.deepEqual(b[2], { start: 2, end: 3 });
  assert.deepEqual(aggregateRow([1, null, NaN, 4, 5], b, "log").slice(0, 2), [1, null]);
});

test("buckets cover every column exactly once, near-equally", () => {
  for (const [n, cols] of [
    [5000, 900],
    [1001, 1000],
    [7, 3],
    [300, 299],
  ] as const) {
    const b = buckets(n, cols);
    assert.ok(b.length <= cols);
    assert.equal(b[0]?.start, 0);
    assert.equal(b[b.length - 1]?.end, n);
    for (let i = 1; i < b.length; i++) assert.equal(b[i]?.start, b[i - 1]?.end);
    const sizes = b.map((x) => x.end - x.start);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
  }
  assert.equal(buckets(0, 10).length, 0);
});

test("log rows merge by geometric mean; shares by mean", () => {
  const b = buckets(4, 2);
  const g = aggregateRow([1e-6, 1e-2, 4, 16], b, "log");
  assert.ok(Math.abs((g[0] as number) - 1e-4) < 1e-12);
  assert.ok(Math.abs((g[1] as number) - 8) < 1e-9);
  assert.deepEqual(aggregateRow([0.2, 0.4, 1, 0], b, "linear").map((v) => Number((v as number).toFixed(6))), [0.3, 0.5]);
});

test("a non-finite epoch wins its bucket; NaN over Infinity", () => {
  const b = buckets(4, 2);
  const out = aggregateRow([1, Infinity, NaN, 2], b, "log");
  assert.equal(out[0], Infinity);
  assert.ok(Number.isNaN(out[1] as number));
  const both = aggregateRow([Infinity, NaN], buckets(2, 1), "log");
  assert.ok(Number.isNaN(both[0] as number));
});

test("all-missing stays missing, mostly-zero stays zero", () => {
  const b = buckets(4, 2);
  assert.deepEqual(aggregateRow([null, null, 0, 0], b, "log"), [null, 0]);
  assert.deepEqual(aggregateRow([0, 0, 1e-3], buckets(3, 1), "log"), [0]);
  const half = aggregateRow([0, 1e-3], buckets(2, 1), "log")[0] as number;
  assert.ok(Math.abs(half - 1e-3) < 1e-15);
});

test("5000 epochs x 200 layers merge quickly", () => {
  const row = Array.from({ length: 5000 }, (_, i) => Math.exp(-i / 500));
  const b = buckets(5000, 1000);
  const t0 = performance.now();
  for (let r = 0; r < 200; r++) aggregateRow(row, b, "log");
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `took ${ms} ms`);
});
