// The engine that runs function modules, behind an interface so the server does not know how.
//
// V8's WebAssembly (DESIGN.md "Dependencies": what workerd and Deno run too) in executor
// threads (pool.ts, executor.ts). Per function version the module's limits are applied to its
// bytes (module.ts), it is compiled once on the main thread and posted to the threads that run
// it. Both ABI lanes of DESIGN.md "Function ABI":
// - `edge-v1` reuses hot instances across requests (seed Property 4); each version has its own
//   instances, so two versions serve side by side (seed Property 12);
// - `wagi` gets a fresh instance per request, with the deny-by-default WASI of wasi.ts.
// Loading warms one instance (edge-v1) or instantiates once (wagi), so a module that cannot serve
// is refused at deploy time rather than on its first request.

import { catalogue, type EdgeError, type ErrorCode, edgeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { FunctionSpec } from "../proto/index.ts";
import {
  cgiEnvironment,
  encodeRequest,
  type GuestRequest,
  type GuestResponse,
  parseResponse,
} from "./abi.ts";
import { functionLimitDefaults } from "./config.ts";
import type { Lane } from "./executor.ts";
import { limitModule } from "./module.ts";
import type { ExecutorPool, PooledVersion, PooledVersionStats } from "./pool.ts";

export type FunctionStats = PooledVersionStats;

/** Who is asking, for the log lines a guest writes. */
export interface InvokeContext {
  requestId: string;
  traceId?: string;
}

/** One function version, compiled and ready to serve. */
export interface LoadedFunction {
  readonly spec: FunctionSpec;
  readonly lane: Lane;
  /** Runs the function; rejects with an EdgeError (EDGE_ERR_RUNTIME_*) when it fails. */
  invoke(request: GuestRequest, context?: InvokeContext): Promise<GuestResponse>;
  stats(): FunctionStats;
  /** Stops taking requests; the ones accepted finish, then the hot instances go. */
  close(): void;
}

export interface Engine {
  /**
   * Applies the limits, compiles, validates and warms one instance. Throws
   * EDGE_ERR_RUNTIME_INSTANTIATE naming the problem.
   */
  load(spec: FunctionSpec, bytes: Uint8Array): Promise<LoadedFunction>;
}

export interface EngineOptions {
  pool: ExecutorPool;
  /** Largest response a guest may write; beyond it `response_write` returns -1 (stdout: EFBIG). */
  responseMaxBytes: number;
  logger: Logger;
}

/** The host functions of edge-v1 (DESIGN.md "Function ABI"). */
const EDGE_IMPORTS = new Set(["request_len", "request_read", "response_write", "log"]);
const WASI = "wasi_snapshot_preview1";
/** Instantiation at load (start function, `_initialize`) gets at least this long. */
const WARM_MIN_MS = 1000;

function instantiateError(spec: FunctionSpec, message: string, cause?: unknown): EdgeError {
  return edgeError("EDGE_ERR_RUNTIME_INSTANTIATE", `${label(spec)}: ${message}`, undefined, cause);
}

function label(spec: FunctionSpec): string {
  return `${spec.name || spec.function_id}@${spec.version}`;
}

/** Which lane a module is for: the spec says so; an empty `abi` is inferred from the exports. */
function laneOf(spec: FunctionSpec, module: WebAssembly.Module): string {
  if (spec.abi) return spec.abi;
  const exports = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  return exports.has("edge_handle") ? "edge-v1" : exports.has("_start") ? "wagi" : "unknown";
}

/**
 * Deny by default: a module may import only its lane's host functions (and `env.memory`, which
 * module.ts capped); any other import would be a capability the sandbox did not grant.
 * Returns the WASI functions a wagi module imports.
 */
function checkShape(spec: FunctionSpec, module: WebAssembly.Module, lane: Lane): string[] {
  const wasi: string[] = [];
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind === "memory" && imp.module === "env" && imp.name === "memory") continue;
    if (lane === "edge-v1" && imp.module === "edge" && imp.kind === "function" && EDGE_IMPORTS.has(imp.name))
      continue;
    if (lane === "wagi" && imp.module === WASI && imp.kind === "function") {
      wasi.push(imp.name);
      continue;
    }
    throw instantiateError(
      spec,
      `module imports ${imp.module}.${imp.name} (${imp.kind}), which ${lane} does not provide`,
    );
  }
  const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  const importsMemory = WebAssembly.Module.imports(module).some((i) => i.kind === "memory");
  if (exports.get("memory") !== "memory" && !importsMemory)
    throw instantiateError(spec, "module does not export its memory as `memory`");
  if (lane === "edge-v1" && exports.get("edge_handle") !== "function")
    throw instantiateError(spec, "module does not export `edge_handle`");
  if (lane === "wagi" && exports.get("_start") !== "function")
    throw instantiateError(spec, "module does not export `_start` (a WASI command)");
  return wasi;
}

