// Progressive rollout: a new version of a function reaches the POPs wave by wave. A wave's
// POPs serve the new version for its bake time while the runners' heartbeat counters (requests,
// 5xx answers, p99 latency) are watched; a breach pins the previous version everywhere it had
// already gone (the same pin `edgectl rollback` makes), marks the commit status failed with the
// reason and writes the audit rows. After the last wave the rollout is done and the version
// goes wherever its placement allows.
//
// The wave a rollout is at lives in the `rollouts` table; nodes.ts cuts each node's desired
// state from it (a node matching waves 0..wave gets the new version, others the previous one),
// so every wave change is one outbox row like any other change of desired state.

import { randomUUID } from "node:crypto";
import type { Logger } from "../lib/log.ts";
import { parseDuration } from "../lib/units.ts";
import type { Rollout } from "../schema/index.ts";
import { audit } from "./audit.ts";
import type { ControlServer } from "./control-server.ts";
import type { Db } from "./db.ts";
import { bumpGeneration } from "./outbox.ts";
import { rollout as waitForAcks } from "./rollout.ts";
import { matchesSelector } from "./selector.ts";
import type { CommitState } from "./status.ts";

export interface RolloutWavePolicy {
  /** A label selector, or "*" for every POP. */
  pops: string;
  bakeMs: number;
}

/** A rollout as compiled from the manifest: durations in ms, defaults applied. */
export interface RolloutPolicy {
  waves: RolloutWavePolicy[];
  /** Largest share of 5xx answers (0..1). */
  maxErrorRate: number;
  /** Largest p99 latency in ms; null = not checked. */
  maxP99Ms: number | null;
  /** Requests a wave's nodes must answer before its error rate is judged. */
  minRequests: number;
}

export function compileRollout(r: Rollout | undefined | null): RolloutPolicy | null {
  if (!r) return null;
  return {
    waves: r.waves.map((w, i) => ({
      pops: w.pops.trim() === "*" ? "*" : w.pops,
      bakeMs: parseDuration(w.bake ?? "0s", `rollout.waves[${i}].bake`),
    })),
    maxErrorRate: r.maxErrorRate ?? 0.05,
    maxP99Ms: r.maxP99Ms ?? null,
    minRequests: r.minRequests ?? 1,
  };
}

/** Whether a node with these labels is in a wave's POPs. */
export function inWave(selector: string, labels: Record<string, string>): boolean {
  return selector === "*" || matchesSelector(selector, labels);
}

/** Counters summed over a wave's nodes since the wave started. */
export interface WaveStats {
  requests: number;
  errors: number;
  /** The largest p99 any of the wave's nodes reported for the version, in ms (null: none). */
  p99Ms: number | null;
}

/** The breach a wave's stats show, or null. Pure: the decision the tests and docs describe. */
export function judgeWave(policy: RolloutPolicy, stats: WaveStats): string | null {
  if (stats.requests >= Math.max(1, policy.minRequests)) {
    const rate = stats.errors / stats.requests;
    if (rate > policy.maxErrorRate) {
      return `error rate ${(rate * 100).toFixed(1)}% (${stats.errors} of ${stats.requests} requests answered 5xx) is above the maximum ${(policy.maxErrorRate * 100).toFixed(1)}%`;
    }
  }
  if (policy.maxP99Ms !== null && stats.p99Ms !== null && stats.p99Ms > policy.maxP99Ms) {
    return `p99 latency ${stats.p99Ms.toFixed(1)} ms is above the maximum ${policy.maxP99Ms} ms`;
  }
  return null;
}

export interface RolloutRow {
  id: string;
  project_id: string;
  reconciliation_id: string | null;
  commit_sha: string | null;
  function_name: string;
  from_function_id: string;
  from_version: number;
  to_function_id: string;
  to_version: number;
  policy: RolloutPolicy;
  wave: number;
  status: "running" | "succeeded" | "rolled_back" | "superseded" | "abandoned";
  reason: string | null;
  lease_holder?: string | null;
  bake_started_at?: string | Date | null;
  bake_baseline?: { requests: number; errors: number } | null;
}

export interface RolloutEnd {
  function: string;
  status: "succeeded" | "rolled_back" | "stopped";
  reason: string | null;
}

