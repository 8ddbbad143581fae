// A prebuilt module checked into the repository (language: wasm). It is not compiled, but it
// goes through the same memory rewrite and validation as any compiler's output.

import { readFileSync } from "node:fs";
import path from "node:path";
import { edgeError } from "../lib/errors.ts";
import { type CompileJob, inRepo } from "./job.ts";

export function readPrebuilt(job: CompileJob): Uint8Array {
  const entry = job.entry ?? "module.wasm";
  const abs = path.resolve(job.scratch.src, entry);
  if (!abs.startsWith(job.scratch.src + path.sep)) {
    throw edgeError(
      "EDGE_ERR_BUILD_COMPILE",
      `source.entry "${entry}" points outside the function's directory`,
    );
  }
  try {
    return readFileSync(abs);
  } catch {
    throw edgeError("EDGE_ERR_BUILD_COMPILE", `${inRepo(job, entry)}: prebuilt module not found`);
  }
}
