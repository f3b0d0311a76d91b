import assert from "node:assert/strict";
import { test } from "node:test";
import { formatClock, formatWallTime } from "../src/clock";

test("clock text is zero-padded HH:MM:SS", () => {
  assert.equal(formatClock(new Date(2024, 0, 1, 7, 5, 3)), "07:05:03");
  assert.equal(formatWallTime(null), "–");
  assert.equal(formatWallTime(NaN), "–");
  const d = new Date(2024, 0, 1, 23, 59, 58);
  assert.equal(formatWallTime(d.getTime() / 1000), "23:59:58");
});
