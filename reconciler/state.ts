// Stored state of a project's functions, routes and deployments: reading it for plan(), and
// applying a plan in exactly one transaction together with its audit rows, the outbox row
// that bumps the runners' generation, and the reconciliation's result.

import { edgeError } from "../lib/errors.ts";
import { audit } from "./audit.ts";
import type { Db, Queryable } from "./db.ts";
import { bumpGeneration } from "./outbox.ts";
import {
  type Change,
  type DesiredFunction,
  normalizeRoutes,
  type Plan,
  type PlannedRoute,
  type StoredFunction,
} from "./plan.ts";
import type { RolloutPolicy } from "./progressive.ts";

/** Everything about a desired function that a new version row records. */
export interface DesiredFunctionDetail extends DesiredFunction {
  runtime: string;
  abi: string;
  language: string;
  entrypoint: string;
  sourcePath: string;
  memoryPages: number;
  maxExecutionMs: number;
  maxRequestBytes: number;
  maxInstances: number;
  env: Record<string, string>;
  capabilities: Record<string, boolean>;
  labels: Record<string, string>;
  popSelector: string;
  /** Env names whose values previews of fork pull requests do not get. */
  secretEnv?: string[];
  /** Progressive rollout of new versions (the function's own, else the Project's); null = everywhere at once. */
  rollout?: RolloutPolicy | null;
}

export interface BuiltArtifact {
  functionId: string;
  version: number;
  artifactKey: string;
  sha256: string;
  size: number;
}

export interface StoredState {
  functions: StoredFunction[];
  /** Highest version ever given to each name, deleted ones included: versions are never reused. */
  maxVersion: Map<string, number>;
}

export async function loadStoredState(q: Queryable, projectId: string): Promise<StoredState> {
  const rows = await q.query<{
    name: string;
    id: string;
    version: number;
    source_hash: string;
    config_hash: string;
  }>(
    `SELECT f.name, f.id, f.version, f.source_hash, f.config_hash
       FROM deployments d JOIN functions f ON f.id = d.function_id
      WHERE d.project_id = $1 AND d.active ORDER BY f.name`,
    [projectId],
  );
  const routeRows = await q.query<{ function_name: string } & PlannedRoute>(
    "SELECT function_name, host, path, methods, priority FROM routes WHERE project_id = $1",
    [projectId],
  );
  const versions = await q.query<{ name: string; max: number }>(
    "SELECT name, max(version) AS max FROM functions WHERE project_id = $1 GROUP BY name",
    [projectId],
  );
  const routesOf = (name: string) =>
    normalizeRoutes(
      routeRows
        .filter((r) => r.function_name === name)
        .map((r) => ({ host: r.host, path: r.path, methods: r.methods, priority: r.priority })),
    );
  return {
    functions: rows.map((r) => ({
      name: r.name,
      functionId: r.id,
      version: r.version,
      sourceHash: r.source_hash.trim(),
      configHash: r.config_hash.trim(),
      routes: routesOf(r.name),
    })),
    maxVersion: new Map(versions.map((v) => [v.name, Number(v.max)])),
  };
}

export interface ApplyInput {
  projectId: string;
  reconciliationId: string;
  commitSha: string | null;
  trigger: string;
  actor: string;
  plan: Plan;
  /** The function ids active when the plan was made; apply refuses if another writer moved them. */
  basedOn: string[];
  desired: Map<string, DesiredFunctionDetail>;
  builds: Map<string, BuiltArtifact>;
  /** The commit's Project document (kept so notification targets outlive a bad commit). */
  projectSpec?: unknown;
  /** Where each desired function is defined ("edge.yaml:12:1"), for errors that name it. */
  locations?: Map<string, string>;
  result: Record<string, unknown>;
  durationMs: number;
}

export class StaleStateError extends Error {}

