// The data plane's edges, on loopback with real sockets: malformed and oversized request heads,
// the per-version queue (429), the wagi lane's CGI contract, W3C trace context, TLS with a
// certificate reloaded from disk, and the local cache's LRU limit as the runner applies it.

import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { type AddressInfo, connect, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import type { ExecutionContext } from "ava";
import test from "ava";
import { pino } from "pino";
import { createRunner, type Runner, type RunnerOptions } from "../../edge-runner/index.ts";
import { sha256Hex } from "../../lib/hash.ts";
import type { FunctionSpec, RouteSpec } from "../../proto/index.ts";
import { request } from "../helpers/http.ts";
import { quietLogger as quiet, startTestRunner } from "../helpers/runner.ts";
import {
  type ArtifactServer,
  counterModule,
  echoModule,
  handlerModule,
  hostile,
  statusModule,
  wagiWat,
} from "../helpers/wasm.ts";

interface Setup {
  runner: Runner;
  port: number;
  artifacts: ArtifactServer;
  cacheDir: string;
  fn(id: string, bytes: Uint8Array, extra?: Partial<FunctionSpec>): FunctionSpec;
}

async function setup(t: ExecutionContext, options: Partial<RunnerOptions> = {}): Promise<Setup> {
  const { runner, port, artifacts, cacheDir } = await startTestRunner(t, options);
  return {
    runner,
    port,
    artifacts,
    cacheDir,
    fn: (id, bytes, extra = {}) => ({
      function_id: id,
      name: id,
      version: "v1",
      project: "acme",
      artifact_url: artifacts.add(`${id}-${extra.version ?? "v1"}.wasm`, bytes),
      sha256: sha256Hex(bytes),
      abi: "edge-v1",
      memory_pages: 16,
      max_execution_ms: 1000,
      max_request_bytes: 1024,
      max_instances: 4,
      env: {},
      capabilities: {},
      ...extra,
    }),
  };
}

const route = (host: string, functionId: string): RouteSpec => ({
  host,
  path: "/*",
  methods: [],
  priority: 0,
  function_id: functionId,
});

/** Sends raw bytes and returns everything the server answers before it closes (or 2 s pass). */
async function raw(port: number, bytes: string): Promise<string> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  socket.end(bytes);
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  await Promise.race([once(socket, "close"), new Promise((r) => setTimeout(r, 2000))]);
  socket.destroy();
  return Buffer.concat(chunks).toString("latin1");
}

const statusOf = (response: string) => Number(response.split(" ")[1]);
const codeOf = (response: string) => JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4)).error.code;

test("http: malformed requests and oversized heads are refused before any function runs", async (t) => {
  const s = await setup(t, { maxHeaderCount: 10, maxHeaderBytes: "2KiB" });
  await s.runner.apply({
    generation: "1",
    functions: [s.fn("count", await counterModule("c"))],
    routes: [route("c.test", "count")],
  });

  const garbage = await raw(s.port, "THIS IS NOT HTTP\r\n\r\n");
  t.is(statusOf(garbage), 400);
  t.is(codeOf(garbage), "EDGE_ERR_RUNTIME_BAD_REQUEST");

  const bigHead = await raw(s.port, `GET / HTTP/1.1\r\nHost: c.test\r\nX-Big: ${"a".repeat(4096)}\r\n\r\n`);
  t.is(statusOf(bigHead), 431);
  t.is(codeOf(bigHead), "EDGE_ERR_RUNTIME_HEADERS_TOO_LARGE");

  const many = Array.from({ length: 11 }, (_, i) => `X-H${i}: ${i}\r\n`).join("");
  const manyHeaders = await raw(s.port, `GET / HTTP/1.1\r\nHost: c.test\r\n${many}\r\n`);
  t.is(statusOf(manyHeaders), 431);

  const twoHosts = await raw(s.port, "GET / HTTP/1.1\r\nHost: c.test\r\nHost: other.test\r\n\r\n");
  t.is(statusOf(twoHosts), 400);
  t.regex(twoHosts, /more than one Host header/);

  const noHost = await raw(s.port, "GET / HTTP/1.1\r\n\r\n");
  t.is(statusOf(noHost), 400);

  // Content-Length and Transfer-Encoding together is a smuggling attempt (RFC 9112 §6.3).
  const smuggle = await raw(
    s.port,
    "POST / HTTP/1.1\r\nHost: c.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  );
  t.is(statusOf(smuggle), 400);

  // None of it reached the function: its first real request is its first call.
  t.is((await request(s.port, "c.test", "/")).text, "c 1");
  t.is(s.runner.stats().functions[0]!.invocations, 1);
});

test("http: a version with as many waiting requests as its queue holds answers 429", async (t) => {
  const s = await setup(t, { queueDepth: 1, workers: 1, spareWorkers: 1 });
  await s.runner.apply({
    generation: "1",
    functions: [s.fn("spin", await hostile.infiniteLoop(), { max_instances: 1, max_execution_ms: 1000 })],
    routes: [route("spin.test", "spin")],
  });
  const first = request(s.port, "spin.test", "/");
  // Once the first one has been running on its thread for a while, nothing is queued behind it
  // there any more: the next ones can only wait in the version's queue or be refused.
  while (s.runner.stats().functions[0]!.inFlight === 0) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 200));
  const rest = await Promise.all([1, 2, 3].map(() => request(s.port, "spin.test", "/")));
  const statuses = rest.map((r) => r.status).sort();
  t.deepEqual(statuses, [429, 429, 504], "one waits (and times out in its turn), two are refused");
  const refused = rest.find((r) => r.status === 429)!;
  t.is(JSON.parse(refused.text).error.code, "EDGE_ERR_RUNTIME_QUEUE_FULL");
  t.is((await first).status, 504);
  t.is(s.runner.stats().functions[0]!.rejected, 2);
});

