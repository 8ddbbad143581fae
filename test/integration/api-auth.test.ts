// The API's authentication and authorisation, end to end over real HTTP on the real PostgreSQL:
// every endpoint × every kind of token (none, malformed, unknown, revoked, project A, project B,
// admin), what each kind can see in lists, the seed's imperative writes for `api` projects
// (answered 409 for Git ones) down to a runner serving the upload, body validation with field
// details, size limits, rate limits, the OpenAPI document against the routes actually served,
// and the first admin token a fresh control plane writes.

import { randomUUID } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import Koa from "koa";
import { createRunner, type Runner } from "../../edge-runner/index.ts";
import { authMiddleware, createToken, revokeToken } from "../../reconciler/auth.ts";
import { type ControlPlane, createControlPlane } from "../../reconciler/index.ts";
import { bearer } from "../helpers/auth.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { request } from "../helpers/http.ts";
import { quietLogger } from "../helpers/runner.ts";
import { tempDir } from "../helpers/tmp.ts";

type TempDir = Awaited<ReturnType<typeof tempDir>>;

import { edgeWat } from "../helpers/wasm.ts";

type Kind = "none" | "malformed" | "unknown" | "revoked" | "alpha" | "beta" | "admin";
const KINDS: Kind[] = ["none", "malformed", "unknown", "revoked", "alpha", "beta", "admin"];

interface Shared {
  cp: ControlPlane;
  runner: Runner;
  runnerPort: number;
  tmp: TempDir;
  drop: () => Promise<void>;
  tokens: Record<Kind, string | null>;
  alphaReconciliation: string;
  betaFunction: string;
  module: (text: string) => Promise<Uint8Array>;
}
let s: Shared;

const hello = (text: string) => edgeWat((str) => `(call $respond ${str.ref(text)}) (i32.const 0)`);

test.before(async () => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  // alpha: a Git-style (directory) project with a Project manifest and no functions.
  const alphaDir = path.join(tmp.dir, "alpha");
  await mkdir(alphaDir);
  await writeFile(
    path.join(alphaDir, "edge.yaml"),
    "apiVersion: edgeplane.dev/v1\nkind: Project\nmetadata: { name: alpha }\nspec:\n  domains: [alpha.test]\n",
  );
  const cp = await createControlPlane(
    {
      dataDir: path.join(tmp.dir, "cp"),
      databaseUrl: DATABASE_URL,
      databaseSchema: schema,
      httpPort: 0,
      grpcPort: 0,
      maxUploadBytes: "256KiB",
      apiRateLimit: { requests: 100_000 },
      projects: [
        { name: "alpha", repo: alphaDir, source: "directory" },
        { name: "beta", source: "api", domains: ["beta.test"] },
        { name: "gamma", source: "api", domains: ["gamma.test"] },
        // delta may route under beta.test too: only the routes already taken stop it.
        { name: "delta", source: "api", domains: ["beta.test"] },
      ],
    },
    quietLogger,
  );
  await cp.start();
  const runner = createRunner({
    nodeId: "auth-1",
    pop: "test-1",
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir: path.join(tmp.dir, "runner-cache"),
    control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
    reconnectMinDelay: "50ms",
    heartbeatInterval: "100ms",
    logger: quietLogger,
  });
  const { httpPort } = await runner.start();

  const revoked = await createToken(cp.db, { project: "beta", name: "revoked" });
  await revokeToken(cp.db, revoked.id);
  const tokens: Record<Kind, string | null> = {
    none: null,
    malformed: "not a token",
    unknown: `edp_${"A".repeat(43)}`,
    revoked: revoked.token,
    alpha: (await createToken(cp.db, { project: "alpha", name: "alpha-ci" })).token,
    beta: (await createToken(cp.db, { project: "beta", name: "beta-ci" })).token,
    admin: (await createToken(cp.db, { admin: true, name: "ops" })).token,
  };
  const alphaReconciliation = await cp.reconciler.enqueue("alpha", {
    commit: null,
    trigger: "api",
    actor: "test",
  });
  await cp.reconciler.wait(alphaReconciliation);
  s = {
    cp,
    runner,
    runnerPort: httpPort,
    tmp,
    drop,
    tokens,
    alphaReconciliation,
    betaFunction: "",
    module: hello,
  };
  // One function version in beta (registered, not deployed) for the by-id endpoints.
  const res = await api(
    "POST",
    "/api/v1/functions?project=beta&name=web",
    "admin",
    await hello("beta v1"),
    "wasm",
  );
  s.betaFunction = ((await res.json()) as { id: string }).id;
});