/** Applies a plan atomically; returns the new generation (outbox id) or null if nothing changed. */
export async function applyPlan(db: Db, input: ApplyInput): Promise<number | null> {
  return db.transaction(async (tx) => {
    // One writer per project at a time, across control-plane replicas.
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [input.projectId]);
    const current = (
      await tx.query<{ function_id: string }>(
        "SELECT function_id FROM deployments WHERE project_id = $1 AND active",
        [input.projectId],
      )
    )
      .map((r) => r.function_id)
      .sort();
    if (current.join() !== [...input.basedOn].sort().join()) {
      throw new StaleStateError("stored state changed while this reconcile was planning");
    }
    // Hosts are a resource shared by every project: route writes of all projects (and of the
    // imperative API, imperative.ts) take this one lock, so the check below cannot race.
    const routed = input.plan.changes.filter((c) => c.action !== "delete").map((c) => c.name);
    if (routed.length > 0) await tx.query("SELECT pg_advisory_xact_lock(hashtext('edgeplane routes'))");
    const ctx: ApplyContext = { tx, input, unpinned: [], rollouts: [] };
    for (const change of input.plan.changes) await applyChange(ctx, change);
    if (routed.length > 0) await refuseHostsOfOtherProjects(tx, input, routed);
    // Pins that stay: Git did not change these functions, so the rollback still stands (and the
    // result says so rather than silently serving something else than Git describes).
    const pinned = await tx.query<{
      function: string;
      version: number;
      from_version: number;
      reason: string;
    }>(
      `SELECT function_name AS function, version, from_version, reason FROM pins WHERE project_id = $1
        ORDER BY function_name`,
      [input.projectId],
    );

    const generation =
      input.plan.changes.length > 0
        ? await bumpGeneration(tx, input.projectId, {
            reconciliation_id: input.reconciliationId,
            changes: input.plan.changes.length,
          })
        : null;
    await tx.query(
      `UPDATE reconciliations SET status = 'succeeded', plan = $2, result = $3, finished_at = now(), duration_ms = $4
        WHERE id = $1`,
      [
        input.reconciliationId,
        JSON.stringify(input.plan),
        JSON.stringify({
          ...input.result,
          generation,
          ...(pinned.length ? { pinned } : {}),
          ...(ctx.unpinned.length ? { unpinned: ctx.unpinned } : {}),
          ...(ctx.rollouts.length ? { rollouts: ctx.rollouts } : {}),
        }),
        Math.round(input.durationMs),
      ],
    );
    await tx.query(
      "UPDATE projects SET last_commit = $2, spec = coalesce($3, spec), updated_at = now() WHERE id = $1",
      [
        input.projectId,
        input.commitSha,
        input.projectSpec === undefined || input.projectSpec === null
          ? null
          : JSON.stringify(input.projectSpec),
      ],
    );
    return generation;
  });
}

/**
 * A project may route only hosts no other project routes: a route equal to another project's
 * host, or a wildcard covering it (or covered by it), would take that project's traffic, since
 * the runners merge every project's routes into one table. Checked in the apply transaction
 * against the database, where the other projects are; throws (rolling the whole commit back).
 */
async function refuseHostsOfOtherProjects(tx: Queryable, input: ApplyInput, functions: string[]) {
  const clashes = await tx.query<{ function_name: string; host: string; other_host: string; other: string }>(
    `SELECT r.function_name, r.host, o.host AS other_host, p.name AS other
       FROM routes r
       JOIN routes o ON o.project_id <> r.project_id AND (
              o.host = r.host
           OR (r.host LIKE '*.%' AND right(o.host, length(r.host) - 1) = substr(r.host, 2))
           OR (o.host LIKE '*.%' AND right(r.host, length(o.host) - 1) = substr(o.host, 2)))
       JOIN projects p ON p.id = o.project_id
      WHERE r.project_id = $1 AND r.function_name = ANY($2::text[])
      ORDER BY r.function_name, r.host, o.host
      LIMIT 20`,
    [input.projectId, functions],
  );
  if (clashes.length === 0) return;
  const details = clashes.map((c) => ({
    where: input.locations?.get(c.function_name) ?? `function ${c.function_name}`,
    message: `function "${c.function_name}" routes host "${c.host}", ${
      c.host === c.other_host ? "which" : `which overlaps "${c.other_host}", a host`
    } project "${c.other}" already routes; a host belongs to one project`,
  }));
  const first = clashes[0]!;
  throw edgeError(
    "EDGE_ERR_MANIFEST_INVALID",
    `host ${first.host} of function "${first.function_name}" is already routed by project "${first.other}"`,
    details,
  );
}

/** Inserts one immutable function version row (production or preview). */
export async function insertFunctionVersion(
  tx: Queryable,
  projectId: string,
  d: DesiredFunctionDetail,
  b: BuiltArtifact,
  commitSha: string | null,
): Promise<void> {
  await tx.query(
    `INSERT INTO functions (id, project_id, name, version, runtime, abi, language, entrypoint, artifact_key, sha256,
           size_bytes, memory_pages, max_execution_ms, max_request_bytes, max_instances, env, capabilities, labels,
           pop_selector, source_path, source_hash, config_hash, commit_sha)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23)`,
    [
      b.functionId,
      projectId,
      d.name,
      b.version,
      d.runtime,
      d.abi,
      d.language,
      d.entrypoint,
      b.artifactKey,
      b.sha256,
      b.size,
      d.memoryPages,
      d.maxExecutionMs,
      d.maxRequestBytes,
      d.maxInstances,
      JSON.stringify(d.env),
      JSON.stringify(d.capabilities),
      JSON.stringify(d.labels),
      d.popSelector,
      d.sourcePath,
      d.sourceHash,
      d.configHash,
      commitSha,
    ],
  );
}

