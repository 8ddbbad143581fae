// Real edge-v1 modules for tests, compiled from AssemblyScript in memory with the same helper
// (`example-repo/hello/edge.ts`) that example functions use. Compiling takes about a second, so
// results are cached for the life of the test process.

import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import asc from "assemblyscript/asc";
import wabtInit from "wabt";
import { ascFlags } from "../../builder/index.ts";

/** The AssemblyScript edge-v1 helper shipped with the example repo. */
export const EDGE_TS = readFileSync(new URL("../../example-repo/hello/edge.ts", import.meta.url), "utf8");

const compiled = new Map<string, Promise<Uint8Array>>();

/** Compiles AssemblyScript files (entry: `index.ts`) to wasm bytes; `edge.ts` is added unless given. */
export function compileAs(files: Record<string, string>): Promise<Uint8Array> {
  const all = { "edge.ts": EDGE_TS, ...files };
  const key = JSON.stringify(Object.entries(all).sort());
  let result = compiled.get(key);
  if (result === undefined) {
    result = compileNow(all);
    compiled.set(key, result);
  }
  return result;
}

async function compileNow(files: Record<string, string>): Promise<Uint8Array> {
  const outputs: Record<string, Uint8Array | string> = {};
  let diagnostics = "";
  const { error } = await asc.main(["index.ts", "--outFile", "out.wasm", ...ascFlags(16)], {
    readFile: (name) => files[name] ?? null,
    writeFile: (name, contents) => {
      outputs[name] = contents;
    },
    listFiles: () => [],
    stderr: {
      write(chunk: Uint8Array | string) {
        diagnostics += String(chunk);
        return true;
      },
    },
  });
  const wasm = outputs["out.wasm"];
  if (error || !(wasm instanceof Uint8Array)) {
    throw new Error(`AssemblyScript compile failed: ${error?.message ?? "no output"}\n${diagnostics}`);
  }
  return wasm;
}

/** A handler module: `body` is the inside of `function handle(req: Request): Response { … }`. */
export function handlerModule(body: string, prelude = ""): Promise<Uint8Array> {
  return compileAs({
    "index.ts": `import { Request, Response, serve, log } from "./edge";
${prelude}
function handle(req: Request): Response {
${body}
}
export function edge_handle(): i32 {
  return serve(handle);
}
`,
  });
}

/** Answers `{method} {path} {body}` with a custom header, so tests see what the guest saw. */
export const echoModule = () =>
  handlerModule(
    `  return new Response(req.method + " " + req.path + "?" + req.query + " " + req.body).set("X-Echo-Host", req.header("host"));`,
  );

/** Counts requests in a global: the count only climbs if the same instance serves them all. */
export const counterModule = (tag: string) =>
  handlerModule(`  count++;\n  return new Response("${tag} " + count.toString());`, "let count: i32 = 0;");

/** Traps (`unreachable`) on `/trap`, answers "ok" otherwise. */
export const trapModule = () =>
  handlerModule(`  if (req.path == "/trap") unreachable();\n  return new Response("ok " + req.path);`);

/** edge_handle returns 1 without writing anything. */
export const failingModule = () =>
  compileAs({ "index.ts": "export function edge_handle(): i32 {\n  return 1;\n}\n" });

/** Writes a response with a custom status and headers, and logs through the host. */
export const statusModule = () =>
  handlerModule(
    `  log("status module called");\n  return new Response("made", 201).set("Content-Type", "application/x-test").set("X-Multi", "a").set("X-Multi", "b");`,
  );

// ---- WAT ---------------------------------------------------------------------------------------
// Hostile and hand-made modules are written in the WebAssembly text format and compiled with
// wabt, in memory; a module says exactly what it does, with no toolchain in between.

let wabt: ReturnType<typeof wabtInit> | null = null;

