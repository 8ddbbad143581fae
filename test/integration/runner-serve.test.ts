// The runner end to end on loopback: a real artifact server, real wasm, real HTTP.

import { readdir } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import type { ExecutionContext } from "ava";
import test from "ava";
import fc from "fast-check";
import { pino } from "pino";
import { createRunner, type Runner, type RunnerOptions } from "../../edge-runner/index.ts";
import { sha256Hex } from "../../lib/hash.ts";
import type { DesiredState, FunctionSpec, RouteSpec } from "../../proto/index.ts";
import { quietLogger as quiet, startTestRunner } from "../helpers/runner.ts";
import {
  type ArtifactServer,
  counterModule,
  echoModule,
  failingModule,
  statusModule,
  trapModule,
} from "../helpers/wasm.ts";

// Silent by default: several tests make functions fail on purpose, and each such 5xx is logged
// at error level. EDGE_TEST_LOG_LEVEL=debug shows everything.

interface Setup {
  runner: Runner;
  port: number;
  artifacts: ArtifactServer;
  cacheDir: string;
  /** A FunctionSpec whose artifact the test's artifact server serves. */
  fn(id: string, version: string, bytes: Uint8Array, extra?: Partial<FunctionSpec>): FunctionSpec;
}

async function setup(t: ExecutionContext, options: Partial<RunnerOptions> = {}): Promise<Setup> {
  const { runner, port, artifacts, cacheDir } = await startTestRunner(t, options);
  return {
    runner,
    port,
    artifacts,
    cacheDir,
    fn: (id, version, bytes, extra = {}) => spec(artifacts, id, version, bytes, extra),
  };
}

function spec(
  artifacts: ArtifactServer,
  id: string,
  version: string,
  bytes: Uint8Array,
  extra: Partial<FunctionSpec> = {},
): FunctionSpec {
  return {
    function_id: id,
    name: id,
    version,
    project: "acme",
    artifact_url: artifacts.add(`${id}-${version}.wasm`, bytes),
    sha256: sha256Hex(bytes),
    abi: "edge-v1",
    memory_pages: 16,
    max_execution_ms: 50,
    max_request_bytes: 1024,
    max_instances: 4,
    env: {},
    capabilities: {},
    ...extra,
  };
}

function route(host: string, path: string, functionId: string, extra: Partial<RouteSpec> = {}): RouteSpec {
  return { host, path, methods: [], priority: 0, function_id: functionId, ...extra };
}

function desired(generation: number, functions: FunctionSpec[], routes: RouteSpec[]): DesiredState {
  return { generation: String(generation), functions, routes };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

function call(
  port: number,
  host: string,
  path: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path, method: init.method ?? "GET", headers: { host, ...init.headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            text: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}

test("runner: serves a function's response through its route", async (t) => {
  const { runner, port, fn } = await setup(t);
  const ack = await runner.apply(
    desired(1, [fn("echo", "v1", await echoModule())], [route("echo.test", "/api/*", "echo")]),
  );
  t.deepEqual(ack, {
    generation: "1",
    results: [{ function_id: "echo", version: "v1", status: "OK", message: "" }],
  });
  t.is(runner.generation, "1");

  const res = await call(port, "echo.test", "/api/items?x=1", { method: "POST", body: "payload" });
  t.is(res.status, 200);
  t.is(res.text, "POST /api/items?x=1 payload");
  t.is(res.headers["x-echo-host"], "echo.test");
  t.is(res.headers["content-type"], "text/plain; charset=utf-8");
  t.regex(String(res.headers["x-edge-request-id"]), /^[0-9a-f]{16}$/);
});

test("runner: passes the function's status, headers and log lines through", async (t) => {
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
  const { runner, port, fn } = await setup(t, { logger });
  await runner.apply(
    desired(1, [fn("status", "v1", await statusModule())], [route("s.test", "/", "status")]),
  );

  const res = await call(port, "s.test", "/");
  t.is(res.status, 201);
  t.is(res.text, "made");
  t.is(res.headers["content-type"], "application/x-test");
  t.is(res.headers["x-multi"], "a, b");
  const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "status module called");
  t.like(logged, { function: "status", version: "v1", level: 30 });
});

test("runner: reuses one hot instance across consecutive requests", async (t) => {
  const { runner, port, fn } = await setup(t);
  await runner.apply(
    desired(1, [fn("count", "v1", await counterModule("c"))], [route("c.test", "/*", "count")]),
  );

  const bodies: string[] = [];
  for (let i = 0; i < 5; i++) bodies.push((await call(port, "c.test", "/")).text);
  // The guest's global counter climbs only if one instance served every request.
  t.deepEqual(bodies, ["c 1", "c 2", "c 3", "c 4", "c 5"]);
  t.like(runner.stats().functions[0], { function_id: "count", instancesCreated: 1, invocations: 5 });
});

// **Feature: wasmEdge-edge-functions, Property 4: hot instance pool reuse**
// **Validates: Requirements 3.2, 4.1, 4.2**
test("runner: any run of consecutive requests is served by the one hot instance", async (t) => {
  const { runner, port, fn } = await setup(t);
  await runner.apply(
    desired(1, [fn("count", "v1", await counterModule("c"))], [route("c.test", "/*", "count")]),
  );
  let served = 0;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 8 }), async (n) => {
      for (let i = 0; i < n; i++) {
        served++;
        // A fresh instance would restart the guest's counter at 1.
        if ((await call(port, "c.test", "/")).text !== `c ${served}`) return false;
      }
      return runner.stats().functions[0]!.instancesCreated === 1;
    }),
    { numRuns: 100 },
  );
  t.is(runner.stats().functions[0]!.invocations, served);
});

