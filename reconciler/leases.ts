// Project leases: the lock that lets only one control-plane replica reconcile a project at a
// time. A lease row names its holder and an expiry in database time (so replicas need not
// agree on clocks); the holder renews it while it works, and a crashed holder's lease simply
// expires. Works the same on PostgreSQL and PGlite.

import type { Queryable } from "./db.ts";

/** Takes the lease if it is free, expired or already ours; true when we hold it now. */
export async function tryLease(
  q: Queryable,
  projectId: string,
  holder: string,
  ttlMs: number,
): Promise<boolean> {
  const rows = await q.query(
    `INSERT INTO project_leases (project_id, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
     ON CONFLICT (project_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE project_leases.expires_at < now() OR project_leases.holder = EXCLUDED.holder
     RETURNING holder`,
    [projectId, holder, ttlMs],
  );
  return rows.length === 1;
}

export async function renewLease(
  q: Queryable,
  projectId: string,
  holder: string,
  ttlMs: number,
): Promise<boolean> {
  const rows = await q.query(
    `UPDATE project_leases SET expires_at = now() + $3 * interval '1 millisecond' WHERE project_id = $1 AND holder = $2 RETURNING holder`,
    [projectId, holder, ttlMs],
  );
  return rows.length === 1;
}

export async function releaseLease(q: Queryable, projectId: string, holder: string): Promise<void> {
  await q.query("DELETE FROM project_leases WHERE project_id = $1 AND holder = $2", [projectId, holder]);
}
