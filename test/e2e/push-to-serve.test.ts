// The foundation path end to end, with real parts only: a bare git repository, the control
// plane on the real PostgreSQL, a runner over loopback gRPC, signed GitHub push webhooks, and
// HTTP requests to the runner. One test, because each step builds on the state of the last.

import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import { createRunner } from "../../edge-runner/index.ts";
import { createControlPlane } from "../../reconciler/index.ts";
import { adminToken, bearer } from "../helpers/auth.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo } from "../helpers/git.ts";
import { request } from "../helpers/http.ts";
import { tempDir } from "../helpers/tmp.ts";
import { pushBody, sendWebhook } from "../helpers/webhook.ts";

const SECRET = "e2e-webhook-secret";
const EXAMPLE = path.resolve("example-repo/hello");

const manifest = (fn: boolean) => `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec:
  domains: [acme.test]
${
  fn
    ? `---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: hello }
spec:
  source: { path: ./hello, language: assemblyscript }
  routes:
    - { host: hello.acme.test, path: /* }
`
    : ""
}`;

const handler = (greeting: string) => `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("${greeting} " + req.path));
}
`;

test("e2e: push → reconcile → build → gRPC intent → runner serves; update, bad signature, bad manifest, removal", async (t) => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const repo = await createTestRepo(tmp.dir);
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site", webhookSecret: SECRET }],
  });
  await cp.start();
  const runner = createRunner({
    nodeId: "e2e-1",
    pop: "test-1",
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir: path.join(tmp.dir, "runner-cache"),
    control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
    reconnectMinDelay: "50ms",
    heartbeatInterval: "100ms",
  });
  const { httpPort } = await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await cp.stop();
    await drop();
    await tmp.remove();
  });

  const push = async (sha: string, opts: { secret?: string; delivery?: string } = {}) => {
    // The payload names a clone URL of its own; the control plane must clone the registered one.
    const body = pushBody(sha, "acme/site", {
      repository: { full_name: "acme/site", clone_url: "https://git.invalid/acme/site.git" },
    });
    const res = await sendWebhook(cp.url, body, {
      secret: opts.secret ?? SECRET,
      ...(opts.delivery ? { delivery: opts.delivery } : {}),
    });
    return {
      status: res.status,
      body: (await res.json()) as { result?: string; reconciliation?: string; error?: { code: string } },
    };
  };
  const reconciled = async (sha: string) => {
    const res = await push(sha);
    t.is(res.status, 202, JSON.stringify(res.body));
    return cp.reconciler.wait(res.body.reconciliation!);
  };
  const get = async (host: string, urlPath = "/") => {
    const { status, text } = await request(httpPort, host, urlPath);
    return { status, text };
  };
  /** Polls the runner until it answers as expected (it converges asynchronously after the ack). */
  const eventually = async (host: string, expect: (r: { status: number; text: string }) => boolean) => {
    const deadline = Date.now() + 15_000;
    let last = await get(host, "/x");
    while (!expect(last) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      last = await get(host, "/x");
    }
    return last;
  };
  const token = await adminToken(cp);
  const apiJson = async <T>(p: string): Promise<T> =>
    (await (await fetch(`${cp.url}${p}`, { headers: bearer(token) })).json()) as T;

  // 1. First push: the function is built, stored, sent to the runner and served.
  await repo.copyIn(path.join(EXAMPLE), "hello");
  const sha1 = await repo.commit(
    { "edge.yaml": manifest(true), "hello/index.ts": handler("v1") },
    "add hello",
  );
  const r1 = await reconciled(sha1);
  t.is(r1.status, "succeeded", JSON.stringify(r1.error));
  t.is(r1.commit_sha, sha1);
  const served1 = await eventually("hello.acme.test", (r) => r.text === "v1 /x");
  t.deepEqual(served1, { status: 200, text: "v1 /x" });
  // The artifact the runner cached hashes to the sha256 recorded at build (Property 2's path).
  const fns1 = await apiJson<{ functions: { id: string; version: number; sha256: string }[] }>(
    "/api/v1/functions",
  );
  t.is(fns1.functions.length, 1);
  t.is(fns1.functions[0]!.version, 1);
  const cached = await readFile(path.join(tmp.dir, "runner-cache", fns1.functions[0]!.id, "1.wasm"));
  const { createHash } = await import("node:crypto");
  t.is(createHash("sha256").update(cached).digest("hex"), fns1.functions[0]!.sha256);

  // The same delivery id twice runs once.
  const dupId = randomUUID();
  const d1 = await push(sha1, { delivery: dupId });
  const d2 = await push(sha1, { delivery: dupId });
  // sha1 is already applied: a new delivery id of it joins that reconciliation (once per commit).
  t.is(d1.body.result, "joined");
  t.is(d1.body.reconciliation, r1.id);
  t.deepEqual([d2.status, d2.body.result], [200, "duplicate"]);
  t.is((await cp.reconciler.wait(d1.body.reconciliation!)).status, "succeeded");

  // 2. A push that changes the function: a new immutable version answers.
  const sha2 = await repo.commit({ "hello/index.ts": handler("v2") }, "change hello");
  const r2 = await reconciled(sha2);
  t.is(r2.status, "succeeded", JSON.stringify(r2.error));
  t.like(r2.plan, { changes: [{ action: "update", name: "hello", reason: "source changed" }] });
  t.deepEqual(await eventually("hello.acme.test", (r) => r.text === "v2 /x"), { status: 200, text: "v2 /x" });
  const fns2 = await apiJson<{ functions: { version: number }[] }>("/api/v1/functions");
  t.is(fns2.functions[0]!.version, 2);

  // 3. A webhook with a wrong signature: 401, no reconcile recorded, v2 keeps serving.
  const before = await apiJson<{ reconciliations: unknown[] }>("/api/v1/reconciliations");
  const forged = await push(sha2, { secret: "not-the-secret" });
  t.is(forged.status, 401);
  t.is(forged.body.error?.code, "EDGE_ERR_WEBHOOK_SIGNATURE");
  const after = await apiJson<{ reconciliations: unknown[] }>("/api/v1/reconciliations");
  t.is(after.reconciliations.length, before.reconciliations.length);
  t.is((await get("hello.acme.test", "/x")).text, "v2 /x");

  // 4. An invalid manifest: the reconcile fails naming file:line:col; nothing is applied.
  const sha3 = await repo.commit(
    { "edge.yaml": manifest(true).replace("path: /*", "path: /*, colour: blue") },
    "break the manifest",
  );
  const r3 = await reconciled(sha3);
  t.is(r3.status, "failed");
  t.is(r3.error?.code, "EDGE_ERR_MANIFEST_SCHEMA");
  t.regex(r3.error!.details![0]!.where!, /^edge\.yaml:\d+:\d+$/);
  t.regex(r3.error!.details![0]!.message, /unknown field "colour"/);
  t.is((await get("hello.acme.test", "/x")).text, "v2 /x");
  t.is((await apiJson<{ functions: { version: number }[] }>("/api/v1/functions")).functions[0]!.version, 2);

  // 5. A push that removes the function: the runner stops serving it.
  const sha4 = await repo.commit({ "edge.yaml": manifest(false), hello: null }, "remove hello");
  const r4 = await reconciled(sha4);
  t.is(r4.status, "succeeded", JSON.stringify(r4.error));
  t.like(r4.plan, { changes: [{ action: "delete", name: "hello" }] });
  t.is((await eventually("hello.acme.test", (r) => r.status === 404)).status, 404);
  t.deepEqual((await apiJson<{ functions: unknown[] }>("/api/v1/functions")).functions, []);

  // The audit log holds exactly the three changes, newest first, each with its commit.
  const { audit } = await apiJson<{
    audit: { action: string; object_id: string; commit_sha: string; actor: string }[];
  }>("/api/v1/audit?project=acme");
  t.deepEqual(
    audit.map((a) => [a.action, a.object_id, a.commit_sha, a.actor]),
    [
      ["delete", "hello", sha4, "github:dev"],
      ["update", "hello", sha2, "github:dev"],
      ["create", "hello", sha1, "github:dev"],
    ],
  );

  // Heartbeats carried the runner's per-function request counts (what rollouts will gate on).
  let stats: { requests: number; errors: number }[] = [];
  for (let i = 0; i < 100 && !(stats[0]?.requests > 0); i++) {
    stats = await cp.db.query(
      "SELECT sum(requests)::int AS requests, sum(errors)::int AS errors FROM node_function_stats WHERE node_id = 'e2e-1'",
    );
    await new Promise((r) => setTimeout(r, 50));
  }
  t.true(stats[0]!.requests > 0);
  t.is(stats[0]!.errors, 0);

  // The control plane's metrics count what happened (DESIGN.md names).
  await cp.settled();
  const metrics = await (await fetch(`${cp.url}/metrics`)).text();
  const value = (series: string) =>
    Number(new RegExp(`^${series.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(metrics)?.[1]);
  t.is(value('edgeplane_reconcile_total{result="succeeded"}'), 3);
  t.is(value('edgeplane_reconcile_total{result="failed"}'), 1);
  t.is(value('edgeplane_webhook_deliveries_total{event="push",result="queued"}'), 4);
  t.is(value('edgeplane_webhook_deliveries_total{event="push",result="joined"}'), 1);
  t.is(value('edgeplane_webhook_deliveries_total{event="push",result="duplicate"}'), 1);
  t.is(value('edgeplane_webhook_deliveries_total{event="push",result="EDGE_ERR_WEBHOOK_SIGNATURE"}'), 1);
  t.is(value('edgeplane_nodes{status="online"}'), 1);
  t.is(value("edgeplane_deploy_propagation_seconds_count"), 3);
  t.true(value("edgeplane_build_duration_seconds_count") >= 2);
});
