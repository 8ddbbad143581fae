// Status reporting end to end: a real git repository, the control plane on PostgreSQL, two
// runners in two POPs over loopback gRPC, and a local server standing in for GitHub's API and
// for a notification receiver.

import { createHmac } from "node:crypto";
import path from "node:path";
import test from "ava";
import { createRunner, type Runner } from "../../edge-runner/index.ts";
import { type ControlPlane, createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo, type TestRepo } from "../helpers/git.ts";
import { type Recorder, startRecorder } from "../helpers/recorder.ts";
import { tempDir } from "../helpers/tmp.ts";
import { pushCommit } from "../helpers/webhook.ts";

const SECRET = "status-secret";

const manifest = (notifyUrl: string, handlerOk = true) => `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec:
  domains: [acme.test]
  notifications:
    - { url: "${notifyUrl}/hook", events: [reconcile, deploy] }
---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: hello }
spec:
  source: { path: ./hello, language: ${handlerOk ? "assemblyscript" : "assemblyscript"} }
  routes: [{ host: hello.acme.test, path: /* }]
`;

interface World {
  cp: ControlPlane;
  repo: TestRepo;
  rec: Recorder;
  runners: Runner[];
}

async function world(t: { teardown: (f: () => Promise<void>) => void }): Promise<World> {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const rec = await startRecorder();
  const repo = await createTestRepo(tmp.dir);
  await repo.copyIn(path.resolve("example-repo/hello"), "hello");
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    github: { apiBase: `${rec.url}/github`, token: "gh-token" },
    statusRetry: { attempts: 3, minDelay: "20ms", maxDelay: "100ms" },
    projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site", webhookSecret: SECRET }],
  });
  await cp.start();
  const runners = ["tokyo-1", "osaka-1"].map((pop) =>
    createRunner({
      nodeId: `${pop}-a`,
      pop,
      httpHost: "127.0.0.1",
      httpPort: 0,
      cacheDir: path.join(tmp.dir, `cache-${pop}`),
      control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
    }),
  );
  for (const r of runners) await r.start();
  // Both runners have said hello before anything is pushed.
  while (cp.control.connected().length < 2) await new Promise((r) => setTimeout(r, 20));
  t.teardown(async () => {
    for (const r of runners) await r.stop();
    await cp.stop();
    await rec.close();
    await drop();
    await tmp.remove();
  });
  return { cp, repo, rec, runners };
}

const push = (cp: ControlPlane, sha: string) => pushCommit(cp.url, sha, "acme/site", SECRET);

const statuses = (rec: Recorder, sha: string) =>
  rec.calls
    .filter((c) => c.path === `/github/repos/acme/site/statuses/${sha}`)
    .map(
      (c) =>
        JSON.parse(c.body) as { context: string; state: string; description: string; target_url: string },
    );

test.serial(
  "status: a push reports pending then success per POP and overall, and sends signed notifications",
  async (t) => {
    const { cp, repo, rec } = await world(t);
    const sha = await repo.commit({ "edge.yaml": manifest(rec.url) }, "deploy hello");
    const id = await push(cp, sha);
    t.is((await cp.reconciler.wait(id)).status, "succeeded");
    await cp.settled();

    const all = statuses(rec, sha);
    const byContext = (ctx: string) => all.filter((s) => s.context === ctx).map((s) => s.state);
    t.deepEqual(byContext("edgeplane"), ["pending", "success"]);
    t.deepEqual(byContext("edgeplane/tokyo-1"), ["pending", "success"]);
    t.deepEqual(byContext("edgeplane/osaka-1"), ["pending", "success"]);
    t.true(all.every((s) => s.target_url === `${cp.url}/api/v1/reconciliations/${id}`));
    t.regex(
      all.find((s) => s.context === "edgeplane/tokyo-1" && s.state === "success")!.description,
      /live on 1 node/,
    );
    const call = rec.calls.find((c) => c.path.startsWith("/github/"))!;
    t.is(call.headers.authorization, "Bearer gh-token");

    const hooks = rec.calls.filter((c) => c.path === "/hook");
    t.deepEqual(hooks.map((h) => h.headers["x-edgeplane-event"]).sort(), ["deploy", "reconcile"]);
    for (const h of hooks) {
      const expected = `sha256=${createHmac("sha256", SECRET).update(h.body).digest("hex")}`;
      t.is(h.headers["x-edgeplane-signature-256"], expected);
    }
    const deploy = JSON.parse(hooks.find((h) => h.headers["x-edgeplane-event"] === "deploy")!.body);
    t.deepEqual(
      deploy.outcome.pops.map((p: { pop: string; state: string }) => [p.pop, p.state]),
      [
        ["osaka-1", "success"],
        ["tokyo-1", "success"],
      ],
    );
    // The outcome is on the reconciliation too, and every delivery is in the delivery log.
    const row = await cp.reconciler.wait(id);
    t.like(row.outcome, { generation: 1 });
    const log = await cp.db.query<{ status: string }>("SELECT status FROM status_deliveries");
    t.is(log.length, 8);
    t.true(log.every((d) => d.status === "delivered"));
  },
);

