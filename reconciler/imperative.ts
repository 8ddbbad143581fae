// The seed's imperative writes, for projects whose source is "api": register a function version
// from an uploaded module, deploy a version, add a route. A project whose source is Git answers
// 409 "managed by git": its repository is the only way to change it, so the API can never make
// the stored state disagree with the commit. Each write is one transaction with its audit row
// and, when runners must act, an outbox row (a new generation), exactly as a reconcile applies.

import { randomUUID } from "node:crypto";
import { type ArtifactStore, artifactKey, limitMemory, validateModule } from "../builder/index.ts";
import { edgeError } from "../lib/errors.ts";
import { canonicalJson, sha256Hex } from "../lib/hash.ts";
import { hostAllowed } from "../schema/index.ts";
import { audit } from "./audit.ts";
import type { Principal } from "./auth.ts";
import type { Db, Queryable } from "./db.ts";
import { bumpGeneration } from "./outbox.ts";
import { getProject, type ProjectRow } from "./projects.ts";

export interface NewFunctionVersion {
  project: string;
  name: string;
  bytes: Uint8Array;
  /** Where the module came from ("upload" or its URL); stored as the version's source path. */
  origin: string;
  runtime: "wasm" | "wasm-aot";
  abi: "edge-v1" | "wagi";
  limits: { memoryPages: number; maxExecutionMs: number; maxRequestBytes: number; maxInstances: number };
  env: Record<string, string>;
  capabilities: Record<string, boolean>;
  labels: Record<string, string>;
  placement: string;
}

export interface NewRoute {
  project: string;
  function: string;
  host: string;
  path: string;
  methods: string[];
  priority: number;
}

const base = (p: Principal, projectId: string) => ({
  actor: p.actor,
  trigger: "api",
  commitSha: null,
  projectId,
  reconciliationId: null,
});

/** The project named, which must take imperative writes (404 when absent, 409 for Git projects). */
export async function imperativeProject(q: Queryable, name: string): Promise<ProjectRow> {
  const project = await getProject(q, name);
  if (!project) throw edgeError("EDGE_ERR_API_NOT_FOUND", `no project ${name}`);
  if (project.source !== "api") {
    throw edgeError(
      "EDGE_ERR_API_MANAGED_BY_GIT",
      `project ${name} is managed by git (source: ${project.source}); change its repository instead`,
    );
  }
  return project;
}

/** Validates the module (as a build's output would be) and stores it as the next version. */
export async function registerFunctionVersion(
  db: Db,
  store: ArtifactStore,
  who: Principal,
  input: NewFunctionVersion,
) {
  const project = await imperativeProject(db, input.project);
  // The same memory rewrite and checks as any built module (builder/validate.ts): a module the
  // runner would refuse, or that could outgrow its limit, is refused here with the reason.
  const bytes = limitMemory(input.bytes, input.limits.memoryPages);
  const facts = validateModule(bytes, input.abi, input.limits.memoryPages);
  const sha256 = sha256Hex(bytes);
  const config = {
    language: "wasm",
    entrypoint: input.origin,
    runtime: input.runtime,
    abi: input.abi,
    limits: input.limits,
    env: input.env,
    capabilities: input.capabilities,
    labels: input.labels,
    placement: input.placement,
  };
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [project.id]);
    const [max] = await tx.query<{ max: number | null }>(
      "SELECT max(version) AS max FROM functions WHERE project_id = $1 AND name = $2",
      [project.id, input.name],
    );
    const version = Number(max?.max ?? 0) + 1;
    const id = randomUUID();
    const key = artifactKey(id, String(version));
    await store.put(key, bytes);
    await tx.query(
      `INSERT INTO functions (id, project_id, name, version, runtime, abi, language, entrypoint, artifact_key, sha256,
         size_bytes, memory_pages, max_execution_ms, max_request_bytes, max_instances, env, capabilities, labels,
         pop_selector, source_path, source_hash, config_hash, commit_sha)
       VALUES ($1,$2,$3,$4,$5,$6,'wasm',$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,NULL)`,
      [
        id,
        project.id,
        input.name,
        version,
        input.runtime,
        input.abi,
        input.origin,
        key,
        sha256,
        bytes.byteLength,
        input.limits.memoryPages,
        input.limits.maxExecutionMs,
        input.limits.maxRequestBytes,
        input.limits.maxInstances,
        JSON.stringify(input.env),
        JSON.stringify(input.capabilities),
        JSON.stringify(input.labels),
        input.placement,
        input.origin,
        sha256,
        sha256Hex(canonicalJson(config)),
      ],
    );
    await audit(tx, {
      ...base(who, project.id),
      objectKind: "function",
      objectId: input.name,
      action: "register",
      before: null,
      after: { version, function_id: id, sha256, size_bytes: bytes.byteLength, origin: input.origin },
    });
    return {
      id,
      project: project.name,
      name: input.name,
      version,
      sha256,
      size_bytes: bytes.byteLength,
      abi: facts.abi,
      deployed: false,
    };
  });
}

