// The example `hello` function built to wasm and written to a new temporary directory, for the
// benches that hand one file to their server processes (runner-hot-path, runner-isolation,
// runner-deploy-memory). Built the way the control plane builds it: AssemblyScript, edge-v1,
// 16 pages of memory.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildFunction } from "../../builder/index.ts";

/** Builds `example-repo/hello` into `{dir}/hello.wasm`, `dir` a new directory named `prefix…`. */
export async function writeHelloWasm(prefix: string): Promise<{ dir: string; wasmPath: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const wasmPath = path.join(dir, "hello.wasm");
  const built = await buildFunction({
    repoDir: "example-repo",
    sourceDir: "hello",
    language: "assemblyscript",
    abi: "edge-v1",
    memoryPages: 16,
  });
  writeFileSync(wasmPath, built.bytes);
  return { dir, wasmPath };
}
