import assert from "node:assert/strict";
import { test } from "node:test";
import type { RunInfo } from "../src/api";
import { compareNames, compileFilter, filterRuns, sortRuns } from "../src/runs";

const run = (name: string, status: RunInfo["status"]): RunInfo => ({
  run: name,
  source: "callback",
  epochs: 3,
  status,
  healthy: status === "healthy",
  stalledEpochs: 0,
  topFinding: null,
  updated: 1,
  error: null,
});

test("an empty filter shows every run", () => {
  const f = compileFilter("  ");
  assert.equal(f.regex, null);
  assert.equal(f.error, null);
  assert.equal(filterRuns([run("a", "healthy")], f).length, 1);
});

test("the filter is a case-insensitive regex", () => {
  const runs = [run("mlp/lr_1e-7", "stalled"), run("cnn/ok", "healthy"), run("MLP_big", "healthy")];
  assert.deepEqual(filterRuns(runs, compileFilter("^mlp")).map((r) => r.run), ["mlp/lr_1e-7", "MLP_big"]);
  assert.deepEqual(filterRuns(runs, compileFilter("lr_1e-\\d")).map((r) => r.run), ["mlp/lr_1e-7"]);
});

test("an invalid regex reports an error instead of throwing, and filters nothing", () => {
  const f = compileFilter("([");
  assert.equal(f.regex, null);
  assert.ok(f.error && f.error.length > 0);
  assert.equal(filterRuns([run("a", "healthy"), run("b", "healthy")], f).length, 2);
});

test("stalled runs first, then findings, healthy, empty; names in natural order", () => {
  const sorted = sortRuns([
    run("run10", "healthy"),
    run("run2", "healthy"),
    run("z", "empty"),
    run("b", "findings"),
    run("y", "stalled"),
    run("a", "stalled"),
    run("broken", "error"),
  ]);
  assert.deepEqual(sorted.map((r) => r.run), ["a", "y", "b", "broken", "run2", "run10", "z"]);
});

test("name comparison is total and stable for names equal ignoring case", () => {
  assert.ok(compareNames("A", "a") !== 0);
  assert.equal(compareNames("a", "a"), 0);
  assert.ok(compareNames("x2", "x10") < 0);
});
