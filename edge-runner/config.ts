// Runner configuration in three steps (CONVENTIONS.md "Config in three steps"):
// RunnerOptions (what a person writes, with units) → withDefaults → compileRunnerOptions
// (plain numbers in ms and bytes). Nothing else in edge-runner/ reads RunnerOptions.

import { availableParallelism } from "node:os";
import { edgeError } from "../lib/errors.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import { parseDuration, parseSize } from "../lib/units.ts";

/** Durations are written like "500ms", "30s", "2m" (or a number of ms); sizes like "8MiB" (or bytes). */
export type Duration = string | number;
export type Size = string | number;

/**
 * Everything an operator can set on an edge runner. Only `nodeId` and `pop` are required.
 *
 * | option | default | meaning |
 * |---|---|---|
 * | `nodeId` | — | stable id of this runner, sent in Hello |
 * | `pop` | — | point of presence, e.g. "tokyo-1" |
 * | `labels` | `{}` | matched by placement selectors ("region=jp,tier!=canary") |
 * | `httpHost` | `"0.0.0.0"` | address the data-plane HTTP server binds |
 * | `httpPort` | `8080` | its port; `0` picks a free one (see `start()`'s result) |
 * | `cacheDir` | `".edgeplane/runner-cache"` | local artifact cache and last applied state |
 * | `control` | none | control plane to connect to; without it the runner only serves what `apply()` gives it |
 * | `control.address` | — | `host:port` of the gRPC EdgeControl service |
 * | `control.insecure` | `false` | plaintext gRPC (local development); without it `control.tls` is required |
 * | `control.tls` | none | mutual TLS: PEM file paths `{ ca, cert, key }` (`edgectl certs init`); the certificate's common name must be `nodeId` |
 * | `reconnectMinDelay` | `"500ms"` | first delay before reconnecting to the control plane |
 * | `reconnectMaxDelay` | `"30s"` | ceiling of the doubling reconnect delay |
 * | `heartbeatInterval` | `"30s"` | how often a connected runner sends a Heartbeat |
 * | `responseMaxBytes` | `"8MiB"` | largest response a function may write; more → 502 |
 * | `artifactMaxBytes` | `"64MiB"` | largest artifact the runner downloads |
 * | `downloadAttempts` | `5` | tries per artifact download before reporting DOWNLOAD_FAILED (seed Property 13) |
 * | `downloadRetryMinDelay` | `"1s"` | delay before the second try; doubles each try |
 * | `downloadRetryMaxDelay` | `"60s"` | ceiling of the doubling download delay |
 * | `logger` | pino on stderr, level from EDGE_LOG_LEVEL | where the runner and guest `log()` calls write |
 * | `metricsHost` | same as `httpHost` | address of the Prometheus metrics server (`/metrics`, `/healthz`) |
 * | `metricsPort` | `9090` (`0` when `httpPort` is `0`) | its port; `0` picks a free one; `null` turns it off |
 * | `workers` | CPUs − 1, at least 1 | executor threads running guests (the main thread serves HTTP) |
 * | `spareWorkers` | `1` | threads started in advance: replace a killed thread at once, stand in while every serving thread is stuck |
 * | `maxHotInstances` | `256` | hot instances across all versions; least recently used go first |
 * | `maxHotMemory` | `"1GiB"` | total linear memory of hot instances; least recently used go first |
 * | `queueDepth` | `128` | requests per function version waiting for a thread; more → 429 |
 * | `cacheMaxBytes` | `"1GiB"` | local artifact cache size; least recently used artifacts not being served go first |
 * | `cacheMaxEntries` | `1000` | artifacts in the local cache, same eviction |
 * | `maxHeaderBytes` | `"16KiB"` | request line plus headers; more → 431 |
 * | `maxHeaderCount` | `100` | request headers; more → 431 |
 * | `headersTimeout` | `"10s"` | time a client has to send the request head; then 408 |
 * | `requestTimeout` | `"30s"` | time a client has to send the whole request; then 408 |
 * | `tls` | none (plain HTTP) | serve HTTPS instead |
 * | `tls.certFile`, `tls.keyFile` | — | PEM certificate chain and private key |
 * | `tls.reloadInterval` | `"10s"` | how often the files are checked; changed files are loaded without a restart |
 */
export interface RunnerOptions {
  nodeId: string;
  pop: string;
  labels?: Record<string, string>;
  httpHost?: string;
  httpPort?: number;
  cacheDir?: string;
  control?: { address: string; insecure?: boolean; tls?: { ca: string; cert: string; key: string } };
  reconnectMinDelay?: Duration;
  reconnectMaxDelay?: Duration;
  heartbeatInterval?: Duration;
  responseMaxBytes?: Size;
  artifactMaxBytes?: Size;
  downloadAttempts?: number;
  downloadRetryMinDelay?: Duration;
  downloadRetryMaxDelay?: Duration;
  logger?: Logger;
  metricsHost?: string;
  metricsPort?: number | null;
  workers?: number;
  spareWorkers?: number;
  maxHotInstances?: number;
  maxHotMemory?: Size;
  queueDepth?: number;
  cacheMaxBytes?: Size;
  cacheMaxEntries?: number;
  maxHeaderBytes?: Size;
  maxHeaderCount?: number;
  headersTimeout?: Duration;
  requestTimeout?: Duration;
  tls?: { certFile: string; keyFile: string; reloadInterval?: Duration };
}

