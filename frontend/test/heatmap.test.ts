import assert from "node:assert/strict";
import { test } from "node:test";
import { epochTicks } from "../src/heatmap";

test("heatmap epoch labels fall on round epoch numbers", () => {
  const e = Array.from({ length: 5000 }, (_, i) => i);
  const t = epochTicks(e, 10);
  assert.deepEqual(t.map((i) => e[i]), [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500]);
  const small = Array.from({ length: 10 }, (_, i) => i);
  assert.deepEqual(epochTicks(small, 20), small);
});

test("on a downsampled axis, labels land on the first epoch at or after the round number", () => {
  const e = [0, 7, 14, 21, 28, 35];
  const t = epochTicks(e, 3);
  assert.deepEqual(t.map((i) => e[i]), [0, 21]); // step 20: 0, then the first epoch >= 20
  assert.deepEqual(epochTicks([], 5), []);
});
