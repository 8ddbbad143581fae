// The data layer against both real backends: PostgreSQL on 127.0.0.1:5432 and PGlite.
// Every test body runs once per backend, with the same SQL.

import { randomUUID } from "node:crypto";
import test from "ava";
import { migrate } from "../../reconciler/db.ts";
import { desiredStateFor } from "../../reconciler/nodes.ts";
import { plan } from "../../reconciler/plan.ts";
import { registerProject } from "../../reconciler/projects.ts";
import { createReconciliation } from "../../reconciler/reconciliations.ts";
import { applyPlan, loadStoredState, StaleStateError } from "../../reconciler/state.ts";
import { backends } from "../helpers/db.ts";
import { fn, project, projectReconciler } from "../helpers/state.ts";

for (const backend of backends) {
  const setup = async () => {
    const tdb = await backend.open();
    return { ...tdb, ...(await projectReconciler(tdb.db)) };
  };

  test.serial(
    `state (${backend.name}): a first apply stores version 1, its routes, an active deployment and an audit row`,
    async (t) => {
      const s = await setup();
      t.teardown(s.drop);
      const r = await s.reconcile([fn("hello")], "c1");
      t.is(r.generation, 1);
      const stored = await loadStoredState(s.db, s.projectId);
      t.is(stored.functions.length, 1);
      t.like(stored.functions[0], { name: "hello", version: 1, sourceHash: "a".repeat(64) });
      t.deepEqual(stored.functions[0]!.routes, [
        { host: "hello.example.com", path: "/*", methods: "", priority: 0 },
      ]);
      const audit = await s.db.query<{ action: string; object_id: string; commit_sha: string }>(
        "SELECT action, object_id, commit_sha FROM audit_logs",
      );
      t.deepEqual(audit, [{ action: "create", object_id: "hello", commit_sha: "c1" }]);
      // Reconciling the same desired state again changes nothing and bumps no generation.
      const again = await s.reconcile([fn("hello")], "c2");
      t.deepEqual(again.plan.changes, []);
      t.is(again.generation, null);
      t.is((await s.db.query("SELECT 1 FROM audit_logs")).length, 1);
    },
  );

  test.serial(
    `state (${backend.name}): an update makes a new version and supersedes the old deployment; routes-only changes keep the version`,
    async (t) => {
      const s = await setup();
      t.teardown(s.drop);
      await s.reconcile([fn("hello")], "c1");
      const r2 = await s.reconcile([fn("hello", { sourceHash: "d".repeat(64) })], "c2");
      t.like(r2.plan.changes[0], { action: "update", reason: "source changed", fromVersion: 1 });
      const deployments = await s.db.query<{ version: number; status: string; active: boolean }>(
        "SELECT version, status, active FROM deployments ORDER BY version",
      );
      t.deepEqual(deployments, [
        { version: 1, status: "superseded", active: false },
        { version: 2, status: "pending", active: true },
      ]);
      const moved = fn("hello", {
        sourceHash: "d".repeat(64),
        routes: [{ host: "hi.example.com", path: "/", methods: "GET", priority: 5 }],
      });
      const r3 = await s.reconcile([moved], "c3");
      t.like(r3.plan.changes[0], { action: "routes", version: 2 });
      t.is(r3.builds.size, 0);
      const routes = await s.db.query<{ host: string; function_id: string }>(
        "SELECT host, function_id FROM routes",
      );
      t.deepEqual(
        routes.map((r) => r.host),
        ["hi.example.com"],
      );
      t.is(routes[0]!.function_id, r2.builds.get("hello")!.functionId);
    },
  );

  test.serial(
    `state (${backend.name}): a deleted function is pruned and its version numbers are never reused`,
    async (t) => {
      const s = await setup();
      t.teardown(s.drop);
      await s.reconcile([fn("hello")], "c1");
      const del = await s.reconcile([], "c2");
      t.like(del.plan.changes[0], { action: "delete", name: "hello", version: 1 });
      t.deepEqual((await loadStoredState(s.db, s.projectId)).functions, []);
      t.deepEqual(await s.db.query("SELECT * FROM routes"), []);
      const back = await s.reconcile([fn("hello")], "c3");
      t.is(back.builds.get("hello")!.version, 2);
      // The immutable version 1 row is still there, unchanged.
      t.deepEqual(
        (await s.db.query<{ version: number }>("SELECT version FROM functions ORDER BY version")).map(
          (r) => r.version,
        ),
        [1, 2],
      );
    },
  );

  test.serial(`state (${backend.name}): a failing apply leaves stored state exactly as it was`, async (t) => {
    const s = await setup();
    t.teardown(s.drop);
    await s.reconcile([fn("hello")], "c1");
    const snapshot = async () =>
      Promise.all(
        ["functions", "routes", "deployments", "audit_logs", "outbox"].map((table) =>
          s.db.query(`SELECT count(*)::int AS n FROM ${table}`),
        ),
      );
    const before = await snapshot();
    // A second project claiming the same host and path: the routes' unique key refuses it
    // half-way through the transaction, after the function row and deployment were written.
    const otherId = await registerProject(s.db, project("other"));
    const reconciliationId = randomUUID();
    await createReconciliation(s.db, {
      id: reconciliationId,
      projectId: otherId,
      commitSha: "x1",
      trigger: "push",
      actor: "test",
    });
    const functionId = randomUUID();
    await t.throwsAsync(
      applyPlan(s.db, {
        projectId: otherId,
        reconciliationId,
        commitSha: "x1",
        trigger: "push",
        actor: "test",
        plan: plan([fn("clash")], []),
        basedOn: [],
        desired: new Map([["clash", fn("clash", { routes: fn("hello").routes })]]),
        builds: new Map([
          ["clash", { functionId, version: 1, artifactKey: "k", sha256: "e".repeat(64), size: 1 }],
        ]),
        result: {},
        durationMs: 1,
      }),
    );
    t.deepEqual(await snapshot(), before);
    const [rec] = await s.db.query<{ status: string }>("SELECT status FROM reconciliations WHERE id = $1", [
      reconciliationId,
    ]);
    t.is(rec!.status, "queued");
  });

  test.serial(
    `state (${backend.name}): apply refuses a plan made on state another writer has changed`,
    async (t) => {
      const s = await setup();
      t.teardown(s.drop);
      const stale = await loadStoredState(s.db, s.projectId);
      await s.reconcile([fn("hello")], "c1");
      const reconciliationId = randomUUID();
      await createReconciliation(s.db, {
        id: reconciliationId,
        projectId: s.projectId,
        commitSha: "c2",
        trigger: "push",
        actor: "test",
      });
      await t.throwsAsync(
        applyPlan(s.db, {
          projectId: s.projectId,
          reconciliationId,
          commitSha: "c2",
          trigger: "push",
          actor: "test",
          plan: { changes: [] },
          basedOn: stale.functions.map((f) => f.functionId),
          desired: new Map(),
          builds: new Map(),
          result: {},
          durationMs: 1,
        }),
        { instanceOf: StaleStateError },
      );
    },
  );

  test.serial(
    `nodes (${backend.name}): a node's desired state holds exactly the functions its labels match, with their routes`,
    async (t) => {
      const s = await setup();
      t.teardown(s.drop);
      const r = await s.reconcile(
        [
          fn("everywhere"),
          fn("jp-only", { popSelector: "region=jp" }),
          fn("not-canary", { popSelector: "tier!=canary" }),
        ],
        "c1",
      );
      const url = async (key: string) => `http://cp/${key}`;
      const tokyo = await desiredStateFor(s.db, { pop: "tokyo-1", region: "jp", tier: "canary" }, url);
      t.is(tokyo.generation, String(r.generation));
      t.deepEqual(
        tokyo.functions.map((f) => f.name),
        ["everywhere", "jp-only"],
      );
      t.deepEqual(tokyo.routes.map((x) => x.host).sort(), ["everywhere.example.com", "jp-only.example.com"]);
      const f = tokyo.functions.find((x) => x.name === "jp-only")!;
      const built = r.builds.get("jp-only")!;
      t.like(f, {
        function_id: built.functionId,
        version: "1",
        sha256: built.sha256,
        artifact_url: `http://cp/${built.artifactKey}`,
        memory_pages: 16,
        max_execution_ms: 50,
        env: { GREETING: "hi" },
      });
      const us = await desiredStateFor(s.db, { pop: "sfo-1", region: "us" }, url);
      t.deepEqual(
        us.functions.map((x) => x.name),
        ["everywhere", "not-canary"],
      );
    },
  );

  test.serial(`migrate (${backend.name}): running the migrations again applies nothing`, async (t) => {
    const s = await setup();
    t.teardown(s.drop);
    t.deepEqual(await migrate(s.db), []);
  });
}
