// The transactional outbox: one row per committed change of desired state. Its id is the
// generation runners converge on, and the NOTIFY that announces it is delivered only when the
// surrounding transaction commits, so an intent can never be lost between commit and send.

import type { Queryable } from "./db.ts";

/** The NOTIFY channel (suffixed with the schema) announcing a new generation to every replica. */
export const DESIRED_STATE_CHANNEL = "edgeplane_desired_state";

/** Records a change of desired state inside transaction `tx`; returns the new generation. */
export async function bumpGeneration(
  tx: Queryable,
  projectId: string | null,
  payload: Record<string, unknown>,
): Promise<number> {
  const [row] = await tx.query<{ id: number }>(
    "INSERT INTO outbox (project_id, kind, payload) VALUES ($1, 'desired_state', $2) RETURNING id",
    [projectId, JSON.stringify(payload)],
  );
  const generation = Number(row!.id);
  // Every replica LISTENs on this channel (one per schema); it is delivered at commit.
  await tx.query("SELECT pg_notify($1 || '_' || current_schema(), $2)", [
    DESIRED_STATE_CHANNEL,
    String(generation),
  ]);
  return generation;
}
