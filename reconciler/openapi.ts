// The OpenAPI 3.1 document of the control plane's HTTP API, served at /api/v1/openapi.json.
// Request body schemas here are also what the API validates bodies against (api.ts), and the
// manifest's own definitions (limits, capabilities, env, host, selector) are taken from
// schema/edge.schema.json, so the document, the validation and the manifest cannot drift
// apart. test/integration/api-auth.test.ts checks that every route the API serves is here.

import { manifestSchema } from "../schema/index.ts";

type Json = Record<string, unknown>;

// Manifest definitions, with their internal references re-pointed at components.schemas.
const manifest = JSON.parse(
  JSON.stringify(manifestSchema).replaceAll('"#/$defs/', '"#/components/schemas/'),
) as { $defs: Record<string, Json> };
const fnSpec = (manifest.$defs.Function as { properties: { spec: { properties: Record<string, Json> } } })
  .properties.spec.properties;
const routeItem = (fnSpec.routes as { items: Json }).items;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const obj = (properties: Json, required: string[] = []): Json => ({
  type: "object",
  additionalProperties: false,
  properties,
  ...(required.length ? { required } : {}),
});
const list = (key: string, item: Json = { type: "object" }): Json => ({
  type: "object",
  properties: { [key]: { type: "array", items: item } },
  required: [key],
});

export const schemas: Record<string, Json> = {
  // The manifest's shared definitions (name, host, selector, …) under their own names, so the
  // references inside them resolve.
  ...Object.fromEntries(Object.entries(manifest.$defs).filter(([k]) => k !== "Project" && k !== "Function")),
  Limits: fnSpec.limits!,
  Capabilities: fnSpec.capabilities!,
  Env: fnSpec.env!,
  Error: {
    type: "object",
    required: ["error"],
    properties: {
      error: {
        type: "object",
        required: ["code", "message"],
        properties: {
          code: { type: "string", pattern: "^EDGE_ERR_[A-Z0-9_]+$" },
          message: { type: "string" },
          details: {
            type: "array",
            items: {
              type: "object",
              properties: { where: { type: "string" }, message: { type: "string" } },
            },
          },
          id: { type: "string", description: "Error id of a 5xx; the control plane's log has the details." },
        },
      },
    },
  },
  CreateToken: obj(
    {
      project: { ...ref("name"), description: "The one project the token may read and steer." },
      admin: { type: "boolean", default: false, description: "Every project, and token management." },
      name: { type: "string", maxLength: 100, default: "" },
    },
    [],
  ),
  CreateFunction: {
    ...obj({
      project: ref("name"),
      name: ref("name"),
      wasm: { type: "string", contentEncoding: "base64", description: "The module, base64-encoded." },
      url: {
        type: "string",
        pattern: "^https?://",
        maxLength: 2048,
        description: "Where to fetch the module.",
      },
      runtime: { enum: ["wasm", "wasm-aot"], default: "wasm" },
      abi: { enum: ["edge-v1", "wagi"], default: "edge-v1" },
      limits: ref("Limits"),
      env: ref("Env"),
      capabilities: ref("Capabilities"),
      labels: { type: "object", additionalProperties: { type: "string", maxLength: 256 } },
      placement: obj({ pops: ref("selector") }),
    }),
    required: ["project", "name"],
    oneOf: [{ required: ["wasm"] }, { required: ["url"] }],
    description:
      "A new immutable version of a function of a project whose source is `api`. It serves only once deployed.",
  },
  CreateRoute: {
    ...obj(
      {
        project: ref("name"),
        function: ref("name"),
        ...(routeItem.properties as Json),
      },
      ["project", "function", "host", "path"],
    ),
  },
};

const errors = (...statuses: number[]): Json =>
  Object.fromEntries(
    statuses.map((s) => [
      String(s),
      { description: ERROR_TEXT[s] ?? "error", content: { "application/json": { schema: ref("Error") } } },
    ]),
  );
const ERROR_TEXT: Record<number, string> = {
  400: "Malformed request; details name each bad field",
  401: "No valid bearer token",
  403: "The token may not do this (another project's, or not admin)",
  404: "No such object (or one the token may not see)",
  409: "Managed by git, or conflicts with stored state",
  413: "Body too large",
  422: "The uploaded module is not a valid edgeplane module",
  429: "Rate limited; see Retry-After",
};
const ok = (description: string, schema: Json = { type: "object" }, status = "200"): Json => ({
  [status]: { description, content: { "application/json": { schema } } },
});
const path = (name: string, description: string): Json => ({
  name,
  in: "path",
  required: true,
  description,
  schema: { type: "string" },
});
const query = (name: string, description: string, schema: Json = { type: "string" }): Json => ({
  name,
  in: "query",
  description,
  schema,
});
const body = (schemaName: string): Json => ({
  required: true,
  content: { "application/json": { schema: ref(schemaName) } },
});
const read = (tag: string, summary: string, response: Json, parameters: Json[] = []): Json => ({
  tags: [tag],
  summary,
  parameters,
  responses: { ...response, ...errors(400, 401, 403, 404, 429) },
});
const projectQuery = query("project", "Only this project (a scoped token may name only its own)");

