// Seed Property 10 against a real runner and its Prometheus endpoint: every request routed to a
// function adds exactly one to wasm_invoke_count_total (labelled with the status it got) and one
// observation to wasm_invoke_latency_seconds; requests that reach no function add nothing.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";
import { createRunner } from "../../edge-runner/index.ts";
import { sha256Hex } from "../../lib/hash.ts";
import { createLogger } from "../../lib/log.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { request } from "../helpers/http.ts";
import { counterModule, serveArtifacts, trapModule } from "../helpers/wasm.ts";

const quiet = createLogger("runner-metrics-test", "silent");

/** `name{labels} value` samples of a Prometheus text exposition. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return samples(await res.text());
}

// **Feature: wasmEdge-edge-functions, Property 10: metrics collection accuracy**
// **Validates: Requirements 8.1**
test("metrics: any sequence of invocations adds exactly one count and one latency observation each", async (t) => {
  const cacheDir = await mkdtemp(join(tmpdir(), "edge-runner-metrics-"));
  const artifacts = await serveArtifacts();
  const runner = createRunner({
    nodeId: "n",
    pop: "p",
    httpHost: "127.0.0.1",
    httpPort: 0,
    metricsPort: 0,
    cacheDir,
    logger: quiet,
  });
  const { httpPort, metricsPort } = await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await artifacts.close();
    await rm(cacheDir, { recursive: true, force: true });
  });
  const fn = (id: string, bytes: Uint8Array): FunctionSpec => ({
    function_id: id,
    name: id,
    version: "v7",
    project: "p",
    artifact_url: artifacts.add(`${id}.wasm`, bytes),
    sha256: sha256Hex(bytes),
    abi: "edge-v1",
    memory_pages: 16,
    max_execution_ms: 1000,
    max_request_bytes: 8,
    max_instances: 4,
    env: {},
    capabilities: {},
  });
  await runner.apply({
    generation: "1",
    functions: [fn("count", await counterModule("c")), fn("trap", await trapModule())],
    routes: [
      { host: "count.test", path: "/*", methods: [], priority: 0, function_id: "count" },
      { host: "trap.test", path: "/*", methods: [], priority: 0, function_id: "trap" },
    ],
  });

  const key = {
    ok: 'wasm_invoke_count_total{function="count",version="v7",status="200"}',
    tooLarge: 'wasm_invoke_count_total{function="count",version="v7",status="413"}',
    trapped: 'wasm_invoke_count_total{function="trap",version="v7",status="500"}',
    countLatency: 'wasm_invoke_latency_seconds_count{function="count",version="v7"}',
    trapLatency: 'wasm_invoke_latency_seconds_count{function="trap",version="v7"}',
  };
  type Kind = "ok" | "tooLarge" | "trap" | "noRoute";
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom<Kind>("ok", "tooLarge", "trap", "noRoute"), { maxLength: 6 }),
      async (kinds) => {
        const before = await scrape(metricsPort!);
        for (const kind of kinds) {
          if (kind === "ok") await request(httpPort, "count.test", "/");
          else if (kind === "tooLarge")
            await request(httpPort, "count.test", "/", { method: "POST", body: "x".repeat(9) });
          else if (kind === "trap") await request(httpPort, "trap.test", "/trap");
          else await request(httpPort, "nowhere.test", "/");
        }
        const after = await scrape(metricsPort!);
        const delta = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
        const n = (k: Kind) => kinds.filter((x) => x === k).length;
        return (
          delta(key.ok) === n("ok") &&
          delta(key.tooLarge) === n("tooLarge") &&
          delta(key.trapped) === n("trap") &&
          delta(key.countLatency) === n("ok") + n("tooLarge") &&
          delta(key.trapLatency) === n("trap")
        );
      },
    ),
    { numRuns: 100 },
  );
  t.pass();
});

test("metrics: the endpoint serves every metric DESIGN.md names, and /healthz", async (t) => {
  const cacheDir = await mkdtemp(join(tmpdir(), "edge-runner-metrics-"));
  const runner = createRunner({
    nodeId: "n",
    pop: "p",
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir,
    logger: quiet,
  });
  const { metricsPort } = await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await rm(cacheDir, { recursive: true, force: true });
  });
  t.not(metricsPort, null, "an ephemeral data plane gets an ephemeral metrics port by default");
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  t.is(res.status, 200);
  t.regex(res.headers.get("content-type") ?? "", /^text\/plain/);
  const text = await res.text();
  for (const name of [
    "wasm_invoke_count_total",
    "wasm_invoke_latency_seconds",
    "wasm_cold_starts_total",
    "wasm_hot_instances",
    "wasm_instance_evictions_total",
    "wasm_cache_bytes",
    "wasm_cache_evictions_total",
    "edge_control_connected",
    "artifact_download_retries_total",
  ]) {
    t.regex(text, new RegExp(`^# TYPE ${name} `, "m"), name);
  }
  t.is((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status, 200);
  t.is((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status, 404);
});
