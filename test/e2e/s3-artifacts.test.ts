// The control plane with the S3 artifact store (a real s3rver on loopback): a reconcile stores
// the artifact in the bucket, and the runner downloads it through a presigned URL and serves it.

import { cp as copy, mkdtemp, readdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import path from "node:path";
import test from "ava";
import S3rver from "s3rver";
import { createRunner } from "../../edge-runner/index.ts";
import { createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { request } from "../helpers/http.ts";
import { tempDir } from "../helpers/tmp.ts";

test("e2e (s3): artifacts go to the bucket and the runner fetches them by presigned URL", async (t) => {
  const tmp = await tempDir();
  const s3 = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory: await mkdtemp(path.join(tmp.dir, "s3-")),
    configureBuckets: [{ name: "artifacts" }],
  });
  const { port: s3Port } = (await s3.run()) as AddressInfo;
  const { schema, drop } = await freshSchema();
  const repo = path.join(tmp.dir, "repo");
  await copy("example-repo", repo, { recursive: true });
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    s3: {
      bucket: "artifacts",
      prefix: "edge",
      endpoint: `http://127.0.0.1:${s3Port}`,
      forcePathStyle: true,
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
    },
    projects: [{ name: "example", repo, source: "directory" }],
  });
  await cp.start();
  const runner = createRunner({
    nodeId: "s3-1",
    pop: "test-1",
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir: path.join(tmp.dir, "cache"),
    control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
  });
  const { httpPort } = await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await cp.stop();
    await s3.close();
    await drop();
    await tmp.remove();
  });

  const id = await cp.reconciler.enqueue("example", { commit: null, trigger: "api", actor: "test" });
  const row = await cp.reconciler.wait(id);
  t.is(row.status, "succeeded", JSON.stringify(row.error));
  const generation = (row.result as { generation: number }).generation;
  t.true(await cp.control.waitForAcks(generation, 10_000));

  const res = await request(httpPort, "hello.localhost", "/?name=s3");
  t.is(res.status, 200);
  t.is(res.text, "Hello, s3! (from edgeplane, GET /)\n");
  // Stored in the bucket under the prefix, not in the local artifact directory.
  const [fn] = await cp.db.query<{ id: string; sha256: string }>("SELECT id, sha256 FROM functions");
  const head = await fetch(`http://127.0.0.1:${s3Port}/artifacts/edge/functions/${fn!.id}/1.wasm`, {
    method: "HEAD",
  });
  t.is(head.status, 200);
  t.is(head.headers.get("x-amz-meta-sha256"), fn!.sha256.trim());
  await t.throwsAsync(readdir(path.join(tmp.dir, "cp", "artifacts")));
  const [inv] = await cp.db.query<{ status: string }>(
    "SELECT status FROM node_inventory WHERE node_id = 's3-1'",
  );
  t.is(inv!.status, "OK");
});
