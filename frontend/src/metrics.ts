/**
 * Which Keras metrics go on which chart. Keras names metrics after the user's
 * choice ("accuracy", "acc", "sparse_categorical_accuracy", "mae", ...) and
 * prefixes validation ones with "val_"; each chart pairs a metric with its
 * validation twin.
 */

export interface MetricGroup {
  id: string; // stable id for per-chart settings
  title: string;
  keys: string[]; // train key first, then val_ key, when present
  kind: "loss" | "accuracy" | "other";
}

const ACCURACY = /acc/i;

export function groupMetrics(keys: readonly string[]): MetricGroup[] {
  const present = new Set(keys);
  const bases: string[] = [];
  for (const k of keys) {
    const base = k.startsWith("val_") && k.length > 4 ? k.slice(4) : k;
    if (!bases.includes(base)) bases.push(base);
  }
  const groups: MetricGroup[] = [];
  for (const base of bases) {
    const ks = [base, `val_${base}`].filter((k) => present.has(k));
    const kind = base === "loss" ? "loss" : ACCURACY.test(base) ? "accuracy" : "other";
    groups.push({ id: `metric:${base}`, title: base === "loss" ? "Loss" : prettify(base), keys: ks, kind });
  }
  // Loss first, then accuracy-like, then the rest in the order Keras logged them.
  const rank = { loss: 0, accuracy: 1, other: 2 } as const;
  return groups
    .map((g, i) => ({ g, i }))
    .sort((a, b) => rank[a.g.kind] - rank[b.g.kind] || a.i - b.i)
    .map((x) => x.g);
}

function prettify(key: string): string {
  const s = key.replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}
