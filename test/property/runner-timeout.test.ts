// Seed Property 9 against the runner's engine: a guest that runs past maxExecutionMs is stopped
// and its caller gets EDGE_ERR_RUNTIME_TIMEOUT (504), never before the deadline; one that
// finishes in time is answered normally, and the engine keeps serving either way.

import test from "ava";
import fc from "fast-check";
import { ExecutorPool } from "../../edge-runner/pool.ts";
import { createEngine } from "../../edge-runner/runtime.ts";
import { EdgeError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { edgeWat } from "../helpers/wasm.ts";

const logger = createLogger("runner-timeout-test", "silent");

function spec(id: string, maxExecutionMs: number): FunctionSpec {
  return {
    function_id: id,
    name: id,
    version: "v1",
    project: "p",
    artifact_url: "",
    sha256: "",
    abi: "edge-v1",
    memory_pages: 1,
    max_execution_ms: maxExecutionMs,
    max_request_bytes: 0,
    max_instances: 2,
    env: {},
    capabilities: {},
  };
}

const request = { method: "GET", target: "/", rawHeaders: [], body: new Uint8Array(0) };

// Guests that never finish in time, in different ways: a bare loop, a loop that calls the host
// on every turn, and deep-but-bounded recursion repeated forever.
const spinners = {
  loop: () => edgeWat(() => "(loop $l (br $l)) (i32.const 0)"),
  hostCalls: () =>
    edgeWat(() => "(loop $l (drop (call $write (i32.const 0) (i32.const 0))) (br $l)) (i32.const 0)"),
  recursion: () =>
    edgeWat(() => "(loop $l (drop (call $down (i32.const 1000))) (br $l)) (i32.const 0)", {
      extra:
        "(func $down (param i32) (result i32) (if (result i32) (local.get 0) (then (call $down (i32.sub (local.get 0) (i32.const 1)))) (else (i32.const 0))))",
    }),
};

// **Feature: wasmEdge-edge-functions, Property 9: execution timeout enforcement**
// **Validates: Requirements 3.4, 7.3**
test("timeout: for any deadline, a guest that runs past it is stopped with 504 and the engine keeps serving", async (t) => {
  const pool = new ExecutorPool({
    workers: 1,
    spareWorkers: 1,
    maxHotInstances: 64,
    maxHotMemoryBytes: 1 << 30,
    queueDepth: 16,
    logger,
  });
  t.teardown(() => pool.close());
  await pool.ready();
  const engine = createEngine({ pool, responseMaxBytes: 1 << 20, logger });
  const healthy = await engine.load(
    spec("healthy", 1000),
    await edgeWat((s) => `(call $respond ${s.ref("fine")}) (i32.const 0)`),
  );
  const modules = {
    loop: await spinners.loop(),
    hostCalls: await spinners.hostCalls(),
    recursion: await spinners.recursion(),
  };
  let stopped = 0;

  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 5, max: 40 }),
      fc.constantFrom("loop", "hostCalls", "recursion") as fc.Arbitrary<keyof typeof modules>,
      async (maxExecutionMs, kind) => {
        const fn = await engine.load(spec(`spin-${kind}`, maxExecutionMs), modules[kind]);
        try {
          const started = performance.now();
          const err = await fn.invoke(request).then(
            () => null,
            (e: unknown) => e,
          );
          const elapsed = performance.now() - started;
          stopped++;
          if (!(err instanceof EdgeError) || err.code !== "EDGE_ERR_RUNTIME_TIMEOUT" || err.status !== 504)
            return false;
          // Never before the deadline; the generous upper bound only catches "never stopped".
          if (elapsed < maxExecutionMs || elapsed > maxExecutionMs + 10_000) return false;
          // Another function is served right after, from a healthy thread.
          const ok = await healthy.invoke(request);
          return ok.status === 200 && Buffer.from(ok.body).toString() === "fine";
        } finally {
          fn.close();
        }
      },
    ),
    { numRuns: 100 },
  );
  t.is(stopped, 100);
  t.true(pool.threads().replaced >= 100, "each stopped guest took its thread with it");
  t.is(healthy.stats().timeouts, 0);
});

test("timeout: a guest that finishes before its deadline is answered, however close it runs", async (t) => {
  const pool = new ExecutorPool({
    workers: 1,
    spareWorkers: 1,
    maxHotInstances: 64,
    maxHotMemoryBytes: 1 << 30,
    queueDepth: 16,
    logger,
  });
  t.teardown(() => pool.close());
  const engine = createEngine({ pool, responseMaxBytes: 1 << 20, logger });
  // A bounded loop of 2^20 turns takes about a millisecond; the deadline is far above it.
  const bounded = await edgeWat(
    (s) => `(local $i i32) (local.set $i (i32.const 1048576))
    (loop $l (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if $l (local.get $i)))
    (call $respond ${s.ref("done")}) (i32.const 0)`,
  );
  const fn = await engine.load(spec("bounded", 2000), bounded);
  for (let i = 0; i < 20; i++) {
    const out = await fn.invoke(request);
    t.is(Buffer.from(out.body).toString(), "done");
  }
  t.is(pool.threads().replaced, 0);
});
