// Propagation benchmark: from a push webhook received to every target runner having acked the
// new generation, for 1, 10, 100 and 1,000 simulated runners (bench/harness/simulated-runners.ts,
// a separate process speaking the real protocol). Separately for a route-only change (no build)
// and a one-function rebuild (WAT). Baseline, same run: the transport floor — a bare gRPC
// server that sends a desired state of the same size to the same runners and waits for their
// acks, with no database and no reconcile. Also: the control plane's CPU while it holds 1,000
// runners that heartbeat at the default 30 s interval.
//
//   node --import tsx bench/propagation.ts [--runners 1,10,100,1000] [--rounds 5] [--idle 65]
// Needs PostgreSQL on 127.0.0.1:5432 (database test).

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createLogger } from "../lib/log.ts";
import {
  type ControlMessage,
  type DesiredState,
  edgeControlService,
  grpc,
  type RunnerMessage,
} from "../proto/index.ts";
import { type ControlPlane, createControlPlane } from "../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../test/helpers/db.ts";
import { createTestRepo } from "../test/helpers/git.ts";
import { pushCommit } from "../test/helpers/webhook.ts";

const { values } = parseArgs({
  options: {
    runners: { type: "string", default: "1,10,100,1000" },
    rounds: { type: "string", default: "5" },
    idle: { type: "string", default: "65" },
  },
});
const SIZES = values.runners.split(",").map(Number);
const ROUNDS = Number(values.rounds);
const SECRET = "bench-secret";
const FUNCTIONS = 20;

// ---- a repository of 20 small WAT functions ------------------------------------------------
const root = await mkdtemp(path.join(tmpdir(), "edgeplane-bench-prop-"));
const repo = await createTestRepo(root);
const wat = (text: string) => `(module
  (import "edge" "response_write" (func $w (param i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "Status: 200\\r\\n\\r\\n${text}")
  (func (export "edge_handle") (result i32) (drop (call $w (i32.const 0) (i32.const ${15 + text.length}))) (i32.const 0)))
`;
const manifest = (routePrefix: string) =>
  [
    "apiVersion: edgeplane.dev/v1\nkind: Project\nmetadata: { name: prop }\nspec: { domains: [prop.test] }\n",
    ...Array.from(
      { length: FUNCTIONS },
      (_, i) =>
        `apiVersion: edgeplane.dev/v1\nkind: Function\nmetadata: { name: f${i} }\nspec:\n  source: { path: ./f${i}, language: wat, entry: module.wat }\n  limits: { memoryPages: 1 }\n  routes: [{ host: f${i}.prop.test, path: /${i === 0 ? routePrefix : "x"}/* }]\n`,
    ),
  ].join("---\n");
const files: Record<string, string> = { "edge.yaml": manifest("a") };
for (let i = 0; i < FUNCTIONS; i++) files[`f${i}/module.wat`] = wat(`f${i}`);
const first = await repo.commit(files, "20 functions");

// ---- control plane ---------------------------------------------------------------------------
const { schema, drop } = await freshSchema();
const cp: ControlPlane = await createControlPlane(
  {
    dataDir: path.join(root, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    ackTimeout: "60s",
    projects: [{ name: "prop", repo: repo.origin, fullName: "bench/prop", webhookSecret: SECRET }],
  },
  createLogger("bench", "warn"),
);
await cp.start();

const push = (sha: string) => pushCommit(cp.url, sha, "bench/prop", SECRET);

/** Webhook received → every target runner acked (the rollout's outcome is recorded then). */
async function propagate(sha: string, expectBuilds: number): Promise<number> {
  const t0 = performance.now();
  const id = await push(sha);
  for (;;) {
    const [row] = await cp.db.query<{
      status: string;
      outcome: { pops: { nodes: { acked: boolean }[] }[] } | null;
      result: { builds: unknown[] } | null;
    }>("SELECT status, outcome, result FROM reconciliations WHERE id = $1", [id]);
    if (row?.status === "failed") throw new Error("reconcile failed");
    if (row?.outcome) {
      if (!row.outcome.pops.every((p) => p.nodes.every((n) => n.acked)))
        throw new Error("not every runner acked");
      if ((row.result?.builds.length ?? -1) !== expectBuilds)
        throw new Error(`expected ${expectBuilds} builds`);
      return performance.now() - t0;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

function harness(
  address: string,
  n: number,
  heartbeatMs = 30_000,
): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "bench/harness/simulated-runners.ts", address, String(n), String(heartbeatMs)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      for (const line of d.toString().split("\n").filter(Boolean)) {
        lines.push(line);
        if (line === "ready") resolve({ child, lines });
      }
    });
    child.once("exit", (code) => reject(new Error(`harness exited ${code}`)));
  });
}

