// Rows of the reconciliations table: one per reconcile attempt, from queued to its outcome.

import { randomUUID } from "node:crypto";
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
    await lockQueue(tx, r.projectId);
    const superseded = await tx.query<{ id: string }>(
      `UPDATE reconciliations SET status = 'superseded', finished_at = now(), result = $2
        WHERE project_id = $1 AND status = 'queued' RETURNING id`,
      [r.projectId, JSON.stringify({ superseded_by: r.id })],
    );
    await createReconciliation(tx, r);
    return superseded.map((row) => row.id);
  });
}

/**
 * Serializes decisions about one project's queue (enqueuePush, supersedeStale) until the
 * transaction ends. An advisory lock of its own, not the project's row: a row lock would also
 * wait for every transaction that inserted rows referencing the project (foreign keys take KEY
 * SHARE locks), such as a reconcile's apply, and hold up webhook deliveries meanwhile.
 */
async function lockQueue(tx: Queryable, projectId: string): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`reconcile queue ${projectId}`]);
}

/**
 * Queues a reconcile of a pushed commit, once per commit: a push (a webhook delivered again under
 * a new delivery id, a second hook on the same repository, a delivery that arrives late) of a
 * commit that already has a reconciliation joins that one instead of queuing another, so that
 * every commit is reconciled once. In detail, with the project's queue locked so that concurrent
 * deliveries decide one after the other:
 * - a queued or running reconciliation of the commit: joined;
 * - one that succeeded, the newest that did (the stored state already is the commit): joined;
 * - one that was superseded (or succeeded before a newer commit applied): the branch decides.
 *   `head()` is asked where the branch is now; unless it is at this commit, the push is stale
 *   and joins the old row. If it is (a newer commit was superseded by a late older one, or the
 *   branch was force-pushed back to this commit), a superseded row is queued again, a succeeded
 *   one gets a new reconcile;
 * - one that failed, or none: a new reconcile, as enqueueReconciliation queues it.
 * Returns the reconciliation's id and whether it joined an existing one.
 */
export async function enqueuePush(
  db: Db,
  r: { id: string; projectId: string; commitSha: string; trigger: string; actor: string },
  head: () => Promise<string>,
): Promise<{ id: string; joined: boolean; superseded: string[] }> {
  // Asking the remote takes a git round trip: never while holding the project's lock. A decision
  // that needs the head gives up the lock, asks, and decides again with the answer.
  let branchHead: string | null | undefined;
  for (;;) {
    const decided = await decidePush(db, r, branchHead);
    if (decided !== "need-head") return decided;
    branchHead = await head().catch(() => null);
  }
}

async function decidePush(
  db: Db,
  r: { id: string; projectId: string; commitSha: string; trigger: string; actor: string },
  branchHead: string | null | undefined,
): Promise<{ id: string; joined: boolean; superseded: string[] } | "need-head"> {
  return db.transaction(async (tx) => {
    await lockQueue(tx, r.projectId);
    const [existing] = await tx.query<{ id: string; status: ReconcileStatus; newest_applied: boolean }>(
      `SELECT r.id, r.status,
              r.id = (SELECT n.id FROM reconciliations n WHERE n.project_id = r.project_id
                         AND n.status = 'succeeded' ORDER BY n.finished_at DESC LIMIT 1) AS newest_applied
         FROM reconciliations r
        WHERE r.project_id = $1 AND r.commit_sha = $2 AND r.status <> 'failed'
        ORDER BY r.created_at DESC LIMIT 1`,
      [r.projectId, r.commitSha],
    );
    const joined = (id: string) => ({ id, joined: true, superseded: [] });
    if (existing) {
      if (existing.status === "queued" || existing.status === "running") return joined(existing.id);
      if (existing.status === "succeeded" && existing.newest_applied) return joined(existing.id);
      if (branchHead === undefined) return "need-head";
      if (branchHead !== r.commitSha) return joined(existing.id);
      if (existing.status === "superseded") {
        await tx.query(
          `UPDATE reconciliations SET status = 'queued', finished_at = NULL,
                  result = coalesce(result, '{}'::jsonb) || $2::jsonb WHERE id = $1`,
          [existing.id, JSON.stringify({ requeued: "pushed again while the branch is at this commit" })],
        );
        return joined(existing.id);
      }
    }
    const superseded = await tx.query<{ id: string }>(
      `UPDATE reconciliations SET status = 'superseded', finished_at = now(), result = $2
        WHERE project_id = $1 AND status = 'queued' RETURNING id`,
      [r.projectId, JSON.stringify({ superseded_by: r.id })],
    );
    await createReconciliation(tx, r);
    return { id: r.id, joined: false, superseded: superseded.map((row) => row.id) };
  });
}

/**
 * A running reconcile of a pushed commit that the branch has moved past (a delivery that arrived
 * after a newer one; GitHub does not promise order): recorded as superseded by the branch head,
 * nothing applied. So that the head is reconciled even when its own push was superseded by this
 * late one, a superseded reconciliation of the head is queued again (or, when the head has none
 * at all, one is queued for it: its own delivery will join it). Returns the head's reconciliation
 * id, when one is queued now.
 */
