import assert from "node:assert/strict";
import { test } from "node:test";
import { startPolling } from "../src/poller";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("ticks repeat, never overlap, survive errors, and stop", async () => {
  let running = 0;
  let maxRunning = 0;
  let calls = 0;
  const p = startPolling(async () => {
    calls++;
    running++;
    maxRunning = Math.max(maxRunning, running);
    await sleep(15);
    running--;
    if (calls === 2) throw new Error("server down");
  }, 5);
  p.now();
  p.now(); // a second manual refresh while one is running must not start another
  await sleep(120);
  p.stop();
  const after = calls;
  await sleep(40);
  assert.ok(after >= 3, `only ${after} ticks`);
  assert.equal(maxRunning, 1);
  assert.equal(calls, after);
});
