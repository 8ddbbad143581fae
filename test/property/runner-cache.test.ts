// Seed Property 5: whatever happens to the files — good and bad downloads, corruption on disk,
// files that vanish, a restart — an artifact the local cache hands out or reports always hashes
// to the sha256 the deployment expects.

import { mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";
import { ArtifactCache } from "../../edge-runner/cache.ts";
import { sha256Hex } from "../../lib/hash.ts";

type Step =
  | { op: "put"; id: number; good: boolean }
  | { op: "get"; id: number }
  | { op: "corrupt"; id: number }
  | { op: "vanish"; id: number }
  | { op: "restart" };

const steps: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof<fc.Arbitrary<Step>[]>(
    fc.record({ op: fc.constant("put" as const), id: fc.integer({ min: 0, max: 3 }), good: fc.boolean() }),
    fc.record({ op: fc.constant("get" as const), id: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ op: fc.constant("corrupt" as const), id: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ op: fc.constant("vanish" as const), id: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ op: fc.constant("restart" as const) }),
  ),
  { maxLength: 20 },
);

// **Feature: wasmEdge-edge-functions, Property 5: local cache consistency**
// **Validates: Requirements 5.3, 10.2, 10.3**
test("cache: for any sequence of stores, corruptions and restarts, what the cache returns or lists matches its sha256", async (t) => {
  await fc.assert(
    fc.asyncProperty(steps, async (script) => {
      const dir = await mkdtemp(join(tmpdir(), "edge-cache-prop-"));
      try {
        let cache = new ArtifactCache(dir);
        const artifact = (id: number) => Buffer.from(`\0asm module number ${id}`);
        const expected = (id: number) => sha256Hex(artifact(id));
        for (const step of script) {
          if (step.op === "restart") {
            cache = new ArtifactCache(dir);
            await cache.list();
          } else if (step.op === "put") {
            // A bad download: the bytes differ from what the deployment says.
            const bytes = step.good ? artifact(step.id) : Buffer.from("tampered");
            const stored = await cache.put(`fn${step.id}`, "v1", bytes, expected(step.id)).then(
              () => true,
              () => false,
            );
            if (stored !== step.good) return false;
          } else if (step.op === "get") {
            const got = await cache.get(`fn${step.id}`, "v1", expected(step.id));
            if (got !== null && sha256Hex(got) !== expected(step.id)) return false;
          } else if (step.op === "corrupt") {
            await writeFile(cache.pathOf(`fn${step.id}`, "v1"), "bit rot").catch(() => {});
          } else {
            await unlink(cache.pathOf(`fn${step.id}`, "v1")).catch(() => {});
          }
        }
        // The inventory a restarted runner reports is the truth about the files.
        const fresh = new ArtifactCache(dir);
        for (const item of await fresh.list()) {
          const got = await fresh.get(item.function_id, item.version, item.sha256);
          if (got === null || sha256Hex(got) !== item.sha256) return false;
          // A corrupted file is listed with its real hash, which is not the deployment's: a get
          // with the expected hash deletes it instead of returning it.
          const id = Number(item.function_id.slice(2));
          const byExpected = await fresh.get(item.function_id, item.version, expected(id));
          if (byExpected !== null && sha256Hex(byExpected) !== expected(id)) return false;
        }
        return true;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 100 },
  );
  t.pass();
});