export interface ProgressiveDeps {
  db: Db;
  log: Logger;
  control: ControlServer;
  ackTimeoutMs: number;
  /** Posts a commit status for the rollout's commit (control-plane.ts binds the project's target). */
  commitStatus(
    r: RolloutRow,
    context: string,
    state: CommitState,
    description: string,
    reconciliationId: string,
  ): void;
  /** How often the counters are read during a bake. Default 100 ms. */
  pollMs?: number;
  /**
   * How long this replica's lease on a rollout lasts without renewal (it is renewed while the
   * rollout bakes); a running rollout whose lease has expired is resumed by any replica. Default 60 s.
   */
  leaseMs?: number;
  /** How often running rollouts nobody drives are looked for. Default a third of leaseMs. */
  resumeIntervalMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface NodeRow {
  id: string;
  pop: string;
  labels: Record<string, string>;
}

async function onlineNodes(db: Db): Promise<NodeRow[]> {
  const rows = await db.query<{ id: string; pop: string; metadata: { labels?: Record<string, string> } }>(
    "SELECT id, pop_id AS pop, metadata FROM nodes WHERE status = 'online' ORDER BY id",
  );
  return rows.map((r) => ({ id: r.id, pop: r.pop, labels: { ...(r.metadata?.labels ?? {}), pop: r.pop } }));
}

/**
 * Drives the running rollouts wave by wave. One driver per rollout row, on the replica holding
 * the row's lease (rollouts.lease_holder, renewed while it bakes). A replica that stops releases
 * its leases (a crashed one's expire); any replica then resumes the rollout from the wave and
 * bake start stored in the row, at start() and every resumeIntervalMs.
 */
export class ProgressiveRollouts {
  private readonly running = new Set<Promise<void>>();
  /** Rollout ids this replica is driving now. */
  private readonly driving = new Set<string>();
  private stopped = false;
  private resumer: NodeJS.Timeout | null = null;
  /** This replica's name in rollouts.lease_holder. */
  readonly holder = `progressive-${randomUUID()}`;

  constructor(private readonly deps: ProgressiveDeps) {}

  private get leaseMs(): number {
    return this.deps.leaseMs ?? 60_000;
  }

  /** Resumes running rollouts nobody drives, now and periodically. */
  start(): void {
    const sweep = () =>
      void this.resume().catch((err) => this.deps.log.warn({ err }, "rollout resume failed"));
    sweep();
    this.resumer = setInterval(sweep, this.deps.resumeIntervalMs ?? Math.max(100, this.leaseMs / 3));
    this.resumer.unref();
  }

  /**
   * Picks up every running rollout whose lease was released or has expired (its replica stopped
   * or crashed), or that nobody leased within a lease period of its creation (the replica that
   * ran the reconcile died before starting its driver), and drives it from its stored wave;
   * returns the ids it took. When a resumed rollout
   * ends, the commit's overall `edgeplane` status says so (the replica that started it is gone).
   */
  async resume(): Promise<string[]> {
    if (this.stopped) return [];
    const rows = await this.deps.db.query<RolloutRow>(
      `SELECT * FROM rollouts WHERE status = 'running'
         AND ((lease_holder IS NOT NULL AND lease_expires_at < now())
           OR (lease_holder IS NULL AND created_at < now() - $1 * interval '1 millisecond'))
       ORDER BY created_at`,
      [this.leaseMs],
    );
    const taken: string[] = [];
    for (const r of rows) {
      if (this.driving.has(r.id)) continue;
      taken.push(r.id);
      this.deps.log.info({ rollout: r.id, function: r.function_name, wave: r.wave }, "resuming rollout");
      const p = this.drive(r).then(async (end) => {
        if (end.status === "stopped") return;
        const rid = r.reconciliation_id ?? r.id;
        if (end.status === "rolled_back") {
          this.deps.commitStatus(
            r,
            "edgeplane",
            "failure",
            `${end.function} rolled back: ${end.reason}`,
            rid,
          );
        } else if ((await this.runningFor(rid)) === 0) {
          this.deps.commitStatus(r, "edgeplane", "success", `${end.function} healthy in every wave`, rid);
        }
      });
      this.track(p);
    }
    return taken;
  }

  /** How many rollouts a reconciliation started that are still running. */
  async runningFor(reconciliationId: string): Promise<number> {
    const [row] = await this.deps.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM rollouts WHERE reconciliation_id = $1 AND status = 'running'",
      [reconciliationId],
    );
    return row?.n ?? 0;
  }

