// What the build worker is asked to do, and helpers the language compilers share.

import { type EdgeError, type ErrorDetail, edgeError } from "../lib/errors.ts";
import type { Abi, Language, Runtime } from "../schema/index.ts";
import { type NativeResult, outOfMemory } from "./sandbox.ts";

export interface CompileJob {
  language: Language;
  /** The scratch directory: src/ (copy of the function's directory), out/, tmp/. */
  scratch: { root: string; src: string; out: string; tmp: string };
  /** The function's directory relative to the repository root, for messages ("fn/lib.rs:3:5"). */
  sourceDir: string;
  /** source.entry, or null for the language's default. */
  entry: string | null;
  abi: Abi;
  memoryPages: number;
  runtime: Runtime;
  /** How native compilers (rustc, clang) are run; null for languages compiled in the worker. */
  native: {
    command: string;
    sandbox: "bwrap" | "none";
    bwrap: string;
    memoryBytes: number;
    timeoutMs: number;
    wasiSysroot: string;
    /** rustc: where the target's wasi-libc is (linked so no_std code gets memcpy/memcmp). */
    libDir: string | null;
  } | null;
}

/** What the worker did besides compiling, recorded in the build result. */
export interface OptimizeRecord {
  tool: string;
  /** The optimisation applied, in wasm-opt's terms. */
  passes: string;
  bytesBefore: number;
  bytesAfter: number;
  ms: number;
}

export type WorkerReply =
  | { ok: true; bytes: Uint8Array; optimized: OptimizeRecord | null }
  | { ok: false; error: { code: string; message: string; details?: ErrorDetail[] } };

/**
 * The stack native toolchains reserve at the bottom of linear memory: a quarter of the
 * function's memory, between 16 KiB and 1 MiB (rustc's default of 1 MiB alone is 16 pages,
 * the whole default limit).
 */
export function stackBytes(memoryPages: number): number {
  const quarter = Math.floor((memoryPages * 65536) / 4);
  return Math.min(1024 * 1024, Math.max(16 * 1024, quarter)) & ~15;
}

/** The repository-relative path of a file inside the function's directory. */
export function inRepo(job: CompileJob, rel: string): string {
  return rel ? `${job.sourceDir ? `${job.sourceDir}/` : ""}${rel}` : job.sourceDir || ".";
}

/** A failed native compiler run as the right EdgeError: time, memory, or compile errors with positions. */
export function nativeFailure(
  tool: string,
  job: CompileJob,
  result: NativeResult,
  details: ErrorDetail[],
): EdgeError {
  if (result.timedOut) {
    return edgeError(
      "EDGE_ERR_BUILD_TIMEOUT",
      `${tool} ran past the build time limit of ${Math.round(job.native!.timeoutMs / 1000)} s and was killed`,
    );
  }
  if (outOfMemory(result)) {
    return edgeError(
      "EDGE_ERR_BUILD_OUT_OF_MEMORY",
      `${tool} ran out of the build memory limit of ${Math.round(job.native!.memoryBytes / 1024 / 1024)} MiB and was stopped`,
    );
  }
  const first = details[0];
  if (first) {
    return edgeError(
      "EDGE_ERR_BUILD_COMPILE",
      first.where ? `${first.where}: ${first.message}` : first.message,
      details,
    );
  }
  const tail = result.stderr.trim().split("\n").slice(-5).join("\n").slice(0, 2000);
  return edgeError(
    "EDGE_ERR_BUILD_COMPILE",
    `${tool} failed (exit ${result.code ?? result.signal}): ${tail}`,
    [{ where: inRepo(job, ""), message: tail }],
  );
}
