// C → wasm32-wasi with clang and wasi-libc (Debian's clang-14, lld-14, wasi-libc,
// libclang-rt-14-dev-wasm32). With source.entry only that file is compiled, else every .c file
// under the function's directory (sorted), with the directory on the include path.
//
// edge-v1 builds a WASI reactor (-mexec-model=reactor): no `_start`, an `_initialize` that runs
// C constructors, `edge_handle` exported; libc's string and memory functions link in without
// importing anything from WASI unless the code uses I/O. wagi builds a WASI command (`_start`).

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { edgeError } from "../lib/errors.ts";
import { parseClangDiagnostics } from "./diagnostics.ts";
import { type CompileJob, inRepo, nativeFailure, stackBytes } from "./job.ts";
import { runNative, SANDBOX_SRC } from "./sandbox.ts";

/** The .c files to compile, relative to the function's directory. */
export function cSources(job: CompileJob): string[] {
  if (job.entry !== null) return [job.entry];
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(job.scratch.src, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(child);
      else if (e.isFile() && e.name.endsWith(".c")) out.push(child);
    }
  };
  walk("");
  if (out.length === 0)
    throw edgeError("EDGE_ERR_BUILD_COMPILE", `${inRepo(job, "")}: no .c files to compile`);
  return out.sort();
}

export async function compileC(job: CompileJob): Promise<Uint8Array> {
  const files = cSources(job);
  const native = job.native!;
  const lane =
    job.abi === "wagi"
      ? ["-mexec-model=command"]
      : ["-mexec-model=reactor", "-Wl,--export-if-defined=edge_handle"];
  const result = await runNative({
    command: native.command,
    scratch: job.scratch,
    sandbox: native.sandbox,
    bwrap: native.bwrap,
    memoryBytes: native.memoryBytes,
    timeoutMs: native.timeoutMs,
    args: (p) => [
      "--target=wasm32-wasi",
      `--sysroot=${native.wasiSysroot}`,
      "-O2",
      "-std=c17",
      "-fno-color-diagnostics",
      "-fno-caret-diagnostics",
      "-I.",
      ...lane,
      `-Wl,-z,stack-size=${stackBytes(job.memoryPages)}`,
      "-Wl,--strip-debug",
      "-o",
      `${p.out}/module.wasm`,
      ...files,
    ],
  });
  if (result.code !== 0) {
    throw nativeFailure(
      "clang",
      job,
      result,
      parseClangDiagnostics(result.stderr, job.sourceDir, SANDBOX_SRC),
    );
  }
  return readFileSync(path.join(job.scratch.out, "module.wasm"));
}
