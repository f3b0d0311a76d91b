import assert from "node:assert/strict";
import { test } from "node:test";
import { groupMetrics } from "../src/metrics";

test("metrics pair with their validation twins, loss first then accuracy", () => {
  const g = groupMetrics(["mae", "val_loss", "accuracy", "loss", "val_accuracy", "val_mae"]);
  assert.deepEqual(
    g.map((x) => [x.id, x.kind, x.keys]),
    [
      ["metric:loss", "loss", ["loss", "val_loss"]],
      ["metric:accuracy", "accuracy", ["accuracy", "val_accuracy"]],
      ["metric:mae", "other", ["mae", "val_mae"]],
    ],
  );
  assert.equal(g[0]?.title, "Loss");
});

test("Keras's accuracy spellings are recognised", () => {
  for (const k of ["acc", "sparse_categorical_accuracy", "binary_accuracy"]) {
    assert.equal(groupMetrics([k])[0]?.kind, "accuracy", k);
  }
});

test("a validation-only metric still gets a chart", () => {
  assert.deepEqual(groupMetrics(["val_auc"])[0]?.keys, ["val_auc"]);
  assert.deepEqual(groupMetrics([]), []);
});
