// Shared set-up of the fault tests (faults-*.test.ts): a real git repository of AssemblyScript
// functions, a fresh PostgreSQL schema, control planes and runners as real processes on fixed
// ports, signed push webhooks, and keep-alive HTTP requests to the runner.

import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import type { ExecutionContext } from "ava";
import pg from "pg";
import type { ControlPlaneOptions, ProjectRegistration } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo, type TestRepo } from "../helpers/git.ts";
import {
  type ControlPlaneProc,
  freePort,
  type RunnerProc,
  startControlPlaneProcess,
  startRunnerProcess,
} from "../helpers/processes.ts";
import { tempDir } from "../helpers/tmp.ts";
import { pushBody, sendWebhook } from "../helpers/webhook.ts";

export const SECRET = "faults-webhook-secret";
const EDGE_TS = path.resolve("example-repo/hello/edge.ts");

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** edge.yaml of project acme with one function per name, each routed at `{name}.acme.test/*`. */
export function manifest(names: string[]): string {
  const fns = names.map(
    (n) => `---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: ${n} }
spec:
  source: { path: ./${n}, language: assemblyscript }
  # Generous: on a loaded 2-core machine a starved thread must not turn into a 504 here.
  limits: { maxExecutionMs: 2000 }
  routes:
    - { host: ${n}.acme.test, path: /* }
`,
  );
  return `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec:
  domains: [acme.test]
${fns.join("")}`;
}

/** Source files of functions that answer `{name} {tag} {path}`. */
export async function functionFiles(names: string[], tag: string): Promise<Record<string, string>> {
  const edge = await readFile(EDGE_TS, "utf8");
  const files: Record<string, string> = {};
  for (const n of names) {
    files[`${n}/edge.ts`] = edge;
    files[`${n}/index.ts`] = `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("${n} ${tag} " + req.path));
}
`;
  }
  return files;
}

export interface FaultEnv {
  dir: string;
  repo: TestRepo;
  schema: string;
  /** Options of the control plane; start it (again) with startCp(). */
  cpOptions: ControlPlaneOptions & {
    dataDir: string;
    httpPort: number;
    grpcPort: number;
    projects: ProjectRegistration[];
  };
  startCp(): Promise<ControlPlaneProc>;
  startRunner(nodeId: string, options?: Record<string, unknown>, port?: number): Promise<RunnerProc>;
  cacheDir(nodeId: string): string;
  /** A query in the test's schema, on its own connection (works while the control plane is down). */
  sql<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Sends a signed push of `sha`; returns the queued reconciliation's id. */
  push(cpUrl: string, sha: string): Promise<string>;
  /** The admin API token the first control plane wrote to its data dir. */
  adminToken(): Promise<string>;
}

/** Everything a fault test needs; all of it (processes included) goes away with the test. */
export async function faultEnv(
  t: ExecutionContext,
  cp: Partial<ControlPlaneOptions> = {},
): Promise<FaultEnv> {
  const tmp = await tempDir("edge-faults-");
  const { schema, drop } = await freshSchema();
  const repo = await createTestRepo(tmp.dir);
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await client.query(`SET search_path TO ${schema}`);
  const procs: { kill(): Promise<void> }[] = [];
  t.teardown(async () => {
    for (const p of procs) await p.kill();
    await client.end();
    await drop();
    await tmp.remove();
  });
  const cpOptions: FaultEnv["cpOptions"] = {
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: await freePort(),
    grpcPort: await freePort(),
    pollInterval: "0",
    ackTimeout: "10s",
    offlineAfter: "3s",
    statusRetry: { attempts: 1 },
    projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site", webhookSecret: SECRET }],
    ...cp,
  };
  const env: FaultEnv = {
    dir: tmp.dir,
    repo,
    schema,
    cpOptions,
    async startCp() {
      const proc = await startControlPlaneProcess(tmp.dir, cpOptions);
      procs.push(proc);
      return proc;
    },
    cacheDir: (nodeId) => path.join(tmp.dir, `cache-${nodeId}`),
    async startRunner(nodeId, options = {}, port) {
      const proc = await startRunnerProcess(tmp.dir, {
        nodeId,
        pop: "test-1",
        control: `127.0.0.1:${cpOptions.grpcPort}`,
        cacheDir: env.cacheDir(nodeId),
        ...(port ? { port } : {}),
        options: {
          heartbeatInterval: "200ms",
          reconnectMinDelay: "100ms",
          reconnectMaxDelay: "500ms",
          downloadRetryMinDelay: "100ms",
          workers: 1,
          spareWorkers: 0,
          ...options,
        },
      });
      procs.push(proc);
      return proc;
    },
    async sql<T>(text: string, params: unknown[] = []) {
      return (await client.query(text, params)).rows as T[];
    },
    async push(cpUrl, sha) {
      const res = await sendWebhook(cpUrl, pushBody(sha, "acme/site"), { secret: SECRET });
      const body = (await res.json()) as { reconciliation?: string };
      if (res.status !== 202 || !body.reconciliation)
        throw new Error(`push of ${sha}: ${res.status} ${JSON.stringify(body)}`);
      return body.reconciliation;
    },
    async adminToken() {
      return (await readFile(path.join(cpOptions.dataDir, "admin-token"), "utf8")).trim();
    },
  };
  return env;
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** GET on the runner with a Host header, over `agent` (keep-alive) or a fresh connection. */
export function get(
  port: number,
  host: string,
  urlPath = "/x",
  agent: http.Agent | false = false,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: urlPath, headers: { host }, agent, timeout: 5_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end();
  });
}

/** Waits until the runner answers `expected` for `host`. */
export function served(port: number, host: string, expected: string, timeoutMs = 30_000): Promise<true> {
  return waitFor(
    `${host} to answer "${expected}"`,
    async () => ((await get(port, host)).text === expected ? true : undefined),
    timeoutMs,
  );
}

/** Process ids whose parent is `pid` (from /proc), with their command lines. */
export async function childrenOf(pid: number): Promise<{ pid: number; cmdline: string }[]> {
  const { readdir } = await import("node:fs/promises");
  const out: { pid: number; cmdline: string }[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // Field 4 (ppid) follows the parenthesised command name, which may hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== pid) continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, "utf8")).replaceAll("\0", " ");
      out.push({ pid: Number(entry), cmdline });
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** A value of the Prometheus text exposition, e.g. `metric(text, 'x_total{a="b"}')`. */
export function metric(text: string, series: string): number {
  const escaped = series.replace(/[{}"()[\]+*?.\\^$|]/g, "\\$&");
  return Number(new RegExp(`^${escaped} (\\S+)$`, "m").exec(text)?.[1]);
}
