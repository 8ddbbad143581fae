// The S3 artifact store against a real S3-compatible server (s3rver) on loopback.

import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:net";
import test from "ava";
import fc from "fast-check";
import S3rver from "s3rver";
import { artifactKey, S3ArtifactStore, type S3StoreOptions } from "../../builder/index.ts";
import { EdgeError } from "../../lib/errors.ts";
import { tempDir } from "../helpers/tmp.ts";

// s3rver knows one account, S3RVER/S3RVER, and refuses any other access key.
const BUCKET = "artifacts";
let endpoint = "";
/** "METHOD /path" of every request s3rver received, to tell a skipped upload from a repeated one. */
const requests: string[] = [];
const stores: S3ArtifactStore[] = [];

function store(options: Partial<S3StoreOptions> = {}): S3ArtifactStore {
  const s = new S3ArtifactStore({
    bucket: BUCKET,
    endpoint,
    forcePathStyle: true,
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    ...options,
  });
  stores.push(s);
  return s;
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

test.before(async (t) => {
  const tmp = await tempDir("edgeplane-s3-");
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory: tmp.dir,
    configureBuckets: [{ name: BUCKET }],
  });
  const { port } = await server.run();
  server.httpServer.on("request", (req) => requests.push(`${req.method} ${req.url?.split("?")[0]}`));
  endpoint = `http://127.0.0.1:${port}`;
  t.context = { server, tmp };
});

test.after.always(async (t) => {
  for (const s of stores) s.close();
  const { server, tmp } = t.context as { server: S3rver; tmp: { remove: () => Promise<void> } };
  server.httpServer.closeAllConnections();
  await server.close();
  await tmp.remove();
});

test("s3 store: put then get returns the same bytes and put reports their sha256 and size", async (t) => {
  const s = store();
  const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 255]);
  const key = artifactKey("fn-roundtrip", "1");
  const stored = await s.put(key, bytes);
  t.deepEqual(stored, { key, sha256: sha256(bytes), size: bytes.byteLength });
  const got = await s.get(key);
  t.deepEqual(Buffer.from(got), Buffer.from(bytes));
  t.is(sha256(got), stored.sha256);
});

test("s3 store: keys live under the prefix, and a store without it does not see them", async (t) => {
  const prefixed = store({ prefix: "/team-a/prod/" });
  const key = artifactKey("fn-prefix", "1");
  await prefixed.put(key, new Uint8Array([1, 2, 3]));
  t.deepEqual(Buffer.from(await prefixed.get(key)), Buffer.from([1, 2, 3]));
  t.regex(await prefixed.url(key), /\/artifacts\/team-a\/prod\/functions\/fn-prefix\/1\.wasm\?/);
  const err = await t.throwsAsync(store().get(key), { instanceOf: EdgeError });
  t.is(err?.code, "EDGE_ERR_ARTIFACT_NOT_FOUND");
});

test("s3 store: a second put of the same bytes is a no-op that succeeds", async (t) => {
  const s = store();
  const bytes = new Uint8Array([7, 7, 7]);
  const key = artifactKey("fn-idempotent", "2");
  const uploads = () => requests.filter((r) => r === `PUT /${BUCKET}/${key}`).length;
  const first = await s.put(key, bytes);
  t.is(uploads(), 1);
  const second = await s.put(key, bytes);
  t.deepEqual(second, first);
  t.is(uploads(), 1);
  t.deepEqual(Buffer.from(await s.get(key)), Buffer.from(bytes));
});

test("s3 store: a put of different bytes under an existing key is refused and the stored bytes stay", async (t) => {
  const s = store();
  const key = artifactKey("fn-immutable", "3");
  const original = await s.put(key, new Uint8Array([1]));
  const err = await t.throwsAsync(s.put(key, new Uint8Array([2])), { instanceOf: EdgeError });
  t.is(err?.code, "EDGE_ERR_ARTIFACT_STORE");
  t.regex(err!.message, /immutable/);
  t.true(err!.message.includes(original.sha256));
  t.deepEqual(Buffer.from(await s.get(key)), Buffer.from([1]));
});