/**
 * A push changed (or removed) a function: a pin on it is lifted (Git now says something new,
 * and the pin's job was to hold until then) and a rollout still running for it stops. Returns
 * the version the runners were serving before, which a new rollout starts from.
 */
async function liftPinAndRollout(
  ctx: ApplyContext,
  name: string,
  why: "changed" | "removed",
): Promise<{ functionId: string; version: number } | null> {
  const { tx, input } = ctx;
  const [pin] = await tx.query<{ function_id: string; version: number; from_version: number }>(
    "DELETE FROM pins WHERE project_id = $1 AND function_name = $2 RETURNING function_id, version, from_version",
    [input.projectId, name],
  );
  const [running] = await tx.query<{ from_function_id: string; from_version: number; to_version: number }>(
    `UPDATE rollouts SET status = $3, reason = $4, updated_at = now()
      WHERE project_id = $1 AND function_name = $2 AND status = 'running'
      RETURNING from_function_id, from_version, to_version`,
    [input.projectId, name, why === "changed" ? "superseded" : "abandoned", `a push ${why} the function`],
  );
  const base = {
    actor: input.actor,
    trigger: input.trigger,
    commitSha: input.commitSha,
    projectId: input.projectId,
    reconciliationId: input.reconciliationId,
  };
  if (pin) {
    const reason = `the push ${why} ${name}, so Git and the runners agree again`;
    ctx.unpinned.push({ function: name, version: pin.version, reason });
    await audit(tx, {
      ...base,
      objectKind: "function",
      objectId: name,
      action: "unpin",
      before: { pinned_version: pin.version, from_version: pin.from_version },
      after: { reason },
    });
    return { functionId: pin.function_id, version: pin.version };
  }
  if (running) return { functionId: running.from_function_id, version: running.from_version };
  return null;
}

interface ApplyContext {
  tx: Queryable;
  input: ApplyInput;
  /** Pins this plan lifted (the push changed the pinned function). */
  unpinned: { function: string; version: number; reason: string }[];
  /** Progressive rollouts this plan started. */
  rollouts: { function: string; from_version: number; to_version: number; waves: number }[];
}

async function applyChange(ctx: ApplyContext, change: Change): Promise<void> {
  const { tx, input } = ctx;
  const base = {
    actor: input.actor,
    trigger: input.trigger,
    commitSha: input.commitSha,
    projectId: input.projectId,
    reconciliationId: input.reconciliationId,
  };
  switch (change.action) {
    case "create":
    case "update": {
      const d = input.desired.get(change.name)!;
      const b = input.builds.get(change.name)!;
      await insertFunctionVersion(tx, input.projectId, d, b, input.commitSha);
      // What the runners serve now: a pinned version, else (mid-rollout) the previous rollout's
      // starting point, else the active version. A new rollout starts from there.
      const served = change.action === "update" ? await liftPinAndRollout(ctx, change.name, "changed") : null;
      if (change.action === "update") {
        await tx.query(
          `UPDATE deployments SET active = false, status = 'superseded', updated_at = now()
            WHERE project_id = $1 AND function_name = $2 AND active`,
          [input.projectId, d.name],
        );
      }
      await tx.query(
        `INSERT INTO deployments (id, project_id, function_id, function_name, version, target_pop, status, reconciliation_id)
         VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, 'pending', $6)`,
        [input.projectId, b.functionId, d.name, b.version, d.popSelector, input.reconciliationId],
      );
      await replaceRoutes(tx, input.projectId, d, b.functionId);
      await audit(tx, {
        ...base,
        objectKind: "function",
        objectId: d.name,
        action: change.action,
        before:
          change.action === "update"
            ? { version: change.fromVersion, function_id: change.fromFunctionId }
            : null,
        after: {
          version: b.version,
          function_id: b.functionId,
          sha256: b.sha256,
          reason: change.reason,
          routes: d.routes,
        },
      });
      if (change.action === "update" && d.rollout) {
        const from = served ?? { functionId: change.fromFunctionId, version: change.fromVersion };
        await tx.query(
          `INSERT INTO rollouts (id, project_id, reconciliation_id, commit_sha, function_name, from_function_id, from_version,
             to_function_id, to_version, policy, wave, status)
           VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 'running')`,
          [
            input.projectId,
            input.reconciliationId,
            input.commitSha,
            d.name,
            from.functionId,
            from.version,
            b.functionId,
            b.version,
            JSON.stringify(d.rollout),
          ],
        );
        ctx.rollouts.push({
          function: d.name,
          from_version: from.version,
          to_version: b.version,
          waves: d.rollout.waves.length,
        });
        await audit(tx, {
          ...base,
          objectKind: "rollout",
          objectId: d.name,
          action: "start",
          before: { version: from.version },
          after: { version: b.version, waves: d.rollout.waves },
        });
      }
      return;
    }
    case "routes": {
      const d = input.desired.get(change.name)!;
      const before = await replaceRoutes(tx, input.projectId, d, change.functionId);
      await audit(tx, {
        ...base,
        objectKind: "routes",
        objectId: d.name,
        action: "update",
        before: { routes: before },
        after: { routes: d.routes },
      });
      return;
    }
    case "delete": {
      await liftPinAndRollout(ctx, change.name, "removed");
      await tx.query(
        `UPDATE deployments SET active = false, status = 'removed', updated_at = now()
          WHERE project_id = $1 AND function_name = $2 AND active`,
        [input.projectId, change.name],
      );
      await tx.query("DELETE FROM routes WHERE project_id = $1 AND function_name = $2", [
        input.projectId,
        change.name,
      ]);
      await audit(tx, {
        ...base,
        objectKind: "function",
        objectId: change.name,
        action: "delete",
        before: { version: change.version, function_id: change.functionId },
        after: null,
      });
      return;
    }
  }
}

