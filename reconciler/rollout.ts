// After a reconcile commits a new generation: send it to the runners, wait for their acks, and
// work out what each POP made of it. The outcome is recorded on the reconciliation and drives
// the per-POP commit statuses; the reconcile queue does not wait for any of this.
//
// Targets and acks are read from the nodes table, not from this replica's own connections:
// runners connected to other replicas get the generation through LISTEN/NOTIFY and record
// their acks in the same table, so the outcome covers the whole fleet.

import type { ControlServer } from "./control-server.ts";
import type { Db } from "./db.ts";
import { recordOutcome } from "./reconciliations.ts";

export interface NodeOutcome {
  node: string;
  acked: boolean;
  /** Results the node reported for function versions it failed to load (empty when all are OK). */
  failures: { function_id: string; version: string; status: string; message: string }[];
}

export interface PopOutcome {
  pop: string;
  state: "success" | "failure";
  description: string;
  nodes: NodeOutcome[];
}

export interface RolloutOutcome {
  generation: number;
  pops: PopOutcome[];
  /** Milliseconds from the broadcast to the last ack (or to the timeout). */
  propagationMs: number;
}

export interface RolloutDeps {
  db: Db;
  control: ControlServer;
  ackTimeoutMs: number;
}

/** The online nodes (of every replica) a rollout targets. */
export async function targetNodes(db: Db): Promise<{ id: string; pop: string }[]> {
  return db.query<{ id: string; pop: string }>(
    "SELECT id, pop_id AS pop FROM nodes WHERE status = 'online' ORDER BY id",
  );
}

export async function rollout(
  deps: RolloutDeps,
  reconciliationId: string,
  generation: number,
  targets: { id: string; pop: string }[],
  /** record: false leaves the reconciliation's outcome alone (preview and wave rollouts). */
  options: { record?: boolean } = {},
): Promise<RolloutOutcome> {
  const { db, control } = deps;
  const started = performance.now();
  await control.broadcast();
  const ids = targets.map((t) => t.id);
  const deadline = Date.now() + deps.ackTimeoutMs;
  let acked = new Set<string>();
  for (;;) {
    const rows = await db.query<{ id: string }>(
      "SELECT id FROM nodes WHERE id = ANY($1) AND acked_generation >= $2",
      [ids, generation],
    );
    acked = new Set(rows.map((r) => r.id));
    if (acked.size === ids.length || Date.now() >= deadline) break;
    // Woken by an ack on this replica, or polling for acks recorded by other replicas; at most
    // one query per 25 ms however fast the acks come.
    const polled = Date.now();
    await control.nextAck(Math.min(100, deadline - Date.now()));
    const since = Date.now() - polled;
    if (since < 25) await new Promise((r) => setTimeout(r, 25 - since));
  }
  const propagationMs = performance.now() - started;
  const failureRows = await db.query<{
    node_id: string;
    function_id: string;
    version: string;
    status: string;
    message: string;
  }>(
    "SELECT node_id, function_id, version, status, message FROM node_inventory WHERE status <> 'OK' AND node_id = ANY($1)",
    [ids],
  );
  const byPop = new Map<string, NodeOutcome[]>();
  for (const t of targets) {
    const failures = failureRows
      .filter((r) => r.node_id === t.id)
      .map(({ function_id, version, status, message }) => ({ function_id, version, status, message }));
    const list = byPop.get(t.pop) ?? [];
    list.push({ node: t.id, acked: acked.has(t.id), failures });
    byPop.set(t.pop, list);
  }
  const pops: PopOutcome[] = [...byPop.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([pop, nodes]) => {
      const unacked = nodes.filter((n) => !n.acked).length;
      const failed = nodes.filter((n) => n.failures.length > 0).length;
      const ok = unacked === 0 && failed === 0;
      const description = ok
        ? `generation ${generation} live on ${nodes.length} node${nodes.length === 1 ? "" : "s"}`
        : [
            unacked ? `${unacked} node(s) did not ack in ${deps.ackTimeoutMs} ms` : "",
            failed ? `${failed} node(s) failed to load a function` : "",
          ]
            .filter(Boolean)
            .join("; ");
      return { pop, state: ok ? "success" : "failure", description, nodes };
    });
  const outcome: RolloutOutcome = { generation, pops, propagationMs: Math.round(propagationMs) };
  if (options.record !== false) await recordOutcome(db, reconciliationId, outcome);
  return outcome;
}
