// Hot-path benchmark: requests per second and latency of the example `hello` function served
// by the edge runner, against the same-run baseline of raw node:http calling the same wasm
// export in-process (bench/servers/raw-wasm.ts). Each server runs in its own process; the load
// comes from autocannon in a third. Rounds alternate between the two so drift hits both.
//
//   node --import tsx bench/runner-hot-path.ts [--duration 10] [--connections 50] [--rounds 3]

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { buildFunction } from "../builder/index.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    connections: { type: "string", default: "50" },
    rounds: { type: "string", default: "3" },
  },
});

const dir = mkdtempSync(path.join(tmpdir(), "edgeplane-bench-"));
const wasm = path.join(dir, "hello.wasm");
const built = await buildFunction({
  repoDir: "example-repo",
  sourceDir: "hello",
  language: "assemblyscript",
  abi: "edge-v1",
  memoryPages: 16,
});
writeFileSync(wasm, built.bytes);

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function start(script: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", script, wasm, String(port)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return child;
}

async function load(port: number): Promise<Result> {
  const { stdout } = await promisify(execFile)(
    path.resolve("node_modules/.bin/autocannon"),
    [
      "-j",
      "-c",
      values.connections,
      "-d",
      values.duration,
      "-H",
      "host=hello.bench",
      `http://127.0.0.1:${port}/bench`,
    ],
    { maxBuffer: 1 << 24 },
  );
  const r = JSON.parse(stdout);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const targets = [
  { name: "edge runner (edgectl runner)", script: "bench/servers/runner.ts", port: 18080 },
  { name: "baseline: raw node:http + same wasm", script: "bench/servers/raw-wasm.ts", port: 18081 },
];
const results = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
for (let round = 0; round < Number(values.rounds); round++) {
  for (const t of targets) {
    const child = await start(t.script, t.port);
    await load(t.port); // warm-up: JIT, connection pools
    results.get(t.name)!.push(await load(t.port));
    child.kill();
  }
}

const rows = targets.map((t) => {
  const rs = results.get(t.name)!;
  return {
    name: t.name,
    rps: median(rs.map((r) => r.rps)),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
  };
});
const base = rows[1]!;
console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}, node ${process.version}`);
console.log(
  `load: autocannon -c ${values.connections} -d ${values.duration}s, median of ${values.rounds} rounds (after a warm-up run each)\n`,
);
console.log("| server | req/s | p50 ms | p99 ms | errors | vs baseline |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.errors} | ${((r.rps / base.rps) * 100).toFixed(0)}% |`,
  );
}