/** Paths not under /api/v1 carry no bearer token (security: []). */
const open = { security: [] };

export const openapi = {
  openapi: "3.1.0",
  info: {
    title: "edgeplane control plane",
    version: "1",
    description:
      "GitOps control plane for WebAssembly edge functions. Every /api/v1 endpoint except the runners' heartbeat needs `Authorization: Bearer <token>`: an admin token sees every project, a project token only its own. Errors are `{ error: { code, message, details } }` (docs/errors.md).",
  },
  servers: [{ url: "/" }],
  security: [{ bearer: [] }],
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    schemas,
  },
  paths: {
    "/healthz": { get: { ...open, tags: ["ops"], summary: "Liveness", responses: ok("alive") } },
    "/readyz": {
      get: { ...open, tags: ["ops"], summary: "Readiness: the database answers", responses: ok("ready") },
    },
    "/metrics": {
      get: {
        ...open,
        tags: ["ops"],
        summary: "Prometheus metrics (edgeplane_*)",
        responses: { 200: { description: "text exposition format", content: { "text/plain": {} } } },
      },
    },
    "/webhooks/github": {
      post: {
        ...open,
        tags: ["webhooks"],
        summary:
          "GitHub push and pull_request webhooks, verified with the project's secret (X-Hub-Signature-256)",
        responses: { ...ok("recorded", { type: "object" }, "202"), ...errors(400, 401, 404, 413) },
      },
    },
    "/artifacts/functions/{id}/{file}": {
      get: {
        ...open,
        tags: ["artifacts"],
        summary: "Artifact download for runners (local artifact store only)",
        parameters: [path("id", "Function version id"), path("file", "{version}.wasm")],
        responses: {
          200: { description: "the module", content: { "application/wasm": {} } },
          ...errors(404),
        },
      },
    },
    "/api/v1/openapi.json": {
      get: { ...open, tags: ["meta"], summary: "This document", responses: ok("OpenAPI 3.1") },
    },
    "/api/v1/projects": {
      get: read("projects", "Registered projects", ok("projects", list("projects"))),
    },
    "/api/v1/projects/{name}/reconcile": {
      post: {
        tags: ["projects"],
        summary: "Queue a reconcile of the branch head (Git projects)",
        parameters: [path("name", "Project name")],
        responses: { ...ok("queued", { type: "object" }, "202"), ...errors(401, 403, 404, 409, 429) },
      },
    },
    "/api/v1/reconciliations": {
      get: read("reconciliations", "Recent reconciliations", ok("list", list("reconciliations")), [
        projectQuery,
      ]),
    },
    "/api/v1/reconciliations/{id}": {
      get: read("reconciliations", "One reconciliation: commit, plan, result, per-POP outcome", ok("one"), [
        path("id", "Reconciliation id"),
      ]),
    },
    "/api/v1/functions": {
      get: read("functions", "Active function versions", ok("list", list("functions")), [projectQuery]),
      post: {
        tags: ["functions"],
        summary:
          "Register a new version of a function of an `api` project: JSON (base64 `wasm` or `url`), or the raw module as application/wasm with ?project=&name=[&abi=&runtime=]",
        requestBody: {
          required: true,
          content: {
            "application/json": { schema: ref("CreateFunction") },
            "application/wasm": { schema: { type: "string", format: "binary" } },
          },
        },
        responses: {
          ...ok("created version", { type: "object" }, "201"),
          ...errors(400, 401, 403, 404, 409, 413, 422, 429),
        },
      },
    },
    "/api/v1/functions/{id}": {
      get: read("functions", "One immutable function version with its routes", ok("one"), [
        path("id", "Function version id"),
      ]),
    },
    "/api/v1/functions/{id}/deploy": {
      post: {
        tags: ["functions"],
        summary: "Make this version the active one (an `api` project): routes move to it and runners get it",
        parameters: [path("id", "Function version id")],
        responses: { ...ok("deployed"), ...errors(401, 403, 404, 409, 429) },
      },
    },
    "/api/v1/routes": {
      get: read("routes", "The routing table", ok("list", list("routes")), [projectQuery]),
      post: {
        tags: ["routes"],
        summary: "Add a route to a deployed function of an `api` project",
        requestBody: body("CreateRoute"),
        responses: {
          ...ok("created", { type: "object" }, "201"),
          ...errors(400, 401, 403, 404, 409, 413, 429),
        },
      },
    },
    "/api/v1/deployments": {
      get: read("deployments", "Deployments, newest first", ok("list", list("deployments")), [projectQuery]),
    },
    "/api/v1/nodes": {
      get: read(
        "nodes",
        "Runners: POP, labels, status, last heartbeat (fleet-wide, any token)",
        ok("list", list("nodes")),
      ),
    },
    "/api/v1/nodes/{id}/heartbeat": {
      post: {
        tags: ["nodes"],
        summary: "Heartbeat for runners that cannot hold a gRPC stream (runner token, not an API token)",
        security: [{ bearer: [] }],
        parameters: [path("id", "Node id")],
        responses: { ...ok("desired state"), ...errors(400, 401, 403, 413) },
      },
    },
    "/api/v1/audit": {
      get: read("audit", "The audit log, newest first, filterable", ok("list", list("audit")), [
        projectQuery,
        query("function", "Object id: function name (or node id)"),
        query("commit", "Commit sha"),
        query("since", "ISO 8601 time", { type: "string", format: "date-time" }),
        query("until", "ISO 8601 time", { type: "string", format: "date-time" }),
        query("limit", "At most this many rows (default 200)", { type: "integer", minimum: 1 }),
      ]),
    },
    // The web console's endpoints (console.ts, events.ts; docs/console.md).
    "/api/v1/events": {
      get: {
        tags: ["console"],
        summary:
          "Live change notices as server-sent events: `data: {type, project, id, status}` per change of a reconciliation, audit row, deployment, preview or node; `: heartbeat` comments every 15 s. A project token gets its project's events and node events. EventSource cannot send headers, so this endpoint (only) also takes the token as ?access_token=",
        parameters: [projectQuery, query("access_token", "The bearer token, for EventSource clients")],
        responses: {
          200: {
            description: "an endless event stream",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          ...errors(401, 403, 429),
        },
      },
    },
    "/api/v1/inventory": {
      get: read(
        "console",
        "Where each function version runs: what every node reported for it in its last ack (node, POP, status)",
        ok("list", list("inventory")),
        [projectQuery],
      ),
    },
    "/api/v1/functions/{id}/versions": {
      get: read(
        "functions",
        "Every immutable version of the function that version {id} belongs to, newest first, with its deployment state",
        ok("list", list("versions")),
        [path("id", "Any version id of the function")],
      ),
    },
    "/api/v1/tokens": {
      get: read("tokens", "API tokens (admin); never the tokens themselves", ok("list", list("tokens"))),
      post: {
        tags: ["tokens"],
        summary: "Create a token (admin); the token is in this response only",
        requestBody: body("CreateToken"),
        responses: { ...ok("created", { type: "object" }, "201"), ...errors(400, 401, 403, 404, 429) },
      },
    },
    "/api/v1/tokens/{id}": {
      delete: {
        tags: ["tokens"],
        summary: "Revoke a token (admin)",
        parameters: [path("id", "Token id")],
        responses: { 204: { description: "revoked" }, ...errors(401, 403, 404, 429) },
      },
    },
    // Previews, rollbacks (pins) and progressive rollouts (previews-api.ts; docs/previews-and-rollouts.md).
    "/api/v1/previews": {
      get: read(
        "previews",
        "Pull-request previews: per function, its POPs and URLs (`urls[pop]`, `urls.any`)",
        ok("list", list("previews")),
        [
          projectQuery,
          query("status", "active (default), closed, expired or all", {
            enum: ["active", "closed", "expired", "all"],
          }),
        ],
      ),
    },
    "/api/v1/pins": {
      get: read("rollback", "Pinned functions (rollbacks in force)", ok("list", list("pins")), [
        projectQuery,
      ]),
    },
    "/api/v1/rollouts": {
      get: read("rollouts", "Progressive rollouts, newest first", ok("list", list("rollouts")), [
        projectQuery,
      ]),
    },
    "/api/v1/projects/{project}/functions/{name}/rollback": {
      post: {
        tags: ["rollback"],
        summary:
          "Pin a previous immutable version (default: the one before what is served); answers with the `git revert` that makes Git agree",
        parameters: [path("project", "Project name"), path("name", "Function name")],
        requestBody: {
          required: false,
          content: {
            "application/json": {
              schema: {
                type: "object",
                additionalProperties: false,
                properties: { to: { type: "integer", minimum: 1, description: "Version to pin" } },
              },
            },
          },
        },
        responses: {
          ...ok("pinned", {
            type: "object",
            required: ["function", "project", "pinned_version", "from_version", "revert", "message"],
            properties: {
              function: { type: "string" },
              project: { type: "string" },
              pinned_version: { type: "integer" },
              from_version: { type: "integer" },
              revert: { type: ["string", "null"] },
              message: { type: "string" },
            },
          }),
          ...errors(400, 401, 403, 404, 409, 413, 429),
        },
      },
    },
    "/api/v1/projects/{project}/functions/{name}/pin": {
      delete: {
        tags: ["rollback"],
        summary: "Lift a pin by hand: the active version (what Git says) is served again",
        parameters: [path("project", "Project name"), path("name", "Function name")],
        responses: { ...ok("unpinned"), ...errors(401, 403, 404, 429) },
      },
    },
  } as Record<string, Record<string, Json>>,
};
