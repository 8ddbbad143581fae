// Faults: PostgreSQL restarted under a running control plane (issue 9). Each test runs its own
// private PostgreSQL cluster (test/helpers/private-postgres.ts), so restarting it disturbs no
// other test. The control plane must ride through a restart by itself: no crash, API requests
// answered again once PostgreSQL is back, a reconcile caught mid-transaction never
// half-applied, heartbeats and LISTEN subscriptions resumed. Figures are logged with t.log and
// reported in docs/RELIABILITY.md.

import path from "node:path";
import test from "ava";
import pg from "pg";
import { createRunner } from "../../edge-runner/index.ts";
import { createControlPlane, PostgresDb } from "../../reconciler/index.ts";
import { adminToken, bearer } from "../helpers/auth.ts";
import { createTestRepo } from "../helpers/git.ts";
import { request } from "../helpers/http.ts";
import { startPrivatePostgres } from "../helpers/private-postgres.ts";
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

/** Polls fn until it returns a truthy value (errors count as "not yet"); throws after timeoutMs. */
async function eventually<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false | 0 | "">,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (${String(last)})`);
    await sleep(50);
  }
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

/** Everything a reconcile writes, per table: a half-applied commit shows up as a mismatch. */
async function snapshot(url: string) {
  return withClient(url, async (c) => {
    const q = async (sql: string) => (await c.query(sql)).rows;
    return {
      functions: await q("SELECT name, version, commit_sha FROM functions ORDER BY name, version"),
      active: await q(
        `SELECT d.function_name, f.version, f.commit_sha FROM deployments d JOIN functions f ON f.id = d.function_id
          WHERE d.active ORDER BY 1`,
      ),
      routes: await q(
        `SELECT r.host, r.path, f.version FROM routes r JOIN functions f ON f.id = r.function_id ORDER BY 1, 2`,
      ),
      audit: Number(
        (await q("SELECT count(*)::int AS n FROM audit_logs WHERE reconciliation_id IS NOT NULL"))[0].n,
      ),
      // Generations are a sequence: a rolled-back transaction leaves a gap, never a row.
      outbox: Number((await q("SELECT count(*)::int AS n FROM outbox"))[0].n),
      generation: Number((await q("SELECT coalesce(max(id), 0)::int AS g FROM outbox"))[0].g),
      lastCommit: (await q("SELECT last_commit FROM projects WHERE name = 'acme'"))[0].last_commit as string,
    };
  });
}

async function setup(t: import("ava").ExecutionContext) {
  const tmp = await tempDir();
  const pgc = await startPrivatePostgres();
  const repo = await createTestRepo(tmp.dir);
  await repo.copyIn(EXAMPLE, "hello");
  const sha1 = await repo.commit({ "edge.yaml": MANIFEST, "hello/index.ts": handler("v1") }, "v1");
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: pgc.url,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0s",
    projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site" }],
  });
  await cp.start();
  const runner = createRunner({
    nodeId: "pg-fault-1",
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
    if (!t.passed) t.log(`PostgreSQL log:\n${(await pgc.log()).slice(-4000)}`);
    await pgc.remove();
    await tmp.remove();
  });
  const token = await adminToken(cp);
  const first = await cp.reconciler.wait(
    await cp.reconciler.enqueue("acme", { commit: sha1, trigger: "api", actor: "test" }),
  );
  t.is(first.status, "succeeded", JSON.stringify(first.error));
  t.true(await cp.control.waitForAcks((first.result as { generation: number }).generation, 15_000));
  t.is((await request(httpPort, "hello.acme.test", "/x")).text, "v1 /x");
  return { tmp, pgc, repo, cp, runner, httpPort, token, sha1 };
}

/** Sends requests to the runner until stopped; counts the answers that are not 200 "<greeting> /…". */
function loadRunner(port: number, greeting: () => string) {
  let stop = false;
  const counts = { ok: 0, failed: 0 };
  const done = (async () => {
    while (!stop) {
      const res = await request(port, "hello.acme.test", "/load").catch(() => null);
      if (res?.status === 200 && res.text === `${greeting()} /load`) counts.ok++;
      else counts.failed++;
      await sleep(20);
    }
  })();
  return {
    counts,
    stop: async () => {
      stop = true;
      await done.catch(() => {});
      return counts;
    },
  };
}

test.serial(
  "faults (postgres): a LISTEN subscription is re-established after PostgreSQL restarts",
  async (t) => {
    const pgc = await startPrivatePostgres();
    const db = new PostgresDb(pgc.url);
    t.teardown(async () => {
      await db.close().catch(() => {});
      await pgc.remove();
    });
    const payloads: string[] = [];
    let reconnects = 0;
    const unlisten = await db.listen(
      "faults_test",
      (p) => payloads.push(p),
      () => reconnects++,
    );
    await db.query("SELECT pg_notify('faults_test', 'before')");
    await eventually("notification before the restart", async () => payloads.includes("before"));

    await pgc.restart(1_000);
    const back = Date.now();
    // The pool reconnects on the next query; the listener on its own, with backoff.
    await eventually("a query after the restart", () => db.query("SELECT 1"));
    const heard = await eventually("notification after the restart", async () => {
      await db.query("SELECT pg_notify('faults_test', 'after')");
      return payloads.includes("after");
    });
    t.true(heard);
    t.is(reconnects, 1);
    t.log(`listener back ${Date.now() - back} ms after PostgreSQL accepted connections again`);
    await unlisten();
    // Unsubscribed means unsubscribed: no reconnect after the last unlisten.
    await db.query("SELECT pg_notify('faults_test', 'gone')");
    await sleep(300);
    t.false(payloads.includes("gone"));
  },
);

test.serial(
  "faults (postgres): PostgreSQL restarted mid-apply: the control plane reconnects, nothing is half-applied, the retried reconcile applies exactly one commit",
  async (t) => {
    const { pgc, repo, cp, httpPort, token, sha1 } = await setup(t);
    const api = (p: string, init: RequestInit = {}) =>
      fetch(`${cp.url}${p}`, { ...init, headers: { ...bearer(token), ...(init.headers ?? {}) } });
    const before = await snapshot(pgc.url);
    const sha2 = await repo.commit({ "hello/index.ts": handler("v2") }, "v2");

    // Hold the project row so that the reconcile's transaction blocks on its last statement
    // (UPDATE projects), after it has written functions, deployments, routes, audit rows and the
    // outbox: PostgreSQL then goes away in the middle of applying. FOR NO KEY UPDATE does not
    // block the foreign-key checks of those inserts, only the UPDATE.
    const holder = new pg.Client({ connectionString: pgc.url });
    holder.on("error", () => {});
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query("SELECT 1 FROM projects WHERE name = 'acme' FOR NO KEY UPDATE");
    const load = loadRunner(httpPort, () => "v1");
    t.teardown(async () => void (await load.stop()));
    const id = await cp.reconciler.enqueue("acme", { commit: sha2, trigger: "api", actor: "test" });
    const blocked = await eventually("the reconcile blocked inside its transaction", () =>
      withClient(pgc.url, async (c) => {
        const { rows } = await c.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE projects%'`,
        );
        return rows[0].n === 1;
      }),
    );
    t.true(blocked);
    const stoppedAt = Date.now();
    await pgc.restart(2_000, "fast");
    const backAt = Date.now();
    await holder.end().catch(() => {});

    // New API requests succeed without restarting the control plane.
    const status = await eventually("GET /api/v1/reconciliations answered 200", async () => {
      const res = await api("/api/v1/reconciliations");
      return res.status === 200 ? res.status : 0;
    });
    t.is(status, 200);
    const recoveryMs = Date.now() - backAt;
    // The interrupted reconcile ends failed (its failure is recorded once the database is back).
    const interrupted = await cp.reconciler.wait(id, 40_000);
    const failedMs = Date.now() - backAt;
    t.is(interrupted.status, "failed");
    t.truthy(interrupted.error?.message);
    // Nothing of commit 2 is stored: every table is exactly as commit 1 left it.
    const after = await snapshot(pgc.url);
    t.deepEqual(after, before);
    t.is(after.lastCommit, sha1);
    const load1 = { ...load.counts };
    t.is(load1.failed, 0, "the runner kept serving v1 throughout");

    // Re-triggered through the API, the same commit applies exactly once.
    const res = await api("/api/v1/projects/acme/reconcile", { method: "POST" });
    t.is(res.status, 202);
    const retried = await cp.reconciler.wait(
      ((await res.json()) as { reconciliation: string }).reconciliation,
    );
    t.is(retried.status, "succeeded", JSON.stringify(retried.error));
    t.is(retried.commit_sha, sha2);
    await load.stop();
    const applied = await snapshot(pgc.url);
    t.is(applied.lastCommit, sha2);
    t.deepEqual(
      applied.functions.map((f) => [f.name, f.version, f.commit_sha]),
      [
        ["hello", 1, sha1],
        ["hello", 2, sha2],
      ],
    );
    t.deepEqual(applied.active, [{ function_name: "hello", version: 2, commit_sha: sha2 }]);
    t.deepEqual(
      applied.routes.map((r) => r.version),
      [2],
    );
    t.is(applied.outbox, before.outbox + 1);
    t.true(applied.generation > before.generation);
    const auditRows = await withClient(
      pgc.url,
      async (c) =>
        (
          await c.query(
            "SELECT action, reconciliation_id FROM audit_logs WHERE reconciliation_id = ANY($1)",
            [[id, retried.id]],
          )
        ).rows,
    );
    t.true(auditRows.length > 0);
    t.true(
      auditRows.every((r) => r.reconciliation_id === retried.id),
      JSON.stringify(auditRows),
    );
    t.true(await cp.control.waitForAcks(applied.generation, 15_000));
    t.is((await request(httpPort, "hello.acme.test", "/x")).text, "v2 /x");
    t.log(
      `PostgreSQL down ${backAt - stoppedAt} ms; API answered ${recoveryMs} ms after it was back; ` +
        `interrupted reconcile ${interrupted.status} ${failedMs} ms after it was back (${interrupted.error?.message}); ` +
        `runner requests during the fault: ${load1.ok} ok, ${load1.failed} failed; rows half-applied: 0`,
    );
  },
);