test.after.always(async () => {
  await s?.runner.stop();
  await s?.cp.stop();
  await s?.drop();
  await s?.tmp.remove();
});

async function api(
  method: string,
  p: string,
  kind: Kind,
  body?: unknown,
  type: "json" | "wasm" = "json",
): Promise<Response> {
  const headers: Record<string, string> = {};
  const token = s.tokens[kind];
  if (kind === "malformed") headers.authorization = "Token abc";
  else if (token) Object.assign(headers, bearer(token));
  let payload: BodyInit | undefined;
  if (body !== undefined) {
    headers["content-type"] = type === "wasm" ? "application/wasm" : "application/json";
    payload = type === "wasm" ? Buffer.from(body as Uint8Array) : JSON.stringify(body);
  }
  return fetch(`${s.cp.url}${p}`, { method, headers, ...(payload ? { body: payload } : {}) });
}

interface Case {
  method: string;
  path: () => string;
  body?: (kind: Kind) => Promise<unknown> | unknown;
  type?: "json" | "wasm";
  /** Expected status for alpha, beta and admin tokens; none/malformed/unknown/revoked always get 401. */
  expect: { alpha: number; beta: number; admin: number };
}

const any200 = { alpha: 200, beta: 200, admin: 200 };
const CASES: Case[] = [
  { method: "GET", path: () => "/api/v1/projects", expect: any200 },
  {
    method: "GET",
    path: () => "/api/v1/projects?project=beta",
    expect: { alpha: 403, beta: 200, admin: 200 },
  },
  {
    method: "POST",
    path: () => "/api/v1/projects/alpha/reconcile",
    expect: { alpha: 202, beta: 403, admin: 202 },
  },
  {
    method: "POST",
    path: () => "/api/v1/projects/beta/reconcile",
    expect: { alpha: 403, beta: 409, admin: 409 },
  },
  {
    method: "POST",
    path: () => "/api/v1/projects/nope/reconcile",
    expect: { alpha: 403, beta: 403, admin: 404 },
  },
  { method: "GET", path: () => "/api/v1/reconciliations", expect: any200 },
  {
    method: "GET",
    path: () => "/api/v1/reconciliations?project=alpha",
    expect: { alpha: 200, beta: 403, admin: 200 },
  },
  {
    method: "GET",
    path: () => `/api/v1/reconciliations/${s.alphaReconciliation}`,
    expect: { alpha: 200, beta: 404, admin: 200 },
  },
  { method: "GET", path: () => "/api/v1/functions", expect: any200 },
  {
    method: "GET",
    path: () => `/api/v1/functions/${s.betaFunction}`,
    expect: { alpha: 404, beta: 200, admin: 200 },
  },
  {
    method: "POST",
    path: () => "/api/v1/functions?project=beta&name=web",
    body: () => s.module("beta upload"),
    type: "wasm",
    expect: { alpha: 403, beta: 201, admin: 201 },
  },
  {
    method: "POST",
    path: () => "/api/v1/functions",
    body: async () => ({
      project: "alpha",
      name: "web",
      wasm: Buffer.from(await s.module("x")).toString("base64"),
    }),
    expect: { alpha: 409, beta: 403, admin: 409 },
  },
  {
    method: "POST",
    path: () => `/api/v1/functions/${s.betaFunction}/deploy`,
    expect: { alpha: 404, beta: 200, admin: 200 },
  },
  {
    method: "POST",
    path: () => "/api/v1/routes",
    body: (kind) => ({ project: "beta", function: "web", host: "www.beta.test", path: `/${kind}/*` }),
    expect: { alpha: 403, beta: 201, admin: 201 },
  },
  {
    method: "POST",
    path: () => "/api/v1/routes",
    body: (kind) => ({ project: "alpha", function: "web", host: "www.alpha.test", path: `/${kind}` }),
    expect: { alpha: 409, beta: 403, admin: 409 },
  },
  { method: "GET", path: () => "/api/v1/routes", expect: any200 },
  { method: "GET", path: () => "/api/v1/deployments", expect: any200 },
  {
    method: "GET",
    path: () => "/api/v1/deployments?project=beta",
    expect: { alpha: 403, beta: 200, admin: 200 },
  },
  { method: "GET", path: () => "/api/v1/nodes", expect: any200 },
  { method: "GET", path: () => "/api/v1/audit", expect: any200 },
  { method: "GET", path: () => "/api/v1/audit?project=alpha", expect: { alpha: 200, beta: 403, admin: 200 } },
  { method: "GET", path: () => "/api/v1/tokens", expect: { alpha: 403, beta: 403, admin: 200 } },
  {
    method: "POST",
    path: () => "/api/v1/tokens",
    body: () => ({ project: "gamma", name: "made-in-matrix" }),
    expect: { alpha: 403, beta: 403, admin: 201 },
  },
  {
    method: "DELETE",
    path: () => `/api/v1/tokens/${randomUUID()}`,
    expect: { alpha: 403, beta: 403, admin: 404 },
  },
  { method: "GET", path: () => "/api/v1/previews", expect: any200 },
  {
    method: "GET",
    path: () => "/api/v1/previews?project=beta",
    expect: { alpha: 403, beta: 200, admin: 200 },
  },
  { method: "GET", path: () => "/api/v1/pins", expect: any200 },
  { method: "GET", path: () => "/api/v1/pins?project=alpha", expect: { alpha: 200, beta: 403, admin: 200 } },
  { method: "GET", path: () => "/api/v1/rollouts", expect: any200 },
  {
    method: "POST",
    path: () => "/api/v1/projects/alpha/functions/web/rollback",
    body: () => ({}),
    expect: { alpha: 404, beta: 403, admin: 404 },
  },
  {
    method: "DELETE",
    path: () => "/api/v1/projects/alpha/functions/web/pin",
    expect: { alpha: 404, beta: 403, admin: 404 },
  },
  { method: "GET", path: () => "/api/v1/nope", expect: { alpha: 404, beta: 404, admin: 404 } },
];

