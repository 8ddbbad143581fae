// Seed Properties 4 and 12 against the runner's engine with two executor threads: hot edge-v1
// instances are reused (no new instance while one is free), concurrency never makes more than
// maxInstances of them, and two versions of a function never share an instance or its state.

import test from "ava";
import fc from "fast-check";
import { ExecutorPool } from "../../edge-runner/pool.ts";
import { createEngine, type LoadedFunction } from "../../edge-runner/runtime.ts";
import { createLogger } from "../../lib/log.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { counterModule } from "../helpers/wasm.ts";

const logger = createLogger("runner-instances-test", "silent");
const request = { method: "GET", target: "/", rawHeaders: [], body: new Uint8Array(0) };

function spec(id: string, version: string, maxInstances: number): FunctionSpec {
  return {
    function_id: id,
    name: id,
    version,
    project: "p",
    artifact_url: "",
    sha256: "",
    abi: "edge-v1",
    memory_pages: 16,
    max_execution_ms: 5000,
    max_request_bytes: 0,
    max_instances: maxInstances,
    env: {},
    capabilities: {},
  };
}

async function engineWithTwoThreads(t: { teardown(fn: () => Promise<void>): void }) {
  const pool = new ExecutorPool({
    workers: 2,
    spareWorkers: 0,
    maxHotInstances: 64,
    maxHotMemoryBytes: 1 << 30,
    queueDepth: 256,
    logger,
  });
  t.teardown(() => pool.close());
  await pool.ready();
  return createEngine({ pool, responseMaxBytes: 1 << 20, logger });
}

const text = (body: Uint8Array) => Buffer.from(body).toString();

/** Each instance counts its own calls: per tag, the counts seen must be 1..n of each instance. */
function consistent(bodies: string[], tag: string, instances: number): boolean {
  const counts = bodies.map((b) => {
    const [t, n] = b.split(" ");
    return t === tag ? Number(n) : Number.NaN;
  });
  if (counts.some(Number.isNaN)) return false;
  // With k instances the multiset of counts is the union of k runs 1..n_i: every count c > 1
  // appears at most as often as c - 1.
  const seen = new Map<number, number>();
  for (const c of counts) seen.set(c, (seen.get(c) ?? 0) + 1);
  for (const [c, n] of seen) if (n > instances || (c > 1 && n > (seen.get(c - 1) ?? 0))) return false;
  return true;
}

// **Feature: wasmEdge-edge-functions, Property 4: hot instance pool reuse**
// **Validates: Requirements 3.2, 4.1, 4.2**
test("instances: sequential calls reuse the one hot instance; bursts make at most maxInstances", async (t) => {
  const engine = await engineWithTwoThreads(t);
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 2 }),
      fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }),
      async (maxInstances, bursts) => {
        const fn = await engine.load(spec("count", "v1", maxInstances), await counterModule("c"));
        try {
          // Sequential calls: one instance, counting up without a gap (no cold start).
          for (let i = 1; i <= 3; i++) if (text((await fn.invoke(request)).body) !== `c ${i}`) return false;
          if (fn.stats().instancesCreated !== 1) return false;
          const bodies: string[] = ["c 1", "c 2", "c 3"];
          for (const size of bursts) {
            const outs = await Promise.all(Array.from({ length: size }, () => fn.invoke(request)));
            bodies.push(...outs.map((o) => text(o.body)));
          }
          const s = fn.stats();
          return (
            s.instancesCreated <= maxInstances &&
            s.instancesDiscarded === 0 &&
            consistent(bodies, "c", maxInstances)
          );
        } finally {
          fn.close();
        }
      },
    ),
    { numRuns: 100 },
  );
  t.pass();
});

// **Feature: wasmEdge-edge-functions, Property 12: version isolation**
// **Validates: Requirements 13.1**
test("instances: for any concurrent interleaving, two versions keep their own instances and state", async (t) => {
  const engine = await engineWithTwoThreads(t);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom("v1", "v2"), { minLength: 1, maxLength: 12 }),
      async (picks) => {
        const fns: Record<string, LoadedFunction> = {
          v1: await engine.load(spec("count", "v1", 2), await counterModule("one")),
          v2: await engine.load(spec("count", "v2", 2), await counterModule("two")),
        };
        try {
          const outs = await Promise.all(
            picks.map((v) => fns[v]!.invoke(request).then((o) => [v, text(o.body)] as const)),
          );
          const of = (v: string) => outs.filter(([x]) => x === v).map(([, b]) => b);
          return (
            consistent(of("v1"), "one", 2) &&
            consistent(of("v2"), "two", 2) &&
            fns.v1!.stats().invocations === of("v1").length &&
            fns.v2!.stats().invocations === of("v2").length
          );
        } finally {
          fns.v1!.close();
          fns.v2!.close();
        }
      },
    ),
    { numRuns: 100 },
  );
  t.pass();
});
