// The control plane's HTTP surface (Koa): webhooks, the read API, artifact downloads for the
// local store, health. Errors become responses in exactly one place: errorMiddleware.

import { randomUUID } from "node:crypto";
import Router from "@koa/router";
import Koa from "koa";
import type { ArtifactStore } from "../builder/index.ts";
import { edgeError, toHttpError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { type AuditFilter, listAudit } from "./audit.ts";
import type { CompiledProject } from "./config.ts";
import type { Db } from "./db.ts";
import { createHttpHeartbeat } from "./http-heartbeat.ts";
import type { ControlPlaneMetrics } from "./metrics.ts";
import { listProjects } from "./projects.ts";
import type { Reconciler } from "./reconcile.ts";
import { getReconciliation, listReconciliations } from "./reconciliations.ts";
import { getFunctionVersion } from "./state.ts";
import { createWebhookHandler } from "./webhook.ts";

export interface ApiDeps {
  db: Db;
  runnerToken: string | null;
  metrics: ControlPlaneMetrics;
  reconciler: Reconciler;
  store: ArtifactStore;
  projects: CompiledProject[];
  maxWebhookBytes: number;
  log: Logger;
}

export function createApi(deps: ApiDeps): Koa {
  const app = new Koa();
  const router = new Router();
  const { db } = deps;

  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined)
        throw edgeError("EDGE_ERR_API_NOT_FOUND", `no such path: ${ctx.method} ${ctx.path}`);
    } catch (err) {
      const id = randomUUID();
      const { status, body } = toHttpError(err, id);
      if (status >= 500) deps.log.error({ err, error_id: id, path: ctx.path }, "request failed");
      ctx.status = status;
      ctx.body = body;
    }
  });

  router.get("/healthz", (ctx) => {
    ctx.body = { ok: true };
  });
  router.get("/readyz", async (ctx) => {
    await db.query("SELECT 1");
    ctx.body = { ok: true };
  });

  router.get("/metrics", async (ctx) => {
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
  router.post(
    "/webhooks/github",
    createWebhookHandler({
      db,
      reconciler: deps.reconciler,
      projects: deps.projects,
      maxBytes: deps.maxWebhookBytes,
      deliveries: deps.metrics.webhookDeliveries,
    }),
  );

  router.get("/api/v1/projects", async (ctx) => {
    ctx.body = { projects: await listProjects(db) };
  });
  router.post("/api/v1/projects/:name/reconcile", async (ctx) => {
    if (!deps.reconciler.project(ctx.params.name!))
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `no project ${ctx.params.name}`);
    const id = await deps.reconciler.enqueue(ctx.params.name!, {
      commit: null,
      trigger: "api",
      actor: "api",
    });
    ctx.status = 202;
    ctx.body = { reconciliation: id };
  });
  router.get("/api/v1/reconciliations", async (ctx) => {
    const project = typeof ctx.query.project === "string" ? ctx.query.project : undefined;
    ctx.body = { reconciliations: await listReconciliations(db, project) };
  });
  router.get("/api/v1/reconciliations/:id", async (ctx) => {
    const row = await getReconciliation(db, ctx.params.id!);
    if (!row) throw edgeError("EDGE_ERR_API_NOT_FOUND", `no reconciliation ${ctx.params.id}`);
    ctx.body = row;
  });
  router.get("/api/v1/functions", async (ctx) => {
    ctx.body = {
      functions: await db.query(
        `SELECT f.id, p.name AS project, f.name, f.version, f.runtime, f.abi, f.language, f.sha256, f.size_bytes,
                f.memory_pages, f.max_execution_ms, f.commit_sha, f.created_at, d.status AS deployment_status
           FROM deployments d JOIN functions f ON f.id = d.function_id JOIN projects p ON p.id = d.project_id
          WHERE d.active ORDER BY p.name, f.name`,
      ),
    };
  });
  router.get("/api/v1/functions/:id", async (ctx) => {
    const row = await getFunctionVersion(db, ctx.params.id!);
    if (!row) throw edgeError("EDGE_ERR_API_NOT_FOUND", `no function version ${ctx.params.id}`);
    ctx.body = row;
  });
  router.get("/api/v1/routes", async (ctx) => {
    ctx.body = {
      routes: await db.query(
        `SELECT r.host, r.path, r.methods, r.priority, r.function_name, r.function_id, p.name AS project
           FROM routes r JOIN projects p ON p.id = r.project_id ORDER BY r.host, r.path, r.priority DESC`,
      ),
    };
  });
  router.get("/api/v1/deployments", async (ctx) => {
    ctx.body = {
      deployments: await db.query(
        `SELECT d.id, p.name AS project, d.function_name, d.version, d.function_id, d.target_pop, d.status, d.active,
                d.reconciliation_id, d.created_at, d.updated_at
           FROM deployments d JOIN projects p ON p.id = d.project_id ORDER BY d.created_at DESC LIMIT 200`,
      ),
    };
  });
  router.get("/api/v1/nodes", async (ctx) => {
    ctx.body = {
      nodes: await db.query(
        "SELECT id, pop_id, ip, http_address, status, last_heartbeat, metadata, acked_generation FROM nodes ORDER BY id",
      ),
    };
  });
  router.post(
    "/api/v1/nodes/:id/heartbeat",
    createHttpHeartbeat({ db, runnerToken: deps.runnerToken, artifactUrl: (k) => deps.store.url(k) }),
  );
  router.get("/api/v1/audit", async (ctx) => {
    const str = (name: string) => {
      const v = ctx.query[name];
      return typeof v === "string" && v ? v : undefined;
    };
    const time = (name: string) => {
      const v = str(name);
      if (v !== undefined && Number.isNaN(Date.parse(v))) {
        throw edgeError("EDGE_ERR_API_BAD_REQUEST", `${name}: expected an ISO 8601 time, got "${v}"`, [
          { where: `query.${name}`, message: "expected an ISO 8601 time such as 2026-11-26T12:00:00Z" },
        ]);
      }
      return v;
    };
    const limit = str("limit");
    if (limit !== undefined && !/^\d+$/.test(limit)) {
      throw edgeError("EDGE_ERR_API_BAD_REQUEST", `limit: expected a positive integer, got "${limit}"`);
    }
    const filter: AuditFilter = {};
    if (str("project")) filter.project = str("project")!;
    if (str("function")) filter.objectId = str("function")!;
    if (str("commit")) filter.commit = str("commit")!;
    if (time("since")) filter.since = time("since")!;
    if (time("until")) filter.until = time("until")!;
    if (limit) filter.limit = Number(limit);
    ctx.body = { audit: await listAudit(db, filter) };
  });
  // Artifact downloads for runners when the local directory store is in use.
  router.get("/artifacts/functions/:id/:file", async (ctx) => {
    const bytes = await deps.store.get(`functions/${ctx.params.id}/${ctx.params.file}`);
    ctx.type = "application/wasm";
    ctx.body = Buffer.from(bytes);
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