test.serial("api auth: every endpoint × every kind of token gets the status its scope allows", async (t) => {
  // The beta function must be deployed before routes can point at it: run the cases in order,
  // admin first within each case (the deploy by admin makes later route writes possible).
  const order: Kind[] = ["none", "malformed", "unknown", "revoked", "admin", "alpha", "beta"];
  const table: string[] = [];
  for (const c of CASES) {
    for (const kind of order) {
      const body = c.body ? await c.body(kind) : undefined;
      const res = await api(c.method, c.path(), kind, body, c.type);
      const text = await res.text();
      const want = kind === "alpha" || kind === "beta" || kind === "admin" ? c.expect[kind] : 401;
      if (res.status !== want)
        table.push(`${c.method} ${c.path()} as ${kind}: ${res.status} (want ${want}) ${text}`);
      if (res.status >= 400) {
        const err = JSON.parse(text) as { error?: { code?: string; message?: string } };
        if (!err.error?.code?.startsWith("EDGE_ERR_") || !err.error.message)
          table.push(`${c.method} ${c.path()} as ${kind}: not the JSON error shape: ${text}`);
      }
      if (res.status === 401 && !res.headers.get("www-authenticate")?.startsWith("Bearer"))
        table.push(`${c.method} ${c.path()} as ${kind}: 401 without WWW-Authenticate`);
    }
  }
  t.deepEqual(table, []);
  // Open endpoints need no token, and the runners' heartbeat does not take an API token.
  t.is((await api("GET", "/api/v1/openapi.json", "none")).status, 200);
  t.is((await api("GET", "/healthz", "none")).status, 200);
  t.is((await api("POST", "/api/v1/nodes/x/heartbeat", "admin", {})).status, 403);
  t.is(KINDS.length, 7);
});

