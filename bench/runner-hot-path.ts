// Hot-path benchmark: requests per second and latency of the example `hello` function served
// by the edge runner, against two peers measured in the same run with the same wasm:
//   (a) raw node:http calling the wasm export in-process (bench/servers/raw-wasm.ts): the floor;
//   (b) workerd serving it from a module worker (bench/servers/workerd.ts).
// Each server runs in its own process; the load comes from autocannon in another. Rounds
// alternate between the servers so drift hits all of them. Two measurements per server:
//   - throughput: autocannon with N connections for D seconds (after a warm-up run);
//   - latency: one keep-alive connection, sequential requests, timed here in microseconds —
//     the runner's p50/p99 minus the raw server's is the latency the runner adds.
//
//   node --import tsx bench/runner-hot-path.ts [--duration 10] [--connections 50] [--rounds 3] [--probe 5000]

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { Agent, request } from "node:http";
import { cpus, totalmem } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { writeHelloWasm } from "./harness/hello-wasm.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    connections: { type: "string", default: "50" },
    rounds: { type: "string", default: "3" },
    probe: { type: "string", default: "5000" },
  },
});

const { wasmPath: wasm } = await writeHelloWasm("edgeplane-bench-");

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  probeP50: number;
  probeP99: number;
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

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill();
  await exited;
}

async function load(port: number): Promise<Pick<Result, "rps" | "p50" | "p99" | "errors">> {
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

/** Sequential requests on one keep-alive connection; p50 and p99 in microseconds. */
async function probe(port: number, n: number): Promise<{ p50: number; p99: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = request(
        { host: "127.0.0.1", port, path: "/bench", agent, headers: { host: "hello.bench" } },
        (res) => {
          res.resume();
          res.on("end", () => resolve(Number(process.hrtime.bigint() - t0) / 1000));
        },
      );
      req.on("error", reject);
      req.end();
    });
  for (let i = 0; i < 200; i++) await once(); // warm the connection and the JIT
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await once());
  agent.destroy();
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(n * 0.5)]!, p99: times[Math.floor(n * 0.99)]! };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const targets = [
  { name: "edge runner (`edgectl runner`)", script: "bench/servers/runner.ts", port: 18080 },
  { name: "(a) raw node:http + same wasm", script: "bench/servers/raw-wasm.ts", port: 18081 },
  { name: "(b) workerd + same wasm", script: "bench/servers/workerd.ts", port: 18082 },
];
const results = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
for (let round = 0; round < Number(values.rounds); round++) {
  for (const t of targets) {
    const child = await start(t.script, t.port);
    await load(t.port); // warm-up: JIT, connection pools
    const throughput = await load(t.port);
    const latency = await probe(t.port, Number(values.probe));
    results.get(t.name)!.push({ ...throughput, probeP50: latency.p50, probeP99: latency.p99 });
    await stop(child);
    process.stderr.write(`round ${round + 1}: ${t.name}: ${Math.round(throughput.rps)} req/s\n`);
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
    probeP50: median(rs.map((r) => r.probeP50)),
    probeP99: median(rs.map((r) => r.probeP99)),
    all: rs.map((r) => Math.round(r.rps)).join(" / "),
  };
});
const [runner, raw, workerd] = rows as [(typeof rows)[0], (typeof rows)[0], (typeof rows)[0]];
console.log(
  `\nmachine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; ${new Date().toISOString()}`,
);
console.log(
  `throughput: autocannon -c ${values.connections} -d ${values.duration}s, median of ${values.rounds} rounds (after a warm-up run each); latency: ${values.probe} sequential requests on one keep-alive connection\n`,
);
console.log(
  "| server | req/s (median) | rounds | p50 ms | p99 ms | errors | seq p50 µs | seq p99 µs | vs (a) | vs (b) |",
);
console.log("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${Math.round(r.rps)} | ${r.all} | ${r.p50} | ${r.p99} | ${r.errors} | ${Math.round(r.probeP50)} | ${Math.round(r.probeP99)} | ${((r.rps / raw.rps) * 100).toFixed(0)}% | ${(r.rps / workerd.rps).toFixed(2)}× |`,
  );
}
console.log(
  `\nrunner vs (a): ${((runner.rps / raw.rps) * 100).toFixed(0)}% of the throughput; latency added at p50 ${Math.round(runner.probeP50 - raw.probeP50)} µs, at p99 ${Math.round(runner.probeP99 - raw.probeP99)} µs. runner vs (b): ${(runner.rps / workerd.rps).toFixed(2)}×.`,
);
