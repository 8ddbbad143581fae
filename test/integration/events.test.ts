// The console's live updates: the NOTIFY triggers of migration 007 on both backends, delivery
// across replicas through PostgreSQL, and GET /api/v1/events — authentication by
// ?access_token=, per-project scoping, heartbeat comments, and listener cleanup on disconnect.

import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import path from "node:path";
import test from "ava";
import Koa from "koa";
import { createToken } from "../../reconciler/auth.ts";
import { type ConsoleEvent, createEventsHandler, EventHub } from "../../reconciler/events.ts";
import { createControlPlane, type Db, PostgresDb } from "../../reconciler/index.ts";
import { backends, DATABASE_URL, freshSchema, postgresDb } from "../helpers/db.ts";
import { quietLogger } from "../helpers/runner.ts";
import { tempDir } from "../helpers/tmp.ts";

const until = async (cond: () => boolean, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

async function seedProject(db: Db, name: string): Promise<string> {
  const id = randomUUID();
  await db.query("INSERT INTO projects (id, name, repo_url) VALUES ($1, $2, $3)", [
    id,
    name,
    `/repos/${name}`,
  ]);
  return id;
}

async function writeAudit(db: Db, projectId: string | null, objectId: string) {
  await db.query(
    `INSERT INTO audit_logs (actor, trigger, project_id, object_kind, object_id, action)
     VALUES ('test', 'api', $1, 'function', $2, 'create')`,
    [projectId, objectId],
  );
}

for (const backend of backends) {
  test(`events: reconciliation, audit, deployment and node changes notify with the project's name (${backend.name})`, async (t) => {
    const { db, drop } = await backend.open();
    t.teardown(drop);
    const hub = new EventHub(db, quietLogger);
    const seen: ConsoleEvent[] = [];
    const unsubscribe = await hub.subscribe((e) => seen.push(e));

    const acme = await seedProject(db, "acme");
    const rec = randomUUID();
    await db.query(
      "INSERT INTO reconciliations (id, project_id, trigger, status) VALUES ($1, $2, 'api', 'queued')",
      [rec, acme],
    );
    await db.query("UPDATE reconciliations SET status = 'running' WHERE id = $1", [rec]);
    // An update that changes neither status nor outcome is not news.
    await db.query("UPDATE reconciliations SET runner = 'r1' WHERE id = $1", [rec]);
    await writeAudit(db, acme, "hello");
    await db.query("INSERT INTO nodes (id, pop_id, status) VALUES ('n1', 'tokyo-1', 'online')");
    await db.query("UPDATE nodes SET last_heartbeat = now() WHERE id = 'n1'");
    // A rolled-back change sends nothing (NOTIFY is delivered at commit).
    await db
      .transaction(async (tx) => {
        await tx.query("UPDATE nodes SET status = 'offline' WHERE id = 'n1'");
        throw new Error("roll back");
      })
      .catch(() => {});

    t.true(await until(() => seen.length >= 5), JSON.stringify(seen));
    await new Promise((r) => setTimeout(r, 200));
    t.deepEqual(seen, [
      { type: "reconciliation", project: "acme", id: rec, status: "queued" },
      { type: "reconciliation", project: "acme", id: rec, status: "running" },
      { type: "audit", project: "acme", id: seen[2]!.id, status: null },
      { type: "node", project: null, id: "n1", status: "online" },
      { type: "node", project: null, id: "n1", status: "online" },
    ]);
    t.regex(seen[2]!.id, /^\d+$/);

    unsubscribe();
    t.is(hub.size, 0);
  });
}

test("events: a change committed through one replica reaches subscribers of another (PostgreSQL NOTIFY)", async (t) => {
  const a = await postgresDb();
  const b = new PostgresDb(DATABASE_URL, a.schema!);
  t.teardown(async () => {
    await b.close();
    await a.drop();
  });
  const hub = new EventHub(b, quietLogger);
  const seen: ConsoleEvent[] = [];
  const unsubscribe = await hub.subscribe((e) => seen.push(e));
  t.teardown(unsubscribe);
  const acme = await seedProject(a.db, "acme");
  await writeAudit(a.db, acme, "hello");
  t.true(await until(() => seen.some((e) => e.type === "audit" && e.project === "acme")));
});

/** Reads a server-sent-event stream: data events parsed, comment lines counted. */
async function openStream(url: string) {
  const abort = new AbortController();
  const res = await fetch(url, { signal: abort.signal });
  const events: (ConsoleEvent | { type: "ready"; project: string | null })[] = [];
  let comments = 0;
  let buffer = "";
  const reading = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split("\n")) {
            if (line.startsWith("data: ")) events.push(JSON.parse(line.slice(6)));
            else if (line.startsWith(":")) comments++;
          }
          end = buffer.indexOf("\n\n");
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    res,
    events,
    comments: () => comments,
    close: async () => {
      abort.abort();
      await reading;
    },
  };
}

