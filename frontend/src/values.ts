/**
 * Parsing of the values the HTTP API sends.
 *
 * JSON has no NaN, so the backend sends a missing value as `null` and a
 * non-finite one as the string "NaN", "Infinity" or "-Infinity". A NaN loss is
 * evidence the page must show, so the two cases stay distinct after parsing:
 * `null` means "nothing was logged", a JS NaN / ±Infinity means "the run logged
 * a non-finite value".
 */

/** One parsed value: null = missing, NaN / ±Infinity = logged non-finite value. */
export type Val = number | null;

const NON_FINITE: Record<string, number> = {
  nan: NaN,
  "-nan": NaN,
  infinity: Infinity,
  "+infinity": Infinity,
  inf: Infinity,
  "+inf": Infinity,
  "-infinity": -Infinity,
  "-inf": -Infinity,
};

/** Turns anything the API might send into a Val; unknown shapes become null. */
export function parseValue(v: unknown): Val {
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    const key = v.trim().toLowerCase();
    if (key in NON_FINITE) return NON_FINITE[key] as number;
    // Tolerate numbers sent as strings ("0.5"): an older writer might.
    if (key !== "" && /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(key)) return Number(key);
    return null;
  }
  if (typeof v === "boolean") return v ? 1 : 0;
  return null;
}

/** An array of values, or null when the field is absent or not an array. */
export function parseSeries(v: unknown): Val[] | null {
  if (!Array.isArray(v)) return null;
  const out = new Array<Val>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = parseValue(v[i]);
  return out;
}

/** Rows of values (one row per layer); null when absent. */
export function parseMatrix(v: unknown): Val[][] | null {
  if (!Array.isArray(v)) return null;
  return v.map((row) => parseSeries(row) ?? []);
}

/** A series is worth drawing when it holds at least one logged value. */
export function hasAnyValue(values: readonly Val[] | null | undefined): boolean {
  if (!values) return false;
  for (const x of values) if (x !== null) return true;
  return false;
}

export function matrixHasAnyValue(m: readonly (readonly Val[])[] | null | undefined): boolean {
  return !!m && m.some((row) => hasAnyValue(row));
}

/** Text for tooltips and legends: exact enough to compare, short enough to read. */
export function formatValue(v: Val | undefined, digits = 4): string {
  if (v === null || v === undefined) return "–";
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "-Infinity";
  if (v === 0) return "0";
  const a = Math.abs(v);
  // Gradient norms of 1e-9 and update ratios of 1e-12 are the interesting
  // values here; fixed notation would print them as 0.
  if (a < 1e-3 || a >= 1e6) return v.toExponential(digits - 1).replace("e+", "e");
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(digits)));
}

/**
 * Values as uPlot wants them: finite numbers, null (a gap) for everything
 * else, and undefined kept as undefined (uPlot draws through it: it marks an
 * epoch this run has no point at, see align.ts).
 */
export function toPlottable(values: readonly (Val | undefined)[], logScale: boolean): (number | null | undefined)[] {
  const out = new Array<number | null | undefined>(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    out[i] = x === undefined ? undefined : x === null || !Number.isFinite(x) || (logScale && x <= 0) ? null : x;
  }
  return out;
}

/** Indices whose value was logged but is not finite (to mark them on charts). */
export function nonFiniteIndices(values: readonly (Val | undefined)[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (x !== null && x !== undefined && !Number.isFinite(x)) out.push(i);
  }
  return out;
}

/**
 * Parses a JSON body, tolerating bare NaN / Infinity tokens (what Python's
 * json.dumps writes by default) so a backend slip shows data, not a blank page.
 */
export function parseJsonRobust(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (first) {
    const fixed = quoteBareNonFinite(text);
    if (fixed === text) throw first;
    return JSON.parse(fixed);
  }
}

/** Quotes NaN / Infinity / -Infinity tokens that stand outside JSON strings. */
export function quoteBareNonFinite(text: string): string {
  let out = "";
  let i = 0;
  let inString = false;
  while (i < text.length) {
    const c = text[i] as string;
    if (inString) {
      out += c;
      if (c === "\\") {
        out += text[i + 1] ?? "";
        i += 2;
        continue;
      }
      if (c === '"') inString = false;
      i++;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      i++;
      continue;
    }
    const m = /^(-?Infinity|NaN)/.exec(text.slice(i, i + 9));
    if (m) {
      out += '"' + m[1] + '"';
      i += (m[1] as string).length;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}