test("runner: a trap answers 500 with only a code and an error id, and the next request is served", async (t) => {
  const { runner, port, fn } = await setup(t);
  await runner.apply(desired(1, [fn("trap", "v1", await trapModule())], [route("t.test", "/*", "trap")]));

  const res = await call(port, "t.test", "/trap");
  t.is(res.status, 500);
  const id = String(res.headers["x-edge-request-id"]);
  t.deepEqual(JSON.parse(res.text), {
    error: { code: "EDGE_ERR_RUNTIME_TRAP", message: `internal error (id ${id})`, id },
  });

  const next = await call(port, "t.test", "/fine");
  t.is(next.status, 200);
  t.is(next.text, "ok /fine");
  // The trapped instance was thrown away and a fresh one made.
  t.like(runner.stats().functions[0], { instancesCreated: 2, instancesDiscarded: 1 });
});

test("runner: edge_handle returning non-zero answers 500 EDGE_ERR_RUNTIME_TRAP and keeps the instance", async (t) => {
  const { runner, port, fn } = await setup(t);
  await runner.apply(desired(1, [fn("fail", "v1", await failingModule())], [route("f.test", "/*", "fail")]));
  for (let i = 0; i < 2; i++) {
    const res = await call(port, "f.test", "/");
    t.is(res.status, 500);
    t.is(JSON.parse(res.text).error.code, "EDGE_ERR_RUNTIME_TRAP");
  }
  t.like(runner.stats().functions[0], { instancesCreated: 1, instancesDiscarded: 0 });
});

test("runner: a body over max_request_bytes answers 413, declared or streamed", async (t) => {
  const { runner, port, fn } = await setup(t);
  await runner.apply(
    desired(
      1,
      [fn("echo", "v1", await echoModule(), { max_request_bytes: 16 })],
      [route("e.test", "/*", "echo")],
    ),
  );

  const atLimit = await call(port, "e.test", "/", { method: "POST", body: "x".repeat(16) });
  t.is(atLimit.status, 200);

  const declared = await call(port, "e.test", "/", { method: "POST", body: "x".repeat(17) });
  t.is(declared.status, 413);
  t.is(JSON.parse(declared.text).error.code, "EDGE_ERR_RUNTIME_BODY_TOO_LARGE");
  t.regex(JSON.parse(declared.text).error.message, /16 bytes/);

  const streamed = await call(port, "e.test", "/", {
    method: "POST",
    body: "y".repeat(5000),
    headers: { "transfer-encoding": "chunked" },
  });
  t.is(streamed.status, 413);
});