type Defaulted = Required<Omit<RunnerOptions, "control" | "tls">> & Pick<RunnerOptions, "control" | "tls">;

/** Fills in every default; the result still holds the written units. */
export function withDefaults(options: RunnerOptions): Defaulted {
  return {
    nodeId: options.nodeId,
    pop: options.pop,
    labels: options.labels ?? {},
    httpHost: options.httpHost ?? "0.0.0.0",
    httpPort: options.httpPort ?? 8080,
    cacheDir: options.cacheDir ?? ".edgeplane/runner-cache",
    control: options.control,
    reconnectMinDelay: options.reconnectMinDelay ?? "500ms",
    reconnectMaxDelay: options.reconnectMaxDelay ?? "30s",
    heartbeatInterval: options.heartbeatInterval ?? "30s",
    responseMaxBytes: options.responseMaxBytes ?? "8MiB",
    artifactMaxBytes: options.artifactMaxBytes ?? "64MiB",
    downloadAttempts: options.downloadAttempts ?? 5,
    downloadRetryMinDelay: options.downloadRetryMinDelay ?? "1s",
    downloadRetryMaxDelay: options.downloadRetryMaxDelay ?? "60s",
    logger: options.logger ?? createLogger("edge-runner"),
    metricsHost: options.metricsHost ?? options.httpHost ?? "0.0.0.0",
    // An ephemeral data plane (tests, several runners on one host) gets an ephemeral metrics port.
    metricsPort: options.metricsPort !== undefined ? options.metricsPort : options.httpPort === 0 ? 0 : 9090,
    // The main thread does the HTTP work; the other cores run guests.
    workers: options.workers ?? Math.max(1, availableParallelism() - 1),
    spareWorkers: options.spareWorkers ?? 1,
    maxHotInstances: options.maxHotInstances ?? 256,
    maxHotMemory: options.maxHotMemory ?? "1GiB",
    queueDepth: options.queueDepth ?? 128,
    cacheMaxBytes: options.cacheMaxBytes ?? "1GiB",
    cacheMaxEntries: options.cacheMaxEntries ?? 1000,
    maxHeaderBytes: options.maxHeaderBytes ?? "16KiB",
    maxHeaderCount: options.maxHeaderCount ?? 100,
    headersTimeout: options.headersTimeout ?? "10s",
    requestTimeout: options.requestTimeout ?? "30s",
    tls: options.tls ? { reloadInterval: "10s", ...options.tls } : undefined,
  };
}

/** The options the runner's parts actually read: numbers in milliseconds and bytes. */
export interface CompiledRunnerOptions {
  nodeId: string;
  pop: string;
  labels: Record<string, string>;
  httpHost: string;
  httpPort: number;
  cacheDir: string;
  control:
    | { address: string; insecure?: boolean; tls?: { ca: string; cert: string; key: string } }
    | undefined;
  reconnectMinDelayMs: number;
  reconnectMaxDelayMs: number;
  heartbeatIntervalMs: number;
  responseMaxBytes: number;
  artifactMaxBytes: number;
  downloadAttempts: number;
  downloadRetryMinDelayMs: number;
  downloadRetryMaxDelayMs: number;
  logger: Logger;
  metricsHost: string;
  /** null: no metrics server. */
  metricsPort: number | null;
  workers: number;
  spareWorkers: number;
  maxHotInstances: number;
  maxHotMemoryBytes: number;
  queueDepth: number;
  cacheMaxBytes: number;
  cacheMaxEntries: number;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  tls: { certFile: string; keyFile: string; reloadIntervalMs: number } | undefined;
}

function invalid(message: string): never {
  throw edgeError("EDGE_ERR_CONFIG_INVALID", message);
}

