// Seed Property 15: when the hot instances or the local cache exceed their limits, the least
// recently used items go first, and eviction goes on until the set is within its limits — for
// the LRU bookkeeping itself, for the artifact cache on disk (also across a restart), and for
// the hot instances of a real engine.

import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";
import { ArtifactCache } from "../../edge-runner/cache.ts";
import { Lru } from "../../edge-runner/lru.ts";
import { ExecutorPool } from "../../edge-runner/pool.ts";
import { createEngine, type LoadedFunction } from "../../edge-runner/runtime.ts";
import { sha256Hex } from "../../lib/hash.ts";
import { createLogger } from "../../lib/log.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { edgeWat } from "../helpers/wasm.ts";

const logger = createLogger("runner-lru-test", "silent");

type Op =
  | { op: "set"; key: number; weight: number }
  | { op: "touch"; key: number }
  | { op: "delete"; key: number };

const ops = fc.array(
  fc.oneof(
    fc.record({
      op: fc.constant("set" as const),
      key: fc.integer({ min: 0, max: 9 }),
      weight: fc.integer({ min: 0, max: 50 }),
    }),
    fc.record({ op: fc.constant("touch" as const), key: fc.integer({ min: 0, max: 9 }) }),
    fc.record({ op: fc.constant("delete" as const), key: fc.integer({ min: 0, max: 9 }) }),
  ),
  { maxLength: 40 },
);

// **Feature: wasmEdge-edge-functions, Property 15: LRU eviction correctness**
// **Validates: Requirements 4.2, 4.3, 5.2**
test("lru: eviction removes the least recently used unpinned entries, in order, until within both limits", (t) => {
  fc.assert(
    fc.property(
      ops,
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 150 }),
      fc.subarray([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
      (script: Op[], maxCount, maxWeight, pinnedKeys) => {
        const lru = new Lru<number, string>({ maxCount, maxWeight });
        // The model: keys from least to most recently used, with weights.
        let model: Array<[number, number]> = [];
        for (const o of script) {
          if (o.op === "set") {
            lru.set(o.key, `v${o.key}`, o.weight);
            model = [...model.filter(([k]) => k !== o.key), [o.key, o.weight]];
          } else if (o.op === "touch") {
            lru.touch(o.key);
            const hit = model.find(([k]) => k === o.key);
            if (hit) model = [...model.filter(([k]) => k !== o.key), hit];
          } else {
            lru.delete(o.key);
            model = model.filter(([k]) => k !== o.key);
          }
        }
        const pinned = new Set(pinnedKeys);
        const evicted = lru.evict((k) => pinned.has(k)).map((e) => e.key);
        // Expected: walk from the least recent, dropping unpinned keys while over a limit.
        const expected: number[] = [];
        const over = () => model.length > maxCount || model.reduce((n, [, w]) => n + w, 0) > maxWeight;
        for (const [k] of [...model]) {
          if (!over()) break;
          if (pinned.has(k)) continue;
          expected.push(k);
          model = model.filter(([x]) => x !== k);
        }
        const withinOrOnlyPinned = !lru.overLimit() || lru.keys().every((k) => pinned.has(k));
        return (
          JSON.stringify(evicted) === JSON.stringify(expected) &&
          JSON.stringify(lru.keys()) === JSON.stringify(model.map(([k]) => k)) &&
          lru.weight === model.reduce((n, [, w]) => n + w, 0) &&
          withinOrOnlyPinned
        );
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});

// **Feature: wasmEdge-edge-functions, Property 15: LRU eviction correctness**
// **Validates: Requirements 4.2, 4.3, 5.2**
test("lru: the artifact cache evicts least recently used artifacts to its limits, and a restart keeps the order", async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          get: fc.boolean(),
          id: fc.integer({ min: 0, max: 5 }),
          size: fc.integer({ min: 1, max: 400 }),
        }),
        { minLength: 1, maxLength: 25 },
      ),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 400, max: 1200 }),
      async (script, maxEntries, maxBytes) => {
        const dir = await mkdtemp(join(tmpdir(), "edge-cache-lru-"));
        try {
          let clock = 1_700_000_000_000;
          const now = () => clock++;
          const cache = new ArtifactCache(dir, undefined, { maxEntries, maxBytes, now });
          const bytesOf = new Map<number, Buffer>();
          // The model: ids from least to most recently used.
          let model: number[] = [];
          for (const step of script) {
            const key = `fn${step.id}`;
            if (step.get) {
              const bytes = bytesOf.get(step.id);
              if (bytes === undefined) continue;
              const got = await cache.get(key, "v1", sha256Hex(bytes));
              if ((got !== null) !== model.includes(step.id)) return false;
              if (got !== null) model = [...model.filter((x) => x !== step.id), step.id];
            } else {
              const bytes = Buffer.alloc(step.size, step.id);
              bytesOf.set(step.id, bytes);
              await cache.put(key, "v1", bytes, sha256Hex(bytes));
              model = [...model.filter((x) => x !== step.id), step.id];
              await cache.evict();
              const size = (id: number) => bytesOf.get(id)!.length;
              while (model.length > maxEntries || model.reduce((n, id) => n + size(id), 0) > maxBytes)
                model.shift();
            }
          }
          const onDisk = (await readdir(dir)).filter((d) => !d.startsWith(".")).sort();
          if (JSON.stringify(onDisk) !== JSON.stringify(model.map((id) => `fn${id}`).sort())) return false;
          // A new process learns the same order from the files.
          const again = new ArtifactCache(dir, undefined, { maxEntries, maxBytes });
          await again.list();
          return (
            JSON.stringify(again.held().map((i) => i.function_id)) ===
            JSON.stringify(model.map((id) => `fn${id}`))
          );
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 100 },
  );
  t.pass();
});