/** Makes a registered version the active one; its function's routes move to it. */
export async function deployFunctionVersion(db: Db, who: Principal, functionId: string, projectName: string) {
  const project = await imperativeProject(db, projectName);
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [project.id]);
    const [fn] = await tx.query<{ name: string; version: number; pop_selector: string }>(
      "SELECT name, version, pop_selector FROM functions WHERE id = $1 AND project_id = $2",
      [functionId, project.id],
    );
    if (!fn) throw edgeError("EDGE_ERR_API_NOT_FOUND", `no function version ${functionId}`);
    const [active] = await tx.query<{ function_id: string; version: number }>(
      "SELECT function_id, version FROM deployments WHERE project_id = $1 AND function_name = $2 AND active",
      [project.id, fn.name],
    );
    if (active?.function_id === functionId) {
      return {
        function: fn.name,
        version: fn.version,
        function_id: functionId,
        changed: false,
        generation: null,
      };
    }
    if (active) {
      await tx.query(
        `UPDATE deployments SET active = false, status = 'superseded', updated_at = now()
          WHERE project_id = $1 AND function_name = $2 AND active`,
        [project.id, fn.name],
      );
    }
    await tx.query(
      `INSERT INTO deployments (id, project_id, function_id, function_name, version, target_pop, status)
       VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, 'pending')`,
      [project.id, functionId, fn.name, fn.version, fn.pop_selector],
    );
    await tx.query(
      "UPDATE routes SET function_id = $3, pop_selector = $4 WHERE project_id = $1 AND function_name = $2",
      [project.id, fn.name, functionId, fn.pop_selector],
    );
    const generation = await bumpGeneration(tx, project.id, { api: "deploy", function: fn.name });
    await audit(tx, {
      ...base(who, project.id),
      objectKind: "function",
      objectId: fn.name,
      action: active ? "update" : "create",
      before: active ? { version: active.version, function_id: active.function_id } : null,
      after: { version: fn.version, function_id: functionId },
    });
    return { function: fn.name, version: fn.version, function_id: functionId, changed: true, generation };
  });
}

/** Adds a route to the deployed version of a function of an "api" project. */
export async function addRoute(db: Db, who: Principal, input: NewRoute) {
  const project = await imperativeProject(db, input.project);
  const host = input.host.toLowerCase();
  if (!hostAllowed(host, project.domains)) {
    throw edgeError(
      "EDGE_ERR_API_BAD_REQUEST",
      `host ${host} is outside project ${project.name}'s domains (${project.domains.join(", ") || "none registered"})`,
      [
        {
          where: "body.host",
          message: `expected a host under ${project.domains.join(" or ") || "a registered domain"}`,
        },
      ],
    );
  }
  const methods = [...new Set(input.methods.map((m) => m.toUpperCase()))].sort().join(",");
  return db.transaction(async (tx) => {
    // One lock for every route write through the API: the host checks below cannot race.
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('edgeplane routes'))");
    const [fn] = await tx.query<{ function_id: string; pop_selector: string }>(
      `SELECT d.function_id, f.pop_selector FROM deployments d JOIN functions f ON f.id = d.function_id
        WHERE d.project_id = $1 AND d.function_name = $2 AND d.active`,
      [project.id, input.function],
    );
    if (!fn) {
      throw edgeError(
        "EDGE_ERR_API_NOT_FOUND",
        `function ${input.function} of project ${project.name} has no deployed version (POST /api/v1/functions/:id/deploy first)`,
      );
    }
    // The same rule as a Git project's apply (state.ts): a host, or a wildcard covering it or
    // covered by it, belongs to one project.
    const [other] = await tx.query<{ host: string }>(
      `SELECT o.host FROM routes o
        WHERE o.project_id <> $2 AND (
              o.host = $1::text
           OR ($1::text LIKE '*.%' AND right(o.host, length($1::text) - 1) = substr($1::text, 2))
           OR (o.host LIKE '*.%' AND right($1::text, length(o.host) - 1) = substr(o.host, 2)))
        LIMIT 1`,
      [host, project.id],
    );
    if (other) {
      throw edgeError(
        "EDGE_ERR_API_CONFLICT",
        `host ${host} ${other.host === host ? "is" : `overlaps ${other.host}, which is`} routed by another project`,
      );
    }
    const [same] = await tx.query<{ function_name: string }>(
      "SELECT function_name FROM routes WHERE host = $1 AND path = $2 AND methods = $3 AND priority = $4",
      [host, input.path, methods, input.priority],
    );
    if (same) {
      throw edgeError(
        "EDGE_ERR_API_CONFLICT",
        `${host}${input.path} (methods ${methods || "any"}, priority ${input.priority}) already routes to ${same.function_name}`,
      );
    }
    const id = randomUUID();
    await tx.query(
      `INSERT INTO routes (id, project_id, function_name, function_id, host, path, methods, priority, pop_selector)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        id,
        project.id,
        input.function,
        fn.function_id,
        host,
        input.path,
        methods,
        input.priority,
        fn.pop_selector,
      ],
    );
    const route = { host, path: input.path, methods, priority: input.priority };
    const generation = await bumpGeneration(tx, project.id, { api: "route", function: input.function });
    await audit(tx, {
      ...base(who, project.id),
      objectKind: "routes",
      objectId: input.function,
      action: "create",
      before: null,
      after: { route },
    });
    return {
      id,
      project: project.name,
      function: input.function,
      function_id: fn.function_id,
      ...route,
      generation,
    };
  });
}
