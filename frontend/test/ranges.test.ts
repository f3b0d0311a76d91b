import assert from "node:assert/strict";
import { test } from "node:test";
import { describeSpans, toSpans, toSpansOnAxis } from "../src/ranges";

test("epochs merge into contiguous spans regardless of order and duplicates", () => {
  assert.deepEqual(toSpans([5, 3, 4, 9, 4]), [
    { start: 3, end: 5 },
    { start: 9, end: 9 },
  ]);
  assert.deepEqual(toSpans([]), []);
});

test("on a full axis, spans are the listed epochs", () => {
  const axis = [0, 1, 2, 3, 4, 5];
  assert.deepEqual(toSpansOnAxis([1, 2, 4], axis), [
    { start: 1, end: 2 },
    { start: 4, end: 4 },
  ]);
  assert.deepEqual(toSpansOnAxis([1, 2], []), [{ start: 1, end: 2 }]);
  assert.deepEqual(toSpansOnAxis([9], axis), []); // beyond the logged epochs
});

test("on a downsampled axis, epochs snap to their bucket's newest epoch", () => {
  // Buckets of 5: the axis lists 4, 9, 14, 19; stalled epochs stay original.
  const axis = [4, 9, 14, 19];
  assert.deepEqual(toSpansOnAxis([3, 5, 6, 7, 8, 10, 11, 12, 13], axis), [{ start: 4, end: 14 }]);
  assert.deepEqual(toSpansOnAxis([0, 17], axis), [
    { start: 4, end: 4 },
    { start: 19, end: 19 },
  ]);
});

test("spans read as a short sentence", () => {
  assert.equal(describeSpans(toSpans([3, 4, 5, 9])), "3–5, 9");
  assert.equal(describeSpans(toSpans([1, 3, 5, 7, 9, 11]), 2), "1, 3, … (+4 more)");
});