test.serial(
  "faults (postgres): PostgreSQL restarted while runners heartbeat: heartbeats resume, the node is online, listeners re-subscribe",
  async (t) => {
    const { pgc, cp, httpPort, token, repo } = await setup(t);
    const lastHeartbeat = () =>
      withClient(pgc.url, async (c) => {
        const { rows } = await c.query(
          "SELECT status, extract(epoch FROM last_heartbeat) * 1000 AS at FROM nodes WHERE id = 'pg-fault-1'",
        );
        return rows[0] as { status: string; at: number };
      });
    // A console client holds the events stream (its own LISTEN) through the restart.
    const events = await fetch(`${cp.url}/api/v1/events`, { headers: bearer(token) });
    t.is(events.status, 200);
    const reader = events.body!.getReader();
    let text = "";
    const pump = (async () => {
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) return;
        text += Buffer.from(value!).toString();
      }
    })();
    await eventually("the events stream is live", async () => text.includes('"type":"ready"'));

    const load = loadRunner(httpPort, () => "v1");

    t.teardown(async () => void (await load.stop()));
    await pgc.restart(3_000, "fast");
    const backAt = Date.now();
    // Heartbeats recorded again: one stamped after PostgreSQL came back, and the node online.
    const hb = await eventually("a heartbeat recorded after the restart", async () => {
      const row = await lastHeartbeat();
      return row.at > backAt && row.status === "online" ? row : null;
    });
    const heartbeatMs = Date.now() - backAt;
    t.is(hb.status, "online");
    const counts = await load.stop();
    t.is(counts.failed, 0);

    // Both LISTEN connections are back: the control plane's desired-state channel and the
    // console's events channel.
    const listeners = await eventually("both LISTENs re-issued", () =>
      withClient(pgc.url, async (c) => {
        const { rows } = await c.query(
          "SELECT query FROM pg_stat_activity WHERE query LIKE 'LISTEN %' ORDER BY query",
        );
        const q = rows.map((r) => r.query as string);
        return q.some((s) => s.includes("edgeplane_desired_state")) &&
          q.some((s) => s.includes("edgeplane_console"))
          ? q
          : null;
      }),
    );
    t.is(listeners.length, 2);
    // And they deliver: a reconcile after the restart reaches the console stream through NOTIFY
    // (the stream has no polling fallback), and its generation reaches the runner.
    const sha2 = await repo.commit({ "hello/index.ts": handler("v2") }, "v2");
    const id = await cp.reconciler.enqueue("acme", { commit: sha2, trigger: "api", actor: "test" });
    const row = await cp.reconciler.wait(id);
    t.is(row.status, "succeeded", JSON.stringify(row.error));
    await eventually("the console heard the reconcile", async () =>
      text.includes(`"id":"${id}","status":"succeeded"`),
    );
    t.true(await cp.control.waitForAcks((row.result as { generation: number }).generation, 15_000));
    t.is((await request(httpPort, "hello.acme.test", "/x")).text, "v2 /x");
    await reader.cancel().catch(() => {});
    await pump;
    t.log(
      `heartbeat recorded ${heartbeatMs} ms after PostgreSQL was back (interval 100 ms); ` +
        `runner requests during the fault: ${counts.ok} ok, ${counts.failed} failed`,
    );
  },
);
