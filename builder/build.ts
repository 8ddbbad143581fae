// Building one function: source directory → validated, limited wasm bytes + sha256.
//
// 1. Find the language's toolchain (EDGE_ERR_BUILD_TOOLCHAIN_MISSING when it is not there).
// 2. Copy the function's directory into a fresh scratch directory outside the checkout.
// 3. Hash that copy; with a cache, an entry for (source hash, toolchain, settings) is the result.
// 4. Otherwise fork a build worker (worker.ts) with a heap limit, in its own process group, and
//    kill the group when the time limit passes. The worker compiles (rustc and clang under
//    ulimit -v and bubblewrap), rewrites the memory maximum to memoryPages, validates, and
//    optimises for wasm-aot.
// 5. Validate the bytes again here — the worker is not trusted — with the artifact size limit,
//    hash them, store them in the cache, and remove the scratch directory.

import { type ChildProcess, fork } from "node:child_process";
import { realpath } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { catalogue, type EdgeError, type ErrorCode, edgeError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/hash.ts";
import type { Abi, Language, Runtime } from "../schema/index.ts";
import { BuildCache, cacheKey } from "./cache.ts";
import type { CompileJob, OptimizeRecord, WorkerReply } from "./job.ts";
import { type BuilderConfig, type BuilderOptions, compileBuilderOptions } from "./options.ts";
import { copySource, createScratch, type Scratch } from "./sandbox.ts";
import { hashSourceTree } from "./source-hash.ts";
import { binaryenVersion, bundledToolchain, resolveSandbox, resolveToolchain } from "./toolchains.ts";
import { type ModuleFacts, validateModule } from "./validate.ts";

export interface BuildInput {
  /** Absolute path of the checked-out repository. */
  repoDir: string;
  /** Function source directory relative to repoDir ("" for the root). */
  sourceDir: string;
  language: Language;
  /** Entry file inside sourceDir; defaults per language (see defaultEntry). */
  entry?: string;
  abi: Abi;
  memoryPages: number;
  /** spec.runtime; "wasm-aot" optimises with binaryen. Default "wasm". */
  runtime?: Runtime;
  /** Toolchains, sandbox, limits and cache (builder/options.ts); defaults apply when absent. */
  options?: BuilderOptions;
}

export interface BuildOutput {
  bytes: Uint8Array<ArrayBuffer>;
  sha256: string;
  facts: ModuleFacts;
  /** Which toolchain built it, e.g. "rustc 1.63.0 (wasm32-wasi)"; part of the build cache key. */
  toolchain: string;
  durationMs: number;
  /** True when the bytes came from the build cache and nothing was compiled. */
  cacheHit: boolean;
  /** The cache key (null without a cache). */
  cacheKey: string | null;
  /** sha256 over the source files the compiler saw (the copy, symlinks resolved). */
  sourceHash: string;
  /** For runtime wasm-aot: what the optimiser did; null otherwise. */
  optimized: OptimizeRecord | null;
  /** How native compilers were confined ("bwrap" or "none"); null for languages built in the worker alone. */
  sandbox: "bwrap" | "none" | null;
}

/** The entry file a language uses when source.entry is not given ("" = decided by the files present). */
export function defaultEntry(language: Language): string {
  switch (language) {
    case "assemblyscript":
      return "index.ts";
    case "wat":
      return "module.wat";
    case "wasm":
      return "module.wasm";
    case "rust":
      return "Cargo.toml or lib.rs (edge-v1) / main.rs (wagi)";
    case "c":
      return "every .c file";
  }
}

/** The toolchain of a language that needs no look-up; "rust"/"c" are found at build time. */
export function toolchainVersion(language: Language): string {
  return bundledToolchain(language)?.display ?? language;
}

/** The worker's entry: plain JavaScript that preloads the toolchain and then loads worker.ts through tsx. */
const WORKER = fileURLToPath(new URL("./worker-boot.mjs", import.meta.url));

export async function buildFunction(input: BuildInput): Promise<BuildOutput> {
  const started = performance.now();
  const config = compileBuilderOptions(input.options);
  const runtime = input.runtime ?? "wasm";
  const toolchain = await resolveToolchain(input.language, config);
  const sandbox = toolchain.command ? await resolveSandbox(config) : null;
  const repoRoot = await realpath(input.repoDir);
  const scratch = await createScratch(config.scratchDir, repoRoot);
  try {
    await copySource(repoRoot, input.sourceDir, scratch.src, config.maxSourceBytes);
    const sourceHash = await hashSourceTree(scratch.src);
    const cache = config.cacheDir ? new BuildCache(config.cacheDir) : null;
    const key = cache
      ? cacheKey({
          sourceHash,
          toolchain: toolchain.fingerprint,
          language: input.language,
          entry: input.entry ?? null,
          abi: input.abi,
          memoryPages: input.memoryPages,
          runtime,
          optimizer: runtime === "wasm-aot" ? `binaryen ${binaryenVersion}` : null,
        })
      : null;
    const done = (bytes: Uint8Array<ArrayBuffer>, optimized: OptimizeRecord | null, cacheHit: boolean) => ({
      bytes,
      sha256: sha256Hex(bytes),
      facts: validateModule(bytes, input.abi, input.memoryPages, { maxBytes: config.maxArtifactBytes }),
      toolchain: toolchain.display,
      durationMs: performance.now() - started,
      cacheHit,
      cacheKey: key,
      sourceHash,
      optimized,
      sandbox,
    });

    if (cache && key) {
      const hit = await cache.get(key);
      if (hit) return done(hit.bytes, hit.optimized, true);
    }
    const job: CompileJob = {
      language: input.language,
      scratch: { root: scratch.root, src: scratch.src, out: scratch.out, tmp: scratch.tmp },
      sourceDir: input.sourceDir,
      entry: input.entry ?? null,
      abi: input.abi,
      memoryPages: input.memoryPages,
      runtime,
      native:
        toolchain.command && sandbox
          ? {
              command: toolchain.command,
              sandbox,
              bwrap: config.toolchains.bwrap,
              memoryBytes: config.compilerMemoryBytes,
              timeoutMs: config.timeoutMs,
              wasiSysroot: config.toolchains.wasiSysroot,
              libDir: toolchain.libDir ?? null,
            }
          : null,
    };
    const reply = await runWorker(job, scratch, config, started);
    const out = done(new Uint8Array(reply.bytes), reply.optimized, false);
    if (cache && key) await cache.put(key, out.bytes, out.sha256, toolchain.display, out.optimized);
    return out;
  } finally {
    await scratch.remove();
  }
}

const STDERR_CAP = 64 * 1024;

/** Forks the worker, sends it the job and waits for its reply, its exit or the time limit. */
function runWorker(
  job: CompileJob,
  scratch: Scratch,
  config: BuilderConfig,
  started: number,
): Promise<Extract<WorkerReply, { ok: true }>> {
  const what = `${job.sourceDir || "."} (${job.language})`;
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = fork(WORKER, [job.language, job.runtime === "wasm-aot" ? "aot" : "jit"], {
        cwd: scratch.root,
        execArgv: [`--max-old-space-size=${Math.max(1, Math.floor(config.workerHeapBytes / 1024 / 1024))}`],
        // A minimal environment: the worker and compilers never see the control plane's secrets.
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: scratch.tmp,
          LANG: "C.UTF-8",
          ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
        },
        stdio: ["ignore", "ignore", "pipe", "ipc"],
        serialization: "advanced",
        detached: true, // its own process group, so the time limit kills compilers too
      });
    } catch (err) {
      reject(edgeError("EDGE_ERR_INTERNAL", `cannot start the build worker: ${(err as Error).message}`));
      return;
    }
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => {
      if (stderr.length < STDERR_CAP) stderr += c.toString("utf8");
    });
    let settled = false;
    const killGroup = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    };
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killGroup();
      fn();
    };
    const remaining = Math.max(1, config.timeoutMs - (performance.now() - started));
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            edgeError(
              "EDGE_ERR_BUILD_TIMEOUT",
              `the build of ${what} ran past the time limit of ${formatMs(config.timeoutMs)} and was killed`,
            ),
          ),
        ),
      remaining,
    );
    child.on("message", (reply: WorkerReply | "ready") => {
      if (reply === "ready") {
        child.send(job);
        return;
      }
      finish(() => {
        if (reply.ok) resolve(reply);
        else reject(fromWorker(reply.error));
      });
    });
    child.on("error", (err) =>
      finish(() => reject(edgeError("EDGE_ERR_INTERNAL", `build worker: ${err.message}`))),
    );
    // "close", not "exit": it comes after the IPC channel and stderr are drained.
    child.on("close", (code, signal) =>
      finish(() => {
        if (/heap out of memory|Allocation failed|invalid size error|Cannot allocate/i.test(stderr)) {
          reject(
            edgeError(
              "EDGE_ERR_BUILD_OUT_OF_MEMORY",
              `the build of ${what} ran out of the worker heap limit of ${Math.round(config.workerHeapBytes / 1024 / 1024)} MiB and was stopped`,
            ),
          );
          return;
        }
        const last = stderr.trim().split("\n").slice(-3).join(" ").slice(0, 500);
        reject(
          edgeError(
            "EDGE_ERR_INTERNAL",
            `the build worker for ${what} exited (${signal ?? `code ${code}`}) without a result${last ? `: ${last}` : ""}`,
          ),
        );
      }),
    );
  });
}

function fromWorker(error: { code: string; message: string; details?: EdgeError["details"] }): EdgeError {
  const code = (error.code in catalogue ? error.code : "EDGE_ERR_INTERNAL") as ErrorCode;
  return edgeError(code, error.message, error.details);
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
