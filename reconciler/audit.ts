// The audit log: append-only, one row per change of stored state, written in the same
// transaction as the change itself (so a rolled-back change leaves no row).

import type { Queryable } from "./db.ts";

export interface AuditEntry {
  actor: string;
  trigger: string;
  commitSha: string | null;
  projectId: string | null;
  objectKind: string;
  objectId: string;
  action: string;
  before: unknown;
  after: unknown;
  reconciliationId?: string | null;
}

export async function audit(q: Queryable, e: AuditEntry): Promise<void> {
  await q.query(
    `INSERT INTO audit_logs (actor, trigger, commit_sha, project_id, object_kind, object_id, action, before, after, reconciliation_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      e.actor,
      e.trigger,
      e.commitSha,
      e.projectId,
      e.objectKind,
      e.objectId,
      e.action,
      e.before === null ? null : JSON.stringify(e.before),
      e.after === null ? null : JSON.stringify(e.after),
      e.reconciliationId ?? null,
    ],
  );
}

export interface AuditFilter {
  project?: string;
  /** Function name (or node id, for drift rows). */
  objectId?: string;
  commit?: string;
  /** Rows at or after this time (ISO 8601). */
  since?: string;
  /** Rows before this time (ISO 8601). */
  until?: string;
  limit?: number;
}

export async function listAudit(q: Queryable, f: AuditFilter = {}): Promise<Record<string, unknown>[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (f.project) {
    params.push(f.project);
    where.push(`p.name = $${params.length}`);
  }
  if (f.objectId) {
    params.push(f.objectId);
    where.push(`a.object_id = $${params.length}`);
  }
  if (f.commit) {
    params.push(f.commit);
    where.push(`a.commit_sha = $${params.length}`);
  }
  if (f.since) {
    params.push(f.since);
    where.push(`a.at >= $${params.length}::timestamptz`);
  }
  if (f.until) {
    params.push(f.until);
    where.push(`a.at < $${params.length}::timestamptz`);
  }
  params.push(Math.min(Math.max(f.limit ?? 100, 1), 1000));
  return q.query(
    `SELECT a.id, a.at, a.actor, a.trigger, a.commit_sha, p.name AS project, a.object_kind, a.object_id, a.action,
            a.before, a.after, a.reconciliation_id
       FROM audit_logs a LEFT JOIN projects p ON p.id = a.project_id
      ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY a.id DESC LIMIT $${params.length}`,
    params,
  );
}
