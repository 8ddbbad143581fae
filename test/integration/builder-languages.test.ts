// Every supported language through the real builder: real toolchains (rustc, clang, wabt,
// binaryen) in real build worker processes. Built modules are run on a small edge-v1 host
// here, so a test sees what a runner would serve.

import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { WASI } from "node:wasi";
import test from "ava";
import { type BuildInput, buildFunction, readMemoryLimits } from "../../builder/index.ts";
import { EdgeError } from "../../lib/errors.ts";
import { tempDir } from "../helpers/tmp.ts";

/** Runs an edge-v1 module's edge_handle once with `request` and returns the response text. */
async function serveOnce(bytes: Uint8Array, request: string): Promise<string> {
  const req = Buffer.from(request);
  let read = 0;
  const out: Buffer[] = [];
  let memory: WebAssembly.Memory | null = null;
  const view = () => Buffer.from(memory!.buffer);
  const { instance } = await WebAssembly.instantiate(bytes as Uint8Array<ArrayBuffer>, {
    edge: {
      request_len: () => req.length,
      request_read: (ptr: number, len: number) => {
        const n = Math.min(len, req.length - read);
        req.copy(view(), ptr, read, read + n);
        read += n;
        return n;
      },
      response_write: (ptr: number, len: number) => {
        out.push(Buffer.from(view().subarray(ptr, ptr + len)));
        return len;
      },
      log: () => {},
    },
  });
  memory = instance.exports.memory as WebAssembly.Memory;
  (instance.exports._initialize as (() => void) | undefined)?.();
  const rc = (instance.exports.edge_handle as () => number)();
  if (rc !== 0) throw new Error(`edge_handle returned ${rc}`);
  return Buffer.concat(out).toString("utf8");
}

/** Runs a wagi (WASI command) module with node:wasi and returns what it printed. */
async function runWagi(bytes: Uint8Array, env: Record<string, string>): Promise<string> {
  const tmp = await tempDir();
  try {
    const file = path.join(tmp.dir, "stdout");
    const { openSync, closeSync } = await import("node:fs");
    const fd = openSync(file, "w");
    const wasi = new WASI({ version: "preview1", args: ["fn"], env, stdout: fd, returnOnExit: true });
    const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    const instance = await WebAssembly.instantiate(module, wasi.getImportObject() as WebAssembly.Imports);
    wasi.start(instance);
    closeSync(fd);
    return await readFile(file, "utf8");
  } finally {
    await tmp.remove();
  }
}

const example = (
  sourceDir: string,
  language: BuildInput["language"],
  memoryPages: number,
  runtime?: "wasm-aot",
) =>
  buildFunction({
    repoDir: "example-repo",
    sourceDir,
    language,
    abi: "edge-v1",
    memoryPages,
    ...(runtime ? { runtime } : {}),
  });

async function repoWith(
  files: Record<string, string>,
): Promise<{ dir: string; remove: () => Promise<void> }> {
  const tmp = await tempDir();
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(tmp.dir, rel)), { recursive: true });
    await writeFile(path.join(tmp.dir, rel), content);
  }
  return tmp;
}

test("builder (wat): the echo example assembles with wabt and echoes the request", async (t) => {
  const out = await example("echo-wat", "wat", 4);
  t.regex(out.toolchain, /^wabt \d/);
  t.is(out.sandbox, null);
  t.deepEqual(readMemoryLimits(out.bytes), { initial: 2, maximum: 4 });
  const request = "POST /echo?x=1 HTTP/1.1\r\nHost: echo.localhost\r\n\r\nping";
  t.is(await serveOnce(out.bytes, request), `Status: 200\r\nContent-Type: text/plain\r\n\r\n${request}`);
});