test("runner: an unknown host or path answers 404 EDGE_ERR_RUNTIME_NO_ROUTE", async (t) => {
  const { runner, port, fn } = await setup(t);
  await runner.apply(desired(1, [fn("echo", "v1", await echoModule())], [route("e.test", "/api/*", "echo")]));

  for (const [host, path] of [
    ["nobody.test", "/api/x"],
    ["e.test", "/other"],
  ]) {
    const res = await call(port, host!, path!);
    t.is(res.status, 404);
    t.is(JSON.parse(res.text).error.code, "EDGE_ERR_RUNTIME_NO_ROUTE");
  }
});

test("runner: a wrong sha256 is acked SHA256_MISMATCH, nothing is cached and the route is not served", async (t) => {
  const { runner, port, fn, cacheDir } = await setup(t);
  const good = fn("good", "v1", await echoModule());
  const bad = fn("bad", "v1", await echoModule(), { sha256: sha256Hex("something else") });
  const ack = await runner.apply(
    desired(1, [good, bad], [route("good.test", "/*", "good"), route("bad.test", "/*", "bad")]),
  );
  t.deepEqual(
    ack.results.map((r) => [r.function_id, r.status]),
    [
      ["good", "OK"],
      ["bad", "SHA256_MISMATCH"],
    ],
  );
  t.regex(ack.results[1]!.message, /expected/);
  t.is((await call(port, "bad.test", "/")).status, 404);
  t.is((await call(port, "good.test", "/")).status, 200);
  t.deepEqual(
    (await readdir(cacheDir)).filter((f) => !f.startsWith(".")),
    ["good"],
  );
});

test("runner: unreachable artifacts are acked DOWNLOAD_FAILED after the configured tries", async (t) => {
  const { runner, artifacts } = await setup(t, {
    downloadAttempts: 3,
    downloadRetryMinDelay: "5ms",
    downloadRetryMaxDelay: "20ms",
  });
  const missing: FunctionSpec = { ...spec(artifacts, "gone", "v1", new Uint8Array([1])) };
  missing.artifact_url = missing.artifact_url.replace("gone-v1.wasm", "nothing-here.wasm");
  const ack = await runner.apply(desired(1, [missing], [route("g.test", "/*", "gone")]));
  t.is(ack.results[0]!.status, "DOWNLOAD_FAILED");
  t.regex(ack.results[0]!.message, /404.*after 3 tries/);
  t.is(artifacts.hits("nothing-here.wasm"), 3);
});

test("runner: modules that cannot serve are acked INVALID_MODULE", async (t) => {
  const { runner, fn } = await setup(t);
  // (module (import "env" "f" (func)))
  const foreignImport = Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x02, 0x09, 0x01,
    0x03, 0x65, 0x6e, 0x76, 0x01, 0x66, 0x00, 0x00,
  ]);
  const ack = await runner.apply(
    desired(
      1,
      [
        fn("garbage", "v1", Buffer.from("not wasm at all")),
        fn("foreign", "v1", foreignImport),
        fn("wagi", "v1", await echoModule(), { abi: "wagi" }),
      ],
      [],
    ),
  );
  t.deepEqual(
    ack.results.map((r) => r.status),
    ["INVALID_MODULE", "INVALID_MODULE", "INVALID_MODULE"],
  );
  t.regex(ack.results[0]!.message, /not a valid WebAssembly module/);
  t.regex(ack.results[1]!.message, /imports env\.f/);
  t.regex(ack.results[2]!.message, /imports edge\.response_write \(function\), which wagi does not provide/);
});

test("runner: two versions of a function serve side by side with their own instances", async (t) => {
  const { runner, port, fn, cacheDir } = await setup(t);
  const v1 = fn("counter-v1", "v1", await counterModule("one"));
  const v2 = fn("counter-v2", "v2", await counterModule("two"));
  await runner.apply(
    desired(1, [v1, v2], [route("c.test", "/v1/*", "counter-v1"), route("c.test", "/v2/*", "counter-v2")]),
  );
  t.is((await call(port, "c.test", "/v1/a")).text, "one 1");
  t.is((await call(port, "c.test", "/v2/a")).text, "two 1");
  t.is((await call(port, "c.test", "/v1/b")).text, "one 2");
  const stats = runner.stats().functions;
  t.deepEqual(
    stats.map((f) => [f.version, f.instancesCreated, f.invocations]),
    [
      ["v1", 1, 2],
      ["v2", 1, 1],
    ],
  );
  t.deepEqual((await readdir(cacheDir)).filter((f) => !f.startsWith(".")).sort(), [
    "counter-v1",
    "counter-v2",
  ]);
});

