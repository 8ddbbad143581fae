// Rows of the reconciliations table: one per reconcile attempt, from queued to its outcome.

import type { ErrorDetail } from "../lib/errors.ts";
import type { Db, Queryable } from "./db.ts";

export type ReconcileStatus = "queued" | "running" | "succeeded" | "failed" | "superseded";

export interface ReconciliationRow {
  id: string;
  project: string;
  commit_sha: string | null;
  trigger: string;
  actor: string;
  status: ReconcileStatus;
  plan: unknown;
  result: unknown;
  error: { code: string; message: string; details?: ErrorDetail[] } | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  outcome: unknown;
  runner: string | null;
}

/**
 * Queues a reconcile. Every reconcile of the project still queued (on any replica) is marked
 * superseded by this one in the same transaction: a newer commit wins, and the older request is
 * recorded rather than silently dropped. Returns the ids it superseded.
 */
export async function enqueueReconciliation(
  db: Db,
  r: { id: string; projectId: string; commitSha: string | null; trigger: string; actor: string },
): Promise<string[]> {
  return db.transaction(async (tx) => {
    const superseded = await tx.query<{ id: string }>(
      `UPDATE reconciliations SET status = 'superseded', finished_at = now(), result = $2
        WHERE project_id = $1 AND status = 'queued' RETURNING id`,
      [r.projectId, JSON.stringify({ superseded_by: r.id })],
    );
    await createReconciliation(tx, r);
    return superseded.map((row) => row.id);
  });
}

export interface ClaimedReconciliation {
  id: string;
  commit_sha: string | null;
  trigger: string;
  actor: string;
}

/**
 * Claims the newest queued reconcile of a project for `runner`. Only the lease holder calls
 * this, so a reconcile still marked running belongs to a replica that died: it is failed first.
 */
export async function claimNewest(
  db: Db,
  projectId: string,
  runner: string,
): Promise<ClaimedReconciliation | null> {
  return db.transaction(async (tx) => {
    await tx.query(
      `UPDATE reconciliations SET status = 'failed', finished_at = now(),
              error = '{"code":"EDGE_ERR_INTERNAL","message":"the control-plane replica running this reconcile stopped"}'
        WHERE project_id = $1 AND status = 'running'`,
      [projectId],
    );
    const [row] = await tx.query<ClaimedReconciliation>(
      `UPDATE reconciliations SET status = 'running', started_at = now(), runner = $2
        WHERE id = (SELECT id FROM reconciliations WHERE project_id = $1 AND status = 'queued'
                     ORDER BY created_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id, commit_sha, trigger, actor`,
      [projectId, runner],
    );
    return row ?? null;
  });
}

export async function countQueued(q: Queryable, projectId: string): Promise<number> {
  const [row] = await q.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM reconciliations WHERE project_id = $1 AND status = 'queued'",
    [projectId],
  );
  return row!.n;
}

/** True when any reconcile (in any state) has been recorded for this commit. */
export async function hasReconciliationFor(
  q: Queryable,
  projectId: string,
  commitSha: string,
): Promise<boolean> {
  const rows = await q.query(
    "SELECT 1 FROM reconciliations WHERE project_id = $1 AND commit_sha = $2 LIMIT 1",
    [projectId, commitSha],
  );
  return rows.length > 0;
}

export async function recordOutcome(q: Queryable, id: string, outcome: unknown): Promise<void> {
  await q.query("UPDATE reconciliations SET outcome = $2 WHERE id = $1", [id, JSON.stringify(outcome)]);
}

export async function createReconciliation(
  q: Queryable,
  r: { id: string; projectId: string; commitSha: string | null; trigger: string; actor: string },
): Promise<void> {
  await q.query(
    "INSERT INTO reconciliations (id, project_id, commit_sha, trigger, actor, status) VALUES ($1, $2, $3, $4, $5, 'queued')",
    [r.id, r.projectId, r.commitSha, r.trigger, r.actor],
  );
}

/** Records the commit a running reconcile resolved (a head request learns it at checkout). */
export async function setCommit(q: Queryable, id: string, commitSha: string): Promise<void> {
  await q.query("UPDATE reconciliations SET commit_sha = $2 WHERE id = $1", [id, commitSha]);
}

export async function markFailed(
  q: Queryable,
  id: string,
  error: { code: string; message: string; details?: ErrorDetail[] },
  plan: unknown,
  durationMs: number,
): Promise<void> {
  await q.query(
    "UPDATE reconciliations SET status = 'failed', error = $2, plan = $3, finished_at = now(), duration_ms = $4 WHERE id = $1",
    [id, JSON.stringify(error), plan === null ? null : JSON.stringify(plan), Math.round(durationMs)],
  );
}

const SELECT = `SELECT r.id, p.name AS project, r.commit_sha, r.trigger, r.actor, r.status, r.plan, r.result, r.error,
                       r.created_at, r.started_at, r.finished_at, r.duration_ms, r.outcome, r.runner
                  FROM reconciliations r JOIN projects p ON p.id = r.project_id`;

export async function getReconciliation(q: Queryable, id: string): Promise<ReconciliationRow | null> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return null;
  const [row] = await q.query<ReconciliationRow>(`${SELECT} WHERE r.id = $1`, [id]);
  return row ?? null;
}

export async function listReconciliations(
  q: Queryable,
  project?: string,
  limit = 50,
): Promise<ReconciliationRow[]> {
  return q.query<ReconciliationRow>(
    `${SELECT} ${project ? "WHERE p.name = $2" : ""} ORDER BY r.created_at DESC LIMIT $1`,
    project ? [limit, project] : [limit],
  );
}
