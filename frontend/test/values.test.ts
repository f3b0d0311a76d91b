import assert from "node:assert/strict";
import { test } from "node:test";
import {
  formatValue,
  hasAnyValue,
  matrixHasAnyValue,
  nonFiniteIndices,
  parseJsonRobust,
  parseMatrix,
  parseSeries,
  parseValue,
  quoteBareNonFinite,
  toPlottable,
} from "../src/values";

test("parseValue keeps the API's non-finite strings apart from missing values", () => {
  assert.equal(parseValue(1.5), 1.5);
  assert.equal(parseValue(0), 0);
  assert.equal(parseValue(null), null);
  assert.equal(parseValue(undefined), null);
  assert.ok(Number.isNaN(parseValue("NaN")));
  assert.equal(parseValue("Infinity"), Infinity);
  assert.equal(parseValue("-Infinity"), -Infinity);
});

test("parseValue tolerates variants and rejects junk", () => {
  assert.ok(Number.isNaN(parseValue("nan")));
  assert.equal(parseValue("inf"), Infinity);
  assert.equal(parseValue("-inf"), -Infinity);
  assert.equal(parseValue("0.25"), 0.25);
  assert.equal(parseValue("1e-7"), 1e-7);
  assert.equal(parseValue(""), null);
  assert.equal(parseValue("<img src=x>"), null);
  assert.equal(parseValue({}), null);
  assert.equal(parseValue([1]), null);
  assert.equal(parseValue(true), 1);
});

test("parseSeries and parseMatrix map element-wise and reject non-arrays", () => {
  const s = parseSeries([1, null, "NaN", "Infinity"]) as (number | null)[];
  assert.equal(s.length, 4);
  assert.equal(s[0], 1);
  assert.equal(s[1], null);
  assert.ok(Number.isNaN(s[2] as number));
  assert.equal(s[3], Infinity);
  assert.equal(parseSeries(null), null);
  assert.equal(parseSeries("1,2"), null);
  assert.deepEqual(parseMatrix([[1], "bad", [null]]), [[1], [], [null]]);
  assert.equal(parseMatrix(undefined), null);
});

test("hasAnyValue counts non-finite values as logged, nulls as not", () => {
  assert.equal(hasAnyValue([null, null]), false);
  assert.equal(hasAnyValue([null, NaN]), true);
  assert.equal(hasAnyValue(null), false);
  assert.equal(matrixHasAnyValue([[null], [null, 0]]), true);
  assert.equal(matrixHasAnyValue([[null], []]), false);
  assert.equal(matrixHasAnyValue(null), false);
});

test("formatValue shows NaN and tiny magnitudes readably", () => {
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(Infinity), "Infinity");
  assert.equal(formatValue(-Infinity), "-Infinity");
  assert.equal(formatValue(null), "–");
  assert.equal(formatValue(undefined), "–");
  assert.equal(formatValue(0), "0");
  assert.equal(formatValue(12), "12");
  assert.equal(formatValue(0.693147), "0.6931");
  assert.equal(formatValue(1.2345e-9), "1.235e-9");
  assert.equal(formatValue(2.5e7), "2.500e7");
});

test("toPlottable turns every non-plottable value into a gap", () => {
  assert.deepEqual(toPlottable([1, null, NaN, Infinity, 0, -1], false), [1, null, null, null, 0, -1]);
  assert.deepEqual(toPlottable([1, 0, -1], true), [1, null, null]);
  // undefined (no point for this run at an aligned epoch) is kept for uPlot to draw through.
  assert.deepEqual(toPlottable([undefined, 2], false), [undefined, 2]);
  assert.deepEqual(nonFiniteIndices([1, NaN, null, -Infinity]), [1, 3]);
});

test("parseJsonRobust accepts bare NaN / Infinity tokens but not inside strings", () => {
  const v = parseJsonRobust('{"a": [1, NaN, Infinity, -Infinity], "s": "NaN Infinity"}') as {
    a: unknown[];
    s: string;
  };
  assert.deepEqual(v.a, [1, "NaN", "Infinity", "-Infinity"]);
  assert.equal(v.s, "NaN Infinity");
  assert.deepEqual(parseJsonRobust('{"x": "say \\"NaN\\""}'), { x: 'say "NaN"' });
  assert.throws(() => parseJsonRobust("{not json"));
  assert.equal(quoteBareNonFinite('["NaN", NaN]'), '["NaN", "NaN"]');
});
