import assert from "node:assert/strict";
import { test } from "node:test";
import { medianStep, padRange } from "../src/lineChart";

test("y range gets air, and a flat line is not a zero-height range", () => {
  assert.deepEqual(padRange(0, 10), [-0.5, 10.5]);
  assert.deepEqual(padRange(2, 2), [1.8, 2.2]);
  assert.deepEqual(padRange(0, 0), [-1, 1]);
  assert.deepEqual(padRange(null, null), [0, 1]);
});

test("band half-width follows the epoch spacing of downsampled runs", () => {
  assert.equal(medianStep([0, 1, 2, 3]), 1);
  assert.equal(medianStep([0, 5, 10, 15, 17]), 5);
  assert.equal(medianStep([4]), 1);
});
