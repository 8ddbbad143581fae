// API authentication and authorisation. Bearer tokens are random 256-bit strings shown once at
// creation; only their SHA-256 is stored, so a database dump gives no usable token. A token is
// admin (every project, token management) or scoped to exactly one project: it can read and
// steer that project and nothing of any other. Nodes are shared infrastructure and readable by
// every valid token. Decisions are made per request by the helpers at the bottom, which route
// handlers call with the project the request is about.

import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import type { Context, Next } from "koa";
import { edgeError } from "../lib/errors.ts";
import type { Queryable } from "./db.ts";

/** Who is calling: set on ctx.state.auth by the middleware for every /api/v1 request. */
export interface Principal {
  admin: boolean;
  /** The project a scoped token belongs to; null for admin tokens. */
  project: string | null;
  tokenId: string;
  /** How audit rows name this caller, e.g. "token:ci-deployer". */
  actor: string;
}

export interface TokenRow {
  id: string;
  name: string;
  project: string | null;
  admin: boolean;
  prefix: string;
  created_by: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface CreatedToken extends Omit<TokenRow, "created_at" | "last_used_at" | "revoked_at"> {
  /** The token itself; shown once, never stored. */
  token: string;
}

const TOKEN_PREFIX = "edp_";
const TOKEN_PATTERN = /^edp_[A-Za-z0-9_-]{43}$/;

export const hashToken = (token: string): string => createHash("sha256").update(token).digest("hex");

export async function createToken(
  q: Queryable,
  opts: { project?: string | null; admin?: boolean; name?: string; createdBy?: string },
): Promise<CreatedToken> {
  const admin = opts.admin ?? false;
  const project = opts.project ?? null;
  if (!admin && !project) {
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", "a token is either admin or scoped to a project", [
      { where: "body.project", message: "give a project name, or admin: true" },
    ]);
  }
  let projectId: string | null = null;
  if (project) {
    const [row] = await q.query<{ id: string }>("SELECT id FROM projects WHERE name = $1", [project]);
    if (!row) throw edgeError("EDGE_ERR_API_NOT_FOUND", `no project ${project}`);
    projectId = row.id;
  }
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  const id = randomUUID();
  const prefix = token.slice(0, 10);
  const name = opts.name ?? "";
  const createdBy = opts.createdBy ?? "system";
  await q.query(
    `INSERT INTO api_tokens (id, name, project_id, admin, hash, prefix, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [id, name, projectId, admin, hashToken(token), prefix, createdBy],
  );
  return { id, token, name, project, admin, prefix, created_by: createdBy };
}

export async function listTokens(q: Queryable): Promise<TokenRow[]> {
  return q.query<TokenRow>(
    `SELECT t.id, t.name, p.name AS project, t.admin, t.prefix, t.created_by, t.created_at, t.last_used_at, t.revoked_at
       FROM api_tokens t LEFT JOIN projects p ON p.id = t.project_id ORDER BY t.created_at, t.id`,
  );
}

/** Revokes a token; false when there is no such (unrevoked) token. */
export async function revokeToken(q: Queryable, id: string): Promise<boolean> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return false;
  const rows = await q.query(
    "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id",
    [id],
  );
  return rows.length > 0;
}

/** The principal a token stands for, or null when it is unknown or revoked. */
export async function authenticate(q: Queryable, token: string): Promise<Principal | null> {
  if (!TOKEN_PATTERN.test(token)) return null;
  const [row] = await q.query<{
    id: string;
    name: string;
    prefix: string;
    admin: boolean;
    project: string | null;
  }>(
    `SELECT t.id, t.name, t.prefix, t.admin, p.name AS project
       FROM api_tokens t LEFT JOIN projects p ON p.id = t.project_id
      WHERE t.hash = $1 AND t.revoked_at IS NULL`,
    [hashToken(token)],
  );
  if (!row) return null;
  // Recorded at most once a minute, so reading the API does not write a row per request.
  await q.query(
    `UPDATE api_tokens SET last_used_at = now()
      WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
    [row.id],
  );
  return {
    admin: row.admin,
    project: row.admin ? null : row.project,
    tokenId: row.id,
    actor: `token:${row.name || row.prefix}`,
  };
}

/**
 * The first admin token of a fresh control plane, written to `file` (mode 0600) so the person
 * who started it can log in. Nothing is created when `file` already holds a working admin
 * token, or when another admin token exists (a replica or an operator made one already).
 */
export async function bootstrapAdminToken(q: Queryable, file: string): Promise<string | null> {
  const existing = await readFile(file, "utf8").catch(() => null);
  if (existing !== null) {
    const p = await authenticate(q, existing.trim());
    if (p?.admin) return null;
  }
  const [other] = await q.query("SELECT 1 FROM api_tokens WHERE admin AND revoked_at IS NULL LIMIT 1");
  if (other && existing === null) return null;
  const created = await createToken(q, { admin: true, name: "bootstrap", createdBy: "system" });
  await writeFile(file, `${created.token}\n`, { mode: 0o600 });
  return created.token;
}

