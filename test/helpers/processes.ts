// Real processes for fault tests: `edgectl control-plane` and `edgectl runner` started as child
// processes (so a test can SIGKILL them), on fixed free ports (so a restarted control plane is
// found again at the same address), with their output kept for the failure message.

import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { stringify } from "yaml";
import type { RunnerOptions } from "../../edge-runner/index.ts";
import type { ControlPlaneOptions } from "../../reconciler/index.ts";

const EDGECTL = path.resolve("bin/edgectl");

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Proc {
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string>;
  /** SIGKILL (default) or SIGTERM, and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnEdgectl(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [EDGECTL, ...args], {
    env: { ...process.env, EDGE_LOG_LEVEL: process.env.EDGE_TEST_LOG_LEVEL ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return {
    child,
    output: () => out,
    exited,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Polls `url` until it answers 2xx, or throws with the process output after `timeoutMs`. */
export async function waitForHttp(url: string, proc: Proc, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null)
      throw new Error(`process exited before ${url} answered:\n${proc.output()}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(1000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${proc.output()}`);
}

export interface ControlPlaneProc extends Proc {
  url: string;
  httpPort: number;
  grpcPort: number;
}

/**
 * `edgectl control-plane` with `options` written to a config file in `dir`; insecure gRPC on
 * loopback unless options.tls is set. Ports are chosen once by the caller (or here) and kept, so
 * the same options restart it at the same address.
 */
export async function startControlPlaneProcess(
  dir: string,
  options: ControlPlaneOptions & { httpPort: number; grpcPort: number },
  env: Record<string, string> = {},
): Promise<ControlPlaneProc> {
  const config = path.join(dir, `control-plane-${options.httpPort}.yaml`);
  await writeFile(config, stringify({ insecure: !options.tls, ...options }));
  const proc = spawnEdgectl(["control-plane", "--config", config], env);
  const url = `http://127.0.0.1:${options.httpPort}`;
  await waitForHttp(`${url}/readyz`, proc);
  return { ...proc, url, httpPort: options.httpPort, grpcPort: options.grpcPort };
}

export interface RunnerProc extends Proc {
  port: number;
  metricsPort: number;
}

/** `edgectl runner` connected to `control` (host:port), insecure unless tlsDir is given. */
export async function startRunnerProcess(
  dir: string,
  opts: {
    nodeId: string;
    pop: string;
    control: string;
    cacheDir: string;
    port?: number;
    metricsPort?: number;
    labels?: Record<string, string>;
    tlsDir?: string;
    /** Further runner options (heartbeatInterval, reconnectMinDelay, …) through --config. */
    options?: Partial<RunnerOptions>;
  },
): Promise<RunnerProc> {
  const port = opts.port ?? (await freePort());
  const metricsPort = opts.metricsPort ?? (await freePort());
  const config = path.join(dir, `runner-${opts.nodeId}.yaml`);
  await writeFile(config, stringify(opts.options ?? {}));
  const args = [
    "runner",
    "--config",
    config,
    "--node-id",
    opts.nodeId,
    "--pop",
    opts.pop,
    "--control",
    opts.control,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--metrics-port",
    String(metricsPort),
    "--cache-dir",
    opts.cacheDir,
    ...Object.entries(opts.labels ?? {}).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
    ...(opts.tlsDir ? ["--tls-dir", opts.tlsDir] : ["--insecure"]),
  ];
  const proc = spawnEdgectl(args);
  await waitForHttp(`http://127.0.0.1:${metricsPort}/healthz`, proc);
  return { ...proc, port, metricsPort };
}

/** Resident set size of a process in bytes, from /proc (Linux). */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb * 1024;
}
