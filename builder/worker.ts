// The build worker: a child process (forked per build by build.ts) that compiles one function
// in its scratch directory, applies the memory limit, validates, optionally optimises, and
// sends the bytes back. It runs with a V8 heap limit and is killed, with everything it
// started, when the build's time limit passes. It never sees the repository checkout, only
// the scratch copy, and gets a minimal environment (no credentials of the control plane).

import { EdgeError } from "../lib/errors.ts";
import type { CompileJob, OptimizeRecord, WorkerReply } from "./job.ts";
import { limitMemory } from "./memory.ts";
import { validateModule } from "./validate.ts";

async function compile(job: CompileJob): Promise<Uint8Array> {
  switch (job.language) {
    case "assemblyscript":
      return (await import("./assemblyscript.ts")).compileAssemblyScript(job);
    case "rust":
      return (await import("./rust.ts")).compileRust(job);
    case "c":
      return (await import("./c.ts")).compileC(job);
    case "wat":
      return (await import("./wat.ts")).compileWat(job);
    case "wasm":
      return (await import("./prebuilt.ts")).readPrebuilt(job);
  }
}

export async function runJob(job: CompileJob): Promise<WorkerReply> {
  try {
    let bytes: Uint8Array = limitMemory(await compile(job), job.memoryPages);
    validateModule(bytes, job.abi, job.memoryPages);
    let optimized: OptimizeRecord | null = null;
    if (job.runtime === "wasm-aot") {
      const result = await (await import("./optimize.ts")).optimizeModule(bytes);
      bytes = limitMemory(result.bytes, job.memoryPages);
      optimized = result.record;
    }
    return { ok: true, bytes, optimized };
  } catch (err) {
    if (err instanceof EdgeError) {
      return {
        ok: false,
        error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
      };
    }
    // An unexpected failure: the stack goes to stderr (the parent logs it), the message to the user.
    process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
    return {
      ok: false,
      error: {
        code: "EDGE_ERR_INTERNAL",
        message: `build worker failed: ${String((err as Error)?.message ?? err)}`,
      },
    };
  }
}

if (process.send) {
  // Ready first, so the job is not sent before anyone listens. After replying the worker just
  // waits: the parent kills its process group once it has the reply.
  process.once("message", (job: CompileJob) => {
    void runJob(job).then((reply) => process.send!(reply));
  });
  // If the parent goes away, so does the build (bwrap's --die-with-parent then stops the compiler).
  process.once("disconnect", () => process.exit(1));
  process.send("ready");
}
