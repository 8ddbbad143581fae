// WAT (the WebAssembly text format) → wasm with wabt (npm, compiled to wasm; runs in the build
// worker). Parse and validation errors come back as file:line:col.

import { readFileSync } from "node:fs";
import path from "node:path";
import wabtInit from "wabt";
import { edgeError } from "../lib/errors.ts";
import { parseWabtDiagnostics } from "./diagnostics.ts";
import { type CompileJob, inRepo } from "./job.ts";

/** The proposals V8 in Node 20 runs without flags; a module using others fails to parse. */
const FEATURES = {
  mutable_globals: true,
  sat_float_to_int: true,
  sign_extension: true,
  simd: true,
  multi_value: true,
  bulk_memory: true,
  reference_types: true,
};

export async function compileWat(job: CompileJob): Promise<Uint8Array> {
  const entry = job.entry ?? "module.wat";
  const where = inRepo(job, entry);
  let text: string;
  try {
    text = readFileSync(path.join(job.scratch.src, entry), "utf8");
  } catch {
    throw edgeError("EDGE_ERR_BUILD_COMPILE", `${where}: not found (set source.entry to the .wat file)`);
  }
  const wabt = await wabtInit();
  let module: ReturnType<typeof wabt.parseWat> | null = null;
  try {
    module = wabt.parseWat(where, text, FEATURES);
    module.resolveNames();
    module.validate();
    return module.toBinary({ log: false, write_debug_names: false }).buffer;
  } catch (err) {
    const message = (err as Error).message;
    const details = parseWabtDiagnostics(message, where);
    const first = details[0];
    throw edgeError(
      "EDGE_ERR_BUILD_COMPILE",
      first ? `${first.where}: ${first.message}` : `${where}: ${message.split("\n")[0]}`,
      details.length ? details : [{ where, message: message.split("\n")[0]! }],
    );
  } finally {
    module?.destroy();
  }
}