test("builder (rust): the crate example compiles with rustc, is optimised for wasm-aot and greets in JSON", async (t) => {
  const out = await example("greet-rust", "rust", 8, "wasm-aot");
  t.regex(out.toolchain, /^rustc \d+\.\d+\.\d+.* \(wasm32-wasi\)$/);
  t.is(out.sandbox, "bwrap");
  t.deepEqual(
    out.facts.imports.sort(),
    ["edge.request_len", "edge.request_read", "edge.response_write"],
    "no_std Rust imports nothing but the edge functions (memcmp/memcpy come from the linked libc)",
  );
  t.is(readMemoryLimits(out.bytes)!.maximum, 8);
  t.truthy(out.optimized);
  t.regex(out.optimized!.tool, /^binaryen \d+/);
  t.is(out.optimized!.passes, "-O3 (shrink level 1)");
  t.is(out.optimized!.bytesAfter, out.bytes.byteLength);
  t.true(out.optimized!.bytesAfter < out.optimized!.bytesBefore);
  const res = await serveOnce(out.bytes, 'GET /hi?name=Ada%20"L" HTTP/1.1\r\nHost: rust.localhost\r\n\r\n');
  const [head, body] = res.split("\r\n\r\n");
  t.regex(head!, /^Status: 200\r\nContent-Type: application\/json/);
  t.deepEqual(JSON.parse(body!), { greeting: 'Hello, Ada "L"!', language: "rust", path: "/hi" });
});

test("builder (c): the example compiles with clang as a reactor importing only edge functions", async (t) => {
  const out = await example("hello-c", "c", 8);
  t.regex(out.toolchain, /^clang 14\.\d+\.\d+ \(wasm32-wasi\)$/);
  t.true(out.facts.exports.includes("_initialize"));
  t.true(out.facts.imports.every((i) => i.startsWith("edge.")));
  t.is(readMemoryLimits(out.bytes)!.maximum, 8);
  const request = "GET /c/path?q=1 HTTP/1.1\r\nHost: c.localhost\r\n\r\n";
  t.is(
    await serveOnce(out.bytes, request),
    `Status: 200\r\nContent-Type: text/plain\r\n\r\nHello from C! GET /c/path (${request.length} request bytes)\n`,
  );
});

test("builder (wasm): a prebuilt module is taken as it is, with its memory maximum set to memoryPages", async (t) => {
  const original = await readFile("example-repo/static-wasm/module.wasm");
  t.deepEqual(readMemoryLimits(original), { initial: 1, maximum: null });
  const out = await example("static-wasm", "wasm", 2);
  t.is(out.toolchain, "prebuilt");
  t.deepEqual(readMemoryLimits(out.bytes), { initial: 1, maximum: 2 });
  t.is(
    await serveOnce(out.bytes, "GET / HTTP/1.1\r\n\r\n"),
    "Status: 200\r\nContent-Type: text/plain\r\n\r\nHello from a prebuilt module!\n",
  );
  // The artifact refuses to grow past the limit by itself.
  const { instance } = await WebAssembly.instantiate(out.bytes, { edge: { response_write: () => 0 } });
  t.throws(() => (instance.exports.memory as WebAssembly.Memory).grow(2), { instanceOf: RangeError });
});

