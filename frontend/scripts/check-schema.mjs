// Checks that the HTTP API's JSON Schema (the contract, in
// tb_stagnation/plugin/http_api.schema.json) and the TypeScript types the tab
// reads it into (src/api.ts) describe the same fields.
//
// Every object of the schema's $defs must have an exported interface of the
// same name in api.ts, with the same fields: the JSON's snake_case names in
// camelCase. Enums of strings must equal the string-literal unions that type
// them, and a field the schema lets be null or absent must be nullable in TS
// (or be listed below with the reason the reader fills it in instead). An
// exported interface with no $def fails too, so neither side can grow alone.
// TypeScript's own parser reads api.ts (typescript is already a devDependency).
//
// Run by `npm test`; alone: `npm run check-schema`.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const schemaPath = join(here, "../../tb_stagnation/plugin/http_api.schema.json");
const apiPath = join(here, "../src/api.ts");

// Interface.field -> why a null (or absent) value never reaches the typed object.
const FILLED_IN = {
  "Series.baselines": "normalizeBaselines turns null into all-null baselines",
  "Series.global": "an absent group is an empty record (nothing to draw)",
  "RunInfo.error": "absent is read as null",
  "Report.error": "absent is read as null",
  "Finding.explainedBy": "absent is read as null",
};

export function camel(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

/** Exported interfaces and string-literal type aliases of a TS source. */
export function readTypes(source, fileName = "api.ts") {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2020, true);
  const interfaces = new Map();
  const aliases = new Map();
  const exported = (n) => n.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  for (const node of sf.statements) {
    if (ts.isInterfaceDeclaration(node) && exported(node)) {
      const fields = new Map();
      for (const m of node.members) {
        if (!ts.isPropertySignature(m) || !m.name) continue;
        fields.set(m.name.getText(sf), { type: m.type, optional: !!m.questionToken });
      }
      interfaces.set(node.name.text, fields);
    } else if (ts.isTypeAliasDeclaration(node) && ts.isUnionTypeNode(node.type)) {
      const lits = node.type.types.filter((t) => ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal));
      if (lits.length === node.type.types.length) aliases.set(node.name.text, lits.map((t) => t.literal.text).sort());
    }
  }
  return { interfaces, aliases, sf };
}

function nullableType(t) {
  if (!t) return false;
  if (t.kind === ts.SyntaxKind.NullKeyword) return true;
  if (ts.isLiteralTypeNode(t) && t.literal.kind === ts.SyntaxKind.NullKeyword) return true;
  if (ts.isUnionTypeNode(t)) return t.types.some(nullableType);
  if (ts.isParenthesizedTypeNode(t)) return nullableType(t.type);
  return false;
}

function schemaNullable(prop, defs) {
  if (!prop || typeof prop !== "object") return false;
  if (prop.type === "null" || (Array.isArray(prop.type) && prop.type.includes("null"))) return true;
  if (Array.isArray(prop.enum) && prop.enum.includes(null)) return true;
  for (const key of ["anyOf", "oneOf"]) if (Array.isArray(prop[key]) && prop[key].some((p) => schemaNullable(p, defs))) return true;
  if (typeof prop.$ref === "string") return schemaNullable(defs[prop.$ref.replace("#/$defs/", "")], defs);
  return false;
}

function stringEnum(prop, defs) {
  if (!prop || typeof prop !== "object") return null;
  if (typeof prop.$ref === "string") return stringEnum(defs[prop.$ref.replace("#/$defs/", "")], defs);
  if (Array.isArray(prop.enum)) return prop.enum.filter((v) => typeof v === "string").sort();
  for (const key of ["anyOf", "oneOf"]) {
    if (!Array.isArray(prop[key])) continue;
    const found = prop[key].map((p) => stringEnum(p, defs)).filter(Boolean);
    if (found.length === 1) return found[0];
  }
  return null;
}

/** Every disagreement between the schema and the TS types, as sentences. */
export function compare(schema, types) {
  const problems = [];
  const defs = schema.$defs ?? {};
  const objects = Object.entries(defs).filter(([, d]) => d.type === "object" && d.properties);
  for (const [name, def] of objects) {
    const iface = types.interfaces.get(name);
    if (!iface) {
      problems.push(`$defs/${name}: no exported interface ${name} in src/api.ts`);
      continue;
    }
    const required = new Set(def.required ?? []);
    const expected = new Map(Object.entries(def.properties).map(([k, v]) => [camel(k), { json: k, prop: v }]));
    for (const [field, { json, prop }] of expected) {
      const ts_ = iface.get(field);
      if (!ts_) {
        problems.push(`${name}.${field}: the schema has "${json}", the interface does not`);
        continue;
      }
      const mayBeNull = schemaNullable(prop, defs) || !required.has(json);
      if (mayBeNull && !nullableType(ts_.type) && !FILLED_IN[`${name}.${field}`]) {
        problems.push(`${name}.${field}: "${json}" may be null or absent in the schema, the TS type has no null`);
      }
      const want = stringEnum(prop, defs);
      const aliasName = ts_.type && ts.isTypeReferenceNode(ts_.type) ? ts_.type.typeName.getText(types.sf) : null;
      const have = aliasName ? types.aliases.get(aliasName) : null;
      if (want && have && want.join("|") !== have.join("|")) {
        problems.push(`${name}.${field}: schema enum ${want.join("|")} != ${aliasName} ${have.join("|")}`);
      }
    }
    for (const field of iface.keys()) {
      if (!expected.has(field)) problems.push(`${name}.${field}: in the interface, not in the schema's $defs/${name}`);
    }
  }
  const defined = new Set(objects.map(([n]) => n));
  for (const name of types.interfaces.keys()) {
    if (!defined.has(name)) problems.push(`interface ${name}: exported by src/api.ts but not in the schema's $defs`);
  }
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  const types = readTypes(readFileSync(apiPath, "utf8"));
  const problems = compare(schema, types);
  // The check must be able to fail: a field dropped from either side is caught.
  const dropped = structuredClone(schema);
  delete dropped.$defs.LrRange.properties.suggested_lr;
  const apiWithout = readTypes(readFileSync(apiPath, "utf8").replace(/^\s*steepestLr: number \| null;$/m, ""));
  if (compare(dropped, types).length === 0 || compare(schema, apiWithout).length === 0) {
    problems.push("the checker missed a field removed on purpose (self-test)");
  }
  if (problems.length) {
    console.error(`check-schema: src/api.ts and http_api.schema.json disagree:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`check-schema: ${types.interfaces.size} interfaces match http_api.schema.json`);
}