test("events: GET /api/v1/events takes ?access_token=, and a project token sees only its project's events and node events", async (t) => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const cp = await createControlPlane(
    {
      dataDir: path.join(tmp.dir, "cp"),
      databaseUrl: DATABASE_URL,
      databaseSchema: schema,
      httpPort: 0,
      grpcPort: 0,
      pollInterval: "1h",
      projects: [
        { name: "acme", repo: path.join(tmp.dir, "acme"), fullName: "acme/site", webhookSecret: "s" },
        { name: "globex", repo: path.join(tmp.dir, "globex"), fullName: "globex/site", webhookSecret: "s" },
      ],
    },
    quietLogger,
  );
  await cp.start();
  t.teardown(async () => {
    await cp.stop();
    await drop();
    await tmp.remove();
  });
  const admin = await createToken(cp.db, { admin: true, name: "admin" });
  const acme = await createToken(cp.db, { project: "acme", name: "acme" });
  const ids = Object.fromEntries(
    (await cp.db.query<{ id: string; name: string }>("SELECT id, name FROM projects")).map((p) => [
      p.name,
      p.id,
    ]),
  );

  // Without a token, or with a wrong one: 401, and no stream.
  const none = await fetch(`${cp.url}/api/v1/events`);
  t.is(none.status, 401);
  t.is(((await none.json()) as { error: { code: string } }).error.code, "EDGE_ERR_API_UNAUTHORIZED");
  const wrong = await fetch(`${cp.url}/api/v1/events?access_token=edp_${"x".repeat(43)}`);
  t.is(wrong.status, 401);
  // The query-string token is accepted by this endpoint only.
  t.is((await fetch(`${cp.url}/api/v1/functions?access_token=${admin.token}`)).status, 401);

  const adminStream = await openStream(`${cp.url}/api/v1/events?access_token=${admin.token}`);
  const acmeStream = await openStream(`${cp.url}/api/v1/events?access_token=${acme.token}`);
  t.is(adminStream.res.status, 200);
  t.regex(adminStream.res.headers.get("content-type") ?? "", /^text\/event-stream/);
  t.is(adminStream.res.headers.get("cache-control"), "no-cache, no-transform");
  // The first event says the subscription is live, and for whom.
  t.true(await until(() => adminStream.events.length > 0 && acmeStream.events.length > 0));
  t.deepEqual(adminStream.events[0], { type: "ready", project: null, id: "", status: null });
  t.like(acmeStream.events[0], { type: "ready", project: "acme" });

  await writeAudit(cp.db, ids.globex!, "secret-fn");
  await writeAudit(cp.db, ids.acme!, "hello");
  await writeAudit(cp.db, null, "node/n1");
  await cp.db.query("INSERT INTO nodes (id, pop_id, status) VALUES ('n1', 'tokyo-1', 'online')");

  const summary = (s: { events: { type: string; project: string | null }[] }) =>
    s.events.slice(1).map((e) => `${e.type}:${e.project}`);
  t.true(await until(() => summary(adminStream).length >= 4 && summary(acmeStream).length >= 2));
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(summary(adminStream), ["audit:globex", "audit:acme", "audit:null", "node:null"]);
  t.deepEqual(summary(acmeStream), ["audit:acme", "node:null"]);

  // An admin may narrow the stream to one project; a project token may not ask for another.
  const narrowed = await openStream(`${cp.url}/api/v1/events?project=globex&access_token=${admin.token}`);
  t.true(await until(() => narrowed.events.length > 0));
  t.like(narrowed.events[0], { type: "ready", project: "globex" });
  const other = await fetch(`${cp.url}/api/v1/events?project=globex&access_token=${acme.token}`);
  t.is(other.status, 403);

  await adminStream.close();
  await acmeStream.close();
  await narrowed.close();
});

test("events: the stream sends heartbeat comments and drops its listener when the client goes away", async (t) => {
  const { db, drop } = await backends[1]!.open();
  const hub = new EventHub(db, quietLogger);
  const app = new Koa();
  app.use(createEventsHandler({ hub, scope: () => null, heartbeatMs: 50 }));
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await drop();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  const one = await openStream(url);
  const two = await openStream(url);
  t.true(await until(() => one.comments() >= 2 && two.comments() >= 2));
  t.is(hub.size, 2);
  await one.close();
  t.true(await until(() => hub.size === 1));
  await two.close();
  t.true(await until(() => hub.size === 0));

  // A new client after the last one left gets events again (the LISTEN is reopened).
  const three = await openStream(url);
  t.true(await until(() => three.events.length > 0));
  await db.query("INSERT INTO nodes (id, pop_id, status) VALUES ('n2', 'osaka-1', 'online')");
  t.true(await until(() => three.events.some((e) => e.type === "node" && e.id === "n2")));
  await three.close();
  t.true(await until(() => hub.size === 0));
});
