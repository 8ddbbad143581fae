// Faults: the S3 artifact store (a real s3rver on loopback) stopped under a running system
// (issue 9). Stopped while a reconcile builds and uploads: the reconcile fails after the SDK's
// bounded retries with an EDGE_ERR_ARTIFACT_* error naming the cause, the commit status says so,
// and the runner keeps serving the previous version. Stopped while the runner downloads: the
// runner retries (bounded), acks DOWNLOAD_FAILED, the POP's commit status is failure, and the
// previous version keeps serving. When S3 is back, the next push applies and is served.

import { mkdtemp } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import path from "node:path";
import test, { type ExecutionContext } from "ava";
import S3rver from "s3rver";
import { createRunner } from "../../edge-runner/index.ts";
import { createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo } from "../helpers/git.ts";
import { request } from "../helpers/http.ts";
import { startRecorder } from "../helpers/recorder.ts";
import { tempDir } from "../helpers/tmp.ts";

const EXAMPLE = path.resolve("example-repo/hello");
const MANIFEST = `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec:
  domains: [acme.test]
---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: hello }
spec:
  source: { path: ./hello, language: assemblyscript }
  routes:
    - { host: hello.acme.test, path: /* }
`;
const handler = (greeting: string) => `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("${greeting} " + req.path));
}
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** s3rver that can be stopped and started again on the same port with the same data. */
async function startS3(dir: string) {
  let server: S3rver | null = null;
  let port = 0;
  const s3 = {
    port: 0,
    onRequest: null as null | ((req: import("node:http").IncomingMessage) => void),
    async start() {
      server = new S3rver({
        address: "127.0.0.1",
        port,
        silent: true,
        directory: dir,
        configureBuckets: [{ name: "artifacts" }],
      });
      port = ((await server.run()) as AddressInfo).port;
      s3.port = port;
      server.httpServer.prependListener("request", (req) => s3.onRequest?.(req));
    },
    async stop() {
      const s = server;
      server = null;
      if (!s) return;
      s.httpServer.closeAllConnections();
      await s.close();
    },
  };
  await s3.start();
  return s3;
}

async function setup(t: ExecutionContext) {
  const tmp = await tempDir();
  const s3 = await startS3(await mkdtemp(path.join(tmp.dir, "s3-")));
  const rec = await startRecorder();
  const { schema, drop } = await freshSchema();
  const repo = await createTestRepo(tmp.dir);
  await repo.copyIn(EXAMPLE, "hello");
  const sha1 = await repo.commit({ "edge.yaml": MANIFEST, "hello/index.ts": handler("v1") }, "v1");
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0s",
    ackTimeout: "15s",
    github: { apiBase: `${rec.url}/github`, token: "gh-token" },
    s3: {
      bucket: "artifacts",
      endpoint: `http://127.0.0.1:${s3.port}`,
      forcePathStyle: true,
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
    },
    projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site" }],
  });
  await cp.start();
  const retries: { attempt: number; at: number }[] = [];
  const runner = createRunner({
    nodeId: "s3-fault-1",
    pop: "test-1",
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir: path.join(tmp.dir, "runner-cache"),
    control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
    reconnectMinDelay: "50ms",
    heartbeatInterval: "200ms",
    // Short delays so the test does not wait for the production 1 s, 2 s, 4 s, 8 s.
    downloadAttempts: 4,
    downloadRetryMinDelay: "100ms",
    downloadRetryMaxDelay: "400ms",
  });
  const { httpPort } = await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await cp.stop();
    await s3.stop();
    await rec.close();
    await drop();
    await tmp.remove();
  });
  const reconcile = async (commit: string) =>
    cp.reconciler.wait(await cp.reconciler.enqueue("acme", { commit, trigger: "api", actor: "test" }));
  const first = await reconcile(sha1);
  t.is(first.status, "succeeded", JSON.stringify(first.error));
  t.true(await cp.control.waitForAcks((first.result as { generation: number }).generation, 15_000));
  t.is((await request(httpPort, "hello.acme.test", "/x")).text, "v1 /x");
  /** The last commit status of `context` GitHub got for `sha`. */
  const statusOf = (sha: string, context: string) => {
    const calls = rec.calls
      .filter((c) => c.path === `/github/repos/acme/site/statuses/${sha}`)
      .map((c) => JSON.parse(c.body) as { state: string; context: string; description: string })
      .filter((s) => s.context === context);
    return calls.at(-1) ?? null;
  };
  return { tmp, s3, rec, repo, cp, runner, httpPort, reconcile, statusOf, retries };
}

