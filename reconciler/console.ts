// The web console (docs/console.md): static files from console/ served at `/`, and the few API
// endpoints only the console needed — the live event stream, what each node holds, and every
// version of a function. No build step: the files are plain HTML, CSS and ES modules, read
// once at start, gzipped in memory, and served under a content-hashed path so browsers cache
// them for good and refetch only index.html (revalidated by ETag) when the console changes.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type Router from "@koa/router";
import type Koa from "koa";
import { edgeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { projectScope, visibleTo } from "./auth.ts";
import type { Db } from "./db.ts";
import { createEventsHandler, EventHub } from "./events.ts";

const CONSOLE_DIR = fileURLToPath(new URL("../console/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

interface Asset {
  body: Buffer;
  gzip: Buffer | null;
  type: string;
  etag: string;
}

export interface ConsoleAssets {
  /** First 12 hex digits of a sha256 over every file: the path segment assets are cached under. */
  version: string;
  index: Asset;
  /** Path relative to console/ → file. */
  files: Map<string, Asset>;
}

function asset(name: string, body: Buffer): Asset {
  const zipped = gzipSync(body, { level: 9 });
  return {
    body,
    gzip: zipped.length < body.length ? zipped : null,
    type: TYPES[path.extname(name)] ?? "application/octet-stream",
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
  };
}

/** Reads console/ (synchronously: once, at start). */
export function loadConsole(dir = CONSOLE_DIR): ConsoleAssets {
  const names = (readdirSync(dir, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
    .filter((e) => e.isFile() && TYPES[path.extname(e.name)])
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
    .sort();
  const raw = new Map(names.map((n) => [n, readFileSync(path.join(dir, n))]));
  const hash = createHash("sha256");
  for (const [n, body] of raw) hash.update(n).update("\0").update(body);
  const version = hash.digest("hex").slice(0, 12);
  // index.html names its assets /console/<file>: they become /console/<version>/<file>, and
  // every module is preloaded so the browser fetches them in parallel, not import by import.
  const preload = names
    .filter((n) => n.endsWith(".js"))
    .map((n) => `<link rel="modulepreload" href="/console/${version}/${n}">`)
    .join("\n    ");
  const html = raw
    .get("index.html")!
    .toString("utf8")
    .replaceAll('"/console/', `"/console/${version}/`)
    .replace("</head>", `  ${preload}\n  </head>`);
  raw.delete("index.html");
  return {
    version,
    index: asset("index.html", Buffer.from(html)),
    files: new Map([...raw].map(([n, body]) => [n, asset(n, body)])),
  };
}

const HTML_HEADERS = {
  "Content-Security-Policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

/** Serves GET/HEAD `/` (the console) and `/console/…` (its files); passes everything else on. */
export function consoleStatic(assets: ConsoleAssets = loadConsole()): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.method !== "GET" && ctx.method !== "HEAD") return next();
    let file: Asset | undefined;
    let immutable = false;
    if (ctx.path === "/" || ctx.path === "/index.html") file = assets.index;
    else if (ctx.path.startsWith("/console/")) {
      const m = /^\/console\/(?:([0-9a-f]{12})\/)?(.+)$/.exec(ctx.path);
      file = m ? assets.files.get(m[2]!) : undefined;
      // Only the current version is immutable: a page from another replica's older console
      // still gets these files, but revalidated.
      immutable = m?.[1] === assets.version;
    }
    if (!file) return next();
    ctx.status = 200;
    ctx.set({
      ETag: file.etag,
      "Cache-Control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
      "X-Content-Type-Options": "nosniff",
      Vary: "Accept-Encoding",
      ...(file === assets.index ? HTML_HEADERS : {}),
    });
    ctx.type = file.type;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    if (file.gzip && ctx.acceptsEncodings("gzip", "identity") === "gzip") {
      ctx.set("Content-Encoding", "gzip");
      ctx.body = file.gzip;
    } else ctx.body = file.body;
  };
}

export interface ConsoleRouteDeps {
  db: Db;
  log: Logger;
  /** Comment lines on the event stream this often (default 15 s). */
  heartbeatMs?: number;
}

/** The console's API endpoints (authenticated like every /api/v1 route, by the auth middleware). */
export function registerConsoleRoutes(router: Router, deps: ConsoleRouteDeps): void {
  const { db } = deps;
  const hub = new EventHub(db, deps.log);
  router.get(
    "/api/v1/events",
    createEventsHandler({
      hub,
      scope: projectScope,
      ...(deps.heartbeatMs ? { heartbeatMs: deps.heartbeatMs } : {}),
    }),
  );

  // Where each function version runs: what every node reported for it in its last ack.
  router.get("/api/v1/inventory", async (ctx) => {
    const scope = projectScope(ctx);
    ctx.body = {
      inventory: await db.query(
        `SELECT i.node_id, n.pop_id AS pop, n.status AS node_status, p.name AS project, f.name AS function_name,
                f.id AS function_id, f.version, i.status, i.message, i.updated_at
           FROM node_inventory i JOIN nodes n ON n.id = i.node_id JOIN functions f ON f.id = i.function_id
           JOIN projects p ON p.id = f.project_id
          ${scope === null ? "" : "WHERE p.name = $1"}
          ORDER BY p.name, f.name, f.version DESC, n.pop_id, i.node_id`,
        scope === null ? [] : [scope],
      ),
    };
  });

  // Every version of the function that version :id belongs to, newest first.
  router.get("/api/v1/functions/:id/versions", async (ctx) => {
    const id = ctx.params.id!;
    const [fn] = /^[0-9a-f-]{36}$/i.test(id)
      ? await db.query<{ project_id: string; project: string; name: string }>(
          "SELECT f.project_id, p.name AS project, f.name FROM functions f JOIN projects p ON p.id = f.project_id WHERE f.id = $1",
          [id],
        )
      : [];
    if (!fn || !visibleTo(ctx, fn.project))
      throw edgeError("EDGE_ERR_API_NOT_FOUND", `no function version ${id}`);
    ctx.body = {
      project: fn.project,
      name: fn.name,
      versions: await db.query(
        `SELECT f.id, f.version, f.language, f.abi, f.runtime, f.sha256, f.size_bytes, f.commit_sha, f.created_at,
                d.status AS deployment_status, coalesce(d.active, false) AS active,
                EXISTS (SELECT 1 FROM previews v WHERE v.function_id = f.id) AS preview
           FROM functions f
           LEFT JOIN LATERAL (SELECT status, active FROM deployments
                               WHERE function_id = f.id ORDER BY created_at DESC LIMIT 1) d ON true
          WHERE f.project_id = $1 AND f.name = $2
          ORDER BY f.version DESC`,
        [fn.project_id, fn.name],
      ),
    };
  });
}