test("s3 store: get of a missing key reports EDGE_ERR_ARTIFACT_NOT_FOUND", async (t) => {
  const err = await t.throwsAsync(store().get(artifactKey("fn-missing", "1")), { instanceOf: EdgeError });
  t.is(err?.code, "EDGE_ERR_ARTIFACT_NOT_FOUND");
  t.is(err?.status, 404);
});

test("s3 store: keys that are not artifact keys are rejected before any request", async (t) => {
  const s = store();
  for (const key of ["../etc/passwd", "functions/a/b.txt", "functions/a/../b.wasm", "x/functions/a/1.wasm"]) {
    const err = await t.throwsAsync(s.get(key), { instanceOf: EdgeError });
    t.is(err?.code, "EDGE_ERR_ARTIFACT_NOT_FOUND", key);
    await t.throwsAsync(s.put(key, new Uint8Array([1])), { instanceOf: EdgeError });
    await t.throwsAsync(s.url(key), { instanceOf: EdgeError });
  }
  t.false(requests.some((r) => /passwd|b\.txt|\/x\/functions/.test(r)));
});

// s3rver does not check SigV4 signatures or expiry, so only the URL's X-Amz-Expires is checked here.
test("s3 store: the presigned url downloads the exact bytes with plain fetch and is signed for presignExpiresSeconds", async (t) => {
  const s = store({ presignExpiresSeconds: 120 });
  const bytes = new Uint8Array(4096).map((_, i) => (i * 31) % 256);
  const key = artifactKey("fn-url", "1.0.0");
  const stored = await s.put(key, bytes);
  const url = await s.url(key);
  t.is(new URL(url).searchParams.get("X-Amz-Expires"), "120");
  const res = await fetch(url);
  t.is(res.status, 200);
  t.is(res.headers.get("content-type"), "application/wasm");
  const downloaded = new Uint8Array(await res.arrayBuffer());
  t.deepEqual(Buffer.from(downloaded), Buffer.from(bytes));
  t.is(sha256(downloaded), stored.sha256);
  t.is(new URL(await store().url(key)).searchParams.get("X-Amz-Expires"), "900");
});

test("s3 store: with the server down, put and get fail with EDGE_ERR_ARTIFACT_STORE within seconds, naming the bucket", async (t) => {
  // A port that was just free and is now closed: connections to it are refused.
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, "close");
  const s = store({ endpoint: `http://127.0.0.1:${port}` });
  const key = artifactKey("fn-down", "1");
  for (const attempt of [() => s.put(key, new Uint8Array([1])), () => s.get(key)]) {
    const started = Date.now();
    const err = await t.throwsAsync(attempt(), { instanceOf: EdgeError });
    t.true(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    t.is(err?.code, "EDGE_ERR_ARTIFACT_STORE");
    t.regex(err!.message, /s3:\/\/artifacts\/functions\/fn-down\/1\.wasm/);
    t.regex(err!.message, /connection refused/);
    t.notRegex(err!.message, /\n\s+at /);
    t.truthy(err!.cause);
  }
});

// **Feature: wasmEdge-edge-functions, Property 2: artifact SHA256 verification round trip**
// **Validates: Requirements 1.2, 10.1, 10.2**
test("s3 store: for any bytes, the sha256 put returns equals the sha256 of the bytes downloaded through url()", async (t) => {
  const s = store();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (bytes) => {
      const key = artifactKey("fn-property", `${n++}`);
      const stored = await s.put(key, bytes);
      const res = await fetch(await s.url(key));
      if (res.status !== 200) return false;
      const downloaded = new Uint8Array(await res.arrayBuffer());
      return stored.sha256 === sha256(downloaded) && stored.sha256 === sha256(bytes);
    }),
    { numRuns: 100 },
  );
  t.pass();
});