// **Feature: wasmEdge-edge-functions, Property 12: version isolation**
// **Validates: Requirements 13.1**
test("runner: for any interleaving of requests, each version keeps its own cache entry and instance", async (t) => {
  const { runner, port, fn, cacheDir } = await setup(t);
  const v1 = fn("counter", "v1", await counterModule("one"));
  const v2 = fn("counter-next", "v2", await counterModule("two"));
  await runner.apply(
    desired(1, [v1, v2], [route("c.test", "/v1/*", "counter"), route("c.test", "/v2/*", "counter-next")]),
  );
  const counts = { one: 0, two: 0 };
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom("one", "two") as fc.Arbitrary<"one" | "two">, { maxLength: 6 }),
      async (picks) => {
        for (const tag of picks) {
          counts[tag]++;
          const res = await call(port, "c.test", tag === "one" ? "/v1/x" : "/v2/x");
          if (res.text !== `${tag} ${counts[tag]}`) return false;
        }
        return runner.stats().functions.every((f) => f.instancesCreated === 1);
      },
    ),
    { numRuns: 100 },
  );
  t.deepEqual(
    runner.stats().functions.map((f) => [f.version, f.invocations]),
    [
      ["v1", counts.one],
      ["v2", counts.two],
    ],
  );
  t.deepEqual((await readdir(join(cacheDir, "counter"))).sort(), ["v1.wasm"]);
  t.deepEqual((await readdir(join(cacheDir, "counter-next"))).sort(), ["v2.wasm"]);
});

test("runner: a later desired state without a function stops serving it and keeps the rest hot", async (t) => {
  const { runner, port, fn, artifacts } = await setup(t);
  const keep = fn("keep", "v1", await counterModule("keep"));
  const drop = fn("drop", "v1", await echoModule());
  await runner.apply(
    desired(1, [keep, drop], [route("k.test", "/*", "keep"), route("d.test", "/*", "drop")]),
  );
  t.is((await call(port, "k.test", "/")).text, "keep 1");
  t.is((await call(port, "d.test", "/")).status, 200);

  // A fresh presigned URL for the same version must not cause a new download or a new instance.
  const sameKeep = { ...keep, artifact_url: `${keep.artifact_url}?X-Amz-Signature=new` };
  const ack = await runner.apply(desired(2, [sameKeep], [route("k.test", "/*", "keep")]));
  t.is(ack.generation, "2");
  t.is((await call(port, "d.test", "/")).status, 404);
  t.is((await call(port, "k.test", "/")).text, "keep 2");
  t.is(artifacts.hits("keep-v1.wasm"), 1);
  t.deepEqual(
    runner.stats().functions.map((f) => f.function_id),
    ["keep"],
  );
});

test("runner: ignores a desired state older than the one it serves", async (t) => {
  const { runner, port, fn } = await setup(t);
  const a = fn("a", "v1", await echoModule());
  await runner.apply(desired(5, [a], [route("a.test", "/*", "a")]));
  const ack = await runner.apply(desired(4, [], []));
  t.is(ack.generation, "5");
  t.is(runner.generation, "5");
  t.is((await call(port, "a.test", "/")).status, 200);
});

test("runner: a restarted runner serves its last applied state from the local cache", async (t) => {
  const { runner, fn, cacheDir, artifacts } = await setup(t);
  await runner.apply(desired(3, [fn("echo", "v1", await echoModule())], [route("e.test", "/*", "echo")]));
  await runner.stop();
  await artifacts.close(); // nothing to download from any more

  const again = createRunner({
    nodeId: "node-1",
    pop: "test-1",
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir,
    logger: quiet,
  });
  const { httpPort } = await again.start();
  t.teardown(() => again.stop());
  t.is(again.generation, "3");
  const res = await call(httpPort, "e.test", "/x");
  t.is(res.status, 200);
  t.is(res.text, "GET /x? ");
});
