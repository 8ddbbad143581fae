// Fault: the control plane is SIGKILLed in the middle of a reconcile (while it builds the
// functions of a commit). A new process on the same database and ports must finish the work: the
// reconcile left "running" is queued again once the dead replica's lease expires, runs once, and
// leaves exactly the commit's state — one audit row per change, nothing lost, nothing twice — and
// a runner connected throughout converges to it.

import test from "ava";
import { childrenOf, faultEnv, functionFiles, get, manifest, served, waitFor } from "./faults.ts";

const NAMES = ["alpha", "bravo", "charlie", "delta"];

test("faults: a control plane killed mid-reconcile is restarted and the commit is reconciled exactly once", async (t) => {
  // A short lease, so the restarted process need not wait the default 60 s to retry.
  const env = await faultEnv(t, { reconcileLease: "3s" });
  let cp = await env.startCp();
  const runner = await env.startRunner("kill-1");
  await waitFor("the runner to register", async () =>
    (await env.sql("SELECT 1 FROM nodes WHERE id = 'kill-1' AND status = 'online'")).length
      ? true
      : undefined,
  );

  const sha = await env.repo.commit(
    { "edge.yaml": manifest(NAMES), ...(await functionFiles(NAMES, "v1")) },
    "four",
  );
  const id = await env.push(cp.url, sha);

  // Kill it while it builds: the reconcile row is running and a build worker is alive.
  const workers = await waitFor(
    "a build worker of the running reconcile",
    async () => {
      const [row] = await env.sql<{ status: string }>("SELECT status FROM reconciliations WHERE id = $1", [
        id,
      ]);
      if (row?.status !== "running") return undefined;
      const kids = (await childrenOf(cp.child.pid!)).filter((k) => k.cmdline.includes("worker-boot"));
      return kids.length > 0 ? kids : undefined;
    },
    60_000,
    10,
  );
  await cp.kill("SIGKILL");
  const killedAt = Date.now();
  // Build workers run in their own process group and would outlive their parent: end them (by pid).
  for (const w of workers) {
    try {
      process.kill(-w.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  // Nothing of the commit is half-applied: the row is still running, no function, route,
  // deployment or audit row exists.
  const stateCount = async () =>
    (
      await env.sql<{ f: number; r: number; d: number; a: number }>(
        `SELECT (SELECT count(*)::int FROM functions) AS f, (SELECT count(*)::int FROM routes) AS r,
                (SELECT count(*)::int FROM deployments) AS d, (SELECT count(*)::int FROM audit_logs) AS a`,
      )
    )[0]!;
  t.is(
    (await env.sql<{ status: string }>("SELECT status FROM reconciliations WHERE id = $1", [id]))[0]!.status,
    "running",
  );
  t.deepEqual(await stateCount(), { f: 0, r: 0, d: 0, a: 0 });

  // A new process on the same schema and ports.
  cp = await env.startCp();
  const row = await waitFor(
    "the interrupted reconcile to finish",
    async () => {
      const [r] = await env.sql<{ status: string; result: { interrupted?: number } | null; error: unknown }>(
        "SELECT status, result, error FROM reconciliations WHERE id = $1",
        [id],
      );
      return r && ["succeeded", "failed", "superseded"].includes(r.status) ? r : undefined;
    },
    60_000,
  );
  const recoveredMs = Date.now() - killedAt;
  t.is(row.status, "succeeded", JSON.stringify(row.error));
  t.is(row.result?.interrupted, 1, "the reconcile was retried once after the replica died");
  // One reconciliation for the push; no second one was made up.
  t.is((await env.sql("SELECT id FROM reconciliations")).length, 1);

  // The stored state is exactly the commit: one version of each function, its route, one
  // active deployment; the audit log has exactly one create per function for this commit.
  t.deepEqual(await stateCount(), { f: 4, r: 4, d: 4, a: 4 });
  const fns = await env.sql<{ name: string; version: number; commit_sha: string }>(
    "SELECT name, version, commit_sha FROM functions ORDER BY name",
  );
  t.deepEqual(
    fns,
    NAMES.map((name) => ({ name, version: 1, commit_sha: sha })),
  );
  const routes = await env.sql<{ host: string; function_name: string }>(
    "SELECT host, function_name FROM routes ORDER BY host",
  );
  t.deepEqual(
    routes,
    NAMES.map((n) => ({ host: `${n}.acme.test`, function_name: n })),
  );
  const deployments = await env.sql<{
    function_name: string;
    version: number;
    active: boolean;
    reconciliation_id: string;
  }>("SELECT function_name, version, active, reconciliation_id FROM deployments ORDER BY function_name");
  t.deepEqual(
    deployments,
    NAMES.map((n) => ({ function_name: n, version: 1, active: true, reconciliation_id: id })),
  );
  const audit = await env.sql<{
    action: string;
    object_id: string;
    commit_sha: string;
    reconciliation_id: string;
  }>("SELECT action, object_id, commit_sha, reconciliation_id FROM audit_logs ORDER BY object_id");
  t.deepEqual(
    audit,
    NAMES.map((n) => ({ action: "create", object_id: n, commit_sha: sha, reconciliation_id: id })),
  );
  t.is((await env.sql<{ last_commit: string }>("SELECT last_commit FROM projects"))[0]!.last_commit, sha);

  // The runner, connected throughout (reconnecting to the new process), serves the commit.
  for (const n of NAMES) await served(runner.port, `${n}.acme.test`, `${n} v1 /x`);
  t.deepEqual(await get(runner.port, "delta.acme.test", "/y"), { status: 200, text: "delta v1 /y" });
  const [node] = await env.sql<{ status: string; acked_generation: string }>(
    "SELECT status, acked_generation::text FROM nodes WHERE id = 'kill-1'",
  );
  const [gen] = await env.sql<{ g: string }>("SELECT max(id)::text AS g FROM outbox");
  t.is(node!.status, "online");
  t.is(node!.acked_generation, gen?.g);

  t.log(
    `killed mid-build; the restarted control plane finished the reconcile ${recoveredMs} ms after the kill`,
  );
});
