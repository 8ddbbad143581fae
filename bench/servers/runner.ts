// The edge runner serving one function, for the hot-path benchmark: the artifact is served by
// a small HTTP server in this process, applied as a desired state, then requests go through
// the runner's full path (route table, executor thread with a hot instance, ABI, response,
// metrics). Usage: runner.ts <module.wasm> <port>; EDGE_BENCH_WORKERS=n overrides `workers`.

import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRunner } from "../../edge-runner/index.ts";
import { createLogger } from "../../lib/log.ts";

const [wasmPath, port] = process.argv.slice(2) as [string, string];
const bytes = readFileSync(wasmPath);
const artifacts = http.createServer((_req, res) => res.end(bytes)).listen(0, "127.0.0.1");
await new Promise((r) => artifacts.once("listening", r));

const runner = createRunner({
  nodeId: "bench",
  pop: "bench",
  httpHost: "127.0.0.1",
  httpPort: Number(port),
  cacheDir: mkdtempSync(path.join(tmpdir(), "edgeplane-bench-")),
  logger: createLogger("bench", "warn"),
  metricsPort: 0,
  ...(process.env.EDGE_BENCH_WORKERS ? { workers: Number(process.env.EDGE_BENCH_WORKERS) } : {}),
});
await runner.start();
const ack = await runner.apply({
  generation: "1",
  functions: [
    {
      function_id: "00000000-0000-4000-8000-000000000001",
      name: "hello",
      version: "1",
      project: "bench",
      artifact_url: `http://127.0.0.1:${(artifacts.address() as AddressInfo).port}/hello.wasm`,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      abi: "edge-v1",
      memory_pages: 16,
      max_execution_ms: 50,
      max_request_bytes: 1 << 20,
      max_instances: 8,
      env: {},
      capabilities: {},
    },
  ],
  routes: [
    {
      host: "hello.bench",
      path: "/*",
      methods: [],
      priority: 0,
      function_id: "00000000-0000-4000-8000-000000000001",
    },
  ],
});
if (ack.results[0]?.status !== "OK") throw new Error(`apply failed: ${JSON.stringify(ack)}`);
process.stdout.write("ready\n");
