import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import fc from "fast-check";
import wabtInit from "wabt";
import { parseClangDiagnostics, parseRustcDiagnostics } from "../../builder/diagnostics.ts";
import {
  buildFunction,
  cacheKey,
  compileBuilderOptions,
  hashSourceTree,
  limitMemory,
  readMemories,
  readMemoryLimits,
  validateModule,
} from "../../builder/index.ts";
import { stackBytes } from "../../builder/job.ts";
import { parseCargoToml } from "../../builder/rust.ts";
import { EdgeError } from "../../lib/errors.ts";
import { sha256Hex } from "../../lib/hash.ts";
import { tempDir } from "../helpers/tmp.ts";
import { wasmModule } from "../helpers/wasm-bytes.ts";

const wabt = await wabtInit();

/** Assembles WAT text; `features` enables proposals such as threads or memory64. */
function wat(text: string, features: Record<string, boolean> = {}): Uint8Array {
  const m = wabt.parseWat("test.wat", text, features);
  try {
    return m.toBinary({}).buffer;
  } finally {
    m.destroy();
  }
}

const EDGE_HANDLE = '(func (export "edge_handle") (result i32) i32.const 0)';

test("builder: compiles the example AssemblyScript function to a valid edge-v1 module limited to memoryPages", async (t) => {
  const out = await buildFunction({
    repoDir: "example-repo",
    sourceDir: "hello",
    language: "assemblyscript",
    abi: "edge-v1",
    memoryPages: 16,
  });
  t.true(WebAssembly.validate(out.bytes));
  t.is(out.sha256, sha256Hex(out.bytes));
  t.is(out.facts.abi, "edge-v1");
  t.true(out.facts.exports.includes("edge_handle"));
  t.true(out.facts.imports.every((i) => i.startsWith("edge.")));
  t.deepEqual(readMemoryLimits(out.bytes), { initial: 1, maximum: 16 });
  t.regex(out.toolchain, /^assemblyscript \d+\.\d+\.\d+$/);
  t.false(out.cacheHit);
  t.is(out.optimized, null);
});