/** Points the function's routes at functionId; returns the routes it had before. */
async function replaceRoutes(
  tx: Queryable,
  projectId: string,
  d: DesiredFunctionDetail,
  functionId: string,
): Promise<PlannedRoute[]> {
  const before = await tx.query<PlannedRoute>(
    "DELETE FROM routes WHERE project_id = $1 AND function_name = $2 RETURNING host, path, methods, priority",
    [projectId, d.name],
  );
  for (const r of d.routes) {
    await tx.query(
      `INSERT INTO routes (id, project_id, function_name, function_id, host, path, methods, priority, pop_selector)
       VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8)`,
      [projectId, d.name, functionId, r.host, r.path, r.methods, r.priority, d.popSelector],
    );
  }
  return normalizeRoutes(before);
}

export interface FunctionVersionRow {
  id: string;
  project: string;
  name: string;
  version: number;
  runtime: string;
  abi: string;
  language: string;
  entrypoint: string;
  artifact_key: string;
  sha256: string;
  size_bytes: number;
  memory_pages: number;
  max_execution_ms: number;
  max_request_bytes: number;
  max_instances: number;
  env: Record<string, string>;
  capabilities: Record<string, boolean>;
  labels: Record<string, string>;
  pop_selector: string;
  source_path: string;
  source_hash: string;
  config_hash: string;
  commit_sha: string | null;
  created_at: string;
  active: boolean;
  routes: { host: string; path: string; methods: string; priority: number }[];
}

/** One immutable function version with whether it is the active one and its current routes. */
export async function getFunctionVersion(q: Queryable, id: string): Promise<FunctionVersionRow | null> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return null;
  const [row] = await q.query<Omit<FunctionVersionRow, "routes">>(
    `SELECT f.id, p.name AS project, f.name, f.version, f.runtime, f.abi, f.language, f.entrypoint, f.artifact_key,
            trim(f.sha256) AS sha256, f.size_bytes, f.memory_pages, f.max_execution_ms, f.max_request_bytes,
            f.max_instances, f.env, f.capabilities, f.labels, f.pop_selector, f.source_path, trim(f.source_hash) AS source_hash,
            trim(f.config_hash) AS config_hash, f.commit_sha, f.created_at,
            EXISTS (SELECT 1 FROM deployments d WHERE d.function_id = f.id AND d.active) AS active
       FROM functions f JOIN projects p ON p.id = f.project_id WHERE f.id = $1`,
    [id],
  );
  if (!row) return null;
  const routes = await q.query<FunctionVersionRow["routes"][number]>(
    "SELECT host, path, methods, priority FROM routes WHERE function_id = $1 ORDER BY host, path, priority",
    [id],
  );
  return { ...row, routes };
}