test("http: a wagi function gets CGI variables, the manifest env and the body on stdin", async (t) => {
  const s = await setup(t);
  // Prints its whole environment (NUL-separated) and then its stdin.
  const bytes = await wagiWat(
    (str) => `(call $print ${str.ref("Status: 201\r\nContent-Type: text/plain\r\n\r\n")})
    (drop (call $environ_sizes_get (i32.const 48) (i32.const 52)))
    (drop (call $environ_get (i32.const 4096) (i32.const 8192)))
    (call $print (i32.const 8192) (i32.load (i32.const 52)))
    (i32.store (i32.const 56) (i32.const 16384))
    (i32.store (i32.const 60) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 56) (i32.const 1) (i32.const 64)))
    (call $print ${str.ref("BODY=")})
    (call $print (i32.const 16384) (i32.load (i32.const 64)))`,
    `(import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))`,
  );
  await s.runner.apply({
    generation: "1",
    functions: [s.fn("cgi", bytes, { abi: "wagi", env: { GREETING: "hi", REQUEST_METHOD: "spoofed" } })],
    routes: [route("cgi.test", "cgi")],
  });
  const res = await request(s.port, "cgi.test", "/items/7?sort=asc", {
    method: "PUT",
    body: "payload",
    headers: { "content-type": "text/plain", "x-trace": "abc" },
  });
  t.is(res.status, 201);
  const [envText, body] = res.text.split("BODY=");
  const env = envText!.split("\0").filter((e) => e !== "");
  t.is(body, "payload");
  t.true(env.includes("GREETING=hi"), "the manifest's env");
  t.true(env.includes("PATH_INFO=/items/7"));
  t.true(env.includes("QUERY_STRING=sort=asc"));
  t.true(env.includes("CONTENT_LENGTH=7"));
  t.true(env.includes("CONTENT_TYPE=text/plain"));
  t.true(env.includes("HTTP_X_TRACE=abc"));
  t.true(env.includes("SERVER_NAME=cgi.test"));
  // The request's facts win over the manifest (a function cannot be lied to about its method).
  t.is(env.filter((e) => e.startsWith("REQUEST_METHOD=")).at(-1), "REQUEST_METHOD=PUT");
  t.false(
    env.some((e) => e.startsWith("PATH=") || e.startsWith("HOME=")),
    "nothing from the runner's environment",
  );
  // A fresh instance per request: nothing carries over.
  t.like(s.runner.stats().functions[0], { invocations: 1, hotInstances: 0 });
});

test("http: a W3C traceparent reaches the function and the log lines of its request", async (t) => {
  const lines: string[] = [];
  const s = await setup(t, { logger: pino({ level: "info" }, { write: (l: string) => void lines.push(l) }) });
  await s.runner.apply({
    generation: "1",
    functions: [
      s.fn("seen", await handlerModule(`  return new Response(req.header("traceparent"));`)),
      s.fn("status", await statusModule()),
      s.fn("trap", await hostile.trap()),
    ],
    routes: [route("seen.test", "seen"), route("status.test", "status"), route("trap.test", "trap")],
  });
  const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const seen = await request(s.port, "seen.test", "/", { headers: { traceparent } });
  t.is(seen.text, traceparent, "without an OpenTelemetry SDK the client's context passes through");

  const logged = await request(s.port, "status.test", "/", { headers: { traceparent } });
  const guestLine = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "status module called");
  t.like(guestLine, {
    request_id: logged.headers["x-edge-request-id"],
    trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
    function: "status",
  });

  const failed = await request(s.port, "trap.test", "/", { headers: { traceparent } });
  t.is(failed.status, 500);
  const errorLine = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "request failed");
  t.like(errorLine, {
    error_id: failed.headers["x-edge-request-id"],
    request_id: failed.headers["x-edge-request-id"],
    trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
  });
});

