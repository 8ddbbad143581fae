// The code that runs inside an executor thread (node:worker_threads): it holds compiled modules
// and hot instances of any number of function versions and runs one request at a time. The
// main thread (pool.ts) decides what runs where and kills the thread when a request passes its
// deadline — `worker.terminate()` stops a thread even while it spins inside wasm.
//
// Why the source is built from functions with toString(): the runner's TypeScript runs through
// tsx, whose loader does not follow into worker threads, and starting a thread that registers
// tsx itself costs ~100 ms instead of ~15 ms. Spares must be cheap to replace, so the thread gets
// plain JavaScript: `executorSource()` stringifies `executorMain` and the WASI shim it is given
// (tsx's transform is the type-checked source without its types). The price is the rule that
// these functions refer to nothing outside their own bodies; the executor tests catch a slip.
//
// Messages are plain objects (structured clone). A compiled WebAssembly.Module is posted once per
// version and thread; posting shares V8's compiled code, nothing is compiled twice.

import type { MemoryPlan } from "./module.ts";
import { createWasi, type WasiHost, type WasiOptions } from "./wasi.ts";

export type Lane = "edge-v1" | "wagi";

/** Everything an executor needs to run one function version. */
export interface VersionLoad {
  t: "load";
  /** The pool's number for this version, used in every later message about it. */
  vid: number;
  /** `name@version`, for messages. */
  label: string;
  module: WebAssembly.Module;
  lane: Lane;
  memory: MemoryPlan | null;
  responseMaxBytes: number;
  /** wagi: the manifest's env as `NAME=value`, and the granted capabilities. */
  env: string[];
  clock: boolean;
  random: boolean;
  /** wagi: the wasi_snapshot_preview1 functions the module imports. */
  wasiImports: string[];
}

/**
 * Runs a request: `[seq, vid, input, env]`. edge-v1: `input` is the encoded request and `env`
 * null; wagi: the body and the CGI variables. A tuple, because it is the message sent per
 * request and structured clone serialises an array of four faster than an object.
 */
export type RunMessage = [seq: number, vid: number, input: Uint8Array, env: string[] | null];

export type ToExecutor =
  | RunMessage
  | VersionLoad
  /** Instantiates without a request (edge-v1 keeps it hot), so a bad module fails at deploy. */
  | { t: "warm"; seq: number; vid: number }
  /** Drops the hot instance of a version (LRU eviction); the module stays loaded. */
  | { t: "drop"; vid: number }
  /** Forgets a version entirely. */
  | { t: "unload"; vid: number };

export interface RunResult {
  seq: number;
  ok: boolean;
  /** The CGI response bytes when ok. */
  output: Uint8Array | null;
  /** EDGE_ERR_RUNTIME_* when not ok, and a message for the log. */
  code: string;
  message: string;
  /** An instance was created for this job. */
  cold: boolean;
  /** edge-v1: a hot instance stays after this job; its linear memory in bytes. */
  hot: boolean;
  memoryBytes: number;
  /** Lines the guest logged (edge `log`, wagi stderr), capped. */
  logs: string[] | null;
  /** wagi: refused WASI calls by name. */
  denied: Record<string, number> | null;
  /** How long the job ran on the thread, in microseconds. */
  micros: number;
}

/**
 * The answer of nearly every request, compact for the same reason as RunMessage:
 * `[seq, output, memoryBytes, cold, micros]` means ok, no log lines, the instance stays hot.
 */
export type FastResult = [seq: number, output: Uint8Array, memoryBytes: number, cold: 0 | 1, micros: number];

export type FromExecutor = { t: "ready" } | ({ t: "done" } & RunResult) | FastResult;

/** The full form of a FastResult. */
export function expandResult(r: FastResult): RunResult {
  return {
    seq: r[0],
    ok: true,
    output: r[1],
    code: "",
    message: "",
    cold: r[3] === 1,
    hot: true,
    memoryBytes: r[2],
    logs: null,
    denied: null,
    micros: r[4],
  };
}

/**
 * The state an executor shares with the main thread, 16 bytes of a SharedArrayBuffer:
 * - Int32 at byte 0, `running`: clockSeq of the job running now, -1 between jobs;
 * - Int32 at byte 4, `claim`: clockSeq of the last job the thread claimed, or -L after the main
 *   thread took back every queued job up to L (see `steal` in pool.ts). Claims and steals are
 *   compare-and-swaps on this word, so a job is either run here or sent elsewhere, never both;
 * - Float64 at byte 8: when the running job started, in epoch milliseconds. Its deadline counts
 *   from there.
 */
export const CLOCK_BYTES = 16;

/** A job's seq as the shared Int32 words hold it: 1..0x7ffffffe, never 0 or negative. */
export function clockSeq(seq: number): number {
  return (seq % 0x7ffffffe) + 1;
}