test.serial("api auth: a project token sees only its own project in every list", async (t) => {
  const lists = async (kind: Kind) => {
    const get = async (p: string) =>
      (await (await api("GET", p, kind)).json()) as Record<string, { project?: string; name?: string }[]>;
    return {
      projects: (await get("/api/v1/projects")).projects!.map((p) => p.name),
      functions: (await get("/api/v1/functions")).functions!.map((f) => f.project),
      routes: (await get("/api/v1/routes")).routes!.map((r) => r.project),
      deployments: (await get("/api/v1/deployments")).deployments!.map((d) => d.project),
      reconciliations: (await get("/api/v1/reconciliations")).reconciliations!.map((r) => r.project),
      audit: (await get("/api/v1/audit")).audit!.map((a) => a.project),
    };
  };
  const alpha = await lists("alpha");
  const beta = await lists("beta");
  const admin = await lists("admin");
  t.deepEqual(alpha.projects, ["alpha"]);
  t.deepEqual(beta.projects, ["beta"]);
  t.deepEqual(admin.projects, ["alpha", "beta", "delta", "gamma"]);
  for (const [name, values] of Object.entries(alpha))
    t.true(
      values.every((v) => v === "alpha"),
      name,
    );
  for (const [name, values] of Object.entries(beta))
    t.true(
      values.every((v) => v === "beta"),
      name,
    );
  // Non-empty where the project has rows, so the checks above are not vacuous.
  t.true(beta.functions.length > 0 && beta.routes.length > 0 && beta.audit.length > 0);
  t.true(alpha.reconciliations.length > 0);
  t.true(admin.audit.includes("beta") && admin.reconciliations.includes("alpha"));
});

test.serial(
  "api: an api project's upload, deploy and route reach a runner; audit rows name the token",
  async (t) => {
    const upload = async (text: string) => {
      const res = await api("POST", "/api/v1/functions", "beta", {
        project: "beta",
        name: "shop",
        wasm: Buffer.from(await hello(text)).toString("base64"),
        limits: { memoryPages: 2 },
        env: { MODE: "test" },
      });
      t.is(res.status, 201);
      return (await res.json()) as { id: string; version: number; deployed: boolean };
    };
    const v1 = await upload("shop v1");
    t.like(v1, { version: 1, deployed: false });
    // Not served until deployed, and a route needs a deployed version.
    const early = await api("POST", "/api/v1/routes", "beta", {
      project: "beta",
      function: "shop",
      host: "shop.beta.test",
      path: "/*",
    });
    t.is(early.status, 404);
    t.is((await api("POST", `/api/v1/functions/${v1.id}/deploy`, "beta")).status, 200);
    const route = await api("POST", "/api/v1/routes", "beta", {
      project: "beta",
      function: "shop",
      host: "shop.beta.test",
      path: "/*",
      methods: ["GET"],
    });
    t.is(route.status, 201, await route.clone().text());
    const served = async (want: string) => {
      const deadline = Date.now() + 15_000;
      let last = await request(s.runnerPort, "shop.beta.test", "/");
      while (last.text !== want && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        last = await request(s.runnerPort, "shop.beta.test", "/");
      }
      return last;
    };
    t.like(await served("shop v1"), { status: 200, text: "shop v1" });
    const v2 = await upload("shop v2");
    t.is(v2.version, 2);
    t.is((await served("shop v1")).text, "shop v1"); // registered is not deployed
    const deployed = (await (await api("POST", `/api/v1/functions/${v2.id}/deploy`, "beta")).json()) as {
      changed: boolean;
    };
    t.true(deployed.changed);
    t.like(await served("shop v2"), { status: 200, text: "shop v2" });
    // Deploying the active version again changes nothing.
    t.false(
      (
        (await (await api("POST", `/api/v1/functions/${v2.id}/deploy`, "beta")).json()) as {
          changed: boolean;
        }
      ).changed,
    );

    const rows = (await (await api("GET", "/api/v1/audit?function=shop", "beta")).json()) as {
      audit: { actor: string; trigger: string; action: string; object_kind: string }[];
    };
    t.deepEqual(rows.audit.map((r) => `${r.object_kind}:${r.action}`).sort(), [
      "function:create",
      "function:register",
      "function:register",
      "function:update",
      "routes:create",
    ]);
    t.true(rows.audit.every((r) => r.actor === "token:beta-ci" && r.trigger === "api"));
    // Another project may not route a host beta already routes, nor a host outside its domains.
    const foreign = await api(
      "POST",
      "/api/v1/functions?project=gamma&name=g",
      "admin",
      await hello("g"),
      "wasm",
    );
    const g = (await foreign.json()) as { id: string };
    await api("POST", `/api/v1/functions/${g.id}/deploy`, "admin");
    const outside = await api("POST", "/api/v1/routes", "admin", {
      project: "gamma",
      function: "g",
      host: "shop.beta.test",
      path: "/",
    });
    t.is(outside.status, 400);
    t.like(await outside.json(), {
      error: { code: "EDGE_ERR_API_BAD_REQUEST", details: [{ where: "body.host" }] },
    });
    const dup = await api("POST", "/api/v1/routes", "beta", {
      project: "beta",
      function: "shop",
      host: "shop.beta.test",
      path: "/*",
      methods: ["GET"],
    });
    t.is(dup.status, 409);
    t.like(await dup.json(), { error: { code: "EDGE_ERR_API_CONFLICT" } });
    // A wildcard over a host another project routes would take its traffic: refused too.
    const d = (await (
      await api("POST", "/api/v1/functions?project=delta&name=d", "admin", await hello("d"), "wasm")
    ).json()) as { id: string };
    await api("POST", `/api/v1/functions/${d.id}/deploy`, "admin");
    const wildcard = await api("POST", "/api/v1/routes", "admin", {
      project: "delta",
      function: "d",
      host: "*.beta.test",
      path: "/",
    });
    t.is(wildcard.status, 409);
    t.regex(
      ((await wildcard.json()) as { error: { message: string } }).error.message,
      /overlaps .*beta\.test/,
    );
    const free = await api("POST", "/api/v1/routes", "admin", {
      project: "delta",
      function: "d",
      host: "d.beta.test",
      path: "/",
    });
    t.is(free.status, 201);
  },
);

