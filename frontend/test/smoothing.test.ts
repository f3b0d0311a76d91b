import assert from "node:assert/strict";
import { test } from "node:test";
import { smoothEma } from "../src/smoothing";

const close = (a: number | null | undefined, b: number, eps = 1e-9) =>
  assert.ok(a !== null && a !== undefined && Math.abs(a - b) < eps, `${a} != ${b}`);

test("weight 0 returns the data unchanged (the default)", () => {
  assert.deepEqual(smoothEma([3, 1, 2], 0), [3, 1, 2]);
});

test("matches TensorBoard's debiased EMA", () => {
  const w = 0.6;
  const ys = [1, 2, 3, 4];
  const out = smoothEma(ys, w);
  // Reference: last = last*w + (1-w)*y; smoothed = last / (1 - w^n)
  let last = 0;
  ys.forEach((y, i) => {
    last = last * w + (1 - w) * y;
    close(out[i], last / (1 - Math.pow(w, i + 1)));
  });
  // Debiasing: the first point is the first value, not pulled towards 0.
  close(out[0], 1);
});

test("constant series stay exactly flat", () => {
  assert.deepEqual(smoothEma([0.5, 0.5, 0.5], 0.9), [0.5, 0.5, 0.5]);
});

test("missing and non-finite points pass through without poisoning later values", () => {
  const out = smoothEma([1, null, NaN, 3], 0.5);
  close(out[0], 1);
  assert.equal(out[1], null);
  assert.ok(Number.isNaN(out[2] as number));
  assert.ok(Number.isFinite(out[3] as number));
  // Second finite point: last = 0.5*0.5 + 0.5*3 = 1.75, debias 1 - 0.25
  close(out[3], 1.75 / 0.75);
});

test("weights are clamped below 1 and empty input is fine", () => {
  assert.deepEqual(smoothEma([], 0.9), []);
  const out = smoothEma([1, 2], 5);
  assert.ok(out.every((v) => v !== null && Number.isFinite(v)));
});