/** Requests to the runner until stopped; counts answers other than `<greeting> /load`. */
function loadRunner(port: number, greeting: string) {
  let stop = false;
  const counts = { ok: 0, failed: 0 };
  const done = (async () => {
    while (!stop) {
      const res = await request(port, "hello.acme.test", "/load").catch(() => null);
      if (res?.status === 200 && res.text === `${greeting} /load`) counts.ok++;
      else counts.failed++;
      await sleep(20);
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await done.catch(() => {});
      return counts;
    },
  };
}

async function eventually<T>(
  what: string,
  fn: () => Promise<T | null | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

test.serial(
  "faults (s3): S3 stopped while a reconcile builds: bounded retries, a failed reconcile naming the cause, v1 keeps serving, the next push applies once S3 is back",
  async (t) => {
    const { s3, repo, cp, httpPort, reconcile, statusOf } = await setup(t);
    const sha2 = await repo.commit({ "hello/index.ts": handler("v2") }, "v2");
    const load = loadRunner(httpPort, "v1");
    t.teardown(async () => void (await load.stop()));
    // Stop S3 as soon as the reconcile is running (checking out and building), before it uploads.
    const id = await cp.reconciler.enqueue("acme", { commit: sha2, trigger: "api", actor: "test" });
    await eventually("the reconcile running", async () => {
      const [row] = await cp.db.query<{ status: string }>(
        "SELECT status FROM reconciliations WHERE id = $1",
        [id],
      );
      return row?.status === "running";
    });
    await s3.stop();
    const stoppedAt = Date.now();
    const failed = await cp.reconciler.wait(id);
    const failedMs = Date.now() - stoppedAt;
    t.is(failed.status, "failed");
    t.is(failed.error?.code, "EDGE_ERR_ARTIFACT_STORE");
    // The message names the cause (the store, the object, the network condition, the tries).
    t.regex(
      failed.error!.message,
      /s3:\/\/artifacts\/functions\/.*connection refused \(ECONNREFUSED\), after 3 tries/,
    );
    await cp.settled();
    const status = statusOf(sha2, "edgeplane");
    t.is(status?.state, "failure");
    t.regex(status!.description, /^EDGE_ERR_ARTIFACT_STORE: /);
    // Nothing was applied: v1 is still the only version, still served.
    const versions = await cp.db.query<{ version: number }>("SELECT version FROM functions ORDER BY version");
    t.deepEqual(
      versions.map((v) => v.version),
      [1],
    );
    t.is((await request(httpPort, "hello.acme.test", "/x")).text, "v1 /x");

    // S3 back: the next push (a webhook's reconcile) applies and the runner serves it.
    await s3.start();
    const sha3 = await repo.commit({ "hello/index.ts": handler("v3") }, "v3");
    const counts = await load.stop();
    const ok = await reconcile(sha3);
    t.is(ok.status, "succeeded", JSON.stringify(ok.error));
    t.true(await cp.control.waitForAcks((ok.result as { generation: number }).generation, 15_000));
    t.is((await request(httpPort, "hello.acme.test", "/x")).text, "v3 /x");
    t.is(counts.failed, 0, "v1 served throughout the outage");
    t.log(
      `upload: failed ${failedMs} ms after S3 stopped (${failed.error?.message}); ` +
        `runner requests during the outage: ${counts.ok} ok, ${counts.failed} failed`,
    );
  },
);

test.serial(
  "faults (s3): S3 stopped while the runner downloads: bounded retries, DOWNLOAD_FAILED ack and a failed POP status, v1 keeps serving, recovery once S3 is back",
  async (t) => {
    const { s3, repo, cp, runner, httpPort, reconcile, statusOf } = await setup(t);
    const load = loadRunner(httpPort, "v1");
    t.teardown(async () => void (await load.stop()));
    // The moment the runner's GET of the new artifact reaches S3, cut that connection and stop
    // S3: the download is under way when the store goes away.
    let cutAt = 0;
    let gets = 0;
    s3.onRequest = (req) => {
      if (req.method !== "GET" || !/\/functions\/.*X-Amz-Signature/i.test(req.url ?? "")) return;
      gets++;
      // Every try that still reaches S3 while it shuts down is cut too.
      req.socket.destroy();
      if (cutAt) return;
      cutAt = Date.now();
      void s3.stop();
    };
    const sha2 = await repo.commit({ "hello/index.ts": handler("v2") }, "v2");
    const retriesBefore = await runnerRetries(runner);
    const row = await reconcile(sha2);
    t.is(row.status, "succeeded", JSON.stringify(row.error));
    const generation = (row.result as { generation: number }).generation;
    // The runner acks the generation with the version it could not fetch.
    t.true(await cp.control.waitForAcks(generation, 15_000));
    const ackedMs = Date.now() - cutAt;
    t.true(cutAt > 0, "the runner's download reached S3");
    await cp.settled();
    const [inv] = await cp.db.query<{ status: string; message: string }>(
      "SELECT status, message FROM node_inventory WHERE node_id = 's3-fault-1' AND status <> 'OK'",
    );
    t.is(inv?.status, "DOWNLOAD_FAILED");
    t.regex(inv!.message, /ECONNREFUSED|ECONNRESET|fetch failed|socket/i);
    t.regex(inv!.message, /after 4 tries/);
    t.is((await runnerRetries(runner)) - retriesBefore, 3);
    t.is(statusOf(sha2, "edgeplane/test-1")?.state, "failure");
    t.is(statusOf(sha2, "edgeplane")?.state, "failure");
    // The previous version kept serving throughout.
    t.is((await request(httpPort, "hello.acme.test", "/x")).text, "v1 /x");
    const counts = await load.stop();
    t.is(counts.failed, 0);

    // S3 back: the next push is fetched and served.
    s3.onRequest = null;
    await s3.start();
    const sha3 = await repo.commit({ "hello/index.ts": handler("v3") }, "v3");
    const ok = await reconcile(sha3);
    t.is(ok.status, "succeeded", JSON.stringify(ok.error));
    t.true(await cp.control.waitForAcks((ok.result as { generation: number }).generation, 15_000));
    t.is((await request(httpPort, "hello.acme.test", "/x")).text, "v3 /x");
    await cp.settled();
    t.is(statusOf(sha3, "edgeplane/test-1")?.state, "success");
    t.log(
      `download: ack with DOWNLOAD_FAILED ${ackedMs} ms after S3 stopped (${inv?.message}); ` +
        `runner requests during the outage: ${counts.ok} ok, ${counts.failed} failed; tries that reached S3 while it stopped: ${gets}`,
    );
  },
);

/** The runner's artifact_download_retries_total. */
async function runnerRetries(runner: ReturnType<typeof createRunner>): Promise<number> {
  return (await runner.metrics.downloadRetries.get()).values.reduce((n, v) => n + v.value, 0);
}
