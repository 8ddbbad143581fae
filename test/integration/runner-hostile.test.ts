// The hostile-module catalogue of issue 5, each against a real runner on loopback: the right
// status, the runner keeps running, and a healthy function served at the same time answers.

import { request as httpRequest } from "node:http";
import type { ExecutionContext } from "ava";
import test from "ava";
import { pino } from "pino";
import type { Runner, RunnerOptions } from "../../edge-runner/index.ts";
import { sha256Hex } from "../../lib/hash.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { startTestRunner } from "../helpers/runner.ts";
import { type ArtifactServer, counterModule, hostile } from "../helpers/wasm.ts";

interface Reply {
  status: number;
  text: string;
  code?: string;
}

function call(port: number, host: string, path = "/"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let code: string | undefined;
        if (String(res.headers["content-type"]).startsWith("application/json"))
          code = JSON.parse(text).error?.code;
        resolve({ status: res.statusCode!, text, ...(code ? { code } : {}) });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

interface Setup {
  runner: Runner;
  port: number;
  artifacts: ArtifactServer;
}

async function setup(t: ExecutionContext, options: Partial<RunnerOptions> = {}): Promise<Setup> {
  const { runner, port, artifacts } = await startTestRunner(t, options);
  return { runner, port, artifacts };
}

function spec(
  artifacts: ArtifactServer,
  id: string,
  bytes: Uint8Array,
  extra: Partial<FunctionSpec> = {},
): FunctionSpec {
  return {
    function_id: id,
    name: id,
    version: "v1",
    project: "acme",
    artifact_url: artifacts.add(`${id}.wasm`, bytes),
    sha256: sha256Hex(bytes),
    abi: "edge-v1",
    memory_pages: 4,
    max_execution_ms: 100,
    max_request_bytes: 1024,
    max_instances: 4,
    env: {},
    capabilities: {},
    ...extra,
  };
}

/** Deploys the hostile function at hostile.test and a healthy counter at healthy.test. */
async function deploy(s: Setup, bytes: Uint8Array, extra: Partial<FunctionSpec> = {}) {
  const ack = await s.runner.apply({
    generation: "1",
    functions: [
      spec(s.artifacts, "hostile", bytes, extra),
      spec(s.artifacts, "healthy", await counterModule("ok")),
    ],
    routes: [
      { host: "hostile.test", path: "/*", methods: [], priority: 0, function_id: "hostile" },
      { host: "healthy.test", path: "/*", methods: [], priority: 0, function_id: "healthy" },
    ],
  });
  return ack.results;
}

/** The hostile request and a healthy one sent at the same time; then the runner must still serve. */
async function together(t: ExecutionContext, s: Setup, path = "/"): Promise<Reply> {
  const [bad, good] = await Promise.all([call(s.port, "hostile.test", path), call(s.port, "healthy.test")]);
  t.is(good.status, 200, "the healthy function answers while the hostile one runs");
  t.regex(good.text, /^ok \d+$/);
  const after = await call(s.port, "healthy.test");
  t.is(after.status, 200, "the runner keeps serving afterwards");
  return bad;
}

test("hostile: an infinite loop gets 504 at its deadline while a healthy function keeps answering", async (t) => {
  const s = await setup(t);
  await deploy(s, await hostile.infiniteLoop(), { max_execution_ms: 400 });
  const order: string[] = [];
  const bad = call(s.port, "hostile.test").then((r) => {
    order.push("hostile");
    return r;
  });
  // While the loop spins, the healthy function is served (it does not wait for the deadline).
  for (let i = 0; i < 3; i++) {
    const good = await call(s.port, "healthy.test");
    t.is(good.status, 200);
    order.push("healthy");
  }
  const r = await bad;
  t.is(r.status, 504);
  t.is(r.code, "EDGE_ERR_RUNTIME_TIMEOUT");
  t.deepEqual(order, ["healthy", "healthy", "healthy", "hostile"]);
  t.is((await call(s.port, "healthy.test")).status, 200);
  const stats = s.runner.stats();
  t.is(stats.threads.replaced, 1, "the stuck thread was stopped and replaced");
  t.like(
    stats.functions.find((f) => f.function_id === "hostile"),
    { timeouts: 1 },
  );
  // Later calls time out the same way; the runner does not degrade.
  t.is((await call(s.port, "hostile.test")).status, 504);
  t.is((await call(s.port, "healthy.test")).status, 200);
});

test("hostile: a memory bomb is refused at memoryPages and answers with what it was allowed", async (t) => {
  const s = await setup(t);
  await deploy(s, await hostile.memoryBomb(), { memory_pages: 3 });
  const r = await together(t, s);
  t.is(r.status, 200);
  // One "x" per page: memory.grow failed inside the guest at exactly 3 pages.
  t.is(r.text, "xxx");
});

test("hostile: deep recursion overflows the stack and answers 500; the instance is replaced", async (t) => {
  const s = await setup(t);
  await deploy(s, await hostile.deepRecursion());
  const r = await together(t, s);
  t.is(r.status, 500);
  t.is(r.code, "EDGE_ERR_RUNTIME_TRAP");
  t.like(
    s.runner.stats().functions.find((f) => f.function_id === "hostile"),
    { instancesDiscarded: 1 },
  );
});

test("hostile: a trap answers 500 with only a code and an error id", async (t) => {
  const s = await setup(t);
  await deploy(s, await hostile.trap());
  const r = await together(t, s);
  t.is(r.status, 500);
  t.is(r.code, "EDGE_ERR_RUNTIME_TRAP");
  t.notRegex(r.text, /unreachable/, "guest details stay in the log");
});

test("hostile: a response over responseMaxBytes answers 502", async (t) => {
  const s = await setup(t, { responseMaxBytes: "256KiB" });
  await deploy(s, await hostile.oversizeResponse());
  const r = await together(t, s);
  t.is(r.status, 502);
  t.is(r.code, "EDGE_ERR_RUNTIME_BAD_RESPONSE");
});

test("hostile: filesystem calls are refused with WASI errors; nothing is touched", async (t) => {
  const s = await setup(t);
  await deploy(s, await hostile.wasiFilesystem(), { abi: "wagi" });
  const r = await together(t, s);
  t.is(r.status, 200);
  // EBADF (8) for the missing preopen, ENOTCAPABLE (76) for every path operation.
  t.is(r.text, "prestat=8 open=76 mkdir=76");
});

test("hostile: socket calls are refused with ENOTCAPABLE", async (t) => {
  const s = await setup(t);
  await deploy(s, await hostile.wasiSockets(), { abi: "wagi" });
  const r = await together(t, s);
  t.is(r.status, 200);
  t.is(r.text, "accept=76 send=76");
});

test("hostile: fd_close(1) closes only the guest's stdout, not the runner's", async (t) => {
  const lines: string[] = [];
  const s = await setup(t, { logger: pino({ level: "info" }, { write: (l: string) => void lines.push(l) }) });
  await deploy(s, await hostile.closeStdout(), { abi: "wagi" });
  const r = await together(t, s);
  t.is(r.status, 200);
  t.is(r.text, "before close", "what was written after fd_close(1) went nowhere");
  t.true(
    lines.some((l) => l.includes("stdout is closed: EBADF")),
    "the guest's stderr reached the log",
  );
  // The runner's own stdout is still open and usable.
  t.true(process.stdout.writable);
  const again = await call(s.port, "hostile.test");
  t.is(again.text, "before close", "the next instance starts with its own stdout");
});

test("hostile: proc_exit(0) ends the instance normally, proc_exit(3) answers 500", async (t) => {
  const s = await setup(t);
  await deploy(s, await hostile.procExit(0), { abi: "wagi" });
  const ok = await together(t, s);
  t.is(ok.status, 200);
  t.is(ok.text, "exiting");

  const s2 = await setup(t);
  await deploy(s2, await hostile.procExit(3), { abi: "wagi" });
  const failed = await together(t, s2);
  t.is(failed.status, 500);
  t.is(failed.code, "EDGE_ERR_RUNTIME_TRAP");
});

test("hostile: unknown imports are refused at deploy (INVALID_MODULE); the rest serves", async (t) => {
  const s = await setup(t);
  const results = await deploy(s, await hostile.unknownImport());
  t.is(results[0]!.status, "INVALID_MODULE");
  t.regex(results[0]!.message, /imports env\.open_socket/);
  t.is(results[1]!.status, "OK");
  const r = await together(t, s);
  t.is(r.status, 404, "nothing is served for the refused function");
});

test("hostile: a huge table is refused at deploy, and table.grow past the cap fails in the guest", async (t) => {
  const s = await setup(t);
  const results = await deploy(s, await hostile.hugeTable());
  t.is(results[0]!.status, "INVALID_MODULE");
  t.regex(results[0]!.message, /table 0 starts with 10000000 elements/);

  const s2 = await setup(t);
  await deploy(s2, await hostile.tableGrow());
  const r = await together(t, s2);
  t.is(r.status, 200);
  t.is(r.text, "refused");
});
