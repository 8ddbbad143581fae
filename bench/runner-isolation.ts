// Isolation benchmark: latency of a healthy function (the example `hello`) at a fixed request
// rate, alone and while a hostile function (an infinite loop, max_execution_ms 50) is called in
// a loop by other clients — every one of those calls runs into its deadline, gets 504, and
// costs the runner an executor thread, which a spare replaces. Same runner process, same rate;
// rounds alternate between the two phases. The runner (bench/servers/runner-isolation.ts) and
// each autocannon are separate processes.
//
//   node --import tsx bench/runner-isolation.ts [--duration 10] [--rate 2000] [--connections 10] [--hostile 2] [--rounds 3]

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import wabtInit from "wabt";
import { writeHelloWasm } from "./harness/hello-wasm.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    rate: { type: "string", default: "2000" },
    connections: { type: "string", default: "10" },
    hostile: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
  },
});

const { dir, wasmPath: hello } = await writeHelloWasm("edgeplane-bench-isolation-");
const spin = path.join(dir, "spin.wasm");
const wabt = await wabtInit();
writeFileSync(
  spin,
  wabt
    .parseWat(
      "spin.wat",
      '(module (memory (export "memory") 1) (func (export "edge_handle") (result i32) (loop $l (br $l)) (i32.const 0)))',
    )
    .toBinary({}).buffer,
);

const port = 18090;
const autocannon = path.resolve("node_modules/.bin/autocannon");

interface Load {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  total: number;
}

async function run(args: string[]): Promise<Load> {
  const { stdout } = await promisify(execFile)(autocannon, ["-j", ...args], { maxBuffer: 1 << 24 });
  const r = JSON.parse(stdout);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    max: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors,
    total: r.requests.total,
  };
}

const healthyLoad = () =>
  run([
    "-c",
    values.connections,
    "-R",
    values.rate,
    "-d",
    values.duration,
    "-H",
    "host=hello.bench",
    `http://127.0.0.1:${port}/bench`,
  ]);
const hostileLoad = () =>
  run([
    "-c",
    values.hostile,
    "-d",
    values.duration,
    "-H",
    "host=spin.bench",
    `http://127.0.0.1:${port}/spin`,
  ]);

async function start(): Promise<{ child: ChildProcess; threads: () => Promise<string> }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "bench/servers/runner-isolation.ts", hello, spin, String(port)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (out.includes("ready")) {
        clearInterval(check);
        resolve();
      }
    }, 20);
    child.once("exit", (code) => reject(new Error(`runner exited with ${code}`)));
  });
  return {
    child,
    threads: async () => {
      out = "";
      child.kill("SIGUSR2");
      for (let i = 0; i < 100 && !out.includes("threads"); i++) await new Promise((r) => setTimeout(r, 20));
      return out.trim().replace(/^threads /, "");
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const alone: Load[] = [];
const beside: Array<Load & { hostile: Load }> = [];
let threads = "";
for (let round = 0; round < Number(values.rounds); round++) {
  const server = await start();
  await run(["-c", "10", "-d", "2", "-H", "host=hello.bench", `http://127.0.0.1:${port}/bench`]); // warm-up
  alone.push(await healthyLoad());
  const [healthy, hostile] = await Promise.all([healthyLoad(), hostileLoad()]);
  beside.push({ ...healthy, hostile });
  threads = await server.threads();
  const exited = new Promise((r) => server.child.once("exit", r));
  server.child.kill();
  await exited;
  process.stderr.write(
    `round ${round + 1}: alone p99 ${alone.at(-1)!.p99} ms; beside hostile p99 ${healthy.p99} ms, ${hostile.total} hostile calls (${hostile.non2xx} non-2xx)\n`,
  );
}

console.log(
  `\nmachine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; ${new Date().toISOString()}`,
);
console.log(
  `healthy: autocannon -c ${values.connections} -R ${values.rate} -d ${values.duration}s; hostile: autocannon -c ${values.hostile} -d ${values.duration}s on an infinite loop (max_execution_ms 50); median of ${values.rounds} rounds\n`,
);
console.log(
  "| healthy function | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | hostile calls (all 504) |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
const row = (name: string, ls: Load[], hostile?: Load[]) =>
  console.log(
    `| ${name} | ${Math.round(median(ls.map((l) => l.rps)))} | ${median(ls.map((l) => l.p50))} | ${median(ls.map((l) => l.p90))} | ${median(ls.map((l) => l.p99))} | ${median(ls.map((l) => l.max))} | ${ls.reduce((n, l) => n + l.non2xx + l.errors, 0)} | ${hostile ? `${median(hostile.map((h) => h.total))} (${hostile.reduce((n, h) => n + h.non2xx, 0)} non-2xx in all rounds)` : "—"} |`,
  );
row("alone", alone);
row(
  "beside a hostile loop",
  beside,
  beside.map((b) => b.hostile),
);
console.log(`\nexecutor threads after the last round: ${threads}`);
