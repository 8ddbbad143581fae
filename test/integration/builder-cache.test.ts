// The build cache with real builds: an unchanged function is not rebuilt (and says so), any
// change of its sources or of a setting that changes the bytes rebuilds it, and a damaged
// cache entry is rebuilt rather than served.

import { cp, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import { type BuildInput, buildFunction } from "../../builder/index.ts";
import { tempDir } from "../helpers/tmp.ts";

async function setup() {
  const tmp = await tempDir();
  const repo = path.join(tmp.dir, "repo");
  await cp("example-repo/hello-c", path.join(repo, "hello-c"), { recursive: true });
  const input: BuildInput = {
    repoDir: repo,
    sourceDir: "hello-c",
    language: "c",
    abi: "edge-v1",
    memoryPages: 8,
    options: { cacheDir: path.join(tmp.dir, "cache") },
  };
  return { tmp, repo, input, cacheDir: path.join(tmp.dir, "cache") };
}

test("build cache: an unchanged function is served from the cache, byte for byte, and the hit is recorded", async (t) => {
  const { tmp, input } = await setup();
  t.teardown(tmp.remove);
  const cold = await buildFunction(input);
  t.false(cold.cacheHit);
  t.regex(cold.cacheKey!, /^[0-9a-f]{64}$/);
  const warm = await buildFunction(input);
  t.true(warm.cacheHit);
  t.is(warm.cacheKey, cold.cacheKey);
  t.is(warm.sha256, cold.sha256);
  t.deepEqual(warm.bytes, cold.bytes);
  t.deepEqual(warm.facts, cold.facts);
  t.is(warm.toolchain, cold.toolchain);
});

test("build cache: a changed source file or a changed memoryPages, abi-relevant setting or runtime rebuilds", async (t) => {
  const { tmp, repo, input } = await setup();
  t.teardown(tmp.remove);
  const first = await buildFunction(input);
  const pages = await buildFunction({ ...input, memoryPages: 9 });
  t.false(pages.cacheHit);
  t.not(pages.cacheKey, first.cacheKey);
  const aot = await buildFunction({ ...input, runtime: "wasm-aot" });
  t.false(aot.cacheHit);
  t.truthy(aot.optimized);
  const aotAgain = await buildFunction({ ...input, runtime: "wasm-aot" });
  t.true(aotAgain.cacheHit);
  t.deepEqual(aotAgain.optimized, aot.optimized, "what the optimiser did is recorded with the cached entry");

  const file = path.join(repo, "hello-c/hello.c");
  await writeFile(
    file,
    (await readFile(file, "utf8")).replace('\\r\\nHello from C! "', '\\r\\nHi from C! "'),
  );
  const edited = await buildFunction(input);
  t.false(edited.cacheHit);
  t.not(edited.sha256, first.sha256);
  t.true((await buildFunction(input)).cacheHit);
});

test("build cache: a damaged entry is not served; the function is rebuilt and the entry repaired", async (t) => {
  const { tmp, input, cacheDir } = await setup();
  t.teardown(tmp.remove);
  const first = await buildFunction(input);
  const shard = path.join(cacheDir, first.cacheKey!.slice(0, 2));
  t.deepEqual((await readdir(shard)).sort(), [`${first.cacheKey}.json`, `${first.cacheKey}.wasm`]);
  const wasm = path.join(shard, `${first.cacheKey}.wasm`);
  const bytes = await readFile(wasm);
  bytes[bytes.length - 1] ^= 0xff;
  await writeFile(wasm, bytes);
  const rebuilt = await buildFunction(input);
  t.false(rebuilt.cacheHit);
  t.is(rebuilt.sha256, first.sha256);
  t.true((await buildFunction(input)).cacheHit);
});