test.serial(
  "api: bad bodies get 400 with every bad field named; bad modules 422; oversize 413",
  async (t) => {
    const res = await api("POST", "/api/v1/routes", "admin", {
      project: "beta",
      function: "shop",
      host: "Not A Host",
      priority: "high",
      colour: "red",
    });
    t.is(res.status, 400);
    const body = (await res.json()) as { error: { code: string; details: { where: string }[] } };
    t.is(body.error.code, "EDGE_ERR_API_BAD_REQUEST");
    t.deepEqual(body.error.details.map((d) => d.where).sort(), [
      "body.colour",
      "body.host",
      "body.path",
      "body.priority",
    ]);
    const notJson = await fetch(`${s.cp.url}/api/v1/tokens`, {
      method: "POST",
      headers: { ...bearer(s.tokens.admin!), "content-type": "application/json" },
      body: "{",
    });
    t.is(notJson.status, 400);
    const both = await api("POST", "/api/v1/functions", "admin", {
      project: "beta",
      name: "x",
      wasm: "AA==",
      url: "http://x.test/a.wasm",
    });
    t.is(both.status, 400);
    t.like(await both.json(), {
      error: { details: [{ where: "body", message: "give exactly one of wasm (base64) or url" }] },
    });
    // A module the runner would refuse is refused at upload, with the reason.
    const bad = await api(
      "POST",
      "/api/v1/functions?project=beta&name=bad",
      "admin",
      Buffer.from("\0asm\x01\0\0\0garbage"),
      "wasm",
    );
    t.is(bad.status, 422);
    t.like(await bad.json(), { error: { code: "EDGE_ERR_BUILD_INVALID_MODULE" } });
    const huge = await api(
      "POST",
      "/api/v1/functions?project=beta&name=big",
      "admin",
      new Uint8Array(300 * 1024),
      "wasm",
    );
    t.is(huge.status, 413);
    t.like(await huge.json(), { error: { code: "EDGE_ERR_API_TOO_LARGE" } });
    const q = await api(
      "POST",
      "/api/v1/functions?project=beta&name=Bad_Name&abi=cgi",
      "admin",
      await hello("x"),
      "wasm",
    );
    t.is(q.status, 400);
    t.deepEqual(
      ((await q.json()) as { error: { details: { where: string }[] } }).error.details.map((d) => d.where),
      ["query.name", "query.abi"],
    );
    // Nothing of the failed writes was stored.
    const fns = (await (await api("GET", "/api/v1/audit?function=bad", "admin")).json()) as {
      audit: unknown[];
    };
    t.deepEqual(fns.audit, []);
  },
);