/** Compiles WebAssembly text to a module's bytes. */
export async function wat(text: string): Promise<Uint8Array> {
  wabt ??= wabtInit();
  const module = (await wabt).parseWat("test.wat", text, {
    bulk_memory: true,
    reference_types: true,
    multi_value: true,
    sign_extension: true,
  });
  try {
    return new Uint8Array(module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
}

/** `s` as a WAT string literal (bytes escaped as \hh). */
function watString(s: string): string {
  return [...Buffer.from(s, "utf8")]
    .map((b) =>
      b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c
        ? String.fromCharCode(b)
        : `\\${b.toString(16).padStart(2, "0")}`,
    )
    .join("");
}

/**
 * Strings placed in a module's memory from byte 1024 on: `ref("text")` gives the WAT operands
 * `(i32.const ptr) (i32.const len)`, `segments()` the data segments that put them there.
 */
export class WatStrings {
  #at = 1024;
  #data: string[] = [];
  ref(s: string): string {
    const bytes = Buffer.byteLength(s, "utf8");
    const ptr = this.#at;
    this.#data.push(`(data (i32.const ${ptr}) "${watString(s)}")`);
    this.#at += bytes;
    return `(i32.const ${ptr}) (i32.const ${bytes})`;
  }
  segments(): string {
    return this.#data.join("\n  ");
  }
}

/**
 * An edge-v1 module in WAT. `body` is the body of `edge_handle` (result i32); it may call
 * `$write` (ptr len) → i32 (the edge `response_write`), `$respond` (ptr len) which writes
 * "Status: 200" headers and the bytes, and use `strings.ref("…")` for constants.
 */
export function edgeWat(
  body: (strings: WatStrings) => string,
  options: { memory?: string; extra?: string } = {},
): Promise<Uint8Array> {
  const strings = new WatStrings();
  const head = strings.ref("Status: 200\r\nContent-Type: text/plain\r\n\r\n");
  const code = body(strings);
  return wat(`(module
  (import "edge" "response_write" (func $write (param i32 i32) (result i32)))
  ${options.memory ?? '(memory (export "memory") 1)'}
  ${strings.segments()}
  (func $respond (param $ptr i32) (param $len i32)
    (drop (call $write ${head}))
    (drop (call $write (local.get $ptr) (local.get $len))))
  ${options.extra ?? ""}
  (func (export "edge_handle") (result i32)
    ${code})
)`);
}

/**
 * A wagi (WASI command) module in WAT. `body` is the body of `_start`; it may call
 * `$print` (ptr len) and `$print_u32` (n) to write to stdout, `$eprint` (ptr len) for stderr, and
 * `$fd_write` directly. `imports` adds more wasi_snapshot_preview1 imports, as WAT import lines.
 */
export function wagiWat(body: (strings: WatStrings) => string, imports = ""): Promise<Uint8Array> {
  const strings = new WatStrings();
  const code = body(strings);
  // Memory layout: iovec at 0, nwritten at 8, a 16-byte digit buffer at 16, strings from 1024.
  return wat(`(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ${imports}
  (memory (export "memory") 1)
  ${strings.segments()}
  (func $out (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func $print (param $ptr i32) (param $len i32) (drop (call $out (i32.const 1) (local.get $ptr) (local.get $len))))
  (func $eprint (param $ptr i32) (param $len i32) (drop (call $out (i32.const 2) (local.get $ptr) (local.get $len))))
  (func $print_u32 (param $n i32) (local $at i32)
    (local.set $at (i32.const 32))
    (loop $digit
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (call $print (local.get $at) (i32.sub (i32.const 32) (local.get $at))))
  (func (export "_start")
    ${code})
)`);
}

// ---- hostile modules (the catalogue of issue 5) ------------------------------------------------

export const hostile = {
  /** edge-v1 that never returns. */
  infiniteLoop: () => edgeWat(() => "(loop $forever (br $forever)) (i32.const 0)"),
  /**
   * edge-v1 that grows its memory one page at a time until refused, then answers with one "x"
   * per page it ended up with (so the body length is its final size in pages).
   */
  memoryBomb: () =>
    edgeWat(
      (s) => `(local $i i32)
    (block $refused (loop $grow
      (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
      (br $grow)))
    (drop (call $write ${s.ref("Status: 200\r\n\r\n")}))
    (local.set $i (memory.size))
    (loop $x
      (drop (call $write ${s.ref("x")}))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $x (local.get $i)))
    (i32.const 0)`,
      { memory: '(memory (export "memory") 1)' },
    ),
  /** edge-v1 that recurses until the stack overflows. */
  deepRecursion: () =>
    edgeWat(() => "(drop (call $down (i32.const 0))) (i32.const 0)", {
      extra:
        "(func $down (param i32) (result i32) (i32.add (call $down (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))",
    }),
  /** edge-v1 that executes `unreachable`. */
  trap: () => edgeWat(() => "unreachable"),
  /** edge-v1 that writes 64 KiB chunks until response_write refuses, then returns 0. */
  oversizeResponse: () =>
    edgeWat(
      (s) => `(drop (call $write ${s.ref("Status: 200\r\n\r\n")}))
    (block $full (loop $more
      (br_if $full (i32.eq (call $write (i32.const 0) (i32.const 65536)) (i32.const -1)))
      (br $more)))
    (i32.const 0)`,
      { memory: '(memory (export "memory") 2)' },
    ),
  /** edge-v1 declaring a table of 10 million entries. */
  hugeTable: () => edgeWat(() => "(i32.const 0)", { extra: "(table 10000000 funcref)" }),
  /** edge-v1 that tries table.grow by a million entries and answers "grown" or "refused". */
  tableGrow: () =>
    edgeWat(
      (s) => `(if (i32.eq (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const -1))
      (then (call $respond ${s.ref("refused")}))
      (else (call $respond ${s.ref("grown")})))
    (i32.const 0)`,
      { extra: "(table $t 1 funcref)" },
    ),
  /** edge-v1 importing a host function the ABI does not have. */
  unknownImport: () =>
    wat(`(module
  (import "env" "open_socket" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "edge_handle") (result i32) (i32.const 0)))`),
  /**
   * wagi that tries the filesystem: opens /etc/passwd relative to fd 3 (the first preopen a libc
   * would look for), creates a directory, and prints the errnos it got.
   */
  wasiFilesystem: () =>
    wagiWat(
      (s) => `(call $print ${s.ref("Status: 200\r\n\r\n")})
    (call $print ${s.ref("prestat=")}) (call $print_u32 (call $fd_prestat_get (i32.const 3) (i32.const 64)))
    (call $print ${s.ref(" open=")}) (call $print_u32 (call $path_open (i32.const 3) (i32.const 0) ${s.ref("etc/passwd")} (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 64)))
    (call $print ${s.ref(" mkdir=")}) (call $print_u32 (call $path_create_directory (i32.const 3) ${s.ref("pwned")}))`,
      `(import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $path_create_directory (param i32 i32 i32) (result i32)))`,
    ),
  /** wagi that tries sockets: accept on fd 3, send on fd 4, and prints the errnos. */
  wasiSockets: () =>
    wagiWat(
      (s) => `(call $print ${s.ref("Status: 200\r\n\r\n")})
    (call $print ${s.ref("accept=")}) (call $print_u32 (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 64)))
    (call $print ${s.ref(" send=")}) (call $print_u32 (call $sock_send (i32.const 4) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 64)))`,
      `(import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))`,
    ),
  /** wagi that writes its headers, closes stdout, then tries to write more and reports on stderr. */
  closeStdout: () =>
    wagiWat(
      (s) => `(call $print ${s.ref("Status: 200\r\n\r\nbefore close")})
    (drop (call $fd_close (i32.const 1)))
    (if (i32.eq (call $out (i32.const 1) ${s.ref(" after close")}) (i32.const 8))
      (then (call $eprint ${s.ref("stdout is closed: EBADF")})))`,
      `(import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))`,
    ),
  /** wagi that answers, then calls proc_exit(code); code 0 is a normal end. */
  procExit: (code: number) =>
    wagiWat(
      (s) => `(call $print ${s.ref("Status: 200\r\n\r\nexiting")})
    (call $proc_exit (i32.const ${code}))
    (call $print ${s.ref(" (not reached)")})`,
      `(import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))`,
    ),
};

export interface ArtifactServer {
  /** Serves `bytes` at `/{name}` and returns its URL. */
  add(name: string, bytes: Uint8Array): string;
  /** GET requests received per name, including those answered 404. */
  hits(name: string): number;
  close(): Promise<void>;
}

/** A tiny node:http server on 127.0.0.1 that hands out wasm modules, as an artifact store would. */
export async function serveArtifacts(): Promise<ArtifactServer> {
  const files = new Map<string, Uint8Array>();
  const counts = new Map<string, number>();
  const server = createServer((req, res) => {
    const name = (req.url ?? "/").split("?")[0]!.slice(1);
    counts.set(name, (counts.get(name) ?? 0) + 1);
    const bytes = files.get(name);
    if (bytes === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/wasm", "content-length": bytes.byteLength });
    res.end(bytes);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    add(name, bytes) {
      files.set(name, bytes);
      return `http://127.0.0.1:${port}/${name}`;
    },
    hits: (name) => counts.get(name) ?? 0,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