test.serial(
  "status: a failing reconcile reports failure with the reason; failed deliveries are retried, then logged",
  async (t) => {
    const { cp, repo, rec } = await world(t);
    // Every notification delivery fails twice with 503, then goes through.
    const tries = new Map<string, number>();
    rec.respond = (c) => {
      if (c.path !== "/hook") return 201;
      const id = String(c.headers["x-edgeplane-delivery"]);
      tries.set(id, (tries.get(id) ?? 0) + 1);
      return tries.get(id)! <= 2 ? 503 : 200;
    };
    const good = await repo.commit({ "edge.yaml": manifest(rec.url) }, "good");
    t.is((await cp.reconciler.wait(await push(cp, good))).status, "succeeded");
    await cp.settled();

    const bad = await repo.commit(
      { "hello/index.ts": "export function edge_handle(): i32 { return nope; }\n" },
      "break the build",
    );
    const id = await push(cp, bad);
    const row = await cp.reconciler.wait(id);
    t.is(row.status, "failed");
    t.is(row.error?.code, "EDGE_ERR_BUILD_COMPILE");
    t.deepEqual(row.error?.details, [
      { where: "hello/index.ts:1:45", message: "AS2304: Cannot find name 'nope'." },
    ]);
    await cp.settled();
    const overall = statuses(rec, bad).filter((s) => s.context === "edgeplane");
    t.deepEqual(
      overall.map((s) => s.state),
      ["pending", "failure"],
    );
    t.regex(overall[1]!.description, /^EDGE_ERR_BUILD_COMPILE: function "hello": hello\/index\.ts:1:45/);
    // No per-POP status for a commit that never reached a POP, and nothing was applied.
    t.false(statuses(rec, bad).some((s) => s.context.startsWith("edgeplane/")));
    t.deepEqual(
      (await cp.db.query<{ version: number }>("SELECT version FROM functions")).map((f) => f.version),
      [1],
    );
    // Each notification got two 503s and then went through on the third attempt; the log says so.
    const notifications = await cp.db.query<{ attempts: number; status: string; response_status: number }>(
      "SELECT attempts, status, response_status FROM status_deliveries WHERE kind = 'notification'",
    );
    t.is(notifications.length, 3); // reconcile + deploy for the good commit, reconcile for the bad one
    for (const n of notifications) t.like(n, { attempts: 3, status: "delivered", response_status: 200 });
    t.is(rec.calls.filter((c) => c.path === "/hook").length, 9);
  },
);

test.serial("status: a slow notification receiver never holds up a reconcile", async (t) => {
  const { cp, repo, rec } = await world(t);
  rec.delay = (c) => (c.path === "/hook" ? 3000 : 0);
  const sha = await repo.commit({ "edge.yaml": manifest(rec.url) }, "deploy");
  const row = await cp.reconciler.wait(await push(cp, sha));
  t.is(row.status, "succeeded");
  // The reconcile has finished while its notification is still waiting on the receiver
  // (which holds every request for 3 s): the delivery row is there and still pending.
  let notification: { status: string } | undefined;
  while (!notification) {
    [notification] = await cp.db.query<{ status: string }>(
      "SELECT status FROM status_deliveries WHERE kind = 'notification' AND event = 'reconcile'",
    );
  }
  t.is(notification.status, "pending");
  await cp.settled();
  const delivered = await cp.db.query(
    "SELECT 1 FROM status_deliveries WHERE kind = 'notification' AND status = 'delivered'",
  );
  t.is(delivered.length, 2);
});
