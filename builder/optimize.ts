// runtime: wasm-aot → the module is optimised ahead of time with binaryen (wasm-opt's passes,
// through the binaryen npm package, in the build worker). What was done is recorded in the
// build result; the output is validated again before it is stored.

import { edgeError } from "../lib/errors.ts";
import type { OptimizeRecord } from "./job.ts";
import { binaryenVersion } from "./toolchains.ts";

const OPTIMIZE_LEVEL = 3;
const SHRINK_LEVEL = 1;

/** wasm-opt's flags for what optimize() does, as recorded. */
export const OPTIMIZE_PASSES = `-O${OPTIMIZE_LEVEL} (shrink level ${SHRINK_LEVEL})`;

export async function optimizeModule(
  bytes: Uint8Array,
): Promise<{ bytes: Uint8Array; record: OptimizeRecord }> {
  const started = performance.now();
  const { default: binaryen } = await import("binaryen");
  const F = binaryen.Features;
  // The proposals V8 in Node 20 runs without flags: binaryen must neither reject a module using
  // them (AssemblyScript emits bulk memory and sign extension) nor introduce any other.
  const features =
    F.MutableGlobals |
    F.NontrappingFPToInt |
    F.SIMD128 |
    F.BulkMemory |
    F.BulkMemoryOpt |
    F.SignExt |
    F.ReferenceTypes |
    F.Multivalue;
  let module: ReturnType<typeof binaryen.readBinary>;
  try {
    module = binaryen.readBinary(bytes);
    module.setFeatures(features);
  } catch (err) {
    throw edgeError(
      "EDGE_ERR_BUILD_INVALID_MODULE",
      `binaryen cannot read the module: ${(err as Error).message}`,
    );
  }
  try {
    if (!module.validate()) {
      throw edgeError(
        "EDGE_ERR_BUILD_INVALID_MODULE",
        "binaryen rejects the module before optimising it (it uses a feature outside the supported set)",
      );
    }
    binaryen.setOptimizeLevel(OPTIMIZE_LEVEL);
    binaryen.setShrinkLevel(SHRINK_LEVEL);
    module.optimize();
    const out = module.emitBinary();
    return {
      bytes: out,
      record: {
        tool: `binaryen ${binaryenVersion}`,
        passes: OPTIMIZE_PASSES,
        bytesBefore: bytes.byteLength,
        bytesAfter: out.byteLength,
        ms: Math.round(performance.now() - started),
      },
    };
  } finally {
    module.dispose();
  }
}
