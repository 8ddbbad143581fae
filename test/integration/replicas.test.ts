// Two control-plane replicas on one PostgreSQL: they share the reconcile queue, at most one
// reconcile of a project runs at a time across both, the newest request wins, and polling
// picks up a commit no webhook announced.

import path from "node:path";
import test from "ava";
import { type ControlPlane, createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo } from "../helpers/git.ts";
import { tempDir } from "../helpers/tmp.ts";

const PROJECT = `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec: { domains: [acme.test] }
`;

test("replicas: reconciles of one project never overlap across replicas, and the newest commit is applied last", async (t) => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const repo = await createTestRepo(tmp.dir);
  const shas: string[] = [];
  for (let i = 0; i < 6; i++)
    shas.push(await repo.commit({ "edge.yaml": PROJECT, "n.txt": String(i) }, `c${i}`));
  const replicas: ControlPlane[] = [];
  for (const name of ["a", "b"]) {
    const cp = await createControlPlane({
      dataDir: path.join(tmp.dir, name),
      databaseUrl: DATABASE_URL,
      databaseSchema: schema,
      httpPort: 0,
      grpcPort: 0,
      pollInterval: "0",
      projects: [{ name: "acme", repo: repo.origin }],
    });
    await cp.start();
    replicas.push(cp);
  }
  t.teardown(async () => {
    for (const cp of replicas) await cp.stop();
    await drop();
    await tmp.remove();
  });
  const [a, b] = replicas as [ControlPlane, ControlPlane];

  // Sample the table while the replicas work: never two running reconciles at once.
  let maxRunning = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const [row] = await a.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM reconciliations WHERE status = 'running'",
      );
      maxRunning = Math.max(maxRunning, row!.n);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();

  // Requests alternate between the replicas, in commit order.
  const ids: string[] = [];
  for (const [i, sha] of shas.entries()) {
    ids.push(
      await (i % 2 === 0 ? a : b).reconciler.enqueue("acme", { commit: sha, trigger: "api", actor: "test" }),
    );
  }
  const rows = await Promise.all(ids.map((id) => a.reconciler.wait(id, 60_000)));
  sampling = false;
  await sampler;

  t.is(maxRunning, 1);
  t.true(rows.every((r) => r.status === "succeeded" || r.status === "superseded"));
  t.is(rows.at(-1)!.status, "succeeded", "the newest request always runs");
  const [project] = await a.db.query<{ last_commit: string }>(
    "SELECT last_commit FROM projects WHERE name = 'acme'",
  );
  t.is(project!.last_commit, shas.at(-1));
  // Each succeeded reconcile names the replica that ran it; superseded ones never ran.
  for (const r of rows) {
    if (r.status === "succeeded")
      t.true(r.runner === a.reconciler.holder || r.runner === b.reconciler.holder);
    else t.is(r.runner, null);
  }
  t.deepEqual(await a.db.query("SELECT * FROM project_leases"), []);
});

test("poll: a commit no webhook announced is reconciled once, with trigger poll", async (t) => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const repo = await createTestRepo(tmp.dir);
  const sha = await repo.commit({ "edge.yaml": PROJECT }, "init");
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    projects: [{ name: "acme", repo: repo.origin }],
  });
  await cp.start();
  t.teardown(async () => {
    await cp.stop();
    await drop();
    await tmp.remove();
  });
  const [id] = await cp.poller.pollOnce();
  const row = await cp.reconciler.wait(id!);
  t.like(row, { status: "succeeded", trigger: "poll", commit_sha: sha, actor: "poller" });
  t.deepEqual(await cp.poller.pollOnce(), [], "a commit already reconciled is not queued again");
  const sha2 = await repo.commit({ "x.txt": "1" }, "next");
  const [id2] = await cp.poller.pollOnce();
  t.like(await cp.reconciler.wait(id2!), { status: "succeeded", commit_sha: sha2 });
});

test('config: pollInterval "0" turns polling off and a bad duration names the option', async (t) => {
  const { compileControlPlaneOptions } = await import("../../reconciler/index.ts");
  t.is(compileControlPlaneOptions({ pollInterval: "0" }).pollIntervalMs, 0);
  t.is(compileControlPlaneOptions({}).pollIntervalMs, 300_000);
  t.throws(() => compileControlPlaneOptions({ pollInterval: "soon" }), {
    message: /pollInterval: expected a duration/,
  });
});

test("replicas: a runner connected to either replica gets the generation the other one committed", async (t) => {
  const { createRunner } = await import("../../edge-runner/index.ts");
  const { request } = await import("../helpers/http.ts");
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const repo = await createTestRepo(tmp.dir);
  await repo.copyIn(path.resolve("example-repo/hello"), "hello");
  const sha = await repo.commit(
    {
      "edge.yaml": `${PROJECT}---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: hello }
spec:
  source: { path: ./hello, language: assemblyscript }
  routes: [{ host: hello.acme.test, path: /* }]
`,
    },
    "hello",
  );
  const replicas: ControlPlane[] = [];
  for (const name of ["a", "b"]) {
    const cp = await createControlPlane({
      dataDir: path.join(tmp.dir, name),
      // Replicas need one artifact store between them (S3, or a shared directory as here).
      artifactsDir: path.join(tmp.dir, "artifacts"),
      databaseUrl: DATABASE_URL,
      databaseSchema: schema,
      httpPort: 0,
      grpcPort: 0,
      pollInterval: "0",
      projects: [{ name: "acme", repo: repo.origin }],
    });
    await cp.start();
    replicas.push(cp);
  }
  const [a, b] = replicas as [ControlPlane, ControlPlane];
  const runners = [
    { cp: a, pop: "tokyo-1" },
    { cp: b, pop: "osaka-1" },
  ].map(({ cp, pop }) =>
    createRunner({
      nodeId: `${pop}-x`,
      pop,
      httpHost: "127.0.0.1",
      httpPort: 0,
      cacheDir: path.join(tmp.dir, `cache-${pop}`),
      control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
    }),
  );
  const ports = [];
  for (const r of runners) ports.push((await r.start()).httpPort);
  t.teardown(async () => {
    for (const r of runners) await r.stop();
    for (const cp of replicas) await cp.stop();
    await drop();
    await tmp.remove();
  });
  while (a.control.connected().length + b.control.connected().length < 2)
    await new Promise((r) => setTimeout(r, 20));

  // Replica a reconciles; the runner on replica b learns of it through the database.
  const row = await a.reconciler.wait(
    await a.reconciler.enqueue("acme", { commit: sha, trigger: "api", actor: "test" }),
  );
  t.is(row.status, "succeeded");
  await a.settled();
  for (const port of ports) t.is((await request(port, "hello.acme.test", "/")).status, 200);
  // The outcome a recorded covers both POPs, though only one runner is connected to it.
  const outcome = (await a.reconciler.wait(row.id)).outcome as { pops: { pop: string; state: string }[] };
  t.deepEqual(
    outcome.pops.map((p) => [p.pop, p.state]),
    [
      ["osaka-1", "success"],
      ["tokyo-1", "success"],
    ],
  );
});
