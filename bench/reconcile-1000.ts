// Reconcile benchmark: a generated repository of 1,000 functions (prebuilt edge-v1 modules, so
// the numbers are about the reconciler, not a compiler). Measures a no-op reconcile (nothing
// changed) and a reconcile where one function changed (which must build exactly one), against
// the same-run baseline of the git fetch + checkout alone that any reconcile has to do.
//
//   node --import tsx bench/reconcile-1000.ts [--functions 1000] [--rounds 5]
// Needs PostgreSQL on 127.0.0.1:5432 (database test), like the tests.

import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { simpleGit } from "simple-git";
import wabtInit from "wabt";
import { createLogger } from "../lib/log.ts";
import { createControlPlane } from "../reconciler/index.ts";

const { values } = parseArgs({
  options: { functions: { type: "string", default: "1000" }, rounds: { type: "string", default: "5" } },
});
const N = Number(values.functions);
const ROUNDS = Number(values.rounds);
const DATABASE_URL = process.env.EDGE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const wabt = await wabtInit();
const moduleBytes = (marker: number) =>
  wabt
    .parseWat(
      "m.wat",
      `(module (import "edge" "response_write" (func $w (param i32 i32) (result i32)))
        (memory (export "memory") 1 1) (data (i32.const 0) "Status: 200\\r\\n\\r\\nfn ${marker}")
        (func (export "edge_handle") (result i32) (drop (call $w (i32.const 0) (i32.const ${17 + String(marker).length}))) (i32.const 0)))`,
    )
    .toBinary({}).buffer;

const root = await mkdtemp(path.join(tmpdir(), "edgeplane-bench-reconcile-"));
const origin = path.join(root, "origin.git");
const work = path.join(root, "work");
await mkdir(origin);
await simpleGit(origin).init(true, ["--initial-branch=main"]);
await mkdir(work);
const git = simpleGit(work);
await git.init(["--initial-branch=main"]);
await git.addConfig("user.name", "bench");
await git.addConfig("user.email", "bench@edgeplane.invalid");
await git.addRemote("origin", origin);
await writeFile(
  path.join(work, "edge.yaml"),
  "apiVersion: edgeplane.dev/v1\nkind: Project\nmetadata: { name: big }\nspec: { domains: [big.test] }\n",
);
for (let i = 0; i < N; i++) {
  const dir = path.join(work, "functions", `f${i}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "module.wasm"), moduleBytes(i));
  await writeFile(
    path.join(dir, "edge.yaml"),
    `apiVersion: edgeplane.dev/v1\nkind: Function\nmetadata: { name: f${i} }\nspec:\n  source: { path: ., language: wasm }\n  limits: { memoryPages: 1 }\n  routes: [{ host: f${i}.big.test, path: /* }]\n`,
  );
}
const commit = async (message: string) => {
  await git.add(["-A"]);
  await git.commit(message);
  await git.push("origin", "main");
  return (await git.revparse(["HEAD"])).trim();
};
const first = await commit("1000 functions");

const schema = `bench_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ connectionString: DATABASE_URL });
await admin.connect();
await admin.query(`CREATE SCHEMA ${schema}`);
const cp = await createControlPlane(
  {
    dataDir: path.join(root, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    projects: [{ name: "big", repo: origin }],
  },
  createLogger("bench", "warn"),
);
await cp.start();

const reconcile = async (sha: string) => {
  const t0 = performance.now();
  const row = await cp.reconciler.wait(
    await cp.reconciler.enqueue("big", { commit: sha, trigger: "api", actor: "bench" }),
    600_000,
  );
  const ms = performance.now() - t0;
  if (row.status !== "succeeded") throw new Error(`reconcile ${row.status}: ${JSON.stringify(row.error)}`);
  return {
    ms,
    changes: (row.plan as { changes: unknown[] }).changes.length,
    builds: (row.result as { builds: unknown[] }).builds.length,
  };
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const initial = await reconcile(first);
const noop: number[] = [];
const oneChanged: { ms: number; builds: number }[] = [];
const baseline: number[] = [];
const probe = simpleGit(path.join(root, "cp", "git", "big"));
for (let r = 0; r < ROUNDS; r++) {
  const b0 = performance.now();
  await probe.fetch(["--quiet", "--prune", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*"]);
  await probe.raw(["checkout", "--quiet", "--force", "--detach", first]);
  baseline.push(performance.now() - b0);
  noop.push((await reconcile(first)).ms);
}
let head = first;
for (let r = 0; r < ROUNDS; r++) {
  await writeFile(path.join(work, "functions", "f7", "module.wasm"), moduleBytes(100_000 + r));
  head = await commit(`change f7 (${r})`);
  const res = await reconcile(head);
  if (res.builds !== 1) throw new Error(`expected exactly one build, got ${res.builds}`);
  oneChanged.push(res);
  // Back to the first commit's state so every round is "one changed function".
  await reconcile(first);
}

await cp.stop();
await admin.query(`DROP SCHEMA ${schema} CASCADE`);
await admin.end();
await rm(root, { recursive: true, force: true });

console.log(
  `\nmachine: ${cpus().length} × ${cpus()[0]?.model}, node ${process.version}; PostgreSQL on 127.0.0.1`,
);
console.log(`repo: ${N} functions (prebuilt wasm), one edge.yaml each; medians of ${ROUNDS} rounds\n`);
console.log("| reconcile | median ms | notes |");
console.log("|---|---:|---|");
console.log(
  `| baseline: git fetch + checkout only | ${median(baseline).toFixed(0)} | the I/O any reconcile of this repo does |`,
);
console.log(
  `| no-op (nothing changed) | ${median(noop).toFixed(0)} | ${N} manifests loaded and validated, ${N} source trees hashed, plan empty |`,
);
console.log(
  `| one function changed | ${median(oneChanged.map((o) => o.ms)).toFixed(0)} | exactly ${oneChanged[0]!.builds} build, 1 new version, apply + outbox |`,
);
console.log(
  `| initial (${N} creates) | ${initial.ms.toFixed(0)} | ${initial.builds} builds (validate + store) and one apply transaction |`,
);
