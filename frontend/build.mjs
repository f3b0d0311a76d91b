// Builds the tab's bundle, or (with --tests) the unit tests and runs them.
//
// `npm run build` must be deterministic: CI rebuilds and fails when
// tb_stagnation/static/ differs from the committed bundle. esbuild output
// depends only on sources, options and esbuild's version (pinned in
// package-lock.json); nothing here embeds paths, dates or hashes.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const common = {
  absWorkingDir: here,
  bundle: true,
  format: "esm",
  loader: { ".css": "text" },
  logLevel: "warning",
  target: "es2020",
};

async function buildBundle() {
  const uplotVersion = JSON.parse(readFileSync(join(here, "node_modules/uplot/package.json"), "utf8")).version;
  const uplotLicense = readFileSync(join(here, "node_modules/uplot/LICENSE"), "utf8").trim();
  await esbuild.build({
    ...common,
    entryPoints: ["src/index.ts"],
    outfile: "../tb_stagnation/static/index.js",
    platform: "browser",
    minify: true,
    legalComments: "none",
    banner: {
      js: "// tb_stagnation: the Stagnation tab. Built from frontend/ by `npm run build`; do not edit.",
    },
    // uPlot's MIT licence asks for its notice in copies; minifying drops it.
    footer: { js: `/*\nBundles uPlot ${uplotVersion}:\n${uplotLicense.replace(/\*\//g, "* /")}\n*/` },
  });
}

async function runTests() {
  const outdir = join(here, ".test-build");
  rmSync(outdir, { recursive: true, force: true });
  const tests = readdirSync(join(here, "test"))
    .filter((f) => f.endsWith(".test.ts"))
    .sort();
  await esbuild.build({
    ...common,
    entryPoints: tests.map((f) => `test/${f}`),
    outdir,
    outExtension: { ".js": ".mjs" },
    platform: "node",
    sourcemap: "inline",
  });
  const files = tests.map((f) => join(outdir, f.replace(/\.ts$/, ".mjs")));
  const r = spawnSync(process.execPath, ["--enable-source-maps", "--test", ...files], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}

if (process.argv.includes("--tests")) await runTests();
else await buildBundle();