// **Feature: wasmEdge-edge-functions, Property 15: LRU eviction correctness**
// **Validates: Requirements 4.2, 4.3, 5.2**
test("lru: hot instances beyond maxHotInstances or maxHotMemory go least recently used first", async (t) => {
  const versions = 5;
  const pool = new ExecutorPool({
    workers: 1,
    spareWorkers: 0,
    maxHotInstances: 3,
    // Each instance has 2 pages (128 KiB): memory allows 2 of them, the tighter limit.
    maxHotMemoryBytes: 2 * 2 * 65536,
    queueDepth: 8,
    logger,
  });
  t.teardown(() => pool.close());
  const engine = createEngine({ pool, responseMaxBytes: 1 << 16, logger });
  const bytes = await edgeWat((s) => `(call $respond ${s.ref("hi")}) (i32.const 0)`, {
    memory: '(memory (export "memory") 2 2)',
  });
  const spec = (i: number): FunctionSpec => ({
    function_id: `f${i}`,
    name: `f${i}`,
    version: "v1",
    project: "p",
    artifact_url: "",
    sha256: "",
    abi: "edge-v1",
    memory_pages: 2,
    max_execution_ms: 1000,
    max_request_bytes: 0,
    max_instances: 1,
    env: {},
    capabilities: {},
  });
  const fns: LoadedFunction[] = [];
  let model: number[] = [];
  const use = (i: number) => {
    model = [...model.filter((x) => x !== i), i];
    if (model.length > 2) model = model.slice(-2);
  };
  for (let i = 0; i < versions; i++) {
    fns.push(await engine.load(spec(i), bytes));
    use(i); // loading warms an instance: a use
  }
  const request = { method: "GET", target: "/", rawHeaders: [], body: new Uint8Array(0) };
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: versions - 1 }), { minLength: 1, maxLength: 10 }),
      async (picks) => {
        for (const i of picks) {
          await fns[i]!.invoke(request);
          use(i);
        }
        const hot = fns
          .map((f, i) => [i, f.stats().hotInstances] as const)
          .filter(([, n]) => n > 0)
          .map(([i]) => i);
        return (
          JSON.stringify(hot) === JSON.stringify([...model].sort()) &&
          pool.hotUsage().count === 2 &&
          pool.hotUsage().bytes <= 2 * 2 * 65536
        );
      },
    ),
    { numRuns: 100 },
  );
  t.pass();
});
