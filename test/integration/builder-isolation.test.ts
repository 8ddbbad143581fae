// Build isolation with real processes: each build runs in a child process with a time limit and
// a memory limit, in a scratch directory outside the checkout; native compilers run in
// bubblewrap and cannot read outside the function's copy; the repository is never written.

import { mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import { buildFunction, hashSourceTree } from "../../builder/index.ts";
import { EdgeError } from "../../lib/errors.ts";
import { tempDir } from "../helpers/tmp.ts";

async function repoWith(root: string, files: Record<string, string>): Promise<string> {
  const repo = path.join(root, "repo");
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(repo, rel)), { recursive: true });
    await writeFile(path.join(repo, rel), content);
  }
  return repo;
}

/** A preprocessor expression of 2^40 tokens: clang works on it for hours, allocating little. */
const SLOW_C = [
  "#define A0 1+1",
  ...Array.from({ length: 40 }, (_, i) => `#define A${i + 1} A${i}+A${i}`),
  "#if A40 > 0",
  "int x;",
  "#endif",
  "int edge_handle(void) { return 0; }",
  "",
].join("\n");

test("isolation: a build past the time limit is killed and reported as EDGE_ERR_BUILD_TIMEOUT", async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const repo = await repoWith(tmp.dir, { "slow/slow.c": SLOW_C });
  const scratchDir = path.join(tmp.dir, "scratch");
  await mkdir(scratchDir);
  const started = Date.now();
  const err = await t.throwsAsync(
    buildFunction({
      repoDir: repo,
      sourceDir: "slow",
      language: "c",
      abi: "edge-v1",
      memoryPages: 2,
      options: { timeout: "3s", scratchDir },
    }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_TIMEOUT");
  t.regex(err!.message, /time limit of 3 s/);
  t.true(Date.now() - started < 20_000, "killed at the limit, not when clang gave up");
  t.deepEqual(await readdir(scratchDir), [], "the scratch directory is removed");
});

test("isolation: a compiler past the memory limit is stopped and reported as EDGE_ERR_BUILD_OUT_OF_MEMORY", async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  // include_bytes! of /dev/zero: rustc reads an endless file into memory.
  const repo = await repoWith(tmp.dir, {
    "zero/lib.rs":
      'static Z: &[u8] = include_bytes!("/dev/zero");\n#[no_mangle]\npub extern "C" fn edge_handle() -> i32 { Z[0] as i32 }\n',
  });
  const err = await t.throwsAsync(
    buildFunction({
      repoDir: repo,
      sourceDir: "zero",
      language: "rust",
      abi: "edge-v1",
      memoryPages: 2,
      options: { compilerMemory: "768MiB" },
    }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_OUT_OF_MEMORY");
  t.regex(err!.message, /^rustc ran out of the build memory limit of 768 MiB/);
});

test("isolation: the build worker's heap is limited too", async (t) => {
  const err = await t.throwsAsync(
    buildFunction({
      repoDir: "example-repo",
      sourceDir: "hello",
      language: "assemblyscript",
      abi: "edge-v1",
      memoryPages: 16,
      options: { workerHeap: "8MiB" },
    }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_OUT_OF_MEMORY");
  t.regex(err!.message, /worker heap limit of 8 MiB/);
});

test("isolation: native compilers cannot read files outside the function's directory", async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const secret = path.join(tmp.dir, "secret.h");
  await writeFile(secret, "int secret = 42;\n");
  const repo = await repoWith(tmp.dir, {
    "c/main.c": `#include "${secret}"\nint edge_handle(void) { return secret; }\n`,
    "c-rel/main.c": '#include "../../secret.h"\nint edge_handle(void) { return secret; }\n',
    "rs/lib.rs": `#![no_std]\n#[panic_handler]\nfn p(_: &core::panic::PanicInfo) -> ! { loop {} }\nstatic S: &str = include_str!("${secret}");\n#[no_mangle]\npub extern "C" fn edge_handle() -> i32 { S.len() as i32 }\n`,
  });
  for (const [sourceDir, language] of [
    ["c", "c"],
    ["c-rel", "c"],
    ["rs", "rust"],
  ] as const) {
    const err = await t.throwsAsync(
      buildFunction({ repoDir: repo, sourceDir, language, abi: "edge-v1", memoryPages: 2 }),
      { instanceOf: EdgeError },
      sourceDir,
    );
    t.is(err!.code, "EDGE_ERR_BUILD_COMPILE", sourceDir);
    t.regex(err!.message, /not found|No such file/i, sourceDir);
    t.regex(err!.details![0]!.where!, new RegExp(`^${sourceDir}/(main\\.c|lib\\.rs):\\d+:\\d+$`), sourceDir);
  }
});

test("isolation: a symlink leading outside the repository is refused; one inside it is followed", async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  await writeFile(path.join(tmp.dir, "outside.wat"), "(module)");
  const repo = await repoWith(tmp.dir, {
    "shared/module.wat":
      '(module (memory (export "memory") 1) (func (export "edge_handle") (result i32) i32.const 0))',
    "inside/.keep": "",
    "outside/.keep": "",
  });
  await symlink(path.join(tmp.dir, "outside.wat"), path.join(repo, "outside/module.wat"));
  await symlink("../shared/module.wat", path.join(repo, "inside/module.wat"));
  const err = await t.throwsAsync(
    buildFunction({ repoDir: repo, sourceDir: "outside", language: "wat", abi: "edge-v1", memoryPages: 1 }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_BUILD_COMPILE");
  t.is(
    err!.message,
    "outside/module.wat: symlink leads outside the repository; a build reads only files inside it",
  );
  const ok = await buildFunction({
    repoDir: repo,
    sourceDir: "inside",
    language: "wat",
    abi: "edge-v1",
    memoryPages: 1,
  });
  t.true(ok.facts.exports.includes("edge_handle"));
});

test("isolation: builds leave the repository checkout untouched and run outside it", async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const repo = await repoWith(tmp.dir, {
    "fn/Cargo.toml": '[package]\nname = "fn"\nedition = "2021"\n',
    "fn/src/lib.rs":
      '#![no_std]\n#[panic_handler]\nfn p(_: &core::panic::PanicInfo) -> ! { loop {} }\n#[no_mangle]\npub extern "C" fn edge_handle() -> i32 { 0 }\n',
    "c/main.c": "int edge_handle(void) { return 0; }\n",
  });
  const before = await hashSourceTree(repo);
  await buildFunction({ repoDir: repo, sourceDir: "fn", language: "rust", abi: "edge-v1", memoryPages: 2 });
  await buildFunction({ repoDir: repo, sourceDir: "c", language: "c", abi: "edge-v1", memoryPages: 2 });
  t.is(await hashSourceTree(repo), before, "no file was written, changed or added in the checkout");
  const err = await t.throwsAsync(
    buildFunction({
      repoDir: repo,
      sourceDir: "c",
      language: "c",
      abi: "edge-v1",
      memoryPages: 2,
      options: { scratchDir: path.join(repo, "c") },
    }),
    { instanceOf: EdgeError },
  );
  t.is(err!.code, "EDGE_ERR_CONFIG_INVALID");
  t.regex(err!.message, /inside the repository checkout/);
});
