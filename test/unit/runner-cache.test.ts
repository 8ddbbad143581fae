import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { ArtifactCache } from "../../edge-runner/cache.ts";
import { EdgeError } from "../../lib/errors.ts";
import { sha256Hex } from "../../lib/hash.ts";

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "edge-cache-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const moduleBytes = Buffer.from("\0asm\x01\0\0\0fake module bytes");
const sha = sha256Hex(moduleBytes);

test("cache: put then get returns the same bytes from {dir}/{functionId}/{version}.wasm", async (t) => {
  const dir = await tempDir(t);
  const cache = new ArtifactCache(dir);
  const path = await cache.put("fn-1", "v1", moduleBytes, sha);
  t.is(path, join(dir, "fn-1", "v1.wasm"));
  t.deepEqual(await readFile(path), moduleBytes);
  t.deepEqual(Buffer.from((await cache.get("fn-1", "v1", sha))!), moduleBytes);
  // No temp files left behind next to the final file.
  t.deepEqual(await readdir(join(dir, "fn-1")), ["v1.wasm"]);
});

test("cache: get of a version never stored is null", async (t) => {
  const cache = new ArtifactCache(await tempDir(t));
  t.is(await cache.get("fn-1", "v1", sha), null);
});

test("cache: a sha256 mismatch throws EDGE_ERR_ARTIFACT_SHA256_MISMATCH and writes nothing", async (t) => {
  const dir = await tempDir(t);
  const cache = new ArtifactCache(dir);
  const err = await t.throwsAsync(cache.put("fn-1", "v1", moduleBytes, sha256Hex("other bytes")), {
    instanceOf: EdgeError,
  });
  t.is(err?.code, "EDGE_ERR_ARTIFACT_SHA256_MISMATCH");
  t.deepEqual(await readdir(dir), []);
  t.deepEqual(await cache.list(), []);
});

test("cache: a corrupt file is deleted on get and reads as absent", async (t) => {
  const dir = await tempDir(t);
  const cache = new ArtifactCache(dir);
  const path = await cache.put("fn-1", "v1", moduleBytes, sha);
  await writeFile(path, "flipped bits");
  t.is(await cache.get("fn-1", "v1", sha), null);
  await t.throwsAsync(readFile(path), { code: "ENOENT" });
  t.deepEqual(cache.held(), []);
});

test("cache: a new cache object on the same dir lists what was stored, with on-disk hashes", async (t) => {
  const dir = await tempDir(t);
  const first = new ArtifactCache(dir);
  const other = Buffer.from("second module");
  await first.put("fn-1", "v1", moduleBytes, sha);
  await first.put("fn-1", "v2", other, sha256Hex(other));
  await first.put("fn-2", "1.0.0", moduleBytes, sha.toUpperCase());
  // A temp file from a crash mid-put is not inventory.
  await writeFile(join(dir, "fn-2", ".tmp-1.0.1-deadbeef"), "partial");

  const restarted = new ArtifactCache(dir);
  t.deepEqual(restarted.held(), []);
  const expected = [
    { function_id: "fn-1", version: "v1", sha256: sha },
    { function_id: "fn-1", version: "v2", sha256: sha256Hex(other) },
    { function_id: "fn-2", version: "1.0.0", sha256: sha },
  ];
  t.deepEqual(await restarted.list(), expected);
  t.deepEqual(restarted.held(), expected);
});

test("cache: list of a directory that does not exist yet is empty", async (t) => {
  const cache = new ArtifactCache(join(await tempDir(t), "not-yet"));
  t.deepEqual(await cache.list(), []);
});

test("cache: refuses ids that could escape the cache directory", async (t) => {
  const dir = await tempDir(t);
  const cache = new ArtifactCache(join(dir, "cache"));
  for (const [id, version] of [
    ["..", "v1"],
    ["fn", "../../escape"],
    ["a/b", "v1"],
    [".hidden", "v1"],
  ] as const) {
    const err = await t.throwsAsync(cache.put(id, version, moduleBytes, sha), { instanceOf: EdgeError });
    t.is(err?.code, "EDGE_ERR_ARTIFACT_STORE");
  }
  t.deepEqual(await readdir(dir), []);
});
