// Runner configuration in three steps (CONVENTIONS.md "Config in three steps"):
// RunnerOptions (what a person writes, with units) → withDefaults → compileRunnerOptions
// (plain numbers in ms and bytes). Nothing else in edge-runner/ reads RunnerOptions.

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
 * | `control.insecure` | — | plaintext gRPC; must be `true` for now (TLS is a later issue) |
 * | `reconnectMinDelay` | `"500ms"` | first delay before reconnecting to the control plane |
 * | `reconnectMaxDelay` | `"30s"` | ceiling of the doubling reconnect delay |
 * | `heartbeatInterval` | `"30s"` | how often a connected runner sends a Heartbeat |
 * | `responseMaxBytes` | `"8MiB"` | largest response a function may write; more → 502 |
 * | `artifactMaxBytes` | `"64MiB"` | largest artifact the runner downloads |
 * | `downloadAttempts` | `5` | tries per artifact download before reporting DOWNLOAD_FAILED (seed Property 13) |
 * | `downloadRetryMinDelay` | `"1s"` | delay before the second try; doubles each try |
 * | `downloadRetryMaxDelay` | `"60s"` | ceiling of the doubling download delay |
 * | `logger` | pino on stderr, level from EDGE_LOG_LEVEL | where the runner and guest `log()` calls write |
 */
export interface RunnerOptions {
  nodeId: string;
  pop: string;
  labels?: Record<string, string>;
  httpHost?: string;
  httpPort?: number;
  cacheDir?: string;
  control?: { address: string; insecure: boolean };
  reconnectMinDelay?: Duration;
  reconnectMaxDelay?: Duration;
  heartbeatInterval?: Duration;
  responseMaxBytes?: Size;
  artifactMaxBytes?: Size;
  downloadAttempts?: number;
  downloadRetryMinDelay?: Duration;
  downloadRetryMaxDelay?: Duration;
  logger?: Logger;
}

type Defaulted = Required<Omit<RunnerOptions, "control">> & Pick<RunnerOptions, "control">;

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
  control: { address: string; insecure: boolean } | undefined;
  reconnectMinDelayMs: number;
  reconnectMaxDelayMs: number;
  heartbeatIntervalMs: number;
  responseMaxBytes: number;
  artifactMaxBytes: number;
  downloadAttempts: number;
  downloadRetryMinDelayMs: number;
  downloadRetryMaxDelayMs: number;
  logger: Logger;
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
    if (o.control.insecure !== true)
      invalid("control.insecure: only insecure (plaintext) gRPC is supported so far");
  }
  if (!Number.isInteger(o.downloadAttempts) || o.downloadAttempts < 1) {
    invalid(`downloadAttempts: expected an integer >= 1, got ${JSON.stringify(o.downloadAttempts)}`);
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
  };
  if (compiled.reconnectMinDelayMs > compiled.reconnectMaxDelayMs) {
    invalid("reconnectMinDelay: must not exceed reconnectMaxDelay");
  }
  if (compiled.downloadRetryMinDelayMs > compiled.downloadRetryMaxDelayMs) {
    invalid("downloadRetryMinDelay: must not exceed downloadRetryMaxDelay");
  }
  if (compiled.heartbeatIntervalMs < 1) invalid("heartbeatInterval: must be at least 1ms");
  return compiled;
}

/**
 * proto3 cannot tell "unset" from 0, so a FunctionSpec limit of 0 means "not given" and the
 * runner uses these (the same defaults the manifest documents for `spec.limits`).
 */
export const functionLimitDefaults = {
  maxRequestBytes: 1_048_576,
  maxInstances: 32,
} as const;
