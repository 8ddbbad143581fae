// The AssemblyScript toolchain: asc through its API, in the build worker, reading only files
// inside the scratch copy of the function's directory and writing only to memory. Compiler
// diagnostics come back as file:line:col.

import { readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { type ErrorDetail, edgeError } from "../lib/errors.ts";
import type { CompileJob } from "./job.ts";

/**
 * The asc flags that make a module fit the edge-v1 ABI: the incremental GC (hot instances live
 * long), `_initialize` instead of a start section, no `env.abort` import, and a memory maximum
 * of the manifest's limit so the module itself refuses to grow past it.
 */
export function ascFlags(memoryPages: number): string[] {
  return [
    "--optimize",
    "--runtime",
    "incremental",
    "--exportStart",
    "_initialize",
    "--use",
    "abort=",
    "--maximumMemory",
    String(memoryPages),
    "--noColors",
  ];
}

export async function compileAssemblyScript(job: CompileJob): Promise<Uint8Array<ArrayBuffer>> {
  const { default: asc } = await import("assemblyscript/asc");
  const entry = job.entry ?? "index.ts";
  const root = realpathSync(job.scratch.src);
  const baseDir = root;
  const sources = new Map<string, string>();
  let binary: Uint8Array<ArrayBuffer> | null = null;
  const errors: ErrorDetail[] = [];

  const readInside = (filename: string, dir: string): string | null => {
    const abs = path.resolve(dir, filename);
    try {
      const real = realpathSync(abs);
      if (real !== root && !real.startsWith(root + path.sep)) return null; // outside the function
      const text = readFileSync(real, "utf8");
      sources.set(path.relative(baseDir, abs), text);
      return text;
    } catch {
      return null;
    }
  };

  const result = await asc.main(
    [entry, "--baseDir", baseDir, "--outFile", "module.wasm", ...ascFlags(job.memoryPages)],
    {
      readFile: readInside,
      writeFile: (name, contents) => {
        if (name.endsWith(".wasm") && typeof contents !== "string")
          binary = contents as Uint8Array<ArrayBuffer>;
      },
      listFiles: () => [],
      reportDiagnostic: (d) => {
        if (d.category !== 3) return; // errors only; warnings do not fail a build
        const file = d.range?.source.normalizedPath ?? entry;
        const where = d.range ? locate(sources.get(file), file, d.range.start) : file;
        errors.push({ where: path.posix.join(job.sourceDir, where), message: `AS${d.code}: ${d.message}` });
      },
    },
  );
  if (errors.length > 0 || result.error) {
    const first = errors[0];
    throw edgeError(
      "EDGE_ERR_BUILD_COMPILE",
      first ? `${first.where}: ${first.message}` : `asc failed: ${result.error?.message ?? "unknown error"}`,
      errors.length ? errors : [{ message: String(result.error?.message) }],
    );
  }
  if (!binary) throw edgeError("EDGE_ERR_BUILD_COMPILE", "asc produced no module");
  return binary;
}

function locate(text: string | undefined, file: string, offset: number): string {
  if (text === undefined) return file;
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return `${file}:${line}:${offset - lineStart + 1}`;
}
