// Seed properties 1, 3 and 14 against the real data layer (PostgreSQL) and the real control
// server, with message sinks standing in for runner streams (ControlServer.attach).

import test from "ava";
import fc from "fast-check";
import { createLogger } from "../../lib/log.ts";
import type { ControlMessage, DesiredState, Hello } from "../../proto/index.ts";
import { ControlServer } from "../../reconciler/control-server.ts";
import { matchesSelector } from "../../reconciler/selector.ts";
import { getFunctionVersion } from "../../reconciler/state.ts";
import { postgresDb, type TestDb } from "../helpers/db.ts";
import { fn, projectReconciler } from "../helpers/state.ts";

const log = createLogger("test", "silent");

/** Each test gets its own schema: desired states span every project in the database. */
async function freshDb(t: { teardown: (f: () => Promise<void>) => void }): Promise<TestDb> {
  const tdb = await postgresDb();
  t.teardown(() => tdb.drop());
  return tdb;
}

class Sink {
  messages: ControlMessage[] = [];
  write(m: ControlMessage) {
    this.messages.push(m);
  }
  end() {}
  get last(): DesiredState | undefined {
    return this.messages.at(-1)?.desired;
  }
}

const hello = (nodeId: string, pop: string, labels: Record<string, string>): Hello => ({
  node_id: nodeId,
  pop,
  labels,
  generation: "0",
  inventory: [],
  http_address: "",
});

const label = fc.constantFrom("region", "tier", "pop");
const value = fc.constantFrom("jp", "us", "edge", "canary", "tokyo-1", "sfo-1");
const selector = fc
  .array(fc.tuple(label, fc.constantFrom("=", "!="), value), { maxLength: 2 })
  .map((terms) => terms.map(([k, op, v]) => `${k}${op}${v}`).join(","));
const nodeLabels = fc.record({
  region: fc.constantFrom("jp", "us"),
  tier: fc.constantFrom("edge", "canary"),
});

let counter = 0;

// **Feature: wasmEdge-edge-functions, Property 1: function registration persistence**
// **Validates: Requirements 1.1, 1.2**
test("property 1: a function's metadata reads back exactly as it was registered", async (t) => {
  const tdb = await freshDb(t);
  const { reconcile } = await projectReconciler(tdb.db, "p1");
  const names: string[] = [];
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        entrypoint: fc.constantFrom("index.ts", "src/main.ts", "module.wasm"),
        memoryPages: fc.integer({ min: 1, max: 65536 }),
        maxExecutionMs: fc.integer({ min: 1, max: 60000 }),
        maxRequestBytes: fc.integer({ min: 0, max: 104857600 }),
        maxInstances: fc.integer({ min: 1, max: 1024 }),
        env: fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/), fc.string({ maxLength: 20 }), {
          maxKeys: 3,
        }),
        capabilities: fc.record({ clock: fc.boolean(), random: fc.boolean() }),
        popSelector: selector,
        sha256: fc.stringMatching(/^[0-9a-f]{64}$/),
      }),
      async (m) => {
        const name = `f${++counter}`;
        names.push(name);
        const desired = names.map((n) => (n === name ? fn(n, m) : fn(n)));
        const r = await reconcile(desired, `c${counter}`, m.sha256);
        const built = r.builds.get(name)!;
        const row = await getFunctionVersion(tdb.db, built.functionId);
        t.like(row, {
          name,
          version: 1,
          entrypoint: m.entrypoint,
          memory_pages: m.memoryPages,
          max_execution_ms: m.maxExecutionMs,
          max_request_bytes: m.maxRequestBytes,
          max_instances: m.maxInstances,
          env: m.env,
          capabilities: m.capabilities,
          pop_selector: m.popSelector,
          sha256: m.sha256,
          artifact_key: built.artifactKey,
          active: true,
        });
      },
    ),
    { numRuns: 100 },
  );
});

