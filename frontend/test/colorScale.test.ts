import assert from "node:assert/strict";
import { test } from "node:test";
import { colorOf, domainOf, NONFINITE_COLOR, position, ramp, ticks, ZERO_COLOR } from "../src/colorScale";

test("log domain spans the smallest positive to the largest finite value", () => {
  const d = domainOf([[1e-8, 0, null, NaN], [1e2, Infinity]], "log");
  assert.equal(d.kind, "log");
  assert.equal(d.lo, -8);
  assert.equal(d.hi, 2);
});

test("a flat log domain still gets a decade of room", () => {
  const d = domainOf([[0.1, 0.1]], "log");
  assert.ok(Math.abs(d.hi - d.lo - 1) < 1e-12);
  assert.ok(d.lo < -1 && d.hi > -1);
  const empty = domainOf([[null, 0]], "log");
  assert.ok(empty.hi > empty.lo);
});

test("linear domain is [0, 1] for shares and widens for outliers", () => {
  assert.deepEqual(domainOf([[0.2, 0.5]], "linear"), { kind: "linear", lo: 0, hi: 1 });
  assert.deepEqual(domainOf([[0.2, 2]], "linear"), { kind: "linear", lo: 0, hi: 2 });
});

test("position maps decades evenly on the log scale", () => {
  const d = { kind: "log" as const, lo: -8, hi: 2 };
  assert.equal(position(1e-8, d), 0);
  assert.equal(position(1e2, d), 1);
  assert.ok(Math.abs((position(1e-3, d) as number) - 0.5) < 1e-12);
  assert.equal(position(1e-20, d), 0); // clamped
  assert.equal(position(0, d), null); // own swatch
  assert.equal(position(NaN, d), null);
});

test("zero and non-finite values get their own colours, missing gets none", () => {
  const d = { kind: "log" as const, lo: -3, hi: 0 };
  assert.deepEqual(colorOf(0, d), ZERO_COLOR);
  assert.deepEqual(colorOf(NaN, d), NONFINITE_COLOR);
  assert.deepEqual(colorOf(Infinity, d), NONFINITE_COLOR);
  assert.equal(colorOf(null, d), null);
  assert.deepEqual(colorOf(1e-3, d), ramp(0));
  assert.deepEqual(colorOf(1, d), ramp(1));
  const lin = { kind: "linear" as const, lo: 0, hi: 1 };
  assert.deepEqual(colorOf(0, lin), ramp(0));
});

test("the ramp is monotonic in lightness-ish and clamps", () => {
  const lum = (c: readonly number[]) => 0.2126 * (c[0] as number) + 0.7152 * (c[1] as number) + 0.0722 * (c[2] as number);
  let prev = -1;
  for (let i = 0; i <= 20; i++) {
    const l = lum(ramp(i / 20));
    assert.ok(l > prev, `ramp not increasing at ${i}`);
    prev = l;
  }
  assert.deepEqual(ramp(-1), ramp(0));
  assert.deepEqual(ramp(2), ramp(1));
  assert.deepEqual(ramp(NaN), ramp(0));
});

test("log ticks are whole decades, thinned, inside the domain", () => {
  const t = ticks({ kind: "log", lo: -12, hi: 2 }, 6);
  assert.ok(t.length <= 8 && t.length >= 2);
  for (const x of t) assert.ok(x.pos >= 0 && x.pos <= 1);
  assert.equal(t[0]?.label, "1e-12");
  const small = ticks({ kind: "log", lo: -2.4, hi: -2.1 });
  assert.equal(small.length, 2);
  const lin = ticks({ kind: "linear", lo: 0, hi: 1 });
  assert.deepEqual(lin.map((x) => x.label), ["0", "0.25", "0.5", "0.75", "1"]);
});
