// The control plane's HTTP surface (Koa): webhooks, the API (bearer tokens, scoped per project;
// reconciler/auth.ts), the seed's imperative writes for `api` projects (imperative.ts), artifact
// downloads for the local store, health. Errors become responses in exactly one place: the
// first middleware. Every route is in the OpenAPI document (openapi.ts), which a test checks.

import { randomUUID } from "node:crypto";
import Router from "@koa/router";
import { Ajv2020 } from "ajv/dist/2020.js";
import Koa, { type Context } from "koa";
import type { ArtifactStore } from "../builder/index.ts";
import { edgeError, toHttpError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { type AuditFilter, listAudit } from "./audit.ts";
import {
  authMiddleware,
  createToken,
  listTokens,
  principal,
  projectScope,
  type RateLimit,
  requireAdmin,
  requireProject,
  revokeToken,
  visibleTo,
} from "./auth.ts";
import { readBody } from "./body.ts";
import type { CompiledProject } from "./config.ts";
import { consoleStatic, registerConsoleRoutes } from "./console.ts";
import type { Db } from "./db.ts";
import { createHttpHeartbeat } from "./http-heartbeat.ts";
import {
  addRoute,
  deployFunctionVersion,
  type NewFunctionVersion,
  registerFunctionVersion,
} from "./imperative.ts";
import type { ControlPlaneMetrics } from "./metrics.ts";
import { openapi } from "./openapi.ts";
import { type PreviewApiDeps, registerPreviewRoutes } from "./previews-api.ts";
import { getProject, listProjects } from "./projects.ts";
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
  /** Per-token request limit. Default 600 per minute. */
  apiRateLimit?: RateLimit;
  /** Largest module POST /api/v1/functions accepts. Default 32 MiB. */
  maxUploadBytes?: number;
  log: Logger;
  /** Previews, rollbacks and rollouts (previews-api.ts). */
  previewApi?: PreviewApiDeps;
}

/** JSON bodies other than module uploads are small. */
const MAX_JSON_BYTES = 1024 * 1024;

// Request bodies are validated against the OpenAPI document's own schemas.
const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false });
ajv.addSchema({ $id: "edgeplane-api", components: openapi.components });
const validator = (name: string) => ajv.compile({ $ref: `edgeplane-api#/components/schemas/${name}` });
const validators = {
  CreateToken: validator("CreateToken"),
  CreateFunction: validator("CreateFunction"),
  CreateRoute: validator("CreateRoute"),
};

/** The JSON body, checked against schema `name`; 400 naming every bad field. */
async function jsonBody<T>(ctx: Context, name: keyof typeof validators, limit = MAX_JSON_BYTES): Promise<T> {
  const raw = await readBody(ctx.req, limit, "EDGE_ERR_API_TOO_LARGE");
  let value: unknown;
  try {
    value = raw.length === 0 ? {} : JSON.parse(raw.toString("utf8"));
  } catch (err) {
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", `body is not JSON: ${(err as Error).message}`, [
      { where: "body", message: "expected a JSON object" },
    ]);
  }
  const validate = validators[name];
  if (!validate(value)) {
    const details = (validate.errors ?? [])
      .filter((e) => e.keyword !== "oneOf")
      .map((e) => {
        const where = `body${e.instancePath.replaceAll("/", ".")}`;
        if (e.keyword === "required")
          return {
            where: `${where}.${e.params.missingProperty}`,
            message: "is required",
          };
        if (e.keyword === "additionalProperties")
          return { where: `${where}.${e.params.additionalProperty}`, message: "is not a known field" };
        return { where, message: e.message ?? "is invalid" };
      });
    if ((validate.errors ?? []).some((e) => e.keyword === "oneOf"))
      details.push({ where: "body", message: "give exactly one of wasm (base64) or url" });
    throw edgeError(
      "EDGE_ERR_API_BAD_REQUEST",
      `${details.length} problem(s) in the request body: ${details.map((d) => `${d.where} ${d.message}`).join("; ")}`,
      details,
    );
  }
  return value as T;
}

const str = (ctx: Context, name: string): string | undefined => {
  const v = ctx.query[name];
  return typeof v === "string" && v ? v : undefined;
};