export interface RateLimit {
  /** Requests allowed per token (or per client address without a token) in each window. */
  requests: number;
  windowMs: number;
}

/**
 * Authenticates every /api/v1 request except the runners' heartbeat (which has its own runner
 * token) and the OpenAPI document, and applies a per-token fixed-window rate limit (per replica). The token comes from
 * the Authorization header; only the server-sent events stream may take it from
 * `?access_token=`, because EventSource cannot send headers.
 */
export function authMiddleware(q: Queryable, limit: RateLimit, now: () => number = Date.now) {
  const windows = new Map<string, { start: number; count: number }>();
  const exempt = (ctx: Context) =>
    ctx.path === "/api/v1/openapi.json" ||
    (ctx.method === "POST" && /^\/api\/v1\/nodes\/[^/]+\/heartbeat$/.test(ctx.path));

  return async (ctx: Context, next: Next): Promise<void> => {
    if (!ctx.path.startsWith("/api/v1/") || exempt(ctx)) return next();
    const header = ctx.get("authorization");
    let token: string | null = null;
    if (header) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (!m) {
        ctx.set("WWW-Authenticate", 'Bearer realm="edgeplane", error="invalid_request"');
        throw edgeError("EDGE_ERR_API_UNAUTHORIZED", "Authorization must be `Bearer <token>`");
      }
      token = m[1]!;
    } else if (ctx.path === "/api/v1/events" && typeof ctx.query.access_token === "string") {
      token = ctx.query.access_token;
    }
    if (!token) {
      ctx.set("WWW-Authenticate", 'Bearer realm="edgeplane"');
      throw edgeError(
        "EDGE_ERR_API_UNAUTHORIZED",
        "this endpoint needs a bearer token (edgectl tokens create)",
      );
    }
    const principal = await authenticate(q, token);
    if (!principal) {
      ctx.set("WWW-Authenticate", 'Bearer realm="edgeplane", error="invalid_token"');
      throw edgeError("EDGE_ERR_API_UNAUTHORIZED", "the token is unknown or revoked");
    }

    const t = now();
    let w = windows.get(principal.tokenId);
    if (!w || t - w.start >= limit.windowMs) {
      w = { start: t, count: 0 };
      windows.set(principal.tokenId, w);
      if (windows.size > 10_000) {
        for (const [k, v] of windows) if (t - v.start >= limit.windowMs) windows.delete(k);
      }
    }
    if (++w.count > limit.requests) {
      const retry = Math.max(1, Math.ceil((w.start + limit.windowMs - t) / 1000));
      ctx.set("Retry-After", String(retry));
      throw edgeError(
        "EDGE_ERR_API_RATE_LIMITED",
        `more than ${limit.requests} requests in ${limit.windowMs / 1000} s with this token; retry in ${retry} s`,
      );
    }
    ctx.state.auth = principal;
    return next();
  };
}

export function principal(ctx: Context): Principal {
  const p = ctx.state.auth as Principal | undefined;
  if (!p) throw edgeError("EDGE_ERR_API_UNAUTHORIZED", "this endpoint needs a bearer token");
  return p;
}

/** Throws 403 unless the caller may act on `project` (admin, or a token of that project). */
export function requireProject(ctx: Context, project: string): Principal {
  const p = principal(ctx);
  if (!p.admin && p.project !== project) {
    throw edgeError("EDGE_ERR_API_FORBIDDEN", `this token belongs to project ${p.project}, not ${project}`);
  }
  return p;
}

export function requireAdmin(ctx: Context): Principal {
  const p = principal(ctx);
  if (!p.admin) throw edgeError("EDGE_ERR_API_FORBIDDEN", "this endpoint needs an admin token");
  return p;
}

/**
 * The project a list is narrowed to: the `?project=` asked for (checked), else the token's own
 * project, else null (an admin sees every project).
 */
export function projectScope(ctx: Context): string | null {
  const p = principal(ctx);
  const asked = typeof ctx.query.project === "string" && ctx.query.project ? ctx.query.project : null;
  if (asked) {
    requireProject(ctx, asked);
    return asked;
  }
  return p.admin ? null : p.project;
}

/**
 * For an object found by id: hides objects of other projects behind the same 404 a missing one
 * gets, so a scoped token cannot probe what other projects hold.
 */
export function visibleTo(ctx: Context, project: string | null): boolean {
  const p = principal(ctx);
  return p.admin || (project !== null && p.project === project);
}
