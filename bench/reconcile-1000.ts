// Reconcile benchmark: a generated repository of 1,000 functions (prebuilt edge-v1 modules, so
// the numbers are about the reconciler, not a compiler). Measures a no-op reconcile (nothing
// changed) and a reconcile where one function changed (which must build exactly one), against
// the same-run baseline of the git fetch + checkout alone that any reconcile has to do.
//
//   node --import tsx bench/reconcile-1000.ts [--functions 1000] [--rounds 5]
// Needs PostgreSQL on 127.0.0.1:5432 (database test), like the tests.

import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import wabtInit from "wabt";
import { createLogger } from "../lib/log.ts";
import { createControlPlane } from "../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../test/helpers/db.ts";
import { createTestRepo } from "../test/helpers/git.ts";

const { values } = parseArgs({
  options: { functions: { type: "string", default: "1000" }, rounds: { type: "string", default: "5" } },
});
const N = Number(values.functions);
const ROUNDS = Number(values.rounds);

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
const repo = await createTestRepo(root);
const files: Record<string, string | Uint8Array> = {
  "edge.yaml":
    "apiVersion: edgeplane.dev/v1\nkind: Project\nmetadata: { name: big }\nspec: { domains: [big.test] }\n",
};
for (let i = 0; i < N; i++) {
  files[`functions/f${i}/module.wasm`] = moduleBytes(i);
  files[`functions/f${i}/edge.yaml`] =
    `apiVersion: edgeplane.dev/v1\nkind: Function\nmetadata: { name: f${i} }\nspec:\n  source: { path: ., language: wasm }\n  limits: { memoryPages: 1 }\n  routes: [{ host: f${i}.big.test, path: /* }]\n`;
}
const first = await repo.commit(files, "1000 functions");
const origin = repo.origin;
const { schema, drop } = await freshSchema();
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
const probeDir = path.join(root, "cp", "git", "big");
const git = (...args: string[]) => promisify(execFile)("git", ["-C", probeDir, ...args]);
for (let r = 0; r < ROUNDS; r++) {
  const b0 = performance.now();
  await git(
    "fetch",
    "--quiet",
    "--no-tags",
    "--force",
    "origin",
    "+refs/heads/main:refs/remotes/origin/main",
  );
  await git("checkout", "--quiet", "--force", "--detach", first);
  baseline.push(performance.now() - b0);
  noop.push((await reconcile(first)).ms);
}
let head = first;
for (let r = 0; r < ROUNDS; r++) {
  head = await repo.commit({ "functions/f7/module.wasm": moduleBytes(100_000 + r) }, `change f7 (${r})`);
  const res = await reconcile(head);
  if (res.builds !== 1) throw new Error(`expected exactly one build, got ${res.builds}`);
  oneChanged.push(res);
  // Back to the first commit's state so every round is "one changed function".
  await reconcile(first);
}

await cp.stop();
await drop();
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
