// A progressive rollout outlives the control-plane replica driving it: the replica is stopped in
// the middle of the canary wave's bake, a new control plane starts on the same database schema
// (and the same gRPC port, so the runners reconnect to it), picks the running rollout up through
// its lease and finishes it, baking only what was left of the wave (counted from the bake start
// stored in the database).

import path from "node:path";
import test from "ava";
import { PostgresDb } from "../../reconciler/db.ts";
import { type ControlPlaneOptions, createControlPlane } from "../../reconciler/index.ts";
import { adminToken, bearer } from "../helpers/auth.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo } from "../helpers/git.ts";
import { request } from "../helpers/http.ts";
import { startRecorder } from "../helpers/recorder.ts";
import { startTestRunner } from "../helpers/runner.ts";
import { servedBy } from "../helpers/stack.ts";
import { tempDir } from "../helpers/tmp.ts";
import { pushCommit } from "../helpers/webhook.ts";

const SECRET = "rollout-resume-secret";
const BAKE_MS = 3_000;

const manifest = `apiVersion: edgeplane.dev/v1
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
  routes: [{ host: hello.acme.test, path: /* }]
  rollout:
    waves:
      - { pops: "canary=true", bake: ${BAKE_MS}ms }
      - { pops: "*" }
`;

const handler = (greeting: string) => `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("${greeting}"));
}
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("rollout resume: a rollout whose control plane stopped mid-wave is resumed by a new control plane on the same database and completes", async (t) => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const rec = await startRecorder();
  const repo = await createTestRepo(tmp.dir);
  await repo.copyIn(path.resolve("example-repo/hello"), "hello");
  const options: ControlPlaneOptions = {
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    adminTokenFile: false,
    github: { apiBase: `${rec.url}/github`, token: "gh-token" },
    statusRetry: { attempts: 2, minDelay: "20ms", maxDelay: "50ms" },
    projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site", webhookSecret: SECRET }],
  };
  const cp1 = await createControlPlane(options);
  await cp1.start();
  let cp2: Awaited<ReturnType<typeof createControlPlane>> | null = null;
  let cp1Stopped = false;
  t.teardown(async () => {
    if (!cp1Stopped) await cp1.stop();
    await cp2?.stop();
    await rec.close();
    await drop();
    await tmp.remove();
  });
  const runner = (pop: string, labels: Record<string, string>) =>
    startTestRunner(t, {
      nodeId: `${pop}-a`,
      pop,
      labels,
      control: { address: `127.0.0.1:${cp1.grpcPort}`, insecure: true },
      reconnectMinDelay: "50ms",
      heartbeatInterval: "100ms",
    });
  const canary = await runner("canary-1", { canary: "true" });
  const tokyo = await runner("tokyo-1", {});
  while (cp1.control.connected().length < 2) await sleep(20);
  const row = async () =>
    (
      await cp1.db.query<{
        status: string;
        wave: number;
        bake_started_at: Date | null;
        lease_holder: string | null;
      }>("SELECT status, wave, bake_started_at, lease_holder FROM rollouts ORDER BY created_at DESC LIMIT 1")
    )[0];

  const sha1 = await repo.commit({ "edge.yaml": manifest, "hello/index.ts": handler("v1") }, "hello v1");
  t.is((await cp1.reconciler.wait(await pushCommit(cp1.url, sha1, "acme/site", SECRET))).status, "succeeded");
  await cp1.settled();
  t.is(await servedBy(tokyo.port, "hello.acme.test", "200 v1"), "200 v1");

  // v2 starts rolling out: the canary bakes it for 3 s; stop the replica in the middle of that.
  const sha2 = await repo.commit({ "hello/index.ts": handler("v2") }, "hello v2");
  t.is((await cp1.reconciler.wait(await pushCommit(cp1.url, sha2, "acme/site", SECRET))).status, "succeeded");
  let before = await row();
  for (let i = 0; i < 500 && !before?.bake_started_at; i++) {
    await sleep(20);
    before = await row();
  }
  t.truthy(before?.bake_started_at);
  t.is(before?.lease_holder, cp1.progressive.holder);
  t.is(await servedBy(canary.port, "hello.acme.test", "200 v2"), "200 v2");
  const bakeStart = new Date(before!.bake_started_at!).getTime();
  await cp1.stop();
  cp1Stopped = true;

  // The stopped replica left it at wave 1 of 2 with its lease released: nobody drives it now.
  const stuck = new PostgresDb(DATABASE_URL, schema);
  const [left] = await stuck.query<{ status: string; wave: number; released: boolean }>(
    `SELECT status, wave, lease_expires_at <= now() AS released FROM "${schema}".rollouts
      ORDER BY created_at DESC LIMIT 1`,
  );
  t.like(left, { status: "running", wave: 0, released: true });
  t.is((await request(tokyo.port, "hello.acme.test", "/")).text, "v1");
  await stuck.close();

  // A new control plane on the same schema (and gRPC port: the runners reconnect) resumes it.
  cp2 = await createControlPlane({ ...options, grpcPort: cp1.grpcPort });
  await cp2.start();
  const deadline = Date.now() + 30_000;
  let after = await cp2.db.query<{ status: string }>(
    "SELECT status FROM rollouts ORDER BY created_at DESC LIMIT 1",
  );
  while (after[0]?.status === "running" && Date.now() < deadline) {
    await sleep(50);
    after = await cp2.db.query<{ status: string }>(
      "SELECT status FROM rollouts ORDER BY created_at DESC LIMIT 1",
    );
  }
  t.is(after[0]?.status, "succeeded");
  await cp2.settled();
  t.is(await servedBy(tokyo.port, "hello.acme.test", "200 v2"), "200 v2");
  t.is((await request(canary.port, "hello.acme.test", "/")).text, "v2");

  // The wave advanced by the new replica, no earlier than the stored bake start + the bake.
  const token = await adminToken(cp2);
  const { audit } = (await (
    await fetch(`${cp2.url}/api/v1/audit?project=acme&function=hello`, { headers: bearer(token) })
  ).json()) as { audit: { object_kind: string; action: string; at: string }[] };
  const advance = audit.find((a) => a.object_kind === "rollout" && a.action === "advance");
  t.truthy(advance);
  t.true(new Date(advance!.at).getTime() >= bakeStart + BAKE_MS, advance?.at);
  t.deepEqual(
    audit.slice(0, 3).map((a) => [a.object_kind, a.action]),
    [
      ["rollout", "complete"],
      ["rollout", "advance"],
      ["rollout", "start"],
    ],
  );
  const statuses = rec.calls
    .filter((c) => c.path === `/github/repos/acme/site/statuses/${sha2}`)
    .map((c) => JSON.parse(c.body) as { context: string; state: string });
  const last = (context: string) => statuses.filter((s) => s.context === context).at(-1)?.state;
  t.is(last("edgeplane/rollout"), "success");
  t.is(last("edgeplane/tokyo-1"), "success");
  t.is(last("edgeplane"), "success");
});
