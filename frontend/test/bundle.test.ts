// Guards on the committed bundle itself: what a reviewer cannot see in a
// minified file must still hold.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const bundle = readFileSync(new URL("../../tb_stagnation/static/index.js", import.meta.url), "utf8");

test("the bundle never parses HTML from strings", () => {
  for (const sink of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment"]) {
    assert.ok(!bundle.includes(sink), `bundle uses ${sink}`);
  }
});

test("the bundle loads nothing from outside the plugin's routes", () => {
  assert.ok(!/\b(?:src|href)\s*=\s*["']https?:/i.test(bundle));
  assert.ok(!/fetch\(\s*["']https?:/.test(bundle));
  assert.ok(!/@import|url\(\s*["']?https?:/i.test(bundle), "remote CSS");
  assert.ok(!/\beval\(|new Function\(/.test(bundle));
});

test("the bundle exports render() and uses relative API routes", () => {
  assert.match(bundle, /export\s*\{[^}]*\bas render\b|export\s*\{[^}]*\brender\b/);
  for (const route of ["./runs", "./report?run=", "./series?run="]) assert.ok(bundle.includes(route), route);
});
