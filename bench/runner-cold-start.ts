// Cold-start benchmark: what a deploy and the first requests cost for a ~100 KB and a ~2 MB
// edge-v1 module. The modules are generated (WAT → wabt): a hello handler plus enough filler
// functions to reach the size, so V8 has real code to compile. Each round deploys a new version
// (different bytes, so nothing is cached) to an in-process runner and measures:
//   - deploy: apply() until the ack — download from a local HTTP server, sha256, write to the
//     cache (fsync), compile, and instantiate one warm instance on an executor thread;
//   - first request after the ack (served by that warm instance);
//   - a cold request: the first request after the hot instance was evicted (instantiate from the
//     compiled module on the thread, then handle) — what a request pays when no instance is hot;
//   - a hot request, for comparison.
// Requests are timed in this process over one keep-alive connection.
//
//   node --import tsx bench/runner-cold-start.ts [--rounds 7]

import { mkdtempSync } from "node:fs";
import { Agent, createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, tmpdir, totalmem } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import wabtInit from "wabt";
import { createRunner } from "../edge-runner/index.ts";
import { sha256Hex } from "../lib/hash.ts";
import { createLogger } from "../lib/log.ts";
import type { FunctionSpec } from "../proto/index.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "7" } } });
const ROUNDS = Number(values.rounds);
const wabt = await wabtInit();

/** An edge-v1 module of about `bytes` bytes: a handler answering "hello" plus filler code. */
function moduleOfSize(bytes: number, marker: number): Uint8Array {
  // Each filler function is ~120 bytes of arithmetic, referenced from a table so it is kept.
  const count = Math.max(1, Math.round(bytes / 120));
  const body = Array.from(
    { length: 12 },
    (_, k) => `(i32.mul (i32.add (local.get 0) (i32.const ${k + 1})) (i32.const ${k + 3}))`,
  );
  const fillers = Array.from(
    { length: count },
    (_, i) =>
      `(func $f${i} (param i32) (result i32) (i32.xor (i32.const ${i}) ${body.reduce((acc, e) => `(i32.add ${acc} ${e})`, "(i32.const 0)")}))`,
  ).join("\n");
  const text = `(module
  (import "edge" "response_write" (func $write (param i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "Status: 200\\0d\\0a\\0d\\0ahello ${marker}")
  (table ${count} funcref)
  (elem (i32.const 0) ${Array.from({ length: count }, (_, i) => `$f${i}`).join(" ")})
  ${fillers}
  (func (export "edge_handle") (result i32)
    (drop (call $write (i32.const 0) (i32.const ${15 + 6 + String(marker).length})))
    (i32.const 0)))`;
  const m = wabt.parseWat("gen.wat", text);
  try {
    return new Uint8Array(m.toBinary({}).buffer);
  } finally {
    m.destroy();
  }
}

const files = new Map<string, Uint8Array>();
const artifacts = createServer((req, res) => {
  const bytes = files.get(req.url ?? "");
  if (!bytes) res.writeHead(404).end();
  else res.writeHead(200, { "content-length": bytes.byteLength }).end(bytes);
});
artifacts.listen(0, "127.0.0.1");
await new Promise((r) => artifacts.once("listening", r));
const base = `http://127.0.0.1:${(artifacts.address() as AddressInfo).port}`;

const runner = createRunner({
  nodeId: "bench",
  pop: "bench",
  httpHost: "127.0.0.1",
  httpPort: 0,
  metricsPort: null,
  cacheDir: mkdtempSync(path.join(tmpdir(), "edgeplane-bench-cold-")),
  logger: createLogger("bench", "warn"),
  // One hot instance in all: deploying the small "evictor" function evicts the big one's.
  maxHotInstances: 1,
});
const { httpPort } = await runner.start();
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const get = (host: string) =>
  new Promise<{ ms: number; body: string }>((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: "127.0.0.1", port: httpPort, path: "/", agent, headers: { host } }, (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ ms: performance.now() - t0, body }));
    });
    req.on("error", reject);
    req.end();
  });

const spec = (id: string, version: string, bytes: Uint8Array): FunctionSpec => {
  const url = `/${id}-${version}.wasm`;
  files.set(url, bytes);
  return {
    function_id: id,
    name: id,
    version,
    project: "bench",
    artifact_url: base + url,
    sha256: sha256Hex(bytes),
    abi: "edge-v1",
    memory_pages: 1,
    max_execution_ms: 5000,
    max_request_bytes: 1024,
    max_instances: 1,
    env: {},
    capabilities: {},
  };
};
const evictor = spec("evictor", "1", moduleOfSize(200, 0));

let generation = 0;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[] = [];
for (const [label, size] of [
  ["100 KB", 100_000],
  ["2 MB", 2_000_000],
] as const) {
  const m = {
    deploy: [] as number[],
    first: [] as number[],
    cold: [] as number[],
    hot: [] as number[],
    bytes: 0,
  };
  for (let round = 0; round < ROUNDS + 1; round++) {
    const bytes = moduleOfSize(size, round + 1);
    m.bytes = bytes.byteLength;
    const fn = spec("big", `${label.replace(" ", "")}-${round}`, bytes);
    const routes = [
      { host: "big.bench", path: "/*", methods: [], priority: 0, function_id: "big" },
      { host: "evictor.bench", path: "/*", methods: [], priority: 0, function_id: "evictor" },
    ];
    const t0 = performance.now();
    const ack = await runner.apply({ generation: String(++generation), functions: [fn], routes });
    const deploy = performance.now() - t0;
    if (ack.results[0]?.status !== "OK") throw new Error(JSON.stringify(ack));
    const first = await get("big.bench");
    if (!first.body.startsWith("hello")) throw new Error(`unexpected answer ${first.body}`);
    // The evictor's warm-up takes the one hot slot; the big module's instance is dropped.
    await runner.apply({ generation: String(++generation), functions: [fn, evictor], routes });
    await get("evictor.bench");
    const cold = await get("big.bench");
    const hot = await get("big.bench");
    if (round === 0) continue; // the first round warms V8 and the connection
    m.deploy.push(deploy);
    m.first.push(first.ms);
    m.cold.push(cold.ms);
    m.hot.push(hot.ms);
  }
  rows.push(
    `| ${label} (${(m.bytes / 1000).toFixed(0)} kB) | ${median(m.deploy).toFixed(1)} | ${median(m.first).toFixed(2)} | ${median(m.cold).toFixed(2)} | ${median(m.hot).toFixed(2)} |`,
  );
}
await runner.stop();
artifacts.close();
agent.destroy();

console.log(
  `\nmachine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; ${new Date().toISOString()}`,
);
console.log(`median of ${ROUNDS} rounds (after one warm-up round), times in ms\n`);
console.log(
  "| module | deploy → ack | first request after ack | cold request (instance evicted) | hot request |",
);
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) console.log(r);