// ---- baseline: the transport floor ------------------------------------------------------------
async function floor(n: number, desired: DesiredState): Promise<number[]> {
  const server = new grpc.Server();
  const calls: grpc.ServerDuplexStream<RunnerMessage, ControlMessage>[] = [];
  let acks = 0;
  let onAll: (() => void) | null = null;
  server.addService(edgeControlService, {
    Connect: (call: grpc.ServerDuplexStream<RunnerMessage, ControlMessage>) => {
      call.on("data", (m: RunnerMessage) => {
        if ("hello" in m && m.hello) {
          calls.push(call);
          call.write({ desired: { ...desired, generation: "1" } });
        } else if ("ack" in m && m.ack && Number(m.ack.generation) > 1 && ++acks === n) onAll?.();
      });
      call.on("error", () => {});
    },
  });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  const { child } = await harness(`127.0.0.1:${port}`, n);
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    acks = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      onAll = resolve;
      for (const c of calls) c.write({ desired: { ...desired, generation: String(r + 2) } });
    });
    times.push(performance.now() - t0);
  }
  child.kill("SIGTERM");
  server.forceShutdown();
  return times;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)] ?? xs.at(-1)!;

const initial = await cp.reconciler.wait(await push(first), 600_000);
if (initial.status !== "succeeded") throw new Error(`initial reconcile ${initial.status}`);
const { desiredStateFor } = await import("../reconciler/nodes.ts");
const sample = await desiredStateFor(
  cp.db,
  { pop: "pop-0", tier: "edge" },
  async (k) => `${cp.url}/artifacts/${k}`,
);

const rows: string[] = [];
let flip = false;
let version = 0;
for (const n of SIZES) {
  const base = await floor(n, sample);
  const { child } = await harness(`127.0.0.1:${cp.grpcPort}`, n);
  const routeOnly: number[] = [];
  const rebuild: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    flip = !flip;
    routeOnly.push(
      await propagate(await repo.commit({ "edge.yaml": manifest(flip ? "b" : "a") }, `route ${r}`), 0),
    );
  }
  for (let r = 0; r < ROUNDS; r++) {
    rebuild.push(
      await propagate(await repo.commit({ "f1/module.wat": wat(`f1 v${++version}`) }, `rebuild ${r}`), 1),
    );
  }
  rows.push(
    `| ${n} | ${median(base).toFixed(1)} | ${median(routeOnly).toFixed(0)} (p90 ${p90(routeOnly).toFixed(0)}) | ${median(rebuild).toFixed(0)} (p90 ${p90(rebuild).toFixed(0)}) |`,
  );
  if (n === Math.max(...SIZES) && Number(values.idle) > 0) {
    // Hold the runners, heartbeating at the default interval, and measure this process's CPU.
    const before = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, Number(values.idle) * 1000));
    const used = process.cpuUsage(before);
    const cores = (used.user + used.system) / 1000 / (performance.now() - t0);
    rows.push(
      `\nholding ${n} runners (heartbeats every 30 s) for ${values.idle} s: control plane CPU ${(cores * 100).toFixed(1)}% of one core`,
    );
  }
  child.kill("SIGTERM");
  // Let the control plane notice the disconnects before the next size.
  await new Promise((r) => setTimeout(r, 500));
  await cp.db.query("UPDATE nodes SET status = 'offline'");
}

await cp.stop();
await drop();
await rm(root, { recursive: true, force: true });

console.log(
  `\nmachine: ${cpus().length} × ${cpus()[0]?.model}, node ${process.version}; PostgreSQL on 127.0.0.1`,
);
console.log(
  `${FUNCTIONS} functions (WAT), ${ROUNDS} rounds per cell, times in ms from webhook received to every runner acked\n`,
);
console.log(
  "| runners | baseline: transport floor (send + acks) | route-only change | one-function rebuild |",
);
console.log("|---:|---:|---:|---:|");
for (const r of rows) console.log(r);
