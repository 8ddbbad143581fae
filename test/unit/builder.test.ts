import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import { buildFunction, hashSourceTree, readMemoryLimits, validateModule } from "../../builder/index.ts";
import { EdgeError } from "../../lib/errors.ts";
import { sha256Hex } from "../../lib/hash.ts";
import { tempDir } from "../helpers/tmp.ts";
import { wasmModule } from "../helpers/wasm-bytes.ts";

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
});

test("builder: AssemblyScript cannot import files from outside the repository", async (t) => {
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

test("builder: languages without a toolchain yet fail with a clear error", async (t) => {
  const err = await t.throwsAsync(
    buildFunction({
      repoDir: "example-repo",
      sourceDir: "hello",
      language: "rust",
      abi: "wagi",
      memoryPages: 4,
    }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_UNSUPPORTED");
  t.regex(err!.message, /language "rust" is not supported/);
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
    ],
  });
  const err = t.throws(() => validateModule(bytes, "edge-v1", 1), { instanceOf: EdgeError });
  t.is(err!.code, "EDGE_ERR_BUILD_INVALID_MODULE");
  t.deepEqual(
    err!.details!.map((d) => d.message),
    [
      'imports "env.abort": only the "edge" and "wasi_snapshot_preview1" modules are provided',
      'imports "edge.open_socket" (function), which the edge-v1 ABI does not provide',
    ],
  );
});

test("validate: rejects a module without the ABI's entry point or with the other lane's", (t) => {
  t.regex(
    t.throws(() => validateModule(wasmModule({ exports: ["memory", "main"] }), "edge-v1", 1))!.message,
    /exports neither "edge_handle" \(edge-v1\) nor "_start" \(wagi\)/,
  );
  t.regex(
    t.throws(() => validateModule(wasmModule({ exports: ["memory", "_start"] }), "edge-v1", 1))!.message,
    /exports the wagi entry point but the manifest says abi: edge-v1/,
  );
});

test("validate: rejects memory beyond memoryPages, or without a maximum", (t) => {
  t.regex(
    t.throws(() => validateModule(wasmModule({ memory: { initial: 8, maximum: 8 } }), "edge-v1", 4))!.message,
    /starts with 8 memory pages; limits\.memoryPages is 4/,
  );
  t.regex(
    t.throws(() => validateModule(wasmModule({ memory: { initial: 1 } }), "edge-v1", 4))!.message,
    /memory maximum of none/,
  );
});

test("validate: rejects bytes that are not WebAssembly", (t) => {
  t.is(
    t.throws(() => validateModule(new TextEncoder().encode("not wasm"), "edge-v1", 1), {
      instanceOf: EdgeError,
    })!.code,
    "EDGE_ERR_BUILD_INVALID_MODULE",
  );
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