  /**
   * Starts the drivers of every running rollout a reconciliation created; resolves with how
   * each ended once all have (status "stopped": this replica stopped or another writer took over).
   */
  async startFor(reconciliationId: string): Promise<RolloutEnd[]> {
    const rows = await this.deps.db.query<RolloutRow>(
      "SELECT * FROM rollouts WHERE reconciliation_id = $1 AND status = 'running' ORDER BY function_name",
      [reconciliationId],
    );
    const ends = rows.map((r) => {
      const p = this.drive(r).catch((err): RolloutEnd => {
        this.deps.log.error({ err, rollout: r.id }, "rollout driver failed");
        return { function: r.function_name, status: "stopped", reason: (err as Error).message };
      });
      this.track(p.then(() => {}));
      return p;
    });
    return Promise.all(ends);
  }

  /** Resolves when every driver started so far has finished. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resumer) clearInterval(this.resumer);
    await this.settled();
  }

  /** Takes (or renews) the lease on a running rollout; the row as it is now, or null. */
  private async lease(id: string): Promise<RolloutRow | null> {
    const [row] = await this.deps.db.query<RolloutRow>(
      `UPDATE rollouts SET lease_holder = $2, lease_expires_at = now() + $3 * interval '1 millisecond'
        WHERE id = $1 AND status = 'running'
          AND (lease_holder IS NULL OR lease_holder = $2 OR lease_expires_at IS NULL OR lease_expires_at < now())
        RETURNING *`,
      [id, this.holder, this.leaseMs],
    );
    return row ?? null;
  }

  private async release(id: string): Promise<void> {
    await this.deps.db.query(
      // Expired at once (the holder stays, so resume() knows it was driven and may be taken now).
      "UPDATE rollouts SET lease_expires_at = now() - interval '1 millisecond' WHERE id = $1 AND lease_holder = $2",
      [id, this.holder],
    );
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch((err) => this.deps.log.error({ err }, "rollout driver failed"));
    this.running.add(tracked);
    void tracked.finally(() => this.running.delete(tracked));
  }

  private async current(id: string): Promise<RolloutRow | null> {
    const [row] = await this.deps.db.query<RolloutRow>("SELECT * FROM rollouts WHERE id = $1", [id]);
    return row ?? null;
  }

  /** Drives a rollout while holding its lease; "stopped" when another replica holds it. */
  private async drive(r: RolloutRow): Promise<RolloutEnd> {
    if (this.driving.has(r.id) || this.stopped)
      return { function: r.function_name, status: "stopped", reason: null };
    this.driving.add(r.id);
    try {
      const leased = await this.lease(r.id);
      if (!leased)
        return { function: r.function_name, status: "stopped", reason: "driven by another replica" };
      return await this.driveLeased(leased);
    } finally {
      this.driving.delete(r.id);
      await this.release(r.id).catch((err) =>
        this.deps.log.warn({ err, rollout: r.id }, "lease release failed"),
      );
    }
  }

