// POST /api/v1/nodes/:id/heartbeat over real HTTP, on a control plane on PostgreSQL: runners
// that cannot hold a stream report their inventory and get their pending instructions.

import path from "node:path";
import test from "ava";
import fc from "fast-check";
import { type ControlPlane, createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { fn, projectReconciler } from "../helpers/state.ts";
import { tempDir } from "../helpers/tmp.ts";

const TOKEN = "runner-token-0123456789";
let cp: ControlPlane;
let cleanup: () => Promise<void>;

test.before(async () => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    runnerToken: TOKEN,
  });
  await cp.start();
  cleanup = async () => {
    await cp.stop();
    await drop();
    await tmp.remove();
  };
});
test.after.always(() => cleanup?.());

const beat = (node: string, body: unknown, token = TOKEN) =>
  fetch(`${cp.url}/api/v1/nodes/${node}/heartbeat`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });

test.serial(
  "http heartbeat: a runner behind the current generation gets its desired state; in step, no instructions",
  async (t) => {
    const { reconcile } = await projectReconciler(cp.db, "hb");
    const applied = await reconcile([fn("everywhere"), fn("jp-only", { popSelector: "region=jp" })], "c1");
    const res = await beat("sfo-1a", {
      pop: "sfo-1",
      labels: { region: "us" },
      generation: 0,
      inventory: [],
    });
    t.is(res.status, 200);
    const body = (await res.json()) as {
      generation: string;
      instructions: { type: string; desired: { functions: { name: string }[] } }[];
    };
    t.is(body.generation, String(applied.generation));
    t.is(body.instructions.length, 1);
    t.deepEqual(
      body.instructions[0]!.desired.functions.map((f) => f.name),
      ["everywhere"],
    );
    // It applied that state and says so: no instructions, and its results are recorded.
    const built = applied.builds.get("everywhere")!;
    const again = await beat("sfo-1a", {
      pop: "sfo-1",
      labels: { region: "us" },
      generation: applied.generation,
      inventory: [{ function_id: built.functionId, version: "1", sha256: built.sha256 }],
      results: [{ function_id: built.functionId, version: "1", status: "OK", message: "" }],
    });
    t.deepEqual(((await again.json()) as { instructions: unknown[] }).instructions, []);
    const [node] = await cp.db.query<{ acked_generation: number; status: string }>(
      "SELECT acked_generation, status FROM nodes WHERE id = 'sfo-1a'",
    );
    t.like(node, { acked_generation: applied.generation, status: "online" });
  },
);

test.serial(
  "http heartbeat: refuses a missing or wrong token and malformed bodies, naming the field",
  async (t) => {
    t.is((await beat("x-1", { pop: "p" }, "wrong")).status, 401);
    const bad = await beat("x-1", { pop: "", inventory: "lots", in_flight: -1 });
    t.is(bad.status, 400);
    const err = ((await bad.json()) as { error: { code: string; details: { where: string }[] } }).error;
    t.is(err.code, "EDGE_ERR_API_BAD_REQUEST");
    t.deepEqual(
      err.details.map((d) => d.where),
      ["body.pop", "body.inventory", "body.in_flight"],
    );
    t.is((await beat("bad id!", { pop: "p" })).status, 400);
    t.deepEqual(await cp.db.query("SELECT id FROM nodes WHERE id = 'x-1'"), []);
  },
);

// **Feature: wasmEdge-edge-functions, Property 6: heartbeat status synchronization**
// **Validates: Requirements 6.1, 6.2**
test.serial(
  "property 6: every heartbeat moves last_heartbeat forward and leaves exactly the reported inventory",
  async (t) => {
    const item = fc.record({
      function_id: fc.uuid(),
      version: fc.integer({ min: 1, max: 99 }).map(String),
      sha256: fc.stringMatching(/^[0-9a-f]{64}$/),
    });
    let previous = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(item, { maxLength: 6 }), fc.nat(50), async (inventory, inFlight) => {
        const res = await beat("prop-6", { pop: "tokyo-1", inventory, in_flight: inFlight });
        t.is(res.status, 200);
        const [node] = await cp.db.query<{
          last_heartbeat: Date;
          inventory: unknown;
          in_flight: number;
          status: string;
        }>("SELECT last_heartbeat, inventory, in_flight, status FROM nodes WHERE id = 'prop-6'");
        t.deepEqual(node!.inventory, inventory);
        t.is(node!.in_flight, inFlight);
        t.is(node!.status, "online");
        const at = new Date(node!.last_heartbeat).getTime();
        t.true(at >= previous);
        previous = at;
      }),
      { numRuns: 100 },
    );
  },
);

test.serial("http heartbeat: disabled without a runnerToken", async (t) => {
  const tmp = await tempDir();
  const plain = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
  });
  await plain.start();
  t.teardown(async () => {
    await plain.stop();
    await tmp.remove();
  });
  const res = await fetch(`${plain.url}/api/v1/nodes/n1/heartbeat`, { method: "POST", body: "{}" });
  t.is(res.status, 403);
  t.like(await res.json(), { error: { code: "EDGE_ERR_API_FORBIDDEN" } });
});