/** Fetches a module a client points at, with the same size cap and a time limit. */
async function fetchModule(url: string, maxBytes: number): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(30_000), redirect: "follow" });
  } catch (err) {
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", `could not fetch ${url}: ${(err as Error).message}`, [
      { where: "body.url", message: "not reachable from the control plane" },
    ]);
  }
  if (!res.ok || !res.body) {
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", `fetching ${url} answered ${res.status}`, [
      { where: "body.url", message: `HTTP ${res.status}` },
    ]);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > maxBytes)
      throw edgeError("EDGE_ERR_API_TOO_LARGE", `the module at ${url} exceeds ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function createApi(deps: ApiDeps): Koa {
  const app = new Koa();
  const router = new Router();
  const { db } = deps;
  const maxUploadBytes = deps.maxUploadBytes ?? 32 * 1024 * 1024;

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
  app.use(authMiddleware(db, deps.apiRateLimit ?? { requests: 600, windowMs: 60_000 }));
  app.use(consoleStatic()); // the web console at / (console.ts)

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
      ...(deps.previewApi ? { previews: deps.previewApi.previews } : {}),
    }),
  );
  if (deps.previewApi) registerPreviewRoutes(router, deps.previewApi);
  registerConsoleRoutes(router, { db, log: deps.log });
  router.get("/api/v1/openapi.json", (ctx) => {
    ctx.body = openapi;
  });

  router.get("/api/v1/projects", async (ctx) => {
    ctx.body = { projects: await listProjects(db, projectScope(ctx)) };
  });
  router.post("/api/v1/projects/:name/reconcile", async (ctx) => {
    const name = ctx.params.name!;
    const who = requireProject(ctx, name);
    if (!deps.reconciler.project(name)) {
      if (await getProject(db, name))
        throw edgeError(
          "EDGE_ERR_API_CONFLICT",
          `project ${name} has no repository to reconcile (source: api)`,
        );
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `no project ${name}`);
    }
    const id = await deps.reconciler.enqueue(name, { commit: null, trigger: "api", actor: who.actor });
    ctx.status = 202;
    ctx.body = { reconciliation: id };
  });
  router.get("/api/v1/reconciliations", async (ctx) => {
    ctx.body = { reconciliations: await listReconciliations(db, projectScope(ctx) ?? undefined) };
  });
  router.get("/api/v1/reconciliations/:id", async (ctx) => {
    const row = await getReconciliation(db, ctx.params.id!);
    if (!row || !visibleTo(ctx, row.project))
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `no reconciliation ${ctx.params.id}`);
    ctx.body = row;
  });
  router.get("/api/v1/functions", async (ctx) => {
    ctx.body = {
      functions: await db.query(
        `SELECT f.id, p.name AS project, f.name, f.version, f.runtime, f.abi, f.language, f.sha256, f.size_bytes,
                f.memory_pages, f.max_execution_ms, f.commit_sha, f.created_at, d.status AS deployment_status,
                f.source_hash, f.config_hash
           FROM deployments d JOIN functions f ON f.id = d.function_id JOIN projects p ON p.id = d.project_id
          WHERE d.active AND ($1::text IS NULL OR p.name = $1) ORDER BY p.name, f.name`,
        [projectScope(ctx)],
      ),
    };
  });
  router.post("/api/v1/functions", async (ctx) => {
    const who = principal(ctx);
    let input: NewFunctionVersion;
    if (ctx.is("application/wasm")) {
      // The raw module, described by the query string.
      const project = str(ctx, "project");
      const name = str(ctx, "name");
      const abi = str(ctx, "abi") ?? "edge-v1";
      const runtime = str(ctx, "runtime") ?? "wasm";
      const details = [
        ...(project ? [] : [{ where: "query.project", message: "is required" }]),
        ...(name && /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)
          ? []
          : [{ where: "query.name", message: "expected a DNS label" }]),
        ...(["edge-v1", "wagi"].includes(abi)
          ? []
          : [{ where: "query.abi", message: "expected edge-v1 or wagi" }]),
        ...(["wasm", "wasm-aot"].includes(runtime)
          ? []
          : [{ where: "query.runtime", message: "expected wasm or wasm-aot" }]),
      ];
      if (details.length)
        throw edgeError("EDGE_ERR_API_BAD_REQUEST", "bad query for a module upload", details);
      requireProject(ctx, project!);
      const bytes = await readBody(ctx.req, maxUploadBytes, "EDGE_ERR_API_TOO_LARGE");
      input = {
        project: project!,
        name: name!,
        bytes,
        origin: "upload",
        runtime: runtime as NewFunctionVersion["runtime"],
        abi: abi as NewFunctionVersion["abi"],
        limits: { memoryPages: 16, maxExecutionMs: 50, maxRequestBytes: 1048576, maxInstances: 32 },
        env: {},
        capabilities: { clock: false, random: false },
        labels: {},
        placement: "",
      };
    } else {
      const b = await jsonBody<{
        project: string;
        name: string;
        wasm?: string;
        url?: string;
        runtime: NewFunctionVersion["runtime"];
        abi: NewFunctionVersion["abi"];
        limits?: NewFunctionVersion["limits"];
        env?: Record<string, string>;
        capabilities?: Record<string, boolean>;
        labels?: Record<string, string>;
        placement?: { pops?: string };
      }>(ctx, "CreateFunction", Math.ceil((maxUploadBytes * 4) / 3) + 64 * 1024);
      requireProject(ctx, b.project);
      let bytes: Uint8Array;
      if (b.wasm !== undefined) {
        bytes = Buffer.from(b.wasm, "base64");
        if (bytes.byteLength === 0)
          throw edgeError("EDGE_ERR_API_BAD_REQUEST", "wasm is empty or not base64", [
            { where: "body.wasm", message: "expected the module, base64-encoded" },
          ]);
        if (bytes.byteLength > maxUploadBytes)
          throw edgeError("EDGE_ERR_API_TOO_LARGE", `the module exceeds ${maxUploadBytes} bytes`);
      } else {
        bytes = await fetchModule(b.url!, maxUploadBytes);
      }
      input = {
        project: b.project,
        name: b.name,
        bytes,
        origin: b.url ?? "upload",
        runtime: b.runtime,
        abi: b.abi,
        limits: {
          memoryPages: 16,
          maxExecutionMs: 50,
          maxRequestBytes: 1048576,
          maxInstances: 32,
          ...b.limits,
        },
        env: b.env ?? {},
        capabilities: { clock: false, random: false, ...b.capabilities },
        labels: b.labels ?? {},
        placement: b.placement?.pops ?? "",
      };
    }
    ctx.status = 201;
    ctx.body = await registerFunctionVersion(db, deps.store, who, input);
  });
  router.get("/api/v1/functions/:id", async (ctx) => {
    const row = await getFunctionVersion(db, ctx.params.id!);
    if (!row || !visibleTo(ctx, row.project))
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `no function version ${ctx.params.id}`);
    ctx.body = row;
  });
  router.post("/api/v1/functions/:id/deploy", async (ctx) => {
    const row = await getFunctionVersion(db, ctx.params.id!);
    if (!row || !visibleTo(ctx, row.project))
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `no function version ${ctx.params.id}`);
    ctx.body = await deployFunctionVersion(db, requireProject(ctx, row.project), row.id, row.project);
  });
  router.get("/api/v1/routes", async (ctx) => {
    ctx.body = {
      routes: await db.query(
        `SELECT r.host, r.path, r.methods, r.priority, r.function_name, r.function_id, p.name AS project
           FROM routes r JOIN projects p ON p.id = r.project_id
          WHERE $1::text IS NULL OR p.name = $1 ORDER BY r.host, r.path, r.priority DESC`,
        [projectScope(ctx)],
      ),
    };
  });
  router.post("/api/v1/routes", async (ctx) => {
    const b = await jsonBody<{
      project: string;
      function: string;
      host: string;
      path: string;
      methods?: string[];
      priority: number;
    }>(ctx, "CreateRoute");
    const who = requireProject(ctx, b.project);
    ctx.status = 201;
    ctx.body = await addRoute(db, who, { ...b, methods: b.methods ?? [] });
  });
  router.get("/api/v1/deployments", async (ctx) => {
    ctx.body = {
      deployments: await db.query(
        `SELECT d.id, p.name AS project, d.function_name, d.version, d.function_id, d.target_pop, d.status, d.active,
                d.reconciliation_id, d.created_at, d.updated_at
           FROM deployments d JOIN projects p ON p.id = d.project_id
          WHERE $1::text IS NULL OR p.name = $1 ORDER BY d.created_at DESC LIMIT 200`,
        [projectScope(ctx)],
      ),
    };
  });
  router.get("/api/v1/nodes", async (ctx) => {
    principal(ctx); // any valid token: the fleet is shared by every project
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
    const time = (name: string) => {
      const v = str(ctx, name);
      if (v !== undefined && Number.isNaN(Date.parse(v))) {
        throw edgeError("EDGE_ERR_API_BAD_REQUEST", `${name}: expected an ISO 8601 time, got "${v}"`, [
          { where: `query.${name}`, message: "expected an ISO 8601 time such as 2026-11-26T12:00:00Z" },
        ]);
      }
      return v;
    };
    const limit = str(ctx, "limit");
    if (limit !== undefined && !/^\d+$/.test(limit)) {
      throw edgeError("EDGE_ERR_API_BAD_REQUEST", `limit: expected a positive integer, got "${limit}"`, [
        { where: "query.limit", message: "expected a positive integer" },
      ]);
    }
    const filter: AuditFilter = {};
    const scope = projectScope(ctx);
    if (scope) filter.project = scope;
    if (str(ctx, "function")) filter.objectId = str(ctx, "function")!;
    if (str(ctx, "commit")) filter.commit = str(ctx, "commit")!;
    if (time("since")) filter.since = time("since")!;
    if (time("until")) filter.until = time("until")!;
    if (limit) filter.limit = Number(limit);
    ctx.body = { audit: await listAudit(db, filter) };
  });
  router.get("/api/v1/tokens", async (ctx) => {
    requireAdmin(ctx);
    ctx.body = { tokens: await listTokens(db) };
  });
  router.post("/api/v1/tokens", async (ctx) => {
    const who = requireAdmin(ctx);
    const b = await jsonBody<{ project?: string; admin: boolean; name: string }>(ctx, "CreateToken");
    if (b.admin && b.project) {
      throw edgeError("EDGE_ERR_API_BAD_REQUEST", "an admin token belongs to no project", [
        { where: "body.project", message: "leave out project for an admin token" },
      ]);
    }
    ctx.status = 201;
    ctx.body = await createToken(db, {
      project: b.project ?? null,
      admin: b.admin,
      name: b.name,
      createdBy: who.actor,
    });
  });
  router.delete("/api/v1/tokens/:id", async (ctx) => {
    requireAdmin(ctx);
    if (!(await revokeToken(db, ctx.params.id!)))
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `no token ${ctx.params.id}`);
    ctx.status = 204;
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
