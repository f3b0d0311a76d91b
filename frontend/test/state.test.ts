import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DEFAULT_STATE,
  findingKey,
  findingKeys,
  reconcile,
  sanitizeState,
  selectPrimary,
  shownRuns,
  toggleCompare,
  toggleFinding,
  type UiState,
} from "../src/state";

const base: UiState = { ...DEFAULT_STATE };

test("the first listed run takes focus when nothing is selected", () => {
  const s = reconcile(base, ["stalled_run", "ok"], true);
  assert.equal(s.primary, "stalled_run");
});

test("a remembered run from another logdir is dropped at first load only", () => {
  const remembered = { ...base, primary: "gone", compare: ["gone2", "ok"] };
  const first = reconcile(remembered, ["ok", "b"], true);
  assert.equal(first.primary, "ok");
  assert.deepEqual(first.compare, ["ok"]);
  // Later polls never drop the selection, even if a run vanishes for a moment.
  const later = reconcile({ ...base, primary: "gone", compare: ["x"] }, ["ok"], false);
  assert.equal(later.primary, "gone");
  assert.deepEqual(later.compare, ["x"]);
});

test("reconcile returns the same object when nothing changes (no needless redraw)", () => {
  const s = { ...base, primary: "a" };
  assert.equal(reconcile(s, ["a", "b"], false), s);
});

test("selection helpers", () => {
  let s = selectPrimary(base, "a");
  assert.equal(s.primary, "a");
  s = toggleCompare(s, "b");
  s = toggleCompare(s, "c");
  assert.deepEqual(shownRuns(s), ["a", "b", "c"]);
  s = toggleCompare(s, "b");
  assert.deepEqual(shownRuns(s), ["a", "c"]);
  s = toggleCompare(s, "a"); // the run in focus is drawn once only
  assert.deepEqual(shownRuns(s), ["a", "c"]);
});

test("finding selection toggles and is cleared when focus moves", () => {
  const k = findingKey("a", "vanishing_gradients");
  let s = toggleFinding({ ...base, primary: "a" }, "a", k);
  assert.deepEqual(s.finding, { run: "a", key: k });
  assert.equal(toggleFinding(s, "a", k).finding, null);
  s = selectPrimary(s, "b");
  assert.equal(s.finding, null);
});

test("stored state is sanitized field by field", () => {
  const s = sanitizeState({
    primary: 3,
    compare: ["a", 4, null],
    logScale: { x: true, y: "yes" },
    smoothing: 7,
    filter: "mlp",
    finding: { run: "a", key: "k" },
  });
  assert.deepEqual(s, { primary: null, compare: ["a"], finding: null, logScale: { x: true }, smoothing: 0.99, filter: "mlp" });
  assert.deepEqual(sanitizeState("garbage"), DEFAULT_STATE);
});

test("finding keys follow run and code, not the position in the list", () => {
  const a = findingKeys("r", [{ code: "x" }, { code: "y" }, { code: "x" }]);
  const b = findingKeys("r", [{ code: "y" }, { code: "x" }, { code: "x" }]);
  assert.equal(a[0], b[1]);
  assert.equal(a[1], b[0]);
  assert.equal(a[2], b[2]);
  assert.notEqual(findingKey("r", "x"), findingKey("s", "x"));
  assert.equal(new Set(a).size, 3);
});