  private async driveLeased(r: RolloutRow): Promise<RolloutEnd> {
    const stopped: RolloutEnd = { function: r.function_name, status: "stopped", reason: null };
    const { db, log } = this.deps;
    const rid = r.reconciliation_id ?? r.id;
    const label = `${r.function_name} v${r.from_version} → v${r.to_version}`;
    const waves = r.policy.waves;
    const reached = new Set<string>(); // POPs already on the new version
    // Resumed mid-rollout: the POPs of the waves already passed were reported then.
    for (const n of await onlineNodes(db)) {
      if (waves.slice(0, r.wave).some((w) => inWave(w.pops, n.labels))) reached.add(n.pop);
    }
    for (let wave = r.wave; wave < waves.length; wave++) {
      if (this.stopped) return stopped;
      const now = await this.current(r.id);
      // Superseded by a newer push, or rolled back by hand.
      if (now?.status !== "running") return { ...stopped, reason: `rollout ${now?.status ?? "gone"}` };
      if (wave > now.wave) {
        await db.transaction(async (tx) => {
          await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [r.project_id]);
          await tx.query(
            `UPDATE rollouts SET wave = $2, bake_started_at = NULL, bake_baseline = NULL, updated_at = now()
              WHERE id = $1 AND status = 'running'`,
            [r.id, wave],
          );
          await audit(tx, {
            actor: "system",
            trigger: "push",
            commitSha: r.commit_sha,
            projectId: r.project_id,
            objectKind: "rollout",
            objectId: r.function_name,
            action: "advance",
            before: { wave: wave - 1 },
            after: { wave, pops: waves[wave]!.pops, version: r.to_version },
            reconciliationId: r.reconciliation_id,
          });
          await bumpGeneration(tx, r.project_id, { rollout: r.id, wave });
        });
      }
      const nodes = (await onlineNodes(db)).filter((n) =>
        waves.slice(0, wave + 1).some((w) => inWave(w.pops, n.labels)),
      );
      const waveNodes = nodes.filter((n) => inWave(waves[wave]!.pops, n.labels));
      const pops = [...new Set(waveNodes.map((n) => n.pop))].filter((p) => !reached.has(p)).sort();
      for (const pop of pops) {
        this.deps.commitStatus(
          r,
          `edgeplane/${pop}`,
          "pending",
          `wave ${wave + 1}/${waves.length}: ${label} baking`,
          rid,
        );
      }
      const generation = Number(
        (await db.query<{ g: number }>("SELECT max(id) AS g FROM outbox"))[0]?.g ?? 0,
      );
      await waitForAcks(
        { db, control: this.deps.control, ackTimeoutMs: this.deps.ackTimeoutMs },
        rid,
        generation,
        waveNodes.map((n) => ({ id: n.id, pop: n.pop })),
        { record: false },
      );
      // Bake: counters of the new version on every node that has it, from the bake's start. The
      // start and the counters then are stored in the row (once), so a replica resuming the
      // rollout bakes only what is left, in database time.
      const ids = nodes.map((n) => n.id);
      const fresh = await this.stats(r.to_function_id, ids);
      const [bake] = await db.query<{ baseline: { requests: number; errors: number } | null; left: number }>(
        `UPDATE rollouts SET bake_started_at = coalesce(bake_started_at, now()),
           bake_baseline = coalesce(bake_baseline, $2::jsonb)
         WHERE id = $1
         RETURNING bake_baseline AS baseline,
           greatest(0, extract(epoch FROM (coalesce(bake_started_at, now()) + $3 * interval '1 millisecond' - now())) * 1000)::float8 AS left`,
        [r.id, JSON.stringify({ requests: fresh.requests, errors: fresh.errors }), waves[wave]!.bakeMs],
      );
      const baseline: WaveStats = {
        requests: Number(bake?.baseline?.requests ?? fresh.requests),
        errors: Number(bake?.baseline?.errors ?? fresh.errors),
        p99Ms: null,
      };
      const deadline = Date.now() + Number(bake?.left ?? waves[wave]!.bakeMs);
      let breach: string | null = null;
      let renewed = Date.now();
      for (;;) {
        const s = await this.stats(r.to_function_id, ids, baseline);
        breach = judgeWave(r.policy, s);
        if (breach || Date.now() >= deadline || this.stopped) break;
        const latest = await this.current(r.id);
        if (latest?.status !== "running")
          return { ...stopped, reason: `rollout ${latest?.status ?? "gone"}` };
        if (latest.lease_holder !== this.holder) return { ...stopped, reason: "driven by another replica" };
        if (Date.now() - renewed > this.leaseMs / 3) {
          if (!(await this.lease(r.id))) return { ...stopped, reason: "lease lost" };
          renewed = Date.now();
        }
        await sleep(Math.min(this.deps.pollMs ?? 100, Math.max(1, deadline - Date.now())));
      }
      if (this.stopped && !breach) return stopped;
      if (breach) {
        const applied = await this.rollBack(r, wave, breach, [...new Set(nodes.map((n) => n.pop))].sort());
        return applied ? { function: r.function_name, status: "rolled_back", reason: breach } : stopped;
      }
      for (const pop of pops) {
        reached.add(pop);
        this.deps.commitStatus(
          r,
          `edgeplane/${pop}`,
          "success",
          `wave ${wave + 1}/${waves.length}: ${label} healthy`,
          rid,
        );
      }
      log.info({ rollout: r.id, function: r.function_name, wave }, "rollout wave passed");
    }
    // Every wave passed: the version goes wherever its placement allows.
    const done = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [r.project_id]);
      const rows = await tx.query(
        "UPDATE rollouts SET status = 'succeeded', updated_at = now() WHERE id = $1 AND status = 'running' RETURNING id",
        [r.id],
      );
      if (rows.length === 0) return false;
      await audit(tx, {
        actor: "system",
        trigger: "push",
        commitSha: r.commit_sha,
        projectId: r.project_id,
        objectKind: "rollout",
        objectId: r.function_name,
        action: "complete",
        before: { version: r.from_version },
        after: { version: r.to_version, waves: waves.length },
        reconciliationId: r.reconciliation_id,
      });
      await bumpGeneration(tx, r.project_id, { rollout: r.id, status: "succeeded" });
      return true;
    });
    if (!done) return stopped;
    // POPs no wave named get the version now, with everything else its placement allows.
    for (const n of await onlineNodes(db)) {
      if (reached.has(n.pop)) continue;
      reached.add(n.pop);
      this.deps.commitStatus(
        r,
        `edgeplane/${n.pop}`,
        "success",
        `${label} live after ${waves.length} wave(s)`,
        rid,
      );
    }
    this.deps.commitStatus(
      r,
      "edgeplane/rollout",
      "success",
      `${label}: all ${waves.length} wave(s) healthy`,
      rid,
    );
    return { function: r.function_name, status: "succeeded", reason: null };
  }

  /** Sums the counters of `functionId` on `nodes`, minus the baseline. */
  private async stats(functionId: string, nodes: string[], baseline?: WaveStats): Promise<WaveStats> {
    const [row] = await this.deps.db.query<{
      requests: number | null;
      errors: number | null;
      p99: number | null;
    }>(
      `SELECT sum(requests)::float8 AS requests, sum(errors)::float8 AS errors, max(p99_ms) AS p99
         FROM node_function_stats WHERE function_id = $1 AND node_id = ANY($2)`,
      [functionId, nodes],
    );
    const requests = Number(row?.requests ?? 0) - (baseline?.requests ?? 0);
    const errors = Number(row?.errors ?? 0) - (baseline?.errors ?? 0);
    // p99 is per heartbeat interval: only intervals after the baseline count.
    const p99 = baseline ? (requests > 0 ? (row?.p99 ?? null) : null) : null;
    return { requests, errors, p99Ms: p99 === null ? null : Number(p99) };
  }

  /** A breach: pin the previous version (where the new one went, it is replaced), say why. */
  private async rollBack(r: RolloutRow, wave: number, reason: string, pops: string[]): Promise<boolean> {
    const { db, log } = this.deps;
    const rid = r.reconciliation_id ?? r.id;
    const applied = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [r.project_id]);
      const rows = await tx.query(
        "UPDATE rollouts SET status = 'rolled_back', reason = $2, updated_at = now() WHERE id = $1 AND status = 'running' RETURNING id",
        [r.id, reason],
      );
      if (rows.length === 0) return false;
      await tx.query(
        `INSERT INTO pins (project_id, function_name, function_id, version, from_function_id, from_version, actor, reason)
         VALUES ($1, $2, $3, $4, $5, $6, 'system', $7)
         ON CONFLICT (project_id, function_name) DO UPDATE SET function_id = $3, version = $4, from_function_id = $5,
           from_version = $6, actor = 'system', reason = $7, created_at = now()`,
        [
          r.project_id,
          r.function_name,
          r.from_function_id,
          r.from_version,
          r.to_function_id,
          r.to_version,
          `rollout: ${reason}`,
        ],
      );
      await audit(tx, {
        actor: "system",
        trigger: "rollback",
        commitSha: r.commit_sha,
        projectId: r.project_id,
        objectKind: "rollout",
        objectId: r.function_name,
        action: "rollback",
        before: { version: r.to_version, wave, pops },
        after: { version: r.from_version, reason },
        reconciliationId: r.reconciliation_id,
      });
      await audit(tx, {
        actor: "system",
        trigger: "rollback",
        commitSha: r.commit_sha,
        projectId: r.project_id,
        objectKind: "function",
        objectId: r.function_name,
        action: "pin",
        before: { version: r.to_version, function_id: r.to_function_id },
        after: { version: r.from_version, function_id: r.from_function_id, reason: `rollout: ${reason}` },
        reconciliationId: r.reconciliation_id,
      });
      await bumpGeneration(tx, r.project_id, { rollout: r.id, status: "rolled_back" });
      return true;
    });
    if (!applied) return false;
    log.warn({ rollout: r.id, function: r.function_name, wave, reason }, "rollout breached; rolled back");
    const why = `${r.function_name} v${r.to_version} rolled back to v${r.from_version}: ${reason}`;
    for (const pop of pops) this.deps.commitStatus(r, `edgeplane/${pop}`, "failure", why, rid);
    this.deps.commitStatus(r, "edgeplane/rollout", "failure", why, rid);
    return true;
  }
}