// **Feature: wasmEdge-edge-functions, Property 3: deployment notification delivery**
// **Validates: Requirements 2.1, 2.3**
test("property 3: every node matching a function's POP selector, and no other, gets it with the right fields", async (t) => {
  const tdb = await freshDb(t);
  const { reconcile } = await projectReconciler(tdb.db, "p3");
  await fc.assert(
    fc.asyncProperty(
      fc.array(nodeLabels, { minLength: 1, maxLength: 4 }),
      fc.array(
        fc.record({
          selector,
          pages: fc.integer({ min: 1, max: 64 }),
          ms: fc.integer({ min: 1, max: 1000 }),
        }),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
      async (nodes, fns) => {
        const run = ++counter;
        const desired = fns.map((f, i) =>
          fn(`g${run}-${i}`, { popSelector: f.selector, memoryPages: f.pages, maxExecutionMs: f.ms }),
        );
        const applied = await reconcile(desired, `c${run}`);
        const control = new ControlServer({
          db: tdb.db,
          log,
          artifactUrl: async (k) => `http://cp.test/${k}`,
        });
        const sinks = nodes.map((labels, i) => {
          const sink = new Sink();
          const pop = i % 2 === 0 ? "tokyo-1" : "sfo-1";
          control.attach(sink, hello(`n${run}-${i}`, pop, labels));
          return { sink, labels: { ...labels, pop } };
        });
        await control.broadcast();
        for (const { sink, labels } of sinks) {
          const got = sink.last!;
          t.is(got.generation, String(applied.generation));
          const expected = desired.filter((d) => matchesSelector(d.popSelector, labels)).map((d) => d.name);
          t.deepEqual(got.functions.map((f) => f.name).sort(), expected.sort());
          for (const f of got.functions) {
            const d = desired.find((x) => x.name === f.name)!;
            const b = applied.builds.get(f.name)!;
            t.like(f, {
              function_id: b.functionId,
              version: String(b.version),
              artifact_url: `http://cp.test/${b.artifactKey}`,
              sha256: b.sha256,
              memory_pages: d.memoryPages,
              max_execution_ms: d.maxExecutionMs,
            });
          }
          t.deepEqual(
            got.routes.map((r) => r.function_id).sort(),
            got.functions.map((f) => f.function_id).sort(),
          );
        }
        await reconcile([], `c${run}-clean`);
      },
    ),
    { numRuns: 100 },
  );
});

// **Feature: wasmEdge-edge-functions, Property 14: offline node handling**
// **Validates: Requirements 6.4**
test("property 14: a node silent for 2 minutes is marked offline and gets no new intents", async (t) => {
  const tdb = await freshDb(t);
  const { reconcile } = await projectReconciler(tdb.db, "p14");
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: 240_000 }), { minLength: 1, maxLength: 5 }),
      async (ages) => {
        const run = ++counter;
        let clock = 1_000_000_000;
        const control = new ControlServer({ db: tdb.db, log, artifactUrl: async (k) => k, now: () => clock });
        const T = clock;
        const sinks = ages.map((age, i) => {
          clock = T - age; // the node's last heartbeat was `age` ms before T
          const sink = new Sink();
          control.attach(sink, hello(`o${run}-${i}`, "tokyo-1", {}));
          return { sink, age, nodeId: `o${run}-${i}` };
        });
        await control.broadcast();
        clock = T;
        await control.sweep();
        const before = sinks.map((s) => s.sink.messages.length);
        const applied = await reconcile([fn(`h${run}`)], `c${run}`);
        await control.broadcast();
        for (const [i, s] of sinks.entries()) {
          const offline = s.age >= 120_000;
          const [row] = await tdb.db.query<{ status: string }>("SELECT status FROM nodes WHERE id = $1", [
            s.nodeId,
          ]);
          t.is(row!.status, offline ? "offline" : "online");
          if (offline) t.is(s.sink.messages.length, before[i]);
          else t.is(s.sink.last!.generation, String(applied.generation));
        }
        t.deepEqual(
          control
            .connected()
            .filter((n) => n.offline)
            .map((n) => n.nodeId)
            .sort(),
          sinks
            .filter((s) => s.age >= 120_000)
            .map((s) => s.nodeId)
            .sort(),
        );
        await reconcile([], `c${run}-clean`);
      },
    ),
    { numRuns: 100 },
  );
});

test("drift: a runner whose heartbeat lacks a function it should serve is sent its state again, once, and audited", async (t) => {
  const tdb = await freshDb(t);
  const { reconcile } = await projectReconciler(tdb.db, "drift");
  const control = new ControlServer({ db: tdb.db, log, artifactUrl: async (k) => k });
  const sink = new Sink();
  const session = control.attach(sink, hello("drifty", "tokyo-1", {}));
  const applied = await reconcile([fn("d1")], "c-drift");
  await control.broadcast();
  const generation = sink.last!.generation;
  t.is(generation, String(applied.generation));
  await control.onAck(session, { generation, results: [] });
  const count = sink.messages.length;
  // In step: the heartbeat lists what it should serve → nothing happens.
  const b = applied.builds.get("d1")!;
  await control.onHeartbeat(session, {
    inventory: [{ function_id: b.functionId, version: "1", sha256: b.sha256 }],
    in_flight: 0,
  });
  t.is(sink.messages.length, count);
  // Drifted: the function is missing → the desired state is resent and audited.
  await control.onHeartbeat(session, { inventory: [], in_flight: 0 });
  await control.broadcast();
  t.is(sink.messages.length, count + 1);
  t.is(sink.last!.generation, generation);
  // Still missing on the next heartbeat: not resent again for the same generation.
  await control.onHeartbeat(session, { inventory: [], in_flight: 0 });
  await control.broadcast();
  t.is(sink.messages.length, count + 1);
  const rows = await tdb.db.query<{
    trigger: string;
    object_id: string;
    action: string;
    before: { missing: { function: string }[] };
  }>("SELECT trigger, object_id, action, before FROM audit_logs WHERE trigger = 'drift'");
  t.is(rows.length, 1);
  t.like(rows[0], { object_id: "drifty", action: "resync" });
  t.deepEqual(
    rows[0]!.before.missing.map((m) => m.function),
    ["d1"],
  );
  await reconcile([], "c-drift-clean");
});
