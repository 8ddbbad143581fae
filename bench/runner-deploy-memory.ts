// Deploy-churn memory benchmark: the RSS of a runner's engine (the executor pool and its
// threads, as `edgectl runner` sets them up: workers 2, one spare) while versions of the example
// `hello` function are deployed one after another, each new version loaded and warmed, the old
// one closed, and `--requests` requests served by the new one — with executor threads
// collecting soon after a version is unloaded (the runner's behaviour, docs/runtime.md "Memory
// of versions that are gone") against the baseline of leaving it to V8 (`collectFreed: false`).
// Every version has different bytes (a custom section carries its number), as real deploys do,
// so V8 compiles each one instead of sharing the code of identical modules. Each variant runs in
// its own process; rounds alternate between the two.
//
//   node --import tsx bench/runner-deploy-memory.ts [--switches 2000] [--requests 100] [--pace 0] [--rounds 2]

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { parseArgs, promisify } from "node:util";
import { ExecutorPool } from "../edge-runner/pool.ts";
import { createEngine } from "../edge-runner/runtime.ts";
import { createLogger } from "../lib/log.ts";
import type { FunctionSpec } from "../proto/index.ts";
import { writeHelloWasm } from "./harness/hello-wasm.ts";

const { values } = parseArgs({
  options: {
    switches: { type: "string", default: "2000" },
    requests: { type: "string", default: "100" },
    pace: { type: "string", default: "0" },
    rounds: { type: "string", default: "2" },
    child: { type: "string" },
    wasm: { type: "string" },
  },
});
const SWITCHES = Number(values.switches);
const REQUESTS = Number(values.requests);
const PACE_MS = Number(values.pace);
const MIB = 1024 * 1024;

interface Result {
  /** RSS with the first version served, after a second of quiet. */
  start: number;
  /** RSS at each tenth of the switches. */
  tenths: number[];
  peak: number;
  /** RSS a second and a half after the last switch. */
  end: number;
  seconds: number;
}

function rss(): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
}

/** The module with a custom section `v` holding `n`: different bytes, the same code. */
function numbered(bytes: Uint8Array, n: number): Uint8Array {
  const payload = Buffer.alloc(4);
  payload.writeUInt32LE(n);
  // section id 0, size (1 + 1 + 4 < 128: one LEB128 byte), name length 1, name "v", payload
  return Buffer.concat([bytes, Buffer.from([0, 6, 1, 0x76]), payload]);
}

async function child(collectFreed: boolean, wasm: Uint8Array): Promise<Result> {
  const logger = createLogger("bench-deploy-memory", "silent");
  const pool = new ExecutorPool({
    workers: 2,
    spareWorkers: 1,
    maxHotInstances: 256,
    maxHotMemoryBytes: 1 << 30,
    queueDepth: 1024,
    logger,
    collectFreed,
  });
  await pool.ready();
  const engine = createEngine({ pool, responseMaxBytes: 1 << 16, logger });
  const spec = (v: number): FunctionSpec => ({
    function_id: `hello-${v}`,
    name: "hello",
    version: `v${v}`,
    project: "bench",
    artifact_url: "",
    sha256: "",
    abi: "edge-v1",
    memory_pages: 16,
    max_execution_ms: 2000,
    max_request_bytes: 0,
    max_instances: 4,
    env: {},
    capabilities: {},
  });
  const request = { method: "GET", target: "/", rawHeaders: [], body: new Uint8Array(0) };
  const quiet = () => new Promise((resolve) => setTimeout(resolve, 1500));
  let serving = await engine.load(spec(0), numbered(wasm, 0));
  await Promise.all(Array.from({ length: REQUESTS }, () => serving.invoke(request)));
  await quiet();
  const start = rss();
  let peak = start;
  const tenths: number[] = [];
  const began = performance.now();
  for (let v = 1; v <= SWITCHES; v++) {
    const next = await engine.load(spec(v), numbered(wasm, v));
    const old = serving;
    serving = next;
    old.close();
    await Promise.all(Array.from({ length: REQUESTS }, () => serving.invoke(request)));
    if (PACE_MS > 0) await new Promise((resolve) => setTimeout(resolve, PACE_MS));
    const now = rss();
    peak = Math.max(peak, now);
    if (v % Math.max(1, Math.floor(SWITCHES / 10)) === 0) tenths.push(now);
  }
  const seconds = (performance.now() - began) / 1000;
  await quiet();
  const end = rss();
  await pool.close();
  return { start, tenths, peak, end, seconds };
}

if (values.child !== undefined) {
  const result = await child(values.child === "collect", readFileSync(values.wasm!));
  process.stdout.write(JSON.stringify(result));
  process.exit(0);
}

const { wasmPath } = await writeHelloWasm("edgeplane-bench-deploy-memory-");

const run = promisify(execFile);
const variants = [
  { name: "collect after unload (runner)", arg: "collect" },
  { name: "left to V8 (baseline)", arg: "none" },
] as const;
const results = new Map<string, Result[]>(variants.map((v) => [v.name, []]));
for (let round = 0; round < Number(values.rounds); round++) {
  for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
    const { stdout } = await run(
      process.execPath,
      [
        "--import",
        "tsx",
        "bench/runner-deploy-memory.ts",
        "--child",
        variant.arg,
        "--wasm",
        wasmPath,
        "--switches",
        String(SWITCHES),
        "--requests",
        String(REQUESTS),
        "--pace",
        String(PACE_MS),
      ],
      { maxBuffer: 1 << 20 },
    );
    const r = JSON.parse(stdout) as Result;
    results.get(variant.name)!.push(r);
    const mib = (b: number) => (b / MIB).toFixed(0);
    console.log(
      `round ${round + 1}, ${variant.name}: ${SWITCHES} switches in ${r.seconds.toFixed(1)} s; RSS start ${mib(r.start)} MiB, by tenths ${r.tenths.map(mib).join(" → ")}, peak ${mib(r.peak)}, end ${mib(r.end)} MiB (growth ${mib(r.end - r.start)} MiB)`,
    );
  }
}

console.log(
  `\n| variant | switches/s | RSS start (MiB) | peak | end | growth start → end |\n| --- | --- | --- | --- | --- | --- |`,
);
for (const [name, rs] of results) {
  const avg = (f: (r: Result) => number) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
  console.log(
    `| ${name} | ${avg((r) => SWITCHES / r.seconds).toFixed(0)} | ${(avg((r) => r.start) / MIB).toFixed(0)} | ${(avg((r) => r.peak) / MIB).toFixed(0)} | ${(avg((r) => r.end) / MIB).toFixed(0)} | +${(avg((r) => r.end - r.start) / MIB).toFixed(0)} |`,
  );
}
console.log(
  `\nmachine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; ${new Date().toISOString()}; --switches ${SWITCHES} --requests ${REQUESTS} --pace ${PACE_MS} --rounds ${values.rounds} (averages over rounds)`,
);
