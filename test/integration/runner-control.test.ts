// The runner's control client against a real EdgeControl gRPC server on loopback.

import { mkdtemp, rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecutionContext } from "ava";
import test from "ava";
import { createRunner, type Runner, type RunnerOptions } from "../../edge-runner/index.ts";
import { sha256Hex } from "../../lib/hash.ts";
import { createLogger } from "../../lib/log.ts";
import {
  type Ack,
  type DesiredState,
  edgeControlService,
  grpc,
  type Heartbeat,
  type Hello,
  type ServerConnectStream,
} from "../../proto/index.ts";
import { type ArtifactServer, echoModule, serveArtifacts } from "../helpers/wasm.ts";

const quiet = createLogger("runner-control-test", process.env.EDGE_LOG_LEVEL ?? "silent");

/** Values arriving from callbacks, taken one at a time by awaiting `next()`. */
class Inbox<T> {
  #items: T[] = [];
  #waiters: Array<(item: T) => void> = [];

  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }

  next(what: string, timeoutMs = 10_000): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      this.#waiters.push((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  }
}

/** A RunnerMessage as decoded on the server: the one field set, the others null. */
interface Received {
  hello?: Hello | null;
  ack?: Ack | null;
  heartbeat?: Heartbeat | null;
}

class Connection {
  readonly messages = new Inbox<Received>();
  constructor(readonly call: ServerConnectStream) {}

  /** The next message of one kind; heartbeats may arrive at any time and are skipped unless asked for. */
  async expect<K extends keyof Received>(kind: K): Promise<NonNullable<Received[K]>> {
    for (;;) {
      const msg = await this.messages.next(kind);
      const value = msg[kind];
      if (value) return value as NonNullable<Received[K]>;
      if (!msg.heartbeat) throw new Error(`expected ${kind}, got ${JSON.stringify(msg)}`);
    }
  }
}

/** A control plane reduced to its transport: it records each runner stream and its messages. */
async function startControlPlane(
  port = 0,
): Promise<{ port: number; connections: Inbox<Connection>; stop(): void }> {
  const connections = new Inbox<Connection>();
  const server = new grpc.Server();
  server.addService(edgeControlService, {
    Connect(call: ServerConnectStream) {
      const connection = new Connection(call);
      call.on("data", (msg: Received) => connection.messages.push(msg));
      call.on("error", () => {});
      connections.push(connection);
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port: bound, connections, stop: () => server.forceShutdown() };
}

async function startRunner(
  t: ExecutionContext,
  controlPort: number,
  options: Partial<RunnerOptions> = {},
): Promise<{ runner: Runner; httpPort: number }> {
  const cacheDir = await mkdtemp(join(tmpdir(), "edge-runner-control-"));
  const runner = createRunner({
    nodeId: "node-7",
    pop: "tokyo-1",
    labels: { region: "jp", tier: "edge" },
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir,
    control: { address: `127.0.0.1:${controlPort}`, insecure: true },
    reconnectMinDelay: "20ms",
    reconnectMaxDelay: "100ms",
    downloadAttempts: 1,
    logger: quiet,
    ...options,
  });
  const { httpPort } = await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await rm(cacheDir, { recursive: true, force: true });
  });
  return { runner, httpPort };
}

async function desiredEcho(artifacts: ArtifactServer, generation: string): Promise<DesiredState> {
  const bytes = await echoModule();
  return {
    generation,
    functions: [
      {
        function_id: "echo",
        name: "echo",
        version: "v1",
        project: "acme",
        artifact_url: artifacts.add("echo.wasm", bytes),
        sha256: sha256Hex(bytes),
        abi: "edge-v1",
        memory_pages: 16,
        max_execution_ms: 50,
        max_request_bytes: 1024,
        max_instances: 4,
        env: {},
        capabilities: {},
      },
    ],
    routes: [{ host: "echo.test", path: "/*", methods: [], priority: 0, function_id: "echo" }],
  };
}

