// edgectl build: build a local repository's functions with the builder, as a reconcile would,
// into an output directory; prints each artifact's size, sha256 and build time.

import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Command } from "./args.ts";
import { jsonOption } from "./args.ts";
import { dataDirOf } from "./client.ts";
import { CliError, EXIT } from "./exit.ts";
import { Progress } from "./progress.ts";
import { bytes, duration, printJson, short, table } from "./table.ts";
import { loadOrReport } from "./validate.ts";

interface Built {
  function: string;
  language: string;
  abi: string;
  status: "built" | "failed" | "skipped";
  file: string | null;
  bytes: number | null;
  sha256: string | null;
  ms: number;
  cacheHit: boolean;
  toolchain: string | null;
  error: { code: string; message: string; details?: { where?: string; message: string }[] } | null;
}

export const build: Command = {
  name: "build",
  summary: "build a local repository's functions to wasm (sizes, hashes, timings)",
  usage: "[dir] [--out DIR] [--function NAME]… [--no-cache] [--json]",
  description: `Builds each function of dir (default: .) with the same builder, limits and validation
a reconcile uses, and writes <out>/<function>.wasm. Exit 1 when any build fails; the
compiler's errors are printed with file:line. Functions whose toolchain is not installed fail
unless --skip-missing.`,
  maxPositionals: 1,
  options: {
    out: { type: "string", arg: "DIR", help: "output directory (default: <data-dir>/build)" },
    function: { type: "string", arg: "NAME", multiple: true, help: "build only this function" },
    "cache-dir": { type: "string", arg: "DIR", help: "build cache (default: <data-dir>/build-cache)" },
    "no-cache": { type: "boolean", help: "build everything from scratch, use no cache" },
    "skip-missing": { type: "boolean", help: "skip functions whose toolchain is not installed" },
    "data-dir": {
      type: "string",
      arg: "DIR",
      help: "default for --out and --cache-dir (default: .edgeplane)",
    },
    ...jsonOption,
  },
  examples: ["edgectl build example-repo --function hello", "edgectl build . --out dist --json"],
  async run(args) {
    const dir = path.resolve(args.positionals[0] ?? ".");
    const json = args.flag("json");
    const set = await loadOrReport(dir, json);
    if (!set) return EXIT.failure;
    const only = args.list("function");
    const names = set.functions.map((f) => f.manifest.metadata.name);
    for (const n of only) {
      if (!names.includes(n)) {
        throw new CliError(
          EXIT.notFound,
          `no function ${n} in ${dir} (it has: ${names.join(", ") || "none"})`,
        );
      }
    }
    const selected = only.length
      ? set.functions.filter((f) => only.includes(f.manifest.metadata.name))
      : set.functions;
    const dataDir = dataDirOf(args);
    const out = path.resolve(args.string("out") ?? path.join(dataDir, "build"));
    const cacheDir = args.flag("no-cache")
      ? undefined
      : path.resolve(args.string("cache-dir") ?? path.join(dataDir, "build-cache"));
    await mkdir(out, { recursive: true });
    const [{ buildFunction }, { EdgeError }] = await Promise.all([
      import("../builder/index.ts"),
      import("../lib/errors.ts"),
    ]);

    const progress = new Progress();
    const results: Built[] = [];
    for (const [i, fn] of selected.entries()) {
      const { metadata, spec } = fn.manifest;
      const started = performance.now();
      const base = { function: metadata.name, language: spec.source.language, abi: spec.abi };
      progress.phase(`building ${metadata.name} (${spec.source.language}) [${i + 1}/${selected.length}]`);
      try {
        const o = await buildFunction({
          repoDir: dir,
          sourceDir: fn.sourceDir,
          language: spec.source.language,
          ...(spec.source.entry ? { entry: spec.source.entry } : {}),
          abi: spec.abi,
          memoryPages: spec.limits.memoryPages,
          runtime: spec.runtime,
          options: cacheDir ? { cacheDir } : {},
        });
        const file = path.join(out, `${metadata.name}.wasm`);
        await writeFile(file, o.bytes);
        results.push({
          ...base,
          status: "built",
          file,
          bytes: o.bytes.byteLength,
          sha256: o.sha256,
          ms: Math.round(o.durationMs),
          cacheHit: o.cacheHit,
          toolchain: o.toolchain,
          error: null,
        });
      } catch (err) {
        if (!(err instanceof EdgeError)) throw err;
        const skip = err.code === "EDGE_ERR_BUILD_TOOLCHAIN_MISSING" && args.flag("skip-missing");
        results.push({
          ...base,
          status: skip ? "skipped" : "failed",
          file: null,
          bytes: null,
          sha256: null,
          ms: Math.round(performance.now() - started),
          cacheHit: false,
          toolchain: null,
          error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
        });
      }
    }
    const failed = results.filter((r) => r.status === "failed");
    progress.stop(failed.length ? "✗" : "✓");
    if (json) {
      printJson({ out, builds: results });
      return failed.length ? EXIT.failure : EXIT.ok;
    }
    if (results.length) {
      process.stdout.write(
        table(results, [
          { header: "function", value: (r) => r.function },
          { header: "language", value: (r) => r.language },
          { header: "status", value: (r) => r.status },
          { header: "size", value: (r) => bytes(r.bytes), align: "right" },
          { header: "sha256", value: (r) => short(r.sha256) },
          { header: "time", value: (r) => duration(r.ms), align: "right" },
          { header: "cache", value: (r) => (r.status === "built" ? (r.cacheHit ? "hit" : "miss") : "") },
          { header: "toolchain", value: (r) => r.toolchain },
        ]),
      );
    } else {
      process.stdout.write(`no functions in ${dir}\n`);
    }
    for (const r of results.filter((x) => x.error)) {
      const stream = r.status === "failed" ? process.stderr : process.stdout;
      stream.write(`\n${r.function}: ${r.error!.code}: ${r.error!.message}\n`);
      for (const d of r.error!.details ?? [])
        stream.write(`  ${d.where ? `${d.where}: ` : ""}${d.message}\n`);
    }
    if (results.some((r) => r.status === "built")) process.stdout.write(`\nwrote ${out}/<function>.wasm\n`);
    return failed.length ? EXIT.failure : EXIT.ok;
  },
};