/** Whether clockSeq `s` was sent no later than clockSeq `last` (modulo wrap-around). */
export function sentBy(s: number, last: number): boolean {
  return (last - s + 0x7ffffffe) % 0x7ffffffe < 0x3fffffff;
}

export interface ExecutorDeps {
  createWasi: (options: WasiOptions) => WasiHost;
  /** The thread's end of its channel to the pool (a dedicated one, so both sides can drain it). */
  port: import("node:worker_threads").MessagePort;
  /** See CLOCK_BYTES. */
  clock: SharedArrayBuffer;
  /** Caps of what one job may log. */
  logMaxLines: number;
  logMaxBytes: number;
  /** Collect garbage soon after a version is unloaded or an instance dropped. */
  collectFreed: boolean;
}

/** The body of an executor thread. Refers to nothing outside itself (see the header). */
export function executorMain(deps: ExecutorDeps): void {
  const { receiveMessageOnPort } = require("node:worker_threads") as typeof import("node:worker_threads");
  const port = deps.port;
  const { createWasi, logMaxLines, logMaxBytes } = deps;
  const running = new Int32Array(deps.clock, 0, 1);
  const claim = new Int32Array(deps.clock, 4, 1);
  const startedAt = new Float64Array(deps.clock, 8, 1);
  // The same as the exported clockSeq and sentBy (this function cannot refer to them).
  const clockSeq = (seq: number): number => (seq % 0x7ffffffe) + 1;
  const sentBy = (s: number, last: number): boolean => (last - s + 0x7ffffffe) % 0x7ffffffe < 0x3fffffff;
  const EMPTY = new Uint8Array(0);
  const decoder = new TextDecoder();

  interface Hot {
    handle: () => unknown;
    memory: WebAssembly.Memory;
    state: {
      request: Uint8Array;
      readAt: number;
      chunks: Uint8Array[];
      written: number;
      overflow: boolean;
      logs: string[] | null;
    };
  }
  interface Version {
    load: VersionLoad;
    hot: Hot | null;
  }
  const versions = new Map<number, Version>();

  // An unloaded version's module and instance, or an evicted instance, are garbage the moment
  // the message arrives, but V8 collects a thread's old generation lazily: measured, the
  // runner's RSS climbed by ~300 MiB of dead instances and code over a few thousand deploys
  // before levelling off (docs/RELIABILITY.md, "Memory"). So the thread collects soon after
  // something was freed: at most once a second, between requests. `gc` exists because the pool
  // turns on --expose-gc before it starts threads; without it this does nothing.
  const collect = deps.collectFreed ? (globalThis as { gc?: () => void }).gc : undefined;
  const COLLECT_EVERY_MS = 1000;
  let collectedAt = 0;
  let collecting: ReturnType<typeof setTimeout> | null = null;
  const freed = (): void => {
    if (collect === undefined || collecting !== null) return;
    collecting = setTimeout(
      () => {
        collecting = null;
        collectedAt = Date.now();
        collect();
      },
      Math.max(0, collectedAt + COLLECT_EVERY_MS - Date.now()),
    );
  };

  class GuestFault extends Error {}

  const supplyMemory = (v: VersionLoad): Record<string, WebAssembly.ModuleImports> => {
    const m = v.memory;
    if (m === null || !m.imported) return {};
    return { env: { memory: new WebAssembly.Memory({ initial: m.initial, maximum: m.maximum }) } };
  };

  const instantiateEdge = (v: VersionLoad): Hot => {
    const state: Hot["state"] = {
      request: EMPTY,
      readAt: 0,
      chunks: [],
      written: 0,
      overflow: false,
      logs: null,
    };
    let memory: WebAssembly.Memory | null = null;
    // Pointers come from the guest: a bad one is a trap in the guest, never a host exception.
    const guestBytes = (ptr: number, len: number): Uint8Array => {
      const start = ptr >>> 0;
      if (memory === null || len < 0 || start + len > memory.buffer.byteLength) {
        throw new GuestFault(`${v.label} passed an out-of-bounds pointer to a host function`);
      }
      return new Uint8Array(memory.buffer, start, len);
    };
    const edge = {
      request_len: (): number => state.request.byteLength,
      // Reads continue where the previous one stopped, like read(2).
      request_read: (ptr: number, len: number): number => {
        const n = Math.max(0, Math.min(len, state.request.byteLength - state.readAt));
        guestBytes(ptr, n).set(state.request.subarray(state.readAt, state.readAt + n));
        state.readAt += n;
        return n;
      },
      response_write: (ptr: number, len: number): number => {
        if (state.overflow) return -1;
        if (len < 0 || state.written + len > v.responseMaxBytes) {
          state.overflow = true;
          return -1;
        }
        state.chunks.push(guestBytes(ptr, len).slice());
        state.written += len;
        return len;
      },
      log: (ptr: number, len: number): void => {
        if (state.logs === null) state.logs = [];
        const logs = state.logs;
        if (logs.length >= logMaxLines) return;
        logs.push(decoder.decode(guestBytes(ptr, Math.min(Math.max(len, 0), logMaxBytes))));
      },
    };
    const imports: WebAssembly.Imports = { ...supplyMemory(v), edge };
    const instance = new WebAssembly.Instance(v.module, imports);
    memory =
      (instance.exports.memory as WebAssembly.Memory | undefined) ??
      (imports.env?.memory as WebAssembly.Memory);
    const init = instance.exports._initialize;
    if (typeof init === "function") init();
    return { handle: instance.exports.edge_handle as () => unknown, memory, state };
  };

  const concat = (chunks: Uint8Array[], total: number): Uint8Array => {
    if (chunks.length === 1) return chunks[0]!;
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  };

  const describe = (err: unknown): string => {
    if (err instanceof GuestFault) return err.message;
    const e = err as Error;
    return `${e?.name ?? "Error"}: ${e?.message ?? String(err)}`;
  };

  const result = (seq: number, partial: Partial<RunResult>): RunResult => ({
    seq,
    ok: false,
    output: null,
    code: "",
    message: "",
    cold: false,
    hot: false,
    memoryBytes: 0,
    logs: null,
    denied: null,
    micros: 0,
    ...partial,
  });

  const runEdge = (seq: number, v: Version, input: Uint8Array | null): RunResult => {
    let cold = false;
    let hot = v.hot;
    if (hot === null) {
      try {
        hot = instantiateEdge(v.load);
      } catch (err) {
        return result(seq, {
          code: "EDGE_ERR_RUNTIME_INSTANTIATE",
          message: `${v.load.label}: instantiation failed: ${describe(err)}`,
        });
      }
      cold = true;
      v.hot = hot;
    }
    if (input === null)
      return result(seq, { ok: true, cold, hot: true, memoryBytes: hot.memory.buffer.byteLength });

    const state = hot.state;
    state.request = input;
    state.readAt = 0;
    state.chunks = [];
    state.written = 0;
    state.overflow = false;
    state.logs = null;
    let rc: unknown;
    try {
      rc = hot.handle();
    } catch (err) {
      // After a trap the instance's memory may be mid-update: never hand it another request.
      v.hot = null;
      return result(seq, {
        code: "EDGE_ERR_RUNTIME_TRAP",
        message: `${v.load.label} trapped: ${describe(err)}`,
        cold,
        logs: state.logs,
      });
    }
    const { chunks, written, overflow, logs } = state;
    state.request = EMPTY;
    state.chunks = [];
    const base = { cold, hot: true, memoryBytes: hot.memory.buffer.byteLength, logs };
    if (rc !== 0)
      return result(seq, {
        ...base,
        code: "EDGE_ERR_RUNTIME_TRAP",
        message: `${v.load.label} edge_handle returned ${String(rc)}`,
      });
    if (overflow)
      return result(seq, {
        ...base,
        code: "EDGE_ERR_RUNTIME_BAD_RESPONSE",
        message: `${v.load.label} wrote more than ${v.load.responseMaxBytes} bytes`,
      });
    // The hot path: one literal, no spreading.
    return {
      seq,
      ok: true,
      output: concat(chunks, written),
      code: "",
      message: "",
      cold,
      hot: true,
      memoryBytes: base.memoryBytes,
      logs,
      denied: null,
      micros: 0,
    };
  };

  const runWagi = (seq: number, v: Version, input: Uint8Array | null, env: string[] | null): RunResult => {
    const load = v.load;
    const wasi = createWasi({
      args: [load.label.split("@")[0]!],
      // The manifest's env first, so the request's CGI variables win on a clash.
      env: [...load.env, ...(env ?? [])],
      stdin: input ?? EMPTY,
      stdoutMaxBytes: load.responseMaxBytes,
      stderrMaxBytes: logMaxBytes,
      clock: load.clock,
      random: load.random,
      imports: load.wasiImports,
    });
    let instance: WebAssembly.Instance;
    try {
      const imports: WebAssembly.Imports = { ...supplyMemory(load), wasi_snapshot_preview1: wasi.imports };
      instance = new WebAssembly.Instance(load.module, imports);
      wasi.setMemory(
        (instance.exports.memory as WebAssembly.Memory | undefined) ??
          (imports.env?.memory as WebAssembly.Memory),
      );
    } catch (err) {
      if (wasi.isExit(err))
        return result(seq, {
          code: "EDGE_ERR_RUNTIME_TRAP",
          message: `${load.label} exited while starting`,
          cold: true,
        });
      return result(seq, {
        code: "EDGE_ERR_RUNTIME_INSTANTIATE",
        message: `${load.label}: instantiation failed: ${describe(err)}`,
        cold: true,
      });
    }
    if (input === null) return result(seq, { ok: true, cold: true });

    let failure: string | null = null;
    try {
      (instance.exports._start as () => void)();
    } catch (err) {
      if (!wasi.isExit(err)) failure = `${load.label} trapped: ${describe(err)}`;
    }
    const stderr = wasi.stderr();
    const logs =
      stderr.length > 0
        ? decoder
            .decode(stderr)
            .split("\n")
            .filter((l) => l !== "")
            .slice(0, logMaxLines)
        : null;
    const denied = Object.keys(wasi.denied).length > 0 ? wasi.denied : null;
    const base = { cold: true, logs, denied };
    if (failure !== null) return result(seq, { ...base, code: "EDGE_ERR_RUNTIME_TRAP", message: failure });
    if (wasi.exitCode !== null && wasi.exitCode !== 0)
      return result(seq, {
        ...base,
        code: "EDGE_ERR_RUNTIME_TRAP",
        message: `${load.label} exited with code ${wasi.exitCode}`,
      });
    if (wasi.stdoutOverflow)
      return result(seq, {
        ...base,
        code: "EDGE_ERR_RUNTIME_BAD_RESPONSE",
        message: `${load.label} wrote more than ${load.responseMaxBytes} bytes`,
      });
    return result(seq, { ...base, ok: true, output: wasi.stdout() });
  };

  const post = (r: RunResult): void => {
    const out = r.output;
    if (r.ok && r.hot && r.logs === null && out !== null) {
      port.postMessage([r.seq, out, r.memoryBytes, r.cold ? 1 : 0, r.micros] satisfies FastResult);
      return;
    }
    // Large bodies move instead of being copied; they own their buffer (made by slice or concat).
    const transfer =
      out !== null &&
      out.byteLength >= 65536 &&
      out.byteOffset === 0 &&
      out.buffer.byteLength === out.byteLength;
    port.postMessage({ t: "done", ...r } satisfies FromExecutor, transfer ? [out.buffer as ArrayBuffer] : []);
  };

  const run = (seq: number, vid: number, input: Uint8Array | null, env: string[] | null): void => {
    // Claim the job, unless the main thread took it back while an earlier one ran too long: then
    // it runs elsewhere and this thread stays silent about it.
    const mine = clockSeq(seq);
    const seen = Atomics.load(claim, 0);
    if (seen < 0 && sentBy(mine, -seen)) return;
    if (Atomics.compareExchange(claim, 0, seen, mine) !== seen) return;
    const v = versions.get(vid);
    if (v === undefined) {
      post(result(seq, { code: "EDGE_ERR_INTERNAL", message: `executor has no version ${vid}` }));
      return;
    }
    // The deadline counts from here. The start is written before `running` (Atomics.store
    // orders them), so a reader that sees this job there sees its start.
    const started = performance.now();
    startedAt[0] = performance.timeOrigin + started;
    Atomics.store(running, 0, mine);
    const r = v.load.lane === "edge-v1" ? runEdge(seq, v, input) : runWagi(seq, v, input, env);
    Atomics.store(running, 0, -1);
    r.micros = Math.round((performance.now() - started) * 1000);
    post(r);
  };

  const handle = (msg: ToExecutor): void => {
    if (Array.isArray(msg)) {
      run(msg[0], msg[1], msg[2], msg[3]);
      return;
    }
    switch (msg.t) {
      case "load":
        versions.set(msg.vid, { load: msg, hot: null });
        return;
      case "warm":
        run(msg.seq, msg.vid, null, null);
        return;
      case "drop": {
        const v = versions.get(msg.vid);
        if (v) v.hot = null;
        freed();
        return;
      }
      case "unload":
        versions.delete(msg.vid);
        freed();
        return;
    }
  };

  // One event per wake-up, then whatever else is already queued is taken synchronously: a
  // message event costs more than the hello function it carries.
  port.on("message", (first: ToExecutor) => {
    handle(first);
    for (let next = receiveMessageOnPort(port); next !== undefined; next = receiveMessageOnPort(port)) {
      handle(next.message as ToExecutor);
    }
  });
  port.postMessage({ t: "ready" } satisfies FromExecutor);
}

/** The JavaScript an executor thread is started with. */
export function executorSource(): string {
  // tsx keeps function names with an `__name` helper that lives outside the function; the
  // thread gets a no-op stand-in.
  return `"use strict";
const __name = (f) => f;
const { workerData } = require("node:worker_threads");
(${executorMain.toString()})({
  createWasi: ${createWasi.toString()},
  port: workerData.port,
  clock: workerData.clock,
  logMaxLines: workerData.logMaxLines,
  logMaxBytes: workerData.logMaxBytes,
  collectFreed: workerData.collectFreed,
});
`;
}
