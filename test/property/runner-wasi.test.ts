// Seed Property 8 for the runner's WASI shim: any call outside what the sandbox grants — files,
// sockets, clocks or randomness not granted, anything unknown — is refused with a WASI error,
// touches nothing (not even the guest's memory), and is recorded; and the same holds through a
// real executor thread.

import test from "ava";
import fc from "fast-check";
import { ExecutorPool } from "../../edge-runner/pool.ts";
import { createEngine } from "../../edge-runner/runtime.ts";
import { createWasi } from "../../edge-runner/wasi.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { wagiWat } from "../helpers/wasm.ts";

/** Every wasi_snapshot_preview1 function the shim does not grant to a guest without capabilities. */
const REFUSED = [
  "clock_res_get",
  "clock_time_get",
  "random_get",
  "fd_advise",
  "fd_allocate",
  "fd_datasync",
  "fd_fdstat_set_flags",
  "fd_fdstat_set_rights",
  "fd_filestat_get",
  "fd_filestat_set_size",
  "fd_filestat_set_times",
  "fd_pread",
  "fd_prestat_get",
  "fd_prestat_dir_name",
  "fd_pwrite",
  "fd_readdir",
  "fd_renumber",
  "fd_seek",
  "fd_sync",
  "fd_tell",
  "path_create_directory",
  "path_filestat_get",
  "path_filestat_set_times",
  "path_link",
  "path_open",
  "path_readlink",
  "path_remove_directory",
  "path_rename",
  "path_symlink",
  "path_unlink_file",
  "poll_oneoff",
  "proc_raise",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_shutdown",
  // Not in preview1 at all: a guest may import anything from the module name.
  "sock_open",
  "fd_mmap",
];

/** WASI errnos a refusal may carry: EBADF, ESPIPE, ENOSYS, ENOTCAPABLE. */
const REFUSALS = new Set([8, 70, 52, 76]);

