import assert from "node:assert/strict";
import { test } from "node:test";
import { alignOnEpochs } from "../src/align";

test("series on the same epochs are passed through, padded to the axis", () => {
  const a = alignOnEpochs([
    { epochs: [0, 1, 2], values: [1, 2, 3] },
    { epochs: [0, 1, 2], values: [4, 5] },
  ]);
  assert.deepEqual(a.x, [0, 1, 2]);
  assert.deepEqual(a.ys, [
    [1, 2, 3],
    [4, 5, null],
  ]);
});

test("different epochs are joined; alignment gaps are undefined, logged nulls stay null", () => {
  const a = alignOnEpochs([
    { epochs: [0, 2, 4], values: [1, null, 3] },
    { epochs: [0, 1, 2], values: [7, 8, 9] },
  ]);
  assert.deepEqual(a.x, [0, 1, 2, 4]);
  assert.deepEqual(a.ys[0], [1, undefined, null, 3]);
  assert.deepEqual(a.ys[1], [7, 8, 9, undefined]);
});

test("no series: empty axis", () => {
  assert.deepEqual(alignOnEpochs([]), { x: [], ys: [] });
});
