// The end-to-end setup most e2e tests share: a real git repository (with example-repo/hello
// copied in), a control plane on a fresh PostgreSQL schema reporting to a recorder standing in
// for GitHub, an admin token, and runners started per POP over loopback gRPC; all torn down
// with the test.

import path from "node:path";
import type { ExecutionContext } from "ava";
import { type ControlPlane, type ControlPlaneOptions, createControlPlane } from "../../reconciler/index.ts";
import { adminToken, bearer } from "./auth.ts";
import { DATABASE_URL, freshSchema } from "./db.ts";
import { createTestRepo, type TestRepo } from "./git.ts";
import { request } from "./http.ts";
import { type Recorder, startRecorder } from "./recorder.ts";
import { startTestRunner, type TestRunner } from "./runner.ts";
import { tempDir } from "./tmp.ts";

export interface TestStack {
  cp: ControlPlane;
  repo: TestRepo;
  /** The stand-in for GitHub's API; statuses arrive under /github/repos/acme/site/…. */
  rec: Recorder;
  dir: string;
  token: string;
  /** An API call with the admin token; a body is sent as JSON. */
  api(method: string, p: string, body?: unknown): Promise<Response>;
  /** A runner in `pop` (node id `${pop}-a`) connected to the control plane. */
  runner(pop: string, labels?: Record<string, string>): Promise<TestRunner>;
  /** Resolves once `n` runners are connected. */
  connected(n: number): Promise<void>;
}

/**
 * Project "acme" (repository full name acme/site, webhook secret `secret`) on a fresh stack.
 * `options` override the control plane's test defaults.
 */
export async function startStack(
  t: ExecutionContext,
  secret: string,
  options: Partial<ControlPlaneOptions> = {},
): Promise<TestStack> {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const rec = await startRecorder();
  const repo = await createTestRepo(tmp.dir);
  await repo.copyIn(path.resolve("example-repo/hello"), "hello");
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    adminTokenFile: false,
    github: { apiBase: `${rec.url}/github`, token: "gh-token" },
    statusRetry: { attempts: 2, minDelay: "20ms", maxDelay: "50ms" },
    projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site", webhookSecret: secret }],
    ...options,
  });
  await cp.start();
  t.teardown(async () => {
    await cp.stop();
    await rec.close();
    await drop();
    await tmp.remove();
  });
  const token = await adminToken(cp);
  return {
    cp,
    repo,
    rec,
    dir: tmp.dir,
    token,
    api: (method, p, body) =>
      fetch(`${cp.url}${p}`, {
        method,
        headers: { ...bearer(token), "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }),
    runner: (pop, labels = {}) =>
      startTestRunner(t, {
        nodeId: `${pop}-a`,
        pop,
        labels,
        control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
        reconnectMinDelay: "50ms",
        heartbeatInterval: "100ms",
      }),
    async connected(n) {
      while (cp.control.connected().length < n) await new Promise((r) => setTimeout(r, 20));
    },
  };
}

/**
 * Polls a runner until `host` answers "<status> <body>" equal to `expect` (runners converge
 * asynchronously after an ack), for at most `timeoutMs`; returns the last answer.
 */
export async function servedBy(
  port: number,
  host: string,
  expect: string,
  urlPath = "/",
  timeoutMs = 15_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let got = "";
  for (;;) {
    const r = await request(port, host, urlPath);
    got = `${r.status} ${r.text}`;
    if (got === expect || Date.now() > deadline) return got;
    await new Promise((res) => setTimeout(res, 20));
  }
}