test.serial(
  "api auth: tokens are shown once, stored hashed, listed without the secret, and revocable",
  async (t) => {
    const created = (await (
      await api("POST", "/api/v1/tokens", "admin", { project: "gamma", name: "deployer" })
    ).json()) as {
      id: string;
      token: string;
    };
    t.regex(created.token, /^edp_[A-Za-z0-9_-]{43}$/);
    const stored = await s.cp.db.query<{ hash: string }>("SELECT hash FROM api_tokens WHERE id = $1", [
      created.id,
    ]);
    t.not(stored[0]!.hash, created.token);
    t.false(JSON.stringify(await s.cp.db.query("SELECT * FROM api_tokens")).includes(created.token));
    const listed = await (await api("GET", "/api/v1/tokens", "admin")).text();
    t.false(listed.includes(created.token));
    t.true(listed.includes('"deployer"'));
    const use = () => fetch(`${s.cp.url}/api/v1/projects`, { headers: bearer(created.token) });
    t.is((await use()).status, 200);
    t.is((await api("DELETE", `/api/v1/tokens/${created.id}`, "admin")).status, 204);
    t.is((await use()).status, 401);
    t.is((await api("DELETE", `/api/v1/tokens/${created.id}`, "admin")).status, 404);
    const mixed = await api("POST", "/api/v1/tokens", "admin", { project: "gamma", admin: true });
    t.is(mixed.status, 400);
    const unknown = await api("POST", "/api/v1/tokens", "admin", { project: "nope" });
    t.is(unknown.status, 404);
  },
);

test.serial("api: the OpenAPI document lists every route the API serves, with its methods", async (t) => {
  const doc = (await (await api("GET", "/api/v1/openapi.json", "none")).json()) as {
    openapi: string;
    paths: Record<string, Record<string, unknown>>;
  };
  t.is(doc.openapi, "3.1.0");
  const served = servedRoutes(s.cp.app);
  t.true(served.length > 15);
  const missing = served.filter(({ method, path: p }) => !doc.paths[p]?.[method.toLowerCase()]);
  t.deepEqual(missing, []);
  // …and documents nothing that is not served.
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
  );
  const servedKeys = new Set(served.map((r) => `${r.method} ${r.path}`));
  t.deepEqual(
    documented.filter((k) => !servedKeys.has(k)),
    [],
  );
});

test("api auth: more requests than the rate limit allows get 429 with Retry-After, until the window passes", async (t) => {
  let now = 1_000_000;
  const app = new Koa();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      ctx.status = (err as { status: number }).status;
      ctx.body = { code: (err as { code: string }).code };
      ctx.set("x-retry", ctx.response.get("retry-after"));
    }
  });
  app.use(authMiddleware(s.cp.db, { requests: 3, windowMs: 60_000 }, () => now));
  app.use((ctx) => {
    ctx.body = { ok: true };
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/v1/projects`;
  const hit = () => fetch(url, { headers: bearer(s.tokens.beta!) });
  t.deepEqual(await Promise.all([hit(), hit(), hit()]).then((r) => r.map((x) => x.status)), [200, 200, 200]);
  const limited = await hit();
  t.is(limited.status, 429);
  t.like(await limited.json(), { code: "EDGE_ERR_API_RATE_LIMITED" });
  t.is(limited.headers.get("retry-after"), "60");
  // Another token has its own budget.
  t.is((await fetch(url, { headers: bearer(s.tokens.alpha!) })).status, 200);
  now += 60_000;
  t.is((await hit()).status, 200);
});

test("api auth: a fresh control plane writes one admin token to its data dir, and only once", async (t) => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  t.teardown(async () => {
    await drop();
    await tmp.remove();
  });
  const options = {
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
  };
  const cp = await createControlPlane(options, quietLogger);
  await cp.start();
  const file = path.join(tmp.dir, "cp", "admin-token");
  const token = (await readFile(file, "utf8")).trim();
  t.is((await stat(file)).mode & 0o777, 0o600);
  const res = await fetch(`${cp.url}/api/v1/tokens`, { headers: bearer(token) });
  t.is(res.status, 200);
  await cp.stop();
  const again = await createControlPlane(options, quietLogger);
  await again.start();
  t.is((await readFile(file, "utf8")).trim(), token);
  const tokens = await again.db.query("SELECT id FROM api_tokens");
  t.is(tokens.length, 1);
  await again.stop();
});

/** Method and OpenAPI-style path of every route the API's router serves. */
function servedRoutes(app: Koa): { method: string; path: string }[] {
  const dispatch = app.middleware.find((m) => (m as { router?: unknown }).router) as unknown as {
    router: { stack: { path: string; methods: string[] }[] };
  };
  return dispatch.router.stack.flatMap((layer) =>
    layer.methods
      .filter((m) => m !== "HEAD")
      .map((method) => ({ method, path: layer.path.replace(/:([A-Za-z_]+)/g, "{$1}") })),
  );
}
