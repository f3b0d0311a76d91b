import assert from "node:assert/strict";
import { test } from "node:test";
import { formatLogTick, formatTicks } from "../src/axisTicks";

test("linear labels take their decimals from the spacing", () => {
  assert.deepEqual(formatTicks([1.08, 1.09, 1.1], false), ["1.08", "1.09", "1.10"]);
  assert.deepEqual(formatTicks([0, 0.5, 1], false), ["0", "0.5", "1.0"]);
  assert.deepEqual(formatTicks([0, 50, 100], false), ["0", "50", "100"]);
  assert.deepEqual(formatTicks([1.0985, 1.099, 1.0995], false), ["1.0985", "1.0990", "1.0995"]);
  // A spacing of 0.25 prints every tick exactly, float noise and all.
  assert.deepEqual(formatTicks([0.30000000000000004, 0.55, 0.8, 1.05], false), ["0.30", "0.55", "0.80", "1.05"]);
  assert.deepEqual(formatTicks([0, 0.25, 0.5, 0.75, 1], false), ["0", "0.25", "0.50", "0.75", "1.00"]);
});

test("tiny and huge linear values use exponents, not strings of zeros", () => {
  assert.deepEqual(formatTicks([0, 1e-9, 2e-9], false), ["0", "1e-9", "2e-9"]);
  assert.deepEqual(formatTicks([1.5e-9, 1.6e-9], false), ["1.5e-9", "1.6e-9"]);
  assert.deepEqual(formatTicks([2e6, 4e6], false), ["2e6", "4e6"]);
});

test("log labels: plain near 1, exponents far away, blanks for filtered ticks", () => {
  assert.deepEqual(formatTicks([0.001, null, 0.01, 0.1, 1, 10], true), ["0.001", "", "0.01", "0.1", "1", "10"]);
  assert.equal(formatLogTick(1e-7), "1e-7");
  assert.equal(formatLogTick(5e-7), "5e-7");
  assert.equal(formatLogTick(1e6), "1e6");
  assert.equal(formatLogTick(0.005), "0.005");
  assert.equal(formatLogTick(0), "");
});

test("log splits are whole decades, thinned, and cheap over huge ranges", async () => {
  const { logSplits } = await import("../src/axisTicks");
  assert.deepEqual(logSplits(1e-4, 1), [1e-4, 1e-3, 1e-2, 1e-1, 1]);
  const wide = logSplits(1e-150, 1e2, 6);
  assert.ok(wide.length <= 7 && wide.length >= 5, String(wide.length));
  assert.ok(wide.every((v) => v >= 1e-150 && v <= 1e2));
  // A decade or less: round values inside, 1-2-5 when there are enough.
  assert.deepEqual(logSplits(1e-6, 1e-5), [1e-6, 2e-6, 5e-6, 1e-5]);
  assert.deepEqual(logSplits(0.5, 1), [0.5, 0.6, 0.7, 0.8, 0.9, 1]);
  assert.deepEqual(logSplits(1.1e-6, 9e-6), [2e-6, 4e-6, 6e-6, 8e-6]);
  const narrow = logSplits(0.0011, 0.0019);
  assert.ok(narrow.length >= 2);
  assert.ok(narrow.every((v) => v >= 0.0011 && v <= 0.0019));
  assert.deepEqual(logSplits(0, 1), []);
});
