// Builder options in three steps (CONVENTIONS.md "Config in three steps"): what a person
// writes (units like "2m", "1GiB"), the defaults applied, and the compiled form the builder
// uses (ms and bytes). Every option and its default is listed here and in docs/builder.md.

import { edgeError } from "../lib/errors.ts";
import { parseDuration, parseSize } from "../lib/units.ts";

export type SandboxMode = "auto" | "bwrap" | "none";

export interface BuilderOptions {
  /** Where the Rust and C toolchains are; a bare name is looked up on PATH. */
  toolchains?: {
    /** Default "/usr/bin/rustc" (Debian's, which has the wasm32-wasi std; rustup's usually has not). */
    rustc?: string;
    /** Default "clang-14". */
    clang?: string;
    /** The C sysroot holding wasi-libc; default "/usr" (Debian's wasi-libc). */
    wasiSysroot?: string;
    /** Default "bwrap" (bubblewrap). */
    bwrap?: string;
  };
  /**
   * How native compilers (rustc, clang) are confined: "bwrap" runs them in a bubblewrap
   * namespace that sees only /usr read-only and the scratch copy of the function (no network, no
   * repo, no home); "none" runs them as plain child processes in the scratch directory; "auto"
   * (default) uses bwrap when it is installed and works, else none.
   */
  sandbox?: SandboxMode;
  /** Wall-clock limit of one build, worker start included. Default "2m". */
  timeout?: string | number;
  /** Address-space limit of a native compiler process (ulimit -v). Default "2GiB". */
  compilerMemory?: string | number;
  /** V8 heap limit of the build worker (node --max-old-space-size). Default "1GiB". */
  workerHeap?: string | number;
  /** Largest artifact accepted. Default "8MiB". */
  maxArtifactSize?: string | number;
  /** Largest function source directory copied into a build. Default "64MiB". */
  maxSourceSize?: string | number;
  /**
   * Directory of the build cache (artifacts keyed by source tree hash, toolchain version and
   * the settings that change the bytes). Default none: no cache.
   */
  cacheDir?: string;
  /** Parent directory of the per-build scratch directories. Default os.tmpdir(). */
  scratchDir?: string;
}

export interface BuilderConfig {
  toolchains: { rustc: string; clang: string; wasiSysroot: string; bwrap: string };
  sandbox: SandboxMode;
  timeoutMs: number;
  compilerMemoryBytes: number;
  workerHeapBytes: number;
  maxArtifactBytes: number;
  maxSourceBytes: number;
  cacheDir: string | null;
  scratchDir: string | null;
}

export const builderDefaults = {
  toolchains: { rustc: "/usr/bin/rustc", clang: "clang-14", wasiSysroot: "/usr", bwrap: "bwrap" },
  sandbox: "auto",
  timeout: "2m",
  compilerMemory: "2GiB",
  workerHeap: "1GiB",
  maxArtifactSize: "8MiB",
  maxSourceSize: "64MiB",
} as const;

export function compileBuilderOptions(options: BuilderOptions = {}): BuilderConfig {
  const sandbox = options.sandbox ?? builderDefaults.sandbox;
  if (sandbox !== "auto" && sandbox !== "bwrap" && sandbox !== "none") {
    throw edgeError(
      "EDGE_ERR_CONFIG_INVALID",
      `builder.sandbox: expected "auto", "bwrap" or "none", got ${JSON.stringify(sandbox)}`,
    );
  }
  const positive = (value: number, option: string): number => {
    if (value <= 0) throw edgeError("EDGE_ERR_CONFIG_INVALID", `${option}: must be greater than 0`);
    return value;
  };
  return {
    toolchains: { ...builderDefaults.toolchains, ...options.toolchains },
    sandbox,
    timeoutMs: positive(
      parseDuration(options.timeout ?? builderDefaults.timeout, "builder.timeout"),
      "builder.timeout",
    ),
    compilerMemoryBytes: positive(
      parseSize(options.compilerMemory ?? builderDefaults.compilerMemory, "builder.compilerMemory"),
      "builder.compilerMemory",
    ),
    workerHeapBytes: positive(
      parseSize(options.workerHeap ?? builderDefaults.workerHeap, "builder.workerHeap"),
      "builder.workerHeap",
    ),
    maxArtifactBytes: positive(
      parseSize(options.maxArtifactSize ?? builderDefaults.maxArtifactSize, "builder.maxArtifactSize"),
      "builder.maxArtifactSize",
    ),
    maxSourceBytes: positive(
      parseSize(options.maxSourceSize ?? builderDefaults.maxSourceSize, "builder.maxSourceSize"),
      "builder.maxSourceSize",
    ),
    cacheDir: options.cacheDir ?? null,
    scratchDir: options.scratchDir ?? null,
  };
}
