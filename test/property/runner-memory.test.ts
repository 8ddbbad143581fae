// Seed Property 7 against the runner's engine: whatever a module declares, a guest never has more
// than memoryPages × 64 KiB of linear memory, and growing past it fails inside the guest.

import test from "ava";
import fc from "fast-check";
import { limitModule } from "../../edge-runner/module.ts";
import { ExecutorPool } from "../../edge-runner/pool.ts";
import { createEngine } from "../../edge-runner/runtime.ts";
import { EdgeError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { wat } from "../helpers/wasm.ts";

const logger = createLogger("runner-memory-test", "silent");

function spec(memoryPages: number): FunctionSpec {
  return {
    function_id: "grow",
    name: "grow",
    version: "v1",
    project: "p",
    artifact_url: "",
    sha256: "",
    abi: "edge-v1",
    memory_pages: memoryPages,
    max_execution_ms: 1000,
    max_request_bytes: 0,
    max_instances: 1,
    env: {},
    capabilities: {},
  };
}

/**
 * edge-v1: grows by `step` pages until memory.grow answers -1, then answers with one "x" per
 * page it has. The memory is defined or imported (`env.memory`), with or without a maximum.
 */
function growModule(m: { imported: boolean; initial: number; maximum: number | null; step: number }) {
  const limits = `${m.initial}${m.maximum === null ? "" : ` ${m.maximum}`}`;
  const memory = m.imported
    ? `(import "env" "memory" (memory ${limits}))`
    : `(memory (export "memory") ${limits})`;
  return wat(`(module
  (import "edge" "response_write" (func $write (param i32 i32) (result i32)))
  ${memory}
  (data (i32.const 0) "Status: 200\\0d\\0a\\0d\\0ax")
  (func (export "edge_handle") (result i32) (local $i i32)
    (block $refused (loop $grow
      (br_if $refused (i32.eq (memory.grow (i32.const ${m.step})) (i32.const -1)))
      (br $grow)))
    (drop (call $write (i32.const 0) (i32.const 15)))
    (local.set $i (memory.size))
    (loop $x
      (drop (call $write (i32.const 15) (i32.const 1)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $x (local.get $i)))
    (i32.const 0)))`);
}

const request = { method: "GET", target: "/", rawHeaders: [], body: new Uint8Array(0) };

// **Feature: wasmEdge-edge-functions, Property 7: memory limit enforcement**
// **Validates: Requirements 7.1**
test("memory: for any declared limits, a guest ends at most memoryPages pages and grow past it fails inside", async (t) => {
  const pool = new ExecutorPool({
    workers: 1,
    spareWorkers: 0,
    maxHotInstances: 64,
    maxHotMemoryBytes: 1 << 30,
    queueDepth: 16,
    logger,
  });
  t.teardown(() => pool.close());
  const engine = createEngine({ pool, responseMaxBytes: 1 << 20, logger });

  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 24 }),
      fc.record({
        imported: fc.boolean(),
        initial: fc.integer({ min: 1, max: 28 }),
        maximum: fc.option(fc.integer({ min: 1, max: 64 }), { nil: null }),
        step: fc.integer({ min: 1, max: 5 }),
      }),
      async (memoryPages, m) => {
        const maximum = m.maximum === null ? null : Math.max(m.maximum, m.initial);
        const bytes = await growModule({ ...m, maximum });
        if (m.initial > memoryPages) {
          // A module that starts above the limit is refused before it runs.
          const err = await engine.load(spec(memoryPages), bytes).then(
            () => null,
            (e: unknown) => e,
          );
          return err instanceof EdgeError && err.code === "EDGE_ERR_RUNTIME_INSTANTIATE";
        }
        const fn = await engine.load(spec(memoryPages), bytes);
        try {
          const out = await fn.invoke(request);
          const pages = out.body.byteLength;
          const ceiling = Math.min(maximum ?? memoryPages, memoryPages);
          // It grew in steps until the next step would have crossed the ceiling.
          return (
            pages <= memoryPages &&
            pages <= ceiling &&
            pages + m.step > ceiling &&
            (pages - m.initial) % m.step === 0
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

test("memory: the rewritten module declares exactly min(declared maximum, memoryPages)", async (t) => {
  for (const [declared, limit, expected] of [
    [null, 4, 4],
    [2, 4, 2],
    [9, 4, 4],
  ] as const) {
    const bytes = await wat(`(module (memory ${declared === null ? "1" : `1 ${declared}`}))`);
    const limited = limitModule(bytes, limit);
    t.deepEqual(limited.memory, { imported: false, initial: 1, maximum: expected });
    // V8 agrees: an instance's memory cannot grow past the rewritten maximum.
    const { exports } = new WebAssembly.Instance(
      new WebAssembly.Module(
        await wat(`(module (memory (export "m") ${declared === null ? "1" : `1 ${declared}`}))`).then(
          (b) => limitModule(b, limit).bytes as Uint8Array<ArrayBuffer>,
        ),
      ),
    );
    const memory = exports.m as WebAssembly.Memory;
    t.throws(() => memory.grow(expected), { instanceOf: RangeError });
    t.notThrows(() => memory.grow(expected - 1));
  }
});
