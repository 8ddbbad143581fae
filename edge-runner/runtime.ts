// The engine that runs function modules, behind an interface so that the lane executing them
// can change (worker threads for hard timeouts are a later issue) without the server noticing.
//
// Today's engine is V8's WebAssembly (DESIGN.md "Dependencies": what workerd and Deno run too).
// Per function version the module is compiled once, at load. `edge-v1` keeps a pool of hot
// instances and reuses them across requests (seed Property 4, hot instance reuse); each version
// has its own pool, so two versions of one function serve side by side (seed Property 12).
//
// Limits of this first cut, stated rather than faked:
// - Guests run on the main thread, so `max_execution_ms` is NOT enforced yet: a guest that
//   loops forever blocks the runner. Hard deadlines need worker threads (a later issue).
// - Calls are synchronous on one thread, so a pool rarely needs more than one instance (only
//   requests arriving while a replacement is being instantiated make a second).
// - The `wagi` lane is rejected at load with EDGE_ERR_RUNTIME_INSTANTIATE (a later issue).
// - `memory_pages` is not enforced here yet (no rewrite of the module's memory maximum); today
//   only the builder caps it (AssemblyScript's --maximumMemory, initial-size check for others).

import { type EdgeError, edgeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { FunctionSpec } from "../proto/index.ts";
import { encodeRequest, type GuestRequest, type GuestResponse, parseResponse } from "./abi.ts";
import { functionLimitDefaults } from "./config.ts";

export interface FunctionStats {
  /** Instances instantiated for this version since it was loaded (cold starts, including the warm-up). */
  instancesCreated: number;
  /** Instances thrown away after a trap. */
  instancesDiscarded: number;
  /** Hot instances waiting for the next request. */
  idleInstances: number;
  invocations: number;
}

/** One function version, compiled and ready to serve. */
export interface LoadedFunction {
  readonly spec: FunctionSpec;
  /** Runs the function; rejects with an EdgeError (EDGE_ERR_RUNTIME_*) when it fails. */
  invoke(request: GuestRequest): Promise<GuestResponse>;
  stats(): FunctionStats;
  /** Drops the hot instances; requests already running finish normally. */
  close(): void;
}

export interface Engine {
  /**
   * Compiles and validates a module and warms one instance, so a module that cannot serve is
   * refused at deploy time rather than on its first request. Throws EDGE_ERR_RUNTIME_INSTANTIATE.
   */
  load(spec: FunctionSpec, bytes: Uint8Array): Promise<LoadedFunction>;
}

export interface EngineOptions {
  /** Largest response a guest may write; beyond it `response_write` returns -1. */
  responseMaxBytes: number;
  logger: Logger;
}

/** The host functions of edge-v1 (DESIGN.md "Function ABI"); a module may import nothing else. */
const EDGE_IMPORTS = new Set(["request_len", "request_read", "response_write", "log"]);
const LOG_MAX_BYTES = 4096;

function instantiateError(spec: FunctionSpec, message: string, cause?: unknown): EdgeError {
  return edgeError(
    "EDGE_ERR_RUNTIME_INSTANTIATE",
    `${spec.name || spec.function_id}@${spec.version}: ${message}`,
    undefined,
    cause,
  );
}

/** Which lane a module is for: the spec says so; an empty `abi` is inferred from the exports. */
function laneOf(spec: FunctionSpec, module: WebAssembly.Module): string {
  if (spec.abi) return spec.abi;
  const exports = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  return exports.has("edge_handle") ? "edge-v1" : exports.has("_start") ? "wagi" : "unknown";
}

function checkEdgeV1Shape(spec: FunctionSpec, module: WebAssembly.Module): void {
  for (const imp of WebAssembly.Module.imports(module)) {
    // Deny by default: any other import would be a capability the sandbox did not grant.
    if (imp.module !== "edge" || imp.kind !== "function" || !EDGE_IMPORTS.has(imp.name)) {
      throw instantiateError(
        spec,
        `module imports ${imp.module}.${imp.name} (${imp.kind}), which edge-v1 does not provide`,
      );
    }
  }
  const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  if (exports.get("memory") !== "memory")
    throw instantiateError(spec, "module does not export its memory as `memory`");
  if (exports.get("edge_handle") !== "function")
    throw instantiateError(spec, "module does not export `edge_handle`");
}

/** The V8 WebAssembly engine. */
export function createV8Engine(options: EngineOptions): Engine {
  return {
    async load(spec, bytes) {
      let module: WebAssembly.Module;
      try {
        // Buffers from fs and fetch are never shared memory, whatever their static type says.
        module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
      } catch (err) {
        throw instantiateError(spec, `not a valid WebAssembly module: ${(err as Error).message}`, err);
      }
      const lane = laneOf(spec, module);
      if (lane === "wagi") throw instantiateError(spec, "wagi lane not supported yet");
      if (lane !== "edge-v1") throw instantiateError(spec, `unknown abi ${JSON.stringify(lane)}`);
      checkEdgeV1Shape(spec, module);
      const fn = new EdgeV1Function(spec, module, options);
      await fn.warm();
      return fn;
    },
  };
}

/** Per-instance state the host functions read and write during one `edge_handle` call. */
interface CallState {
  memory: WebAssembly.Memory | null;
  request: Uint8Array;
  readOffset: number;
  chunks: Uint8Array[];
  written: number;
  overflow: boolean;
}

interface HotInstance {
  handle: () => unknown;
  state: CallState;
}

const NO_BYTES = new Uint8Array(0);

class EdgeV1Function implements LoadedFunction {
  readonly spec: FunctionSpec;
  readonly #module: WebAssembly.Module;
  readonly #responseMaxBytes: number;
  readonly #guestLog: Logger;
  readonly #maxIdle: number;
  #idle: HotInstance[] = [];
  #closed = false;
  #created = 0;
  #discarded = 0;
  #invocations = 0;

  constructor(spec: FunctionSpec, module: WebAssembly.Module, options: EngineOptions) {
    this.spec = spec;
    this.#module = module;
    this.#responseMaxBytes = options.responseMaxBytes;
    this.#guestLog = options.logger.child({
      function: spec.name,
      function_id: spec.function_id,
      version: spec.version,
    });
    this.#maxIdle = spec.max_instances || functionLimitDefaults.maxInstances;
  }

  async warm(): Promise<void> {
    this.#idle.push(await this.#instantiate());
  }

  stats(): FunctionStats {
    return {
      instancesCreated: this.#created,
      instancesDiscarded: this.#discarded,
      idleInstances: this.#idle.length,
      invocations: this.#invocations,
    };
  }

  close(): void {
    this.#closed = true;
    this.#idle = [];
  }

  async invoke(request: GuestRequest): Promise<GuestResponse> {
    this.#invocations++;
    const hot = this.#idle.pop() ?? (await this.#instantiate());
    const state = hot.state;
    state.request = encodeRequest(request);
    state.readOffset = 0;
    state.chunks = [];
    state.written = 0;
    state.overflow = false;

    let rc: unknown;
    try {
      rc = hot.handle();
    } catch (err) {
      // After a trap the instance's memory may be mid-update; never hand it another request.
      this.#discarded++;
      throw edgeError(
        "EDGE_ERR_RUNTIME_TRAP",
        `${this.#label()} trapped: ${(err as Error)?.message ?? err}`,
        undefined,
        err,
      );
    }
    const { chunks, written, overflow } = state;
    state.request = NO_BYTES;
    state.chunks = [];
    if (!this.#closed && this.#idle.length < this.#maxIdle) this.#idle.push(hot);

    if (rc !== 0)
      throw edgeError("EDGE_ERR_RUNTIME_TRAP", `${this.#label()} edge_handle returned ${String(rc)}`);
    if (overflow) {
      throw edgeError(
        "EDGE_ERR_RUNTIME_BAD_RESPONSE",
        `${this.#label()} wrote more than ${this.#responseMaxBytes} bytes`,
      );
    }
    return parseResponse(Buffer.concat(chunks, written));
  }

  #label(): string {
    return `${this.spec.name || this.spec.function_id}@${this.spec.version}`;
  }

  async #instantiate(): Promise<HotInstance> {
    const state: CallState = {
      memory: null,
      request: NO_BYTES,
      readOffset: 0,
      chunks: [],
      written: 0,
      overflow: false,
    };
    const label = this.#label();
    const responseMax = this.#responseMaxBytes;
    const guestLog = this.#guestLog;

    // Pointers come from the guest: check them against the current memory size (it can grow
    // between calls) so a bad pointer is a trap in the guest, never a host exception elsewhere.
    const guestBytes = (ptr: number, len: number): Uint8Array => {
      const memory = state.memory;
      const start = ptr >>> 0;
      if (memory === null || len < 0 || start + len > memory.buffer.byteLength) {
        throw edgeError(
          "EDGE_ERR_RUNTIME_TRAP",
          `${label} passed an out-of-bounds pointer to a host function`,
        );
      }
      return new Uint8Array(memory.buffer, start, len);
    };

    const edge = {
      request_len: (): number => state.request.byteLength,
      // Reads continue where the previous read stopped, like read(2), so a guest may read in pieces.
      request_read: (ptr: number, len: number): number => {
        const n = Math.max(0, Math.min(len, state.request.byteLength - state.readOffset));
        guestBytes(ptr, n).set(state.request.subarray(state.readOffset, state.readOffset + n));
        state.readOffset += n;
        return n;
      },
      response_write: (ptr: number, len: number): number => {
        if (state.overflow) return -1;
        if (len < 0 || state.written + len > responseMax) {
          state.overflow = true;
          return -1;
        }
        state.chunks.push(guestBytes(ptr, len).slice());
        state.written += len;
        return len;
      },
      log: (ptr: number, len: number): void => {
        const bytes = guestBytes(ptr, Math.min(Math.max(len, 0), LOG_MAX_BYTES));
        guestLog.info(Buffer.from(bytes).toString("utf8"));
      },
    };

    let instance: WebAssembly.Instance;
    try {
      instance = await WebAssembly.instantiate(this.#module, { edge });
      state.memory = instance.exports.memory as WebAssembly.Memory;
      const init = instance.exports._initialize;
      if (typeof init === "function") init();
    } catch (err) {
      throw instantiateError(this.spec, `instantiation failed: ${(err as Error)?.message ?? err}`, err);
    }
    this.#created++;
    return { handle: instance.exports.edge_handle as () => unknown, state };
  }
}
