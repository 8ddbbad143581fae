// The executor pool's dispatch rules with real threads: requests queued behind a slow one are
// taken back and still answered exactly once, slow versions keep off the last free thread, and
// idle threads do not keep the process alive.

import test, { type ExecutionContext } from "ava";
import { ExecutorPool } from "../../edge-runner/pool.ts";
import { createEngine } from "../../edge-runner/runtime.ts";
import { createLogger } from "../../lib/log.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { counterModule, edgeWat, hostile } from "../helpers/wasm.ts";

const logger = createLogger("runner-pool-test", "silent");
const request = { method: "GET", target: "/", rawHeaders: [], body: new Uint8Array(0) };
const text = (b: Uint8Array) => Buffer.from(b).toString();

function spec(id: string, extra: Partial<FunctionSpec> = {}): FunctionSpec {
  return {
    function_id: id,
    name: id,
    version: "v1",
    project: "p",
    artifact_url: "",
    sha256: "",
    abi: "edge-v1",
    memory_pages: 16,
    max_execution_ms: 10_000,
    max_request_bytes: 0,
    max_instances: 4,
    env: {},
    capabilities: {},
    ...extra,
  };
}

/** A pool of `workers` threads and `spares` spares, closed when the test ends. */
function newPool(t: ExecutionContext, workers: number, spares: number): ExecutorPool {
  const pool = new ExecutorPool({
    workers,
    spareWorkers: spares,
    maxHotInstances: 8,
    maxHotMemoryBytes: 1 << 30,
    queueDepth: 64,
    logger,
  });
  t.teardown(() => pool.close());
  return pool;
}

/** Counts down from 2^27 before answering: tens of milliseconds of work. */
const slowModule = () =>
  edgeWat(
    (s) => `(local $i i32) (local.set $i (i32.const 134217728))
    (loop $l (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if $l (local.get $i)))
    (call $respond ${s.ref("slow done")}) (i32.const 0)`,
  );

test("pool: requests queued behind a slow one are taken back and answered exactly once, in order", async (t) => {
  // One thread and no spare: what is taken back can only go to the same thread again.
  const pool = newPool(t, 1, 0);
  const engine = createEngine({ pool, responseMaxBytes: 1 << 16, logger });
  const slow = await engine.load(spec("slow"), await slowModule());
  const count = await engine.load(spec("count"), await counterModule("c"));
  for (let round = 0; round < 3; round++) {
    const first = slow.invoke(request);
    // Sent in the same turn: pipelined behind the slow one before it is known to be slow.
    const rest = await Promise.all([1, 2, 3, 4].map(() => count.invoke(request)));
    t.is(text((await first).body), "slow done");
    const counts = rest.map((r) => Number(text(r.body).split(" ")[1])).sort((a, b) => a - b);
    t.deepEqual(
      counts,
      [1, 2, 3, 4].map((n) => n + round * 4),
      "each answered once, by the one instance",
    );
  }
  t.is(count.stats().instancesCreated, 1);
  t.is(pool.threads().replaced, 0);
});

test("pool: a hostile version (one that timed out) does not take the last free thread; a spare is lent instead", async (t) => {
  const pool = newPool(t, 1, 1);
  await pool.ready();
  const engine = createEngine({ pool, responseMaxBytes: 1 << 16, logger });
  const spin = await engine.load(spec("spin", { max_execution_ms: 300 }), await hostile.infiniteLoop());
  await t.throwsAsync(spin.invoke(request), { code: "EDGE_ERR_RUNTIME_TIMEOUT" });
  await pool.ready(); // the replacement thread
  // Loaded after the timeout: its instance lives on a thread the first kill did not take.
  const count = await engine.load(spec("count"), await counterModule("c"));
  const order: string[] = [];
  const running = spin.invoke(request).then(
    () => order.push("spin answered"),
    () => order.push("spin 504"),
  );
  for (let i = 0; i < 3; i++) {
    await count.invoke(request);
    order.push("count");
  }
  await running;
  t.deepEqual(order, ["count", "count", "count", "spin 504"], "the counter never waited for the hostile one");
  t.is(count.stats().instancesCreated, 1, "and kept its one instance");
  t.is(pool.threads().replaced, 2);
});

test("pool: a request that waited in its queue is run, not skipped, on a thread whose pipelined requests were taken back", async (t) => {
  // The race behind a rare 500 under load (docs/RELIABILITY.md): a request submitted before
  // others but sent after them, to a thread that had been told to skip everything up to the
  // newest request taken back from it. One thread, no spare, so everything meets on it.
  const pool = newPool(t, 1, 0);
  const engine = createEngine({ pool, responseMaxBytes: 1 << 16, logger });
  // Known to be slow (one measured run): it waits in its queue while the thread has work.
  const known = await engine.load(spec("known-slow"), await slowModule());
  t.is(text((await known.invoke(request)).body), "slow done");
  t.true(known.stats().averageRunMicros >= 1000);
  // Not measured yet: requests are pipelined behind it, then taken back when it runs long.
  const fresh = await engine.load(spec("fresh-slow"), await slowModule());
  const count = await engine.load(spec("count"), await counterModule("c"));
  const head = fresh.invoke(request); // sent to the thread
  const waiting = known.invoke(request); // waits: the thread is busy and this version is slow
  const pipelined = [1, 2, 3].map(() => count.invoke(request)); // behind the head, then taken back
  const all = Promise.all([head, waiting, ...pipelined]);
  const outcome = await Promise.race([
    all.then(
      (rs) => rs.map((r) => text(r.body)),
      (err: Error) => `failed: ${err.message}`,
    ),
    new Promise<string>((resolve) => setTimeout(() => resolve("no answer within 10 s"), 10_000).unref()),
  ]);
  t.deepEqual(outcome, ["slow done", "slow done", "c 1", "c 2", "c 3"]);
  t.is(pool.threads().replaced, 0, "no thread was replaced for answering out of order");
});