test("builder (rust): a compile error names the file, line and column in the repository", async (t) => {
  const repo = await repoWith({
    "fns/bad/Cargo.toml": '[package]\nname = "bad"\nedition = "2021"\n',
    "fns/bad/src/lib.rs":
      '#![no_std]\n#[panic_handler]\nfn p(_: &core::panic::PanicInfo) -> ! { loop {} }\npub fn f() -> i32 {\n    let x: i32 = "no";\n    x\n}\n',
  });
  t.teardown(repo.remove);
  const err = await t.throwsAsync(
    buildFunction({
      repoDir: repo.dir,
      sourceDir: "fns/bad",
      language: "rust",
      abi: "edge-v1",
      memoryPages: 4,
    }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_COMPILE");
  t.is(err!.details![0]!.where, "fns/bad/src/lib.rs:5:18");
  t.is(err!.details![0]!.message, "E0308: mismatched types");
  t.is(err!.message, "fns/bad/src/lib.rs:5:18: E0308: mismatched types");
});

test("builder (c): compile and link errors name where they are", async (t) => {
  const repo = await repoWith({
    "c/main.c": "int edge_handle(void) {\n  return missing;\n}\n",
    "link/main.c": "int g(void);\nint edge_handle(void) { return g(); }\n",
  });
  t.teardown(repo.remove);
  const compile = await t.throwsAsync(
    buildFunction({ repoDir: repo.dir, sourceDir: "c", language: "c", abi: "edge-v1", memoryPages: 4 }),
    { instanceOf: EdgeError },
  );
  t.is(compile!.code, "EDGE_ERR_BUILD_COMPILE");
  t.deepEqual(compile!.details![0], {
    where: "c/main.c:2:10",
    message: "use of undeclared identifier 'missing'",
  });
  const link = await t.throwsAsync(
    buildFunction({ repoDir: repo.dir, sourceDir: "link", language: "c", abi: "edge-v1", memoryPages: 4 }),
    { instanceOf: EdgeError },
  );
  t.is(link!.code, "EDGE_ERR_BUILD_COMPILE");
  t.deepEqual(link!.details![0], { where: "link", message: "undefined symbol: g" });
});

test("builder (wat): a syntax error names the file, line and column", async (t) => {
  const repo = await repoWith({
    "w/module.wat":
      '(module\n  (func (export "edge_handle") (result i32)\n    i32.const 0\n    i32.bogus))\n',
  });
  t.teardown(repo.remove);
  const err = await t.throwsAsync(
    buildFunction({ repoDir: repo.dir, sourceDir: "w", language: "wat", abi: "edge-v1", memoryPages: 1 }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_COMPILE");
  t.is(err!.details![0]!.where, "w/module.wat:4:5");
  t.regex(err!.details![0]!.message, /unexpected token "?i32\.bogus/);
});

test("builder (wat): a module without memory export or with the wrong entry point is refused by name", async (t) => {
  const repo = await repoWith({
    "w/module.wat": '(module (memory 1) (func (export "handle") (result i32) i32.const 0))',
  });
  t.teardown(repo.remove);
  const err = await t.throwsAsync(
    buildFunction({ repoDir: repo.dir, sourceDir: "w", language: "wat", abi: "edge-v1", memoryPages: 1 }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_INVALID_MODULE");
  t.deepEqual(
    err!.details!.map((d) => d.message),
    [
      'does not export its linear memory as "memory"',
      'exports neither "edge_handle" (edge-v1) nor "_start" (wagi); abi: edge-v1 needs "edge_handle"',
    ],
  );
});

test("builder (wat): wasm-aot optimises with binaryen and records it", async (t) => {
  const out = await buildFunction({
    repoDir: "example-repo",
    sourceDir: "echo-wat",
    language: "wat",
    abi: "edge-v1",
    memoryPages: 4,
    runtime: "wasm-aot",
  });
  t.is(out.optimized!.bytesBefore > 0, true);
  t.deepEqual(readMemoryLimits(out.bytes), { initial: 2, maximum: 4 });
  t.regex(await serveOnce(out.bytes, "GET /x HTTP/1.1\r\n\r\n"), /\r\n\r\nGET \/x HTTP\/1\.1/);
});

test("builder (rust): a single lib.rs, and a wagi main.rs with std that prints a CGI response", async (t) => {
  const repo = await repoWith({
    "lib/lib.rs":
      '#![no_std]\n#[link(wasm_import_module = "edge")]\nextern "C" { fn response_write(p: *const u8, l: i32) -> i32; }\n#[panic_handler]\nfn p(_: &core::panic::PanicInfo) -> ! { loop {} }\n#[no_mangle]\npub extern "C" fn edge_handle() -> i32 {\n    let r = b"Status: 200\\r\\n\\r\\nsingle file";\n    unsafe { response_write(r.as_ptr(), r.len() as i32) };\n    0\n}\n',
    "wagi/main.rs":
      'fn main() {\n    let method = std::env::var("REQUEST_METHOD").unwrap_or_default();\n    print!("Status: 200\\r\\nContent-Type: application/json\\r\\n\\r\\n{{\\"method\\":\\"{}\\"}}", method);\n}\n',
  });
  t.teardown(repo.remove);
  const lib = await buildFunction({
    repoDir: repo.dir,
    sourceDir: "lib",
    language: "rust",
    abi: "edge-v1",
    memoryPages: 2,
  });
  t.is(await serveOnce(lib.bytes, "GET / HTTP/1.1\r\n\r\n"), "Status: 200\r\n\r\nsingle file");
  const wagi = await buildFunction({
    repoDir: repo.dir,
    sourceDir: "wagi",
    language: "rust",
    abi: "wagi",
    memoryPages: 32,
  });
  t.is(wagi.facts.abi, "wagi");
  t.true(wagi.facts.exports.includes("_start"));
  t.true(wagi.facts.imports.every((i) => i.startsWith("wasi_snapshot_preview1.")));
  t.is(readMemoryLimits(wagi.bytes)!.maximum, 32);
  t.is(
    await runWagi(wagi.bytes, { REQUEST_METHOD: "POST" }),
    'Status: 200\r\nContent-Type: application/json\r\n\r\n{"method":"POST"}',
  );
});

test("builder (c): a wagi command with stdio builds as a WASI command", async (t) => {
  const repo = await repoWith({
    "cgi/main.c":
      '#include <stdio.h>\n#include <stdlib.h>\nint main(void) {\n  const char *q = getenv("QUERY_STRING");\n  printf("Status: 200\\r\\nContent-Type: text/plain\\r\\n\\r\\nquery=%s\\n", q ? q : "");\n  return 0;\n}\n',
  });
  t.teardown(repo.remove);
  const out = await buildFunction({
    repoDir: repo.dir,
    sourceDir: "cgi",
    language: "c",
    abi: "wagi",
    memoryPages: 16,
  });
  t.true(out.facts.exports.includes("_start"));
  t.true(out.facts.imports.includes("wasi_snapshot_preview1.fd_write"));
  t.is(
    await runWagi(out.bytes, { QUERY_STRING: "a=1" }),
    "Status: 200\r\nContent-Type: text/plain\r\n\r\nquery=a=1\n",
  );
});

test("builder (rust): crates with dependencies or build scripts are refused with the reason", async (t) => {
  const repo = await repoWith({
    "deps/Cargo.toml": '[package]\nname = "deps"\n\n[dependencies]\nserde = "1"\n',
    "deps/src/lib.rs": "",
    "build/Cargo.toml": '[package]\nname = "build"\n',
    "build/build.rs": "fn main() {}\n",
    "build/src/lib.rs": "",
  });
  t.teardown(repo.remove);
  const deps = await t.throwsAsync(
    buildFunction({ repoDir: repo.dir, sourceDir: "deps", language: "rust", abi: "edge-v1", memoryPages: 2 }),
    { instanceOf: EdgeError },
  );
  t.is(deps!.code, "EDGE_ERR_BUILD_UNSUPPORTED");
  t.regex(deps!.message, /^deps\/Cargo\.toml: crate dependencies are not supported/);
  const build = await t.throwsAsync(
    buildFunction({
      repoDir: repo.dir,
      sourceDir: "build",
      language: "rust",
      abi: "edge-v1",
      memoryPages: 2,
    }),
    { instanceOf: EdgeError },
  );
  t.regex(build!.message, /build scripts \(build\.rs\) are not supported/);
});

test("builder: a module that starts with more memory than memoryPages is refused", async (t) => {
  const out = buildFunction({
    repoDir: "example-repo",
    sourceDir: "echo-wat",
    language: "wat",
    abi: "edge-v1",
    memoryPages: 1,
  });
  const err = await t.throwsAsync(out, { instanceOf: EdgeError });
  t.is(err!.code, "EDGE_ERR_BUILD_INVALID_MODULE");
  t.is(err!.message, "module memory starts with 2 pages; limits.memoryPages is 1");
});