export async function supersedeStale(
  db: Db,
  r: { id: string; projectId: string; head: string; trigger: string; actor: string },
): Promise<string | null> {
  return db.transaction(async (tx) => {
    await lockQueue(tx, r.projectId);
    const [headRow] = await tx.query<{ id: string; status: ReconcileStatus }>(
      "SELECT id, status FROM reconciliations WHERE project_id = $1 AND commit_sha = $2 ORDER BY created_at DESC LIMIT 1",
      [r.projectId, r.head],
    );
    let queued: string | null = null;
    if (headRow?.status === "superseded") {
      await tx.query(
        `UPDATE reconciliations SET status = 'queued', finished_at = NULL,
                result = coalesce(result, '{}'::jsonb) || $2::jsonb WHERE id = $1`,
        [
          headRow.id,
          JSON.stringify({ requeued: `the branch head; an older push (${r.id}) had superseded it` }),
        ],
      );
      queued = headRow.id;
    } else if (!headRow) {
      queued = randomUUID();
      await createReconciliation(tx, {
        id: queued,
        projectId: r.projectId,
        commitSha: r.head,
        trigger: r.trigger,
        actor: r.actor,
      });
    }
    // superseded_by as when a newer request supersedes a queued one (edgectl follows it).
    await tx.query(
      `UPDATE reconciliations SET status = 'superseded', finished_at = now(), result = $2 WHERE id = $1`,
      [
        r.id,
        JSON.stringify({
          superseded_by: queued ?? headRow!.id,
          superseded_by_commit: r.head,
          reason: "the branch has moved past this commit",
        }),
      ],
    );
    return queued;
  });
}

export interface ClaimedReconciliation {
  id: string;
  commit_sha: string | null;
  trigger: string;
  actor: string;
  /** How many times a replica died running it before (0 for a fresh request). */
  interrupted: number;
}

/** How many times a reconcile interrupted by a dying replica is queued again before it fails. */
export const MAX_INTERRUPTED_ATTEMPTS = 3;

/**
 * Claims the newest queued reconcile of a project for `runner`. Only the lease holder calls
 * this, so a reconcile still marked running belongs to a replica that died (nothing of it was
 * applied: applyPlan marks it succeeded in the transaction that writes its changes). Such a
 * reconcile is queued again, so that a push is not lost with the replica, unless a newer request
 * is queued (that one wins, as it would have superseded this one) or it was already interrupted
 * MAX_INTERRUPTED_ATTEMPTS times (a commit that kills its replica must not kill them all).
 */
export async function claimNewest(
  db: Db,
  projectId: string,
  runner: string,
): Promise<ClaimedReconciliation | null> {
  return db.transaction(async (tx) => {
    const orphans = await tx.query<{
      id: string;
      interrupted: number;
      newer: boolean;
      runner: string | null;
    }>(
      `SELECT r.id, r.runner, coalesce((r.result->>'interrupted')::int, 0) AS interrupted,
              EXISTS (SELECT 1 FROM reconciliations q WHERE q.project_id = r.project_id
                         AND q.status = 'queued' AND q.created_at > r.created_at) AS newer
         FROM reconciliations r WHERE r.project_id = $1 AND r.status = 'running' FOR UPDATE`,
      [projectId],
    );
    for (const o of orphans) {
      const interrupted = o.interrupted + 1;
      if (!o.newer && interrupted < MAX_INTERRUPTED_ATTEMPTS) {
        await tx.query(
          `UPDATE reconciliations SET status = 'queued', started_at = NULL, runner = NULL, result = $2 WHERE id = $1`,
          [o.id, JSON.stringify({ interrupted, interrupted_runner: o.runner })],
        );
        continue;
      }
      await tx.query(
        `UPDATE reconciliations SET status = 'failed', finished_at = now(), result = $2, error = $3 WHERE id = $1`,
        [
          o.id,
          JSON.stringify({ interrupted, interrupted_runner: o.runner }),
          JSON.stringify({
            code: "EDGE_ERR_INTERNAL",
            message: o.newer
              ? "the control-plane replica running this reconcile stopped; a newer request is queued"
              : `the control-plane replica running this reconcile stopped ${interrupted} times; not retried`,
          }),
        ],
      );
    }
    const [row] = await tx.query<ClaimedReconciliation>(
      `UPDATE reconciliations SET status = 'running', started_at = now(), runner = $2
        WHERE id = (SELECT id FROM reconciliations WHERE project_id = $1 AND status = 'queued'
                     ORDER BY created_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id, commit_sha, trigger, actor, coalesce((result->>'interrupted')::int, 0) AS interrupted`,
      [projectId, runner],
    );
    return row ?? null;
  });
}

/**
 * Work waiting for a project's lease holder: queued reconciles, plus reconciles left running by a
 * replica whose lease has expired (or was released without finishing them).
 */
export async function countPending(q: Queryable, projectId: string): Promise<number> {
  const [row] = await q.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM reconciliations r
      WHERE r.project_id = $1
        AND (r.status = 'queued'
             OR (r.status = 'running' AND NOT EXISTS (
                   SELECT 1 FROM project_leases l WHERE l.project_id = r.project_id AND l.expires_at >= now())))`,
    [projectId],
  );
  return row!.n;
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
