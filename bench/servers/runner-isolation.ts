// The edge runner serving a healthy function (hello.bench) next to a hostile one (spin.bench, a
// wasm infinite loop with max_execution_ms 50), for the isolation benchmark.
// Usage: runner-isolation.ts <hello.wasm> <spin.wasm> <port>

import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRunner } from "../../edge-runner/index.ts";
import { createLogger } from "../../lib/log.ts";
import type { FunctionSpec } from "../../proto/index.ts";

const [helloPath, spinPath, port] = process.argv.slice(2) as [string, string, string];
const files: Record<string, Buffer> = {
  "/hello.wasm": readFileSync(helloPath),
  "/spin.wasm": readFileSync(spinPath),
};
const artifacts = http.createServer((req, res) => res.end(files[req.url ?? ""])).listen(0, "127.0.0.1");
await new Promise((r) => artifacts.once("listening", r));
const base = `http://127.0.0.1:${(artifacts.address() as AddressInfo).port}`;

const runner = createRunner({
  nodeId: "bench",
  pop: "bench",
  httpHost: "127.0.0.1",
  httpPort: Number(port),
  metricsPort: 0,
  cacheDir: mkdtempSync(path.join(tmpdir(), "edgeplane-bench-")),
  // Timeouts are logged at error level; the benchmark causes thousands on purpose.
  logger: createLogger("bench", "fatal"),
});
await runner.start();

const fn = (id: string, file: string, maxExecutionMs: number): FunctionSpec => ({
  function_id: id,
  name: id,
  version: "1",
  project: "bench",
  artifact_url: `${base}${file}`,
  sha256: createHash("sha256").update(files[file]!).digest("hex"),
  abi: "edge-v1",
  memory_pages: 16,
  max_execution_ms: maxExecutionMs,
  max_request_bytes: 1 << 20,
  max_instances: 8,
  env: {},
  capabilities: {},
});
const ack = await runner.apply({
  generation: "1",
  functions: [fn("hello", "/hello.wasm", 50), fn("spin", "/spin.wasm", 50)],
  routes: [
    { host: "hello.bench", path: "/*", methods: [], priority: 0, function_id: "hello" },
    { host: "spin.bench", path: "/*", methods: [], priority: 0, function_id: "spin" },
  ],
});
if (ack.results.some((r) => r.status !== "OK")) throw new Error(`apply failed: ${JSON.stringify(ack)}`);
// On SIGUSR2, report how many threads were stopped and replaced (read by the benchmark).
process.on("SIGUSR2", () => process.stdout.write(`threads ${JSON.stringify(runner.stats().threads)}\n`));
process.stdout.write("ready\n");