/** The V8 WebAssembly engine on executor threads. */
export function createEngine(options: EngineOptions): Engine {
  return {
    async load(spec, bytes) {
      const memoryPages = spec.memory_pages || functionLimitDefaults.memoryPages;
      const limited = limitModule(bytes, memoryPages);
      let module: WebAssembly.Module;
      try {
        // Buffers from fs and fetch are never shared memory, whatever their static type says.
        module = await WebAssembly.compile(limited.bytes as Uint8Array<ArrayBuffer>);
      } catch (err) {
        throw instantiateError(spec, `not a valid WebAssembly module: ${(err as Error).message}`, err);
      }
      const lane = laneOf(spec, module);
      if (lane !== "edge-v1" && lane !== "wagi")
        throw instantiateError(spec, `unknown abi ${JSON.stringify(lane)}`);
      const wasiImports = checkShape(spec, module, lane);

      const maxInstances = spec.max_instances || functionLimitDefaults.maxInstances;
      const maxExecutionMs = spec.max_execution_ms || functionLimitDefaults.maxExecutionMs;
      const version = options.pool.register({
        label: label(spec),
        module,
        lane,
        memory: limited.memory,
        responseMaxBytes: options.responseMaxBytes,
        env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
        clock: spec.capabilities?.clock === true,
        random: spec.capabilities?.random === true,
        wasiImports,
        maxExecutionMs,
        maxInstances,
      });
      let warm: Awaited<ReturnType<PooledVersion["warm"]>>;
      try {
        warm = await version.warm(Math.max(maxExecutionMs, WARM_MIN_MS));
      } catch (err) {
        version.close();
        throw instantiateError(spec, (err as Error).message, err);
      }
      if (!warm.ok) {
        version.close();
        throw instantiateError(spec, warm.message);
      }
      return new PooledFunction(spec, lane, version, options.logger);
    },
  };
}

class PooledFunction implements LoadedFunction {
  readonly spec: FunctionSpec;
  readonly lane: Lane;
  readonly #version: PooledVersion;
  readonly #guestLog: Logger;

  constructor(spec: FunctionSpec, lane: Lane, version: PooledVersion, logger: Logger) {
    this.spec = spec;
    this.lane = lane;
    this.#version = version;
    this.#guestLog = logger.child({
      function: spec.name,
      function_id: spec.function_id,
      version: spec.version,
    });
  }

  async invoke(request: GuestRequest, context?: InvokeContext): Promise<GuestResponse> {
    const result =
      this.lane === "edge-v1"
        ? await this.#version.run(encodeRequest(request), null)
        : await this.#version.run(request.body, cgiEnvironment(request));
    if (result.logs !== null || result.denied !== null) this.#log(result.logs, result.denied, context);
    if (!result.ok) {
      const code = (result.code in catalogue ? result.code : "EDGE_ERR_INTERNAL") as ErrorCode;
      throw edgeError(code, result.message);
    }
    return parseResponse(result.output!);
  }

  #log(
    lines: string[] | null,
    denied: Record<string, number> | null,
    context: InvokeContext | undefined,
  ): void {
    const ids = context ? { request_id: context.requestId, trace_id: context.traceId } : {};
    for (const line of lines ?? []) this.#guestLog.info(ids, line);
    // Property 8: a refused capability is visible to the operator, not only to the guest.
    if (denied !== null) this.#guestLog.warn({ ...ids, denied }, "guest made WASI calls the sandbox refuses");
  }

  stats(): FunctionStats {
    return this.#version.stats();
  }

  close(): void {
    this.#version.close();
  }
}