/** A self-signed certificate for 127.0.0.1 with a given common name, written with the openssl CLI. */
function certificate(dir: string, name: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "subjectAltName=DNS:e.test,IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

function httpsGet(
  port: number,
  host: string,
  ca: Buffer[],
): Promise<{ status: number; text: string; cn: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port, path: "/", headers: { host }, ca, agent: false },
      (res) => {
        const cn = String((res.socket as TLSSocket).getPeerCertificate().subject?.CN);
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString(), cn }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

test("http: TLS serves the configured certificate and picks up a renewed one without a restart", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "edge-runner-tls-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = certificate(dir, "first", "first.edge.test");
  const second = certificate(dir, "second", "second.edge.test");
  const live = { certFile: join(dir, "live.crt"), keyFile: join(dir, "live.key") };
  await writeFile(live.certFile, await readFile(first.cert));
  await writeFile(live.keyFile, await readFile(first.key));
  const ca = [await readFile(first.cert), await readFile(second.cert)];

  const s = await setup(t, { tls: { ...live, reloadInterval: "50ms" } });
  await s.runner.apply({
    generation: "1",
    functions: [s.fn("echo", await echoModule())],
    routes: [route("e.test", "echo")],
  });
  const before = await httpsGet(s.port, "e.test", ca);
  t.is(before.status, 200);
  t.is(before.cn, "first.edge.test");

  // Renewal the way tools do it: new files renamed over the old ones.
  await writeFile(`${live.keyFile}.new`, await readFile(second.key));
  await writeFile(`${live.certFile}.new`, await readFile(second.cert));
  await rename(`${live.keyFile}.new`, live.keyFile);
  await rename(`${live.certFile}.new`, live.certFile);
  let cn = before.cn;
  for (let i = 0; i < 100 && cn !== "second.edge.test"; i++) {
    await new Promise((r) => setTimeout(r, 50));
    cn = (await httpsGet(s.port, "e.test", ca)).cn;
  }
  t.is(cn, "second.edge.test");

  // A broken pair is refused and the previous certificate keeps serving.
  await writeFile(live.keyFile, "not a key");
  await new Promise((r) => setTimeout(r, 300));
  t.is((await httpsGet(s.port, "e.test", ca)).cn, "second.edge.test");
});

test("http: the runner keeps its local cache within cacheMaxEntries, never evicting what it serves", async (t) => {
  const s = await setup(t, { cacheMaxEntries: 2, metricsPort: 0 });
  const a = s.fn("a", await counterModule("a"));
  const b = s.fn("b", await counterModule("b"));
  const c = s.fn("c", await counterModule("c"));
  await s.runner.apply({ generation: "1", functions: [a, b], routes: [route("a.test", "a")] });
  t.deepEqual((await readdir(s.cacheDir)).filter((d) => !d.startsWith(".")).sort(), ["a", "b"]);
  // Three artifacts for two places: the least recently used one not being served goes.
  await s.runner.apply({ generation: "2", functions: [b, c], routes: [route("c.test", "c")] });
  t.deepEqual((await readdir(s.cacheDir)).filter((d) => !d.startsWith(".")).sort(), ["b", "c"]);
  t.like(s.runner.stats().cache, { entries: 2 });
  const metrics = await s.runner.metrics.registry.metrics();
  t.regex(metrics, /^wasm_cache_evictions_total 1$/m);
  t.is((await request(s.port, "c.test", "/")).text, "c 1");
});

test("http: a runner that cannot listen fails to start and leaves nothing running", async (t) => {
  const blocker = createNetServer().listen(0, "127.0.0.1");
  await once(blocker, "listening");
  t.teardown(() => blocker.close());
  const taken = (blocker.address() as AddressInfo).port;
  const cacheDir = await mkdtemp(join(tmpdir(), "edge-runner-http-"));
  t.teardown(() => rm(cacheDir, { recursive: true, force: true }));

  const runner = createRunner({
    nodeId: "n",
    pop: "p",
    httpHost: "127.0.0.1",
    httpPort: taken,
    metricsPort: 0,
    cacheDir,
    logger: quiet,
  });
  await t.throwsAsync(runner.start(), { code: "EADDRINUSE" });
  t.like(runner.stats().threads, { active: 0, spare: 0, starting: 0 });

  const noMetrics = createRunner({
    nodeId: "n",
    pop: "p",
    httpHost: "127.0.0.1",
    httpPort: 0,
    metricsPort: taken,
    cacheDir,
    logger: quiet,
  });
  await t.throwsAsync(noMetrics.start(), { code: "EADDRINUSE" });
});
