// After a reconcile commits a new generation: send it to the runners, wait for their acks, and
// work out what each POP made of it. The outcome is recorded on the reconciliation and drives
// the per-POP commit statuses; the reconcile queue does not wait for any of this.

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

/** The POPs a rollout targets: those of the runners online now. */
export function targetPops(control: ControlServer): string[] {
  return [
    ...new Set(
      control
        .connected()
        .filter((n) => !n.offline)
        .map((n) => n.pop),
    ),
  ].sort();
}

export async function rollout(
  deps: RolloutDeps,
  reconciliationId: string,
  generation: number,
): Promise<RolloutOutcome> {
  const { db, control } = deps;
  const started = performance.now();
  const targets = control.connected().filter((n) => !n.offline);
  await control.broadcast();
  await control.waitForAcks(
    generation,
    deps.ackTimeoutMs,
    targets.map((t) => t.nodeId),
  );
  const propagationMs = performance.now() - started;
  const acked = new Map(control.connected().map((n) => [n.nodeId, n.ackedGeneration >= generation]));
  const failureRows = await db.query<{
    node_id: string;
    function_id: string;
    version: string;
    status: string;
    message: string;
  }>(
    "SELECT node_id, function_id, version, status, message FROM node_inventory WHERE status <> 'OK' AND node_id = ANY($1)",
    [targets.map((t) => t.nodeId)],
  );
  const byPop = new Map<string, NodeOutcome[]>();
  for (const t of targets) {
    const failures = failureRows
      .filter((r) => r.node_id === t.nodeId)
      .map(({ function_id, version, status, message }) => ({ function_id, version, status, message }));
    const list = byPop.get(t.pop) ?? [];
    list.push({ node: t.nodeId, acked: acked.get(t.nodeId) ?? false, failures });
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
  await recordOutcome(db, reconciliationId, outcome);
  return outcome;
}