function get(port: number, host: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function withArtifacts(t: ExecutionContext): Promise<ArtifactServer> {
  const artifacts = await serveArtifacts();
  t.teardown(() => artifacts.close());
  return artifacts;
}

test("control-client: says hello, applies the desired state, acks its generation and serves it", async (t) => {
  const artifacts = await withArtifacts(t);
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const { runner, httpPort } = await startRunner(t, cp.port);

  const first = await cp.connections.next("a connection");
  t.like(await first.expect("hello"), {
    node_id: "node-7",
    pop: "tokyo-1",
    labels: { region: "jp", tier: "edge" },
    generation: "0",
    inventory: [],
    http_address: `127.0.0.1:${httpPort}`,
  });

  first.call.write({ desired: await desiredEcho(artifacts, "42") });
  t.deepEqual(await first.expect("ack"), {
    generation: "42",
    results: [{ function_id: "echo", version: "v1", status: "OK", message: "" }],
  });
  t.is(runner.generation, "42");
  t.true(runner.stats().controlConnected);
  t.deepEqual(await get(httpPort, "echo.test", "/hi"), { status: 200, text: "GET /hi? " });
});

test("control-client: reconnects after the stream ends and says hello with the generation it serves", async (t) => {
  const artifacts = await withArtifacts(t);
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const { httpPort } = await startRunner(t, cp.port);

  const first = await cp.connections.next("a connection");
  await first.expect("hello");
  const state = await desiredEcho(artifacts, "9");
  first.call.write({ desired: state });
  await first.expect("ack");
  first.call.end();

  const second = await cp.connections.next("a reconnection");
  t.like(await second.expect("hello"), {
    node_id: "node-7",
    generation: "9",
    inventory: [{ function_id: "echo", version: "v1", sha256: state.functions[0]!.sha256 }],
  });
  t.is((await get(httpPort, "echo.test", "/")).status, 200);
});

test("control-client: keeps serving while the control plane is down and catches up when it returns", async (t) => {
  const artifacts = await withArtifacts(t);
  let cp = await startControlPlane();
  const port = cp.port;
  t.teardown(() => cp.stop());
  const { runner, httpPort } = await startRunner(t, port);

  const first = await cp.connections.next("a connection");
  await first.expect("hello");
  first.call.write({ desired: await desiredEcho(artifacts, "3") });
  await first.expect("ack");

  cp.stop();
  while (runner.stats().controlConnected) await new Promise((r) => setTimeout(r, 10));
  // Several reconnect attempts fail meanwhile; requests are still served.
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(await get(httpPort, "echo.test", "/down"), { status: 200, text: "GET /down? " });

  cp = await startControlPlane(port);
  const back = await cp.connections.next("a connection after the outage");
  t.is((await back.expect("hello")).generation, "3");
  back.call.write({ desired: { generation: "4", functions: [], routes: [] } });
  t.deepEqual(await back.expect("ack"), { generation: "4", results: [] });
  t.is((await get(httpPort, "echo.test", "/down")).status, 404);
});

test("control-client: sends heartbeats with the cache inventory while connected", async (t) => {
  const artifacts = await withArtifacts(t);
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  await startRunner(t, cp.port, { heartbeatInterval: "50ms" });

  const conn = await cp.connections.next("a connection");
  await conn.expect("hello");
  const state = await desiredEcho(artifacts, "1");
  conn.call.write({ desired: state });
  await conn.expect("ack");
  // The first heartbeat after the ack lists the artifact the apply just cached.
  for (;;) {
    const beat = await conn.expect("heartbeat");
    if (beat.inventory.length === 0) continue;
    t.deepEqual(beat.inventory, [{ function_id: "echo", version: "v1", sha256: state.functions[0]!.sha256 }]);
    t.is(beat.in_flight, 0);
    break;
  }
});