test("builder: a compile error comes back as file:line:col of the source, not a stack trace", async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  await mkdir(path.join(tmp.dir, "fn"));
  await writeFile(
    path.join(tmp.dir, "fn/index.ts"),
    "export function edge_handle(): i32 {\n  return missing + 1;\n}\n",
  );
  const err = await t.throwsAsync(
    buildFunction({
      repoDir: tmp.dir,
      sourceDir: "fn",
      language: "assemblyscript",
      abi: "edge-v1",
      memoryPages: 4,
    }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_COMPILE");
  t.deepEqual(err!.details, [{ where: "fn/index.ts:2:10", message: "AS2304: Cannot find name 'missing'." }]);
  t.notRegex(err!.message, /\n\s+at /);
});

test("builder: AssemblyScript cannot import files from outside the function's directory", async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  await mkdir(path.join(tmp.dir, "repo/fn"), { recursive: true });
  await writeFile(path.join(tmp.dir, "secret.ts"), "export const x: i32 = 1;\n");
  await writeFile(
    path.join(tmp.dir, "repo/fn/index.ts"),
    'import { x } from "../../secret";\nexport function edge_handle(): i32 { return x; }\n',
  );
  const err = await t.throwsAsync(
    buildFunction({
      repoDir: path.join(tmp.dir, "repo"),
      sourceDir: "fn",
      language: "assemblyscript",
      abi: "edge-v1",
      memoryPages: 4,
    }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_COMPILE");
  t.regex(err!.message, /not found/);
});

test("builder: a missing toolchain is a clear 'not installed' error naming it, not a crash", async (t) => {
  const rust = await t.throwsAsync(
    buildFunction({
      repoDir: "example-repo",
      sourceDir: "greet-rust",
      language: "rust",
      abi: "edge-v1",
      memoryPages: 8,
      options: { toolchains: { rustc: "/nonexistent/bin/rustc" } },
    }),
    { instanceOf: EdgeError },
  );
  t.is(rust!.code, "EDGE_ERR_BUILD_TOOLCHAIN_MISSING");
  t.is(rust!.status, 422);
  t.regex(
    rust!.message,
    /^toolchain rustc \(wasm32-wasi\) not installed: \/nonexistent\/bin\/rustc not found/,
  );
  const c = await t.throwsAsync(
    buildFunction({
      repoDir: "example-repo",
      sourceDir: "hello-c",
      language: "c",
      abi: "edge-v1",
      memoryPages: 8,
      options: { toolchains: { clang: "clang-does-not-exist" } },
    }),
    { instanceOf: EdgeError },
  );
  t.is(c!.code, "EDGE_ERR_BUILD_TOOLCHAIN_MISSING");
  t.regex(c!.message, /^toolchain clang \(wasm32-wasi\) not installed: clang-does-not-exist not found/);
  const libc = await t.throwsAsync(
    buildFunction({
      repoDir: "example-repo",
      sourceDir: "hello-c",
      language: "c",
      abi: "edge-v1",
      memoryPages: 8,
      options: { toolchains: { wasiSysroot: "/nonexistent-sysroot" } },
    }),
    { instanceOf: EdgeError },
  );
  t.regex(libc!.message, /wasi-libc not found/);
});

test("builder options: durations and sizes are compiled to ms and bytes; bad values are refused", (t) => {
  const c = compileBuilderOptions({ timeout: "90s", compilerMemory: "512MiB", maxArtifactSize: 1024 });
  t.is(c.timeoutMs, 90_000);
  t.is(c.compilerMemoryBytes, 512 * 1024 * 1024);
  t.is(c.maxArtifactBytes, 1024);
  t.is(c.toolchains.rustc, "/usr/bin/rustc");
  t.is(c.cacheDir, null);
  t.is(t.throws(() => compileBuilderOptions({ timeout: "soon" }))!.message.includes("builder.timeout"), true);
  t.is(
    t.throws(() => compileBuilderOptions({ sandbox: "docker" as "none" }), { instanceOf: EdgeError })!.code,
    "EDGE_ERR_CONFIG_INVALID",
  );
});

test("validate: accepts a minimal edge-v1 module", (t) => {
  const facts = validateModule(
    wasmModule({ imports: [{ module: "edge", name: "request_len" }] }),
    "edge-v1",
    1,
  );
  t.deepEqual(facts.memory, { initial: 1, maximum: 1 });
});

test("validate: rejects imports the sandbox does not provide, naming them", (t) => {
  const bytes = wasmModule({
    imports: [
      { module: "env", name: "abort" },
      { module: "edge", name: "open_socket" },
      { module: "wasi_snapshot_preview1", name: "sock_open" },
    ],
  });
  const err = t.throws(() => validateModule(bytes, "edge-v1", 1), { instanceOf: EdgeError });
  t.is(err!.code, "EDGE_ERR_BUILD_INVALID_MODULE");
  t.deepEqual(
    err!.details!.map((d) => d.message),
    [
      'imports "env.abort": only the "edge" and "wasi_snapshot_preview1" modules are provided',
      'imports "edge.open_socket" (function), which the edge-v1 ABI does not provide',
      'imports "wasi_snapshot_preview1.sock_open" (function), which WASI preview 1 does not define',
    ],
  );
});

test("validate: a wagi module may import WASI but not the edge-v1 host functions", (t) => {
  const wasi = wat(
    '(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1 1) (func (export "_start")))',
  );
  t.is(validateModule(wasi, "wagi", 1).abi, "wagi");
  const edge = wat(
    '(module (import "edge" "request_len" (func (result i32))) (memory (export "memory") 1 1) (func (export "_start")))',
  );
  t.regex(
    t.throws(() => validateModule(edge, "wagi", 1))!.message,
    /imports "edge\.request_len"; the wagi lane provides only wasi_snapshot_preview1/,
  );
});

test("validate: rejects a module without the ABI's entry point or with the other lane's", (t) => {
  t.regex(
    t.throws(() => validateModule(wasmModule({ exports: ["memory", "main"] }), "edge-v1", 1))!.message,
    /exports neither "edge_handle" \(edge-v1\) nor "_start" \(wagi\); abi: edge-v1 needs "edge_handle"/,
  );
  t.regex(
    t.throws(() => validateModule(wasmModule({ exports: ["memory", "_start"] }), "edge-v1", 1))!.message,
    /exports the wagi entry point but the manifest says abi: edge-v1/,
  );
  t.regex(
    t.throws(() => validateModule(wasmModule({ exports: ["edge_handle"] }), "edge-v1", 1))!.message,
    /does not export its linear memory as "memory"/,
  );
});

test("validate: a wrong export is named with the signature the lane needs", (t) => {
  const wrongType = wat(
    '(module (memory (export "memory") 1 1) (func (export "edge_handle") (param i32) (result i32) local.get 0))',
  );
  t.regex(
    t.throws(() => validateModule(wrongType, "edge-v1", 1))!.message,
    /exports "edge_handle" with type \(i32\) -> i32; the edge-v1 lane needs \(\) -> i32/,
  );
  const global = wat(
    '(module (memory (export "memory") 1 1) (global (export "edge_handle") i32 (i32.const 0)))',
  );
  t.regex(
    t.throws(() => validateModule(global, "edge-v1", 1))!.message,
    /exports "edge_handle" as a global; the edge-v1 lane needs a function \(\) -> i32/,
  );
  const start = wat(
    '(module (memory (export "memory") 1 1) (func (export "_start") (result i32) i32.const 0))',
  );
  t.regex(
    t.throws(() => validateModule(start, "wagi", 1))!.message,
    /exports "_start" with type \(\) -> i32; the wagi lane needs \(\) -> \(\)/,
  );
});

test("validate: rejects memory beyond memoryPages, or without a maximum", (t) => {
  t.regex(
    t.throws(() => validateModule(wasmModule({ memory: { initial: 8, maximum: 8 } }), "edge-v1", 4))!.message,
    /memory starts with 8 pages; limits\.memoryPages is 4/,
  );
  t.regex(
    t.throws(() => validateModule(wasmModule({ memory: { initial: 1 } }), "edge-v1", 4))!.message,
    /memory declares a maximum of none pages; it must be at most limits\.memoryPages \(4\)/,
  );
});

test("validate: rejects shared and 64-bit memories, saying which", (t) => {
  const shared = wat(`(module (memory (export "memory") 1 4 shared) ${EDGE_HANDLE})`, { threads: true });
  t.regex(t.throws(() => validateModule(shared, "edge-v1", 4))!.message, /memory is shared \(threads\)/);
  t.regex(t.throws(() => limitMemory(shared, 4))!.message, /memory is shared \(threads\)/);
  const mem64 = wat(`(module (memory (export "memory") i64 1 4) ${EDGE_HANDLE})`, { memory64: true });
  t.deepEqual(readMemories(mem64)[0]!.memory64, true);
  t.regex(t.throws(() => validateModule(mem64, "edge-v1", 4))!.message, /memory is 64-bit \(memory64\)/);
  t.regex(t.throws(() => limitMemory(mem64, 4))!.message, /memory is 64-bit/);
});

test("validate: enforces the artifact size limit", (t) => {
  const bytes = wasmModule({});
  t.notThrows(() => validateModule(bytes, "edge-v1", 1, { maxBytes: bytes.byteLength }));
  t.regex(
    t.throws(() => validateModule(bytes, "edge-v1", 1, { maxBytes: bytes.byteLength - 1 }))!.message,
    new RegExp(
      `module is ${bytes.byteLength} bytes; the artifact size limit is ${bytes.byteLength - 1} bytes`,
    ),
  );
});

test("validate: rejects bytes that are not WebAssembly", (t) => {
  t.is(
    t.throws(() => validateModule(new TextEncoder().encode("not wasm"), "edge-v1", 1), {
      instanceOf: EdgeError,
    })!.code,
    "EDGE_ERR_BUILD_INVALID_MODULE",
  );
  t.is(
    t.throws(() => limitMemory(new TextEncoder().encode("not wasm"), 1), { instanceOf: EdgeError })!.code,
    "EDGE_ERR_BUILD_INVALID_MODULE",
  );
  // Truncated in the middle of a section: refused, never read past the end.
  const bytes = wasmModule({});
  t.is(
    t.throws(() => limitMemory(bytes.subarray(0, bytes.length - 3), 1), { instanceOf: EdgeError })!.code,
    "EDGE_ERR_BUILD_INVALID_MODULE",
  );
});

test("memory: the maximum of a defined or imported memory is rewritten to memoryPages, nothing else changes", async (t) => {
  const imported = wat(`(module (import "edge" "mem" (memory 1)) ${EDGE_HANDLE})`);
  t.deepEqual(
    readMemories(limitMemory(imported, 6)).map((m) => [m.imported, m.initial, m.maximum]),
    [[true, 1, 6]],
  );
  const defined = wat(`(module (import "edge" "log" (func (param i32 i32))) (memory 2 100) ${EDGE_HANDLE})`);
  const out = limitMemory(defined, 6);
  t.deepEqual(
    readMemories(out).map((m) => [m.imported, m.initial, m.maximum]),
    [[false, 2, 6]],
  );
  t.is(out.byteLength, defined.byteLength, "only the limits changed, and they kept their width");
  // The limited module grows up to memoryPages and no further, on its own.
  const own = limitMemory(wat(`(module (memory (export "memory") 1) ${EDGE_HANDLE})`), 3);
  const { instance } = await WebAssembly.instantiate(own as Uint8Array<ArrayBuffer>);
  const memory = instance.exports.memory as WebAssembly.Memory;
  t.is(memory.grow(2), 1);
  t.throws(() => memory.grow(1), { instanceOf: RangeError });
});

test("memory: for any limits, limitMemory yields a valid module whose maximum is memoryPages", (t) => {
  // **Feature: wasmEdge-edge-functions, Property 7: memory limit enforcement**
  // **Validates: Requirements 7.1**
  // (the builder's half: the artifact itself declares maximum = memoryPages)
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 300 }),
      fc.option(fc.integer({ min: 0, max: 65_536 }), { nil: undefined }),
      fc.integer({ min: 1, max: 65_536 }),
      fc.array(fc.constantFrom("request_len", "request_read", "response_write", "log"), { maxLength: 4 }),
      (initial, declaredMax, pages, imports) => {
        const maximum = declaredMax === undefined ? undefined : Math.max(initial, declaredMax);
        const bytes = wasmModule({
          imports: imports.map((name) => ({ module: "edge", name })),
          memory: maximum === undefined ? { initial } : { initial, maximum },
        });
        if (initial > pages) {
          const err = (() => {
            try {
              limitMemory(bytes, pages);
              return null;
            } catch (e) {
              return e as EdgeError;
            }
          })();
          return err?.code === "EDGE_ERR_BUILD_INVALID_MODULE";
        }
        const out = limitMemory(bytes, pages);
        const facts = validateModule(out, "edge-v1", pages);
        const before = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
        const after = new WebAssembly.Module(out);
        return (
          facts.memory?.initial === initial &&
          facts.memory.maximum === pages &&
          JSON.stringify(WebAssembly.Module.imports(before)) ===
            JSON.stringify(WebAssembly.Module.imports(after)) &&
          JSON.stringify(WebAssembly.Module.exports(before)) ===
            JSON.stringify(WebAssembly.Module.exports(after))
        );
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});

test("cache key: changes with the source, the toolchain and every setting that changes the bytes", (t) => {
  const base = {
    sourceHash: "a".repeat(64),
    toolchain: "rustc 1.63.0",
    language: "rust",
    entry: null,
    abi: "edge-v1",
    memoryPages: 16,
    runtime: "wasm",
    optimizer: null,
  };
  const key = cacheKey(base);
  t.is(cacheKey({ ...base }), key);
  const variants = [
    { sourceHash: "b".repeat(64) },
    { toolchain: "rustc 1.64.0" },
    { language: "c" },
    { entry: "main.rs" },
    { abi: "wagi" },
    { memoryPages: 17 },
    { runtime: "wasm-aot", optimizer: "binaryen 132.0.0" },
  ];
  const keys = new Set(variants.map((v) => cacheKey({ ...base, ...v })));
  t.is(keys.size, variants.length);
  t.false(keys.has(key));
});

test("rust: reads the Cargo.toml subset a dependency-free crate needs", (t) => {
  const toml = parseCargoToml(
    '[package]\nname = "greet-rust" # the name\nedition = "2021"\n\n[lib]\ncrate-type = ["cdylib"]\npath = \'src/x.rs\'\n[[bin]]\nname = "a"\n[[bin]]\nname = "b"\n[dependencies]\n',
    "fn/Cargo.toml",
  );
  t.is(toml.get("package")!.get("name"), "greet-rust");
  t.is(toml.get("package")!.get("edition"), "2021");
  t.is(toml.get("lib")!.get("path"), "src/x.rs");
  t.is(toml.get("bin")!.get("name"), "a");
  t.is(toml.get("dependencies")!.size, 0);
  const err = t.throws(() => parseCargoToml("[package]\nname: nope\n", "fn/Cargo.toml"), {
    instanceOf: EdgeError,
  });
  t.is(err!.details![0]!.where, "fn/Cargo.toml:2:1");
});

test("diagnostics: rustc JSON and clang text become repository paths with line and column", (t) => {
  const rustc = [
    JSON.stringify({
      message: "mismatched types",
      code: { code: "E0308" },
      level: "error",
      spans: [{ file_name: "src/lib.rs", line_start: 3, column_start: 18, is_primary: true }],
    }),
    JSON.stringify({ message: "unused variable", code: null, level: "warning", spans: [] }),
    JSON.stringify({ message: "aborting due to previous error", code: null, level: "error", spans: [] }),
  ].join("\n");
  t.deepEqual(parseRustcDiagnostics(rustc, "fns/greet", "/build/src"), [
    { where: "fns/greet/src/lib.rs:3:18", message: "E0308: mismatched types" },
  ]);
  const clang =
    "hello.c:2:10: error: use of undeclared identifier 'missing'\n/build/src/inc/x.h:1:1: fatal error: 'y.h' file not found\nhello.c:1:1: warning: w\nwasm-ld-14: error: /tmp/hello-815eb6.o: undefined symbol: g\nclang: error: linker command failed with exit code 1 (use -v to see invocation)\n";
  t.deepEqual(parseClangDiagnostics(clang, "c", "/build/src"), [
    { where: "c/hello.c:2:10", message: "use of undeclared identifier 'missing'" },
    { where: "c/inc/x.h:1:1", message: "'y.h' file not found" },
    { where: "link", message: "undefined symbol: g" },
  ]);
});

test("builder: native toolchains get a stack of a quarter of the memory, between 16 KiB and 1 MiB", (t) => {
  t.is(stackBytes(1), 16 * 1024);
  t.is(stackBytes(16), 256 * 1024);
  t.is(stackBytes(1024), 1024 * 1024);
});

test("source hash: changes with any file's content or name, and never follows symlinks", async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const fn = path.join(tmp.dir, "fn");
  await mkdir(path.join(fn, "lib"), { recursive: true });
  await writeFile(path.join(fn, "index.ts"), "a");
  await writeFile(path.join(fn, "lib/x.ts"), "b");
  const h1 = await hashSourceTree(fn);
  t.is(await hashSourceTree(fn), h1);
  await writeFile(path.join(fn, "lib/x.ts"), "c");
  const h2 = await hashSourceTree(fn);
  t.not(h2, h1);
  await writeFile(path.join(tmp.dir, "outside.txt"), "x");
  await symlink(path.join(tmp.dir, "outside.txt"), path.join(fn, "link"));
  const h3 = await hashSourceTree(fn);
  t.not(h3, h2);
  await writeFile(path.join(tmp.dir, "outside.txt"), "changed");
  t.is(await hashSourceTree(fn), h3, "a symlink's target content is not part of the hash");
});
