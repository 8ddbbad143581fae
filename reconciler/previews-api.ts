// The HTTP routes of previews, rollbacks (pins) and progressive rollouts, registered on the
// API's router (api.ts calls registerPreviewRoutes). Authorisation follows auth.ts: a project
// token sees and steers its own project only; lists are narrowed by projectScope.

import type Router from "@koa/router";
import type { Context } from "koa";
import { edgeError } from "../lib/errors.ts";
import { projectScope, requireProject } from "./auth.ts";
import { readBody } from "./body.ts";
import type { Db } from "./db.ts";
import { listPins, rollbackFunction, unpinFunction } from "./pins.ts";
import { listPreviews, type PreviewManager } from "./previews.ts";
import type { StatusReporter, StatusTarget } from "./status.ts";

export interface PreviewApiDeps {
  db: Db;
  /** The preview manager the webhook hands `pull_request` events to. */
  previews: PreviewManager;
  status: StatusReporter;
  /** Commit-status target of a project (null: unknown project). */
  target(project: string): StatusTarget | null;
}

/** Pin statuses belong to no reconciliation. */
const NO_RECONCILIATION = "00000000-0000-0000-0000-000000000000";

const STATUSES = new Set(["active", "closed", "expired", "all"]);

async function projectId(db: Db, name: string): Promise<string> {
  const [row] = await db.query<{ id: string }>("SELECT id FROM projects WHERE name = $1", [name]);
  if (!row) throw edgeError("EDGE_ERR_API_NOT_FOUND", `no project ${name}`);
  return row.id;
}

async function rollbackBody(ctx: Context): Promise<{ to?: number }> {
  const raw = await readBody(ctx.req, 64 * 1024, "EDGE_ERR_API_TOO_LARGE");
  if (raw.length === 0) return {};
  let body: unknown;
  try {
    body = JSON.parse(raw.toString("utf8"));
  } catch {
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", "body is not JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", 'expected a JSON object such as { "to": 3 }');
  const { to, ...rest } = body as { to?: unknown };
  const unknown = Object.keys(rest);
  if (unknown.length)
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", `unknown field "${unknown[0]}"`, [
      { where: `body.${unknown[0]}`, message: "the only field is `to`" },
    ]);
  if (to !== undefined && !(Number.isInteger(to) && (to as number) > 0))
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", "to: expected a positive integer version", [
      { where: "body.to", message: "expected a positive integer version" },
    ]);
  return to === undefined ? {} : { to: to as number };
}

export function registerPreviewRoutes(router: Router, deps: PreviewApiDeps): void {
  const { db } = deps;

  router.get("/api/v1/previews", async (ctx) => {
    const status = typeof ctx.query.status === "string" && ctx.query.status ? ctx.query.status : "active";
    if (!STATUSES.has(status))
      throw edgeError(
        "EDGE_ERR_API_BAD_REQUEST",
        `status: expected active, closed, expired or all, got "${status}"`,
      );
    ctx.body = {
      previews: await listPreviews(db, {
        project: projectScope(ctx),
        status: status as "active" | "closed" | "expired" | "all",
      }),
    };
  });

  router.get("/api/v1/pins", async (ctx) => {
    ctx.body = { pins: await listPins(db, projectScope(ctx)) };
  });

  router.get("/api/v1/rollouts", async (ctx) => {
    const project = projectScope(ctx);
    ctx.body = {
      rollouts: await db.query(
        `SELECT r.id, p.name AS project, r.function_name AS function, r.from_version, r.to_version, r.wave,
                jsonb_array_length(r.policy->'waves') AS waves, r.status, r.reason, r.commit_sha, r.reconciliation_id,
                r.created_at, r.updated_at
           FROM rollouts r JOIN projects p ON p.id = r.project_id
          WHERE $1::text IS NULL OR p.name = $1 ORDER BY r.created_at DESC LIMIT 200`,
        [project],
      ),
    };
  });

  router.post("/api/v1/projects/:project/functions/:name/rollback", async (ctx) => {
    const project = ctx.params.project!;
    const who = requireProject(ctx, project);
    const body = await rollbackBody(ctx);
    const result = await rollbackFunction(db, {
      projectId: await projectId(db, project),
      project,
      name: ctx.params.name!,
      ...(body.to !== undefined ? { to: body.to } : {}),
      actor: who.actor,
    });
    // The pin shows on the commit Git still names, so nobody reads that commit as "live".
    const target = deps.target(project);
    if (target && result.commit_sha) {
      deps.status.commitStatus(
        target,
        NO_RECONCILIATION,
        result.commit_sha,
        `edgeplane/pin/${result.function}`,
        "failure",
        `pinned to v${result.pinned_version} by ${who.actor}; ${result.revert ?? "revert this commit"} to make Git agree`,
        `${ctx.origin}/api/v1/pins?project=${encodeURIComponent(project)}`,
      );
    }
    ctx.body = result;
  });

  router.delete("/api/v1/projects/:project/functions/:name/pin", async (ctx) => {
    const project = ctx.params.project!;
    const who = requireProject(ctx, project);
    const result = await unpinFunction(db, {
      projectId: await projectId(db, project),
      project,
      name: ctx.params.name!,
      actor: who.actor,
    });
    const target = deps.target(project);
    if (target && result.commit_sha) {
      deps.status.commitStatus(
        target,
        NO_RECONCILIATION,
        result.commit_sha,
        `edgeplane/pin/${result.function}`,
        "success",
        `pin lifted by ${who.actor}; v${result.version} serves again`,
        `${ctx.origin}/api/v1/pins?project=${encodeURIComponent(project)}`,
      );
    }
    ctx.body = result;
  });
}
