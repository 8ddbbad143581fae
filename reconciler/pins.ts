// Rollback by pinning. A pin makes every runner serve an older immutable version of a function
// instead of its active one (no rebuild: the artifact is already stored). The active deployment
// stays what Git says, so a reconcile keeps planning against Git: a push that does not change
// the function keeps the pin (the result says "pinned"), a push that changes it lifts the pin
// (state.ts, audited, said in the result). The answer to a rollback carries the `git revert`
// that makes Git agree with what is served, so a rollback never fights Git silently.

import { edgeError } from "../lib/errors.ts";
import { audit } from "./audit.ts";
import type { Db } from "./db.ts";
import { bumpGeneration } from "./outbox.ts";

export interface RollbackResult {
  function: string;
  project: string;
  pinned_version: number;
  from_version: number;
  /** `git revert <sha>` of the commit that introduced the unpinned version (null: unknown commit). */
  revert: string | null;
  message: string;
  /** The commit that introduced the unpinned version. */
  commit_sha: string | null;
  generation: number;
}

export interface PinRow {
  project: string;
  function: string;
  version: number;
  function_id: string;
  from_version: number;
  actor: string;
  reason: string;
  created_at: string;
}

interface VersionRow {
  id: string;
  version: number;
  commit_sha: string | null;
}

/**
 * Pins `name` of `project` to version `to` (default: the newest production version older than
 * the one served now). Refuses a version that was never deployed in production or is the
 * active one.
 */
export async function rollbackFunction(
  db: Db,
  input: { projectId: string; project: string; name: string; to?: number; actor: string },
): Promise<RollbackResult> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [input.projectId]);
    const [active] = await tx.query<VersionRow>(
      `SELECT f.id, f.version, f.commit_sha FROM deployments d JOIN functions f ON f.id = d.function_id
        WHERE d.project_id = $1 AND d.function_name = $2 AND d.active`,
      [input.projectId, input.name],
    );
    if (!active)
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `no function ${input.name} in project ${input.project}`);
    const [pin] = await tx.query<{ version: number }>(
      "SELECT version FROM pins WHERE project_id = $1 AND function_name = $2",
      [input.projectId, input.name],
    );
    const servedVersion = pin?.version ?? active.version;
    let target: VersionRow | undefined;
    if (input.to === undefined) {
      [target] = await tx.query<VersionRow>(
        `SELECT DISTINCT f.id, f.version, f.commit_sha FROM deployments d JOIN functions f ON f.id = d.function_id
          WHERE d.project_id = $1 AND d.function_name = $2 AND f.version < $3 ORDER BY f.version DESC LIMIT 1`,
        [input.projectId, input.name, servedVersion],
      );
      if (!target) {
        throw edgeError(
          "EDGE_ERR_API_CONFLICT",
          `${input.name} has no production version older than v${servedVersion} to roll back to`,
        );
      }
    } else {
      [target] = await tx.query<VersionRow>(
        `SELECT DISTINCT f.id, f.version, f.commit_sha FROM deployments d JOIN functions f ON f.id = d.function_id
          WHERE d.project_id = $1 AND d.function_name = $2 AND f.version = $3`,
        [input.projectId, input.name, input.to],
      );
      if (!target) {
        throw edgeError(
          "EDGE_ERR_API_NOT_FOUND",
          `${input.name} v${input.to} was never deployed in production (previews cannot be pinned)`,
        );
      }
      if (target.version === active.version) {
        throw edgeError(
          "EDGE_ERR_API_CONFLICT",
          `v${target.version} is the active version of ${input.name}; to lift a pin, DELETE /api/v1/projects/${input.project}/functions/${input.name}/pin`,
        );
      }
    }
    await tx.query(
      `INSERT INTO pins (project_id, function_name, function_id, version, from_function_id, from_version, actor, reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'rollback')
       ON CONFLICT (project_id, function_name) DO UPDATE SET function_id = $3, version = $4, from_function_id = $5,
         from_version = $6, actor = $7, reason = 'rollback', created_at = now()`,
      [input.projectId, input.name, target.id, target.version, active.id, active.version, input.actor],
    );
    // A rollout still running for the function is over: the pin decides what every node serves.
    await tx.query(
      `UPDATE rollouts SET status = 'abandoned', reason = 'rolled back by hand', updated_at = now()
        WHERE project_id = $1 AND function_name = $2 AND status = 'running'`,
      [input.projectId, input.name],
    );
    const revert = active.commit_sha ? `git revert ${active.commit_sha}` : null;
    await audit(tx, {
      actor: input.actor,
      trigger: "rollback",
      commitSha: active.commit_sha,
      projectId: input.projectId,
      objectKind: "function",
      objectId: input.name,
      action: "pin",
      before: { version: servedVersion, active_version: active.version },
      after: { version: target.version, function_id: target.id, revert },
    });
    const generation = await bumpGeneration(tx, input.projectId, {
      pin: input.name,
      version: target.version,
    });
    const message =
      `${input.name} is pinned to v${target.version}; Git still describes v${active.version}. ` +
      (revert ? `Run \`${revert}\` and push to make Git agree; ` : "") +
      `the next push that changes ${input.name} lifts the pin.`;
    return {
      function: input.name,
      project: input.project,
      pinned_version: target.version,
      from_version: active.version,
      revert,
      message,
      commit_sha: active.commit_sha,
      generation,
    };
  });
}

/** Lifts a pin by hand; the active version is served again. */
export async function unpinFunction(
  db: Db,
  input: { projectId: string; project: string; name: string; actor: string },
): Promise<{
  function: string;
  project: string;
  unpinned_version: number;
  version: number;
  commit_sha: string | null;
  message: string;
}> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [input.projectId]);
    const [pin] = await tx.query<{ version: number; from_version: number }>(
      "DELETE FROM pins WHERE project_id = $1 AND function_name = $2 RETURNING version, from_version",
      [input.projectId, input.name],
    );
    if (!pin)
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `${input.name} in project ${input.project} is not pinned`);
    const [active] = await tx.query<{ version: number; commit_sha: string | null }>(
      `SELECT f.version, f.commit_sha FROM deployments d JOIN functions f ON f.id = d.function_id
        WHERE d.project_id = $1 AND d.function_name = $2 AND d.active`,
      [input.projectId, input.name],
    );
    await audit(tx, {
      actor: input.actor,
      trigger: "api",
      commitSha: active?.commit_sha ?? null,
      projectId: input.projectId,
      objectKind: "function",
      objectId: input.name,
      action: "unpin",
      before: { pinned_version: pin.version },
      after: { version: active?.version ?? null, reason: "lifted by hand" },
    });
    await bumpGeneration(tx, input.projectId, { unpin: input.name });
    return {
      function: input.name,
      project: input.project,
      unpinned_version: pin.version,
      version: active?.version ?? pin.from_version,
      commit_sha: active?.commit_sha ?? null,
      message: `${input.name} serves v${active?.version ?? pin.from_version} again, as Git says.`,
    };
  });
}

export async function listPins(db: Db, project: string | null): Promise<PinRow[]> {
  return db.query<PinRow>(
    `SELECT p.name AS project, x.function_name AS function, x.version, x.function_id, x.from_version, x.actor, x.reason,
            x.created_at
       FROM pins x JOIN projects p ON p.id = x.project_id
      WHERE $1::text IS NULL OR p.name = $1 ORDER BY p.name, x.function_name`,
    [project],
  );
}
