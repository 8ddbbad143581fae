// Build-time benchmark: for each example function (one per language, settings from
// example-repo's manifests), the wall-clock time of a cold build (no cache: a build worker
// process, the compiler, validation) and of a cache hit (copy, hash, cache read, validation),
// median of several runs each. Prints a markdown table for docs/BENCHMARKS.md.
//
//   node --import tsx bench/builder-languages.ts [--cold 5] [--warm 10]

import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildFunction } from "../builder/index.ts";
import { loadManifests } from "../schema/index.ts";

const { values } = parseArgs({
  options: {
    cold: { type: "string", default: "5" },
    warm: { type: "string", default: "10" },
  },
});
const coldRuns = Number(values.cold);
const warmRuns = Number(values.warm);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const manifests = await loadManifests("example-repo");
const rows: string[] = [];
for (const fn of manifests.functions) {
  const spec = fn.manifest.spec;
  const input = {
    repoDir: "example-repo",
    sourceDir: fn.sourceDir,
    language: spec.source.language,
    ...(spec.source.entry ? { entry: spec.source.entry } : {}),
    abi: spec.abi,
    memoryPages: spec.limits.memoryPages,
    runtime: spec.runtime,
  };
  const cold: number[] = [];
  let last = null as Awaited<ReturnType<typeof buildFunction>> | null;
  for (let i = 0; i < coldRuns; i++) {
    const t0 = performance.now();
    last = await buildFunction(input);
    cold.push(performance.now() - t0);
  }
  const cacheDir = mkdtempSync(path.join(tmpdir(), "edgeplane-bench-cache-"));
  await buildFunction({ ...input, options: { cacheDir } }); // fills the cache
  const warm: number[] = [];
  for (let i = 0; i < warmRuns; i++) {
    const t0 = performance.now();
    const out = await buildFunction({ ...input, options: { cacheDir } });
    if (!out.cacheHit) throw new Error(`${fn.manifest.metadata.name}: expected a cache hit`);
    warm.push(performance.now() - t0);
  }
  rmSync(cacheDir, { recursive: true, force: true });
  const name = fn.manifest.metadata.name;
  const row = `| \`${name}\` | ${spec.source.language} | ${spec.runtime} | ${last!.toolchain} | ${last!.bytes.byteLength} | ${Math.round(median(cold))} | ${Math.round(Math.min(...cold))} | ${median(warm).toFixed(1)} |`;
  rows.push(row);
  console.error(row);
}

console.log(`Machine: ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}; cold = ${coldRuns} builds, cache hit = ${warmRuns} builds each.

| function | language | runtime | toolchain | artifact bytes | cold median ms | cold min ms | cache hit median ms |
| -------- | -------- | ------- | --------- | -------------: | -------------: | ----------: | ------------------: |
${rows.join("\n")}`);