// **Feature: wasmEdge-edge-functions, Property 8: WASI capability restriction**
// **Validates: Requirements 7.2**
test("wasi: any call outside the granted set is refused with an errno, recorded, and changes no memory", (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(...REFUSED),
      fc.array(fc.integer({ min: -1, max: 70_000 }), { minLength: 9, maxLength: 9 }),
      fc.uint8Array({ minLength: 64, maxLength: 64 }),
      (name, args, seed) => {
        const wasi = createWasi({
          args: ["f"],
          env: ["A=1"],
          stdin: new Uint8Array(0),
          stdoutMaxBytes: 1024,
          stderrMaxBytes: 1024,
          clock: false,
          random: false,
          imports: [name],
        });
        const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
        const bytes = new Uint8Array(memory.buffer);
        for (let i = 0; i < bytes.length; i += seed.length) bytes.set(seed.subarray(0, bytes.length - i), i);
        const before = Buffer.from(bytes);
        wasi.setMemory(memory);
        // i64 parameters arrive as BigInt from wasm; the refusals never read them.
        const errno = (wasi.imports[name] as (...a: unknown[]) => number)(...args);
        return (
          REFUSALS.has(errno) &&
          wasi.denied[name] === 1 &&
          Buffer.compare(before, Buffer.from(bytes)) === 0 &&
          wasi.stdout().length === 0
        );
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});

test("wasi: granted calls work, and the capabilities gate clock and random", (t) => {
  const make = (clock: boolean, random: boolean) => {
    const wasi = createWasi({
      args: ["hello"],
      env: ["GREETING=hi", "REQUEST_METHOD=GET"],
      stdin: Buffer.from("body!"),
      stdoutMaxBytes: 8,
      stderrMaxBytes: 4,
      clock,
      random,
      imports: [
        "clock_time_get",
        "random_get",
        "environ_sizes_get",
        "environ_get",
        "fd_read",
        "fd_write",
        "fd_close",
      ],
    });
    const memory = new WebAssembly.Memory({ initial: 1 });
    wasi.setMemory(memory);
    return { wasi, view: new DataView(memory.buffer), bytes: new Uint8Array(memory.buffer) };
  };
  const call = (w: ReturnType<typeof createWasi>, name: string, ...args: unknown[]) =>
    (w.imports[name] as (...a: unknown[]) => number)(...args);

  const denied = make(false, false);
  t.is(call(denied.wasi, "clock_time_get", 0, 0n, 100), 76);
  t.is(call(denied.wasi, "random_get", 100, 16), 76);
  const granted = make(true, true);
  t.is(call(granted.wasi, "clock_time_get", 0, 0n, 100), 0);
  t.true(granted.view.getBigUint64(100, true) > 1_600_000_000_000_000_000n);
  t.is(call(granted.wasi, "random_get", 200, 16), 0);
  t.not(Buffer.from(granted.bytes.subarray(200, 216)).toString("hex"), "0".repeat(32));

  // environ: only what was given (manifest env + CGI), NUL-terminated.
  t.is(call(granted.wasi, "environ_sizes_get", 0, 4), 0);
  t.is(granted.view.getUint32(0, true), 2);
  t.is(call(granted.wasi, "environ_get", 300, 400), 0);
  t.is(
    Buffer.from(granted.bytes.subarray(400, 400 + granted.view.getUint32(4, true))).toString(),
    "GREETING=hi\0REQUEST_METHOD=GET\0",
  );

  // stdin is the request body; stdout is capped (EFBIG past 8 bytes).
  granted.view.setUint32(500, 600, true);
  granted.view.setUint32(504, 100, true);
  t.is(call(granted.wasi, "fd_read", 0, 500, 1, 508), 0);
  t.is(granted.view.getUint32(508, true), 5);
  granted.view.setUint32(504, 5, true);
  t.is(call(granted.wasi, "fd_write", 1, 500, 1, 508), 0);
  t.is(call(granted.wasi, "fd_write", 1, 500, 1, 508), 22);
  t.true(granted.wasi.stdoutOverflow);
  t.is(Buffer.from(granted.wasi.stdout()).toString(), "body!");

  // fd_close(1) is the guest's own business: later writes to 1 are EBADF, nothing else changes.
  t.is(call(granted.wasi, "fd_close", 1), 0);
  t.is(call(granted.wasi, "fd_write", 1, 500, 1, 508), 8);
  t.is(call(granted.wasi, "fd_close", 1), 8);
  // A pointer outside memory is EFAULT, never a host exception.
  t.is(call(granted.wasi, "fd_read", 0, 70_000, 1, 508), 21);
});

test("wasi: through an executor thread, a guest's refused calls answer errnos and are logged", async (t) => {
  const lines: string[] = [];
  const { pino } = await import("pino");
  const logger = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) });
  const pool = new ExecutorPool({
    workers: 1,
    spareWorkers: 0,
    maxHotInstances: 8,
    maxHotMemoryBytes: 1 << 30,
    queueDepth: 8,
    logger,
  });
  t.teardown(() => pool.close());
  const engine = createEngine({ pool, responseMaxBytes: 1 << 20, logger });
  const bytes = await wagiWat(
    (s) => `(call $print ${s.ref("Status: 200\r\n\r\n")})
    (call $print_u32 (call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 64)))
    (call $print ${s.ref(" ")})
    (call $print_u32 (call $path_unlink_file (i32.const 3) ${s.ref("x")}))`,
    `(import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file" (func $path_unlink_file (param i32 i32 i32) (result i32)))`,
  );
  const spec: FunctionSpec = {
    function_id: "w",
    name: "w",
    version: "v1",
    project: "p",
    artifact_url: "",
    sha256: "",
    abi: "wagi",
    memory_pages: 1,
    max_execution_ms: 1000,
    max_request_bytes: 0,
    max_instances: 1,
    env: {},
    capabilities: { clock: false, random: false },
  };
  const fn = await engine.load(spec, bytes);
  const out = await fn.invoke(
    { method: "GET", target: "/", rawHeaders: [], body: new Uint8Array(0) },
    { requestId: "r1" },
  );
  t.is(out.status, 200);
  t.is(Buffer.from(out.body).toString(), "76 76");
  const warning = lines
    .map((l) => JSON.parse(l))
    .find((l) => l.msg === "guest made WASI calls the sandbox refuses");
  t.like(warning, { request_id: "r1", denied: { clock_time_get: 1, path_unlink_file: 1 } });

  const granted = await engine.load({ ...spec, version: "v2", capabilities: { clock: true } }, bytes);
  const out2 = await granted.invoke({ method: "GET", target: "/", rawHeaders: [], body: new Uint8Array(0) });
  t.is(Buffer.from(out2.body).toString(), "0 76", "clock granted by the manifest, files still refused");
});
