// Rows of the reconciliations table: one per reconcile attempt, from queued to its outcome.

import type { ErrorDetail } from "../lib/errors.ts";
import type { Queryable } from "./db.ts";

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

export async function markRunning(q: Queryable, id: string, commitSha: string | null): Promise<void> {
  await q.query(
    "UPDATE reconciliations SET status = 'running', started_at = now(), commit_sha = coalesce($2, commit_sha) WHERE id = $1",
    [id, commitSha],
  );
}

export async function markSuperseded(q: Queryable, id: string, by: string): Promise<void> {
  await q.query(
    "UPDATE reconciliations SET status = 'superseded', finished_at = now(), result = $2 WHERE id = $1",
    [id, JSON.stringify({ superseded_by: by })],
  );
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
                       r.created_at, r.started_at, r.finished_at, r.duration_ms
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