/** Parses units and rejects values the runner cannot work with, naming the option. */
export function compileRunnerOptions(options: RunnerOptions): CompiledRunnerOptions {
  const o = withDefaults(options);
  if (typeof o.nodeId !== "string" || o.nodeId === "") invalid("nodeId: expected a non-empty string");
  if (typeof o.pop !== "string" || o.pop === "") invalid("pop: expected a non-empty string");
  if (!Number.isInteger(o.httpPort) || o.httpPort < 0 || o.httpPort > 65535) {
    invalid(`httpPort: expected an integer 0..65535, got ${JSON.stringify(o.httpPort)}`);
  }
  if (o.control) {
    if (!/^.+:\d+$/.test(o.control.address)) {
      invalid(`control.address: expected "host:port", got ${JSON.stringify(o.control.address)}`);
    }
    if (o.control.insecure !== true && !o.control.tls)
      invalid(
        "control: give tls ({ ca, cert, key }; see edgectl certs init) or set insecure for plaintext gRPC",
      );
    if (o.control.tls && (!o.control.tls.ca || !o.control.tls.cert || !o.control.tls.key))
      invalid("control.tls: ca, cert and key are all required");
  }
  if (!Number.isInteger(o.downloadAttempts) || o.downloadAttempts < 1) {
    invalid(`downloadAttempts: expected an integer >= 1, got ${JSON.stringify(o.downloadAttempts)}`);
  }
  if (
    o.metricsPort !== null &&
    (!Number.isInteger(o.metricsPort) || o.metricsPort < 0 || o.metricsPort > 65535)
  ) {
    invalid(`metricsPort: expected an integer 0..65535 or null, got ${JSON.stringify(o.metricsPort)}`);
  }
  const atLeast = (name: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min)
      invalid(`${name}: expected an integer >= ${min}, got ${JSON.stringify(value)}`);
  };
  atLeast("workers", o.workers, 1);
  atLeast("spareWorkers", o.spareWorkers, 0);
  atLeast("maxHotInstances", o.maxHotInstances, 1);
  atLeast("queueDepth", o.queueDepth, 0);
  atLeast("cacheMaxEntries", o.cacheMaxEntries, 1);
  atLeast("maxHeaderCount", o.maxHeaderCount, 1);
  if (o.tls && (typeof o.tls.certFile !== "string" || typeof o.tls.keyFile !== "string")) {
    invalid("tls: expected { certFile, keyFile } paths");
  }
  const compiled: CompiledRunnerOptions = {
    nodeId: o.nodeId,
    pop: o.pop,
    labels: { ...o.labels },
    httpHost: o.httpHost,
    httpPort: o.httpPort,
    cacheDir: o.cacheDir,
    control: o.control ? { ...o.control } : undefined,
    reconnectMinDelayMs: parseDuration(o.reconnectMinDelay, "reconnectMinDelay"),
    reconnectMaxDelayMs: parseDuration(o.reconnectMaxDelay, "reconnectMaxDelay"),
    heartbeatIntervalMs: parseDuration(o.heartbeatInterval, "heartbeatInterval"),
    responseMaxBytes: parseSize(o.responseMaxBytes, "responseMaxBytes"),
    artifactMaxBytes: parseSize(o.artifactMaxBytes, "artifactMaxBytes"),
    downloadAttempts: o.downloadAttempts,
    downloadRetryMinDelayMs: parseDuration(o.downloadRetryMinDelay, "downloadRetryMinDelay"),
    downloadRetryMaxDelayMs: parseDuration(o.downloadRetryMaxDelay, "downloadRetryMaxDelay"),
    logger: o.logger,
    metricsHost: o.metricsHost,
    metricsPort: o.metricsPort,
    workers: o.workers,
    spareWorkers: o.spareWorkers,
    maxHotInstances: o.maxHotInstances,
    maxHotMemoryBytes: parseSize(o.maxHotMemory, "maxHotMemory"),
    queueDepth: o.queueDepth,
    cacheMaxBytes: parseSize(o.cacheMaxBytes, "cacheMaxBytes"),
    cacheMaxEntries: o.cacheMaxEntries,
    maxHeaderBytes: parseSize(o.maxHeaderBytes, "maxHeaderBytes"),
    maxHeaderCount: o.maxHeaderCount,
    headersTimeoutMs: parseDuration(o.headersTimeout, "headersTimeout"),
    requestTimeoutMs: parseDuration(o.requestTimeout, "requestTimeout"),
    tls: o.tls
      ? {
          certFile: o.tls.certFile,
          keyFile: o.tls.keyFile,
          reloadIntervalMs: parseDuration(o.tls.reloadInterval ?? "10s", "tls.reloadInterval"),
        }
      : undefined,
  };
  if (compiled.reconnectMinDelayMs > compiled.reconnectMaxDelayMs) {
    invalid("reconnectMinDelay: must not exceed reconnectMaxDelay");
  }
  if (compiled.downloadRetryMinDelayMs > compiled.downloadRetryMaxDelayMs) {
    invalid("downloadRetryMinDelay: must not exceed downloadRetryMaxDelay");
  }
  if (compiled.heartbeatIntervalMs < 1) invalid("heartbeatInterval: must be at least 1ms");
  if (compiled.maxHeaderBytes < 1024) invalid("maxHeaderBytes: must be at least 1KiB");
  if (compiled.tls && compiled.tls.reloadIntervalMs < 1) invalid("tls.reloadInterval: must be at least 1ms");
  return compiled;
}

/**
 * proto3 cannot tell "unset" from 0, so a FunctionSpec limit of 0 means "not given" and the
 * runner uses these (the same defaults the manifest documents for `spec.limits`).
 */
export const functionLimitDefaults = {
  memoryPages: 16,
  maxExecutionMs: 50,
  maxRequestBytes: 1_048_576,
  maxInstances: 32,
} as const;
