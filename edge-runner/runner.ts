// The edge runner: composes the cache, the downloader, the executor pool and engine, the route
// table, the HTTP server, the metrics server and the control client.
//
// `apply` is level-triggered (DESIGN.md "Control protocol"): given the full desired state it
// makes every function version available (local cache, else download + verify + cache), loads
// the ones not loaded yet, then swaps routes and functions in one assignment, so a request sees
// either the old state or the new one, never a mix. Applies run one at a time, in arrival order.

import { once } from "node:events";
import type { Server } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { type EdgeError, edgeError } from "../lib/errors.ts";
import { canonicalJson, sha256Hex } from "../lib/hash.ts";
import type { Logger } from "../lib/log.ts";
import type {
  Ack,
  DesiredState,
  FunctionResult,
  FunctionResultStatus,
  FunctionSpec,
  RouteSpec,
} from "../proto/index.ts";
import { ArtifactCache } from "./cache.ts";
import { type CompiledRunnerOptions, compileRunnerOptions, type RunnerOptions } from "./config.ts";
import { ControlClient } from "./control-client.ts";
import { downloadArtifact } from "./download.ts";
import { RunnerMetrics, serveMetrics } from "./metrics.ts";
import { ExecutorPool } from "./pool.ts";
import { compileRoutes } from "./router.ts";
import { createEngine, type Engine, type FunctionStats } from "./runtime.ts";
import { createEdgeServer, type EdgeServer, type ServedFunction, type ServingState } from "./server.ts";
import { Snapshot } from "./snapshot.ts";
import { loadTls, watchTls } from "./tls.ts";
import { Tracing } from "./trace.ts";

export interface FunctionVersionStats extends FunctionStats {
  function_id: string;
  name: string;
  version: string;
}

export interface RunnerStats {
  /** The generation being served ("0" before the first apply). */
  generation: string;
  routes: number;
  functions: FunctionVersionStats[];
  inFlight: number;
  controlConnected: boolean;
  /** Executor threads: serving, spare, starting, and how many were replaced since start. */
  threads: { active: number; spare: number; starting: number; replaced: number };
  /** Hot instances across all versions and their total linear memory. */
  hot: { count: number; bytes: number };
  cache: { bytes: number; entries: number };
}

export interface Runner {
  /**
   * Restores the last applied state from the local cache, listens (data plane and metrics),
   * connects to the control plane. `metricsPort` is null when the metrics server is off.
   */
  start(): Promise<{ httpPort: number; metricsPort: number | null }>;
  /** Disconnects, stops listening and drops every hot instance. */
  stop(): Promise<void>;
  /** Converges on `desired`; one result per function. A generation older than the served one is ignored. */
  apply(desired: DesiredState): Promise<Ack>;
  readonly generation: string;
  stats(): RunnerStats;
  /** The runner's Prometheus registry (also served on the metrics port). */
  readonly metrics: RunnerMetrics;
}

export function createRunner(options: RunnerOptions): Runner {
  return new EdgeRunner(compileRunnerOptions(options));
}

/** At most this many artifacts are fetched and compiled at once during an apply. */
const APPLY_CONCURRENCY = 8;

interface Outcome {
  result: FunctionResult;
  fn?: ServedFunction;
  key: string;
}

// Function versions are immutable, so a spec that is equal in everything but its (presigned,
// ever-changing) artifact URL is the same loaded function and is not loaded again.
function specKey(spec: FunctionSpec): string {
  return sha256Hex(canonicalJson({ ...spec, artifact_url: "" }));
}

function parseGeneration(value: string): bigint {
  if (!/^\d+$/.test(value)) {
    throw edgeError(
      "EDGE_ERR_CONTROL_PROTOCOL",
      `generation must be a decimal integer, got ${JSON.stringify(value)}`,
    );
  }
  return BigInt(value);
}

class EdgeRunner implements Runner {
  readonly #options: CompiledRunnerOptions;
  readonly #logger: Logger;
  readonly #cache: ArtifactCache;
  readonly #snapshot: Snapshot;
  readonly metrics = new RunnerMetrics();
  #pool: ExecutorPool | null = null;
  #engine: Engine | null = null;
  #http: EdgeServer | null = null;
  #metricsServer: Server | null = null;
  #stopTlsWatch: (() => void) | null = null;
  #control: ControlClient | null = null;
  #serving: ServingState = { routes: compileRoutes([]), functions: new Map() };
  /** Loaded function versions by specKey, to reuse across applies. */
  #loaded = new Map<string, ServedFunction>();
  /** Function versions of the state being served, which cache eviction must keep. */
  #pinned = new Set<string>();
  #generation = "0";
  #lastAck: Ack = { generation: "0", results: [] };
  #applying: Promise<unknown> = Promise.resolve();
  #httpAddress = "";

  constructor(options: CompiledRunnerOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#cache = new ArtifactCache(options.cacheDir, options.logger, {
      maxBytes: options.cacheMaxBytes,
      maxEntries: options.cacheMaxEntries,
      onCorrupt: () => this.metrics.cacheCorrupt.inc(),
    });
    this.#snapshot = new Snapshot(options.cacheDir, options.logger);
    this.metrics.observe({
      controlConnected: () => this.#control?.connected ?? false,
      cacheBytes: () => this.#cache.usage().bytes,
      hotInstances: () =>
        [...this.#serving.functions.values()].map(({ fn }) => ({
          function: fn.spec.name || fn.spec.function_id,
          version: fn.spec.version,
          count: fn.stats().hotInstances,
        })),
    });
  }

  get generation(): string {
    return this.#generation;
  }

  stats(): RunnerStats {
    return {
      generation: this.#generation,
      routes: this.#serving.routes.size,
      functions: [...this.#serving.functions.values()].map(({ fn }) => ({
        function_id: fn.spec.function_id,
        name: fn.spec.name,
        version: fn.spec.version,
        ...fn.stats(),
      })),
      inFlight: this.#http?.inFlight() ?? 0,
      controlConnected: this.#control?.connected ?? false,
      threads: this.#pool?.threads() ?? { active: 0, spare: 0, starting: 0, replaced: 0 },
      hot: this.#pool?.hotUsage() ?? { count: 0, bytes: 0 },
      cache: this.#cache.usage(),
    };
  }

  /** The engine, with its executor threads started on first use. */
  #getEngine(): Engine {
    if (this.#engine) return this.#engine;
    const o = this.#options;
    const metrics = this.metrics;
    this.#pool = new ExecutorPool({
      workers: o.workers,
      spareWorkers: o.spareWorkers,
      maxHotInstances: o.maxHotInstances,
      maxHotMemoryBytes: o.maxHotMemoryBytes,
      queueDepth: o.queueDepth,
      logger: this.#logger,
      events: {
        instantiated: (v) => {
          if (v.config.lane === "edge-v1") metrics.coldStarts.inc();
        },
        evicted: (_v, reason) => metrics.evicted(reason),
      },
    });
    this.#engine = createEngine({
      pool: this.#pool,
      responseMaxBytes: o.responseMaxBytes,
      logger: this.#logger,
    });
    return this.#engine;
  }

  async start(): Promise<{ httpPort: number; metricsPort: number | null }> {
    try {
      return await this.#start();
    } catch (err) {
      // Half a runner (a metrics port bound, threads started) is worse than none.
      await this.stop().catch(() => {});
      throw err;
    }
  }

  async #start(): Promise<{ httpPort: number; metricsPort: number | null }> {
    const o = this.#options;
    const tls = o.tls ? await loadTls(o.tls) : undefined;
    this.#http = createEdgeServer({
      current: () => this.#serving,
      logger: this.#logger,
      maxHeaderBytes: o.maxHeaderBytes,
      maxHeaderCount: o.maxHeaderCount,
      headersTimeoutMs: o.headersTimeoutMs,
      requestTimeoutMs: o.requestTimeoutMs,
      tracing: new Tracing(),
      ...(tls ? { tls } : {}),
    });
    let metricsPort: number | null = null;
    if (o.metricsPort !== null) {
      const served = await serveMetrics(this.metrics, o.metricsHost, o.metricsPort);
      this.#metricsServer = served.server;
      metricsPort = served.port;
    }

    // Learn what the cache holds (hashing each file), then serve the last applied state from it
    // before the control plane answers — or if it never does.
    const inventory = await this.#cache.list();
    await this.#getPool().ready();
    const saved = await this.#snapshot.load();
    if (saved) await this.#serialized(() => this.#restore(saved));
    await this.#evictCache();

    const { server } = this.#http;
    server.listen(o.httpPort, o.httpHost);
    await Promise.race([
      once(server, "listening"),
      once(server, "error").then(([err]) => {
        throw err;
      }),
    ]);
    const httpPort = (server.address() as AddressInfo).port;
    if (o.tls)
      this.#stopTlsWatch = await watchTls(
        server as unknown as HttpsServer,
        o.tls,
        o.tls.reloadIntervalMs,
        this.#logger,
      );
    this.#httpAddress = `${o.httpHost}:${httpPort}`;
    this.#logger.info(
      {
        http: this.#httpAddress,
        tls: o.tls !== undefined,
        metrics: metricsPort === null ? null : `${o.metricsHost}:${metricsPort}`,
        generation: this.#generation,
        cached: inventory.length,
        workers: o.workers,
      },
      "edge runner listening",
    );

    if (this.#options.control) {
      this.#control = new ControlClient({
        address: this.#options.control.address,
        ...(this.#options.control.tls ? { tls: this.#options.control.tls } : {}),
        reconnectMinDelayMs: this.#options.reconnectMinDelayMs,
        reconnectMaxDelayMs: this.#options.reconnectMaxDelayMs,
        heartbeatIntervalMs: this.#options.heartbeatIntervalMs,
        logger: this.#logger,
        hello: async () => ({
          node_id: this.#options.nodeId,
          pop: this.#options.pop,
          labels: this.#options.labels,
          generation: this.#generation,
          inventory: this.#cache.held(),
          http_address: this.#httpAddress,
        }),
        heartbeat: async () => ({
          inventory: this.#cache.held(),
          in_flight: this.#http?.inFlight() ?? 0,
          counters: this.#takeCounters(),
        }),
        apply: (desired) => this.apply(desired),
      });
      this.#control.start();
    }
    return { httpPort, metricsPort };
  }

  async stop(): Promise<void> {
    await this.#control?.stop();
    this.#control = null;
    this.#stopTlsWatch?.();
    this.#stopTlsWatch = null;
    for (const server of [this.#http?.server, this.#metricsServer]) {
      if (!server?.listening) continue;
      const closed = once(server, "close");
      server.close();
      server.closeAllConnections();
      await closed;
    }
    this.#metricsServer = null;
    await this.#applying.catch(() => {});
    for (const served of this.#loaded.values()) {
      served.fn.close();
      served.metrics?.remove();
    }
    this.#loaded.clear();
    this.#serving = { routes: compileRoutes([]), functions: new Map() };
    await this.#pool?.close();
    this.#pool = null;
    this.#engine = null;
  }

  #getPool(): ExecutorPool {
    this.#getEngine();
    return this.#pool!;
  }

  /** Keeps the local cache within its limits, never deleting what is being served. */
  async #evictCache(): Promise<void> {
    const gone = await this.#cache.evict((id, version) => this.#pinned.has(`${id}@${version}`));
    if (gone.length > 0) this.metrics.cacheEvictions.inc(gone.length);
  }

  apply(desired: DesiredState): Promise<Ack> {
    return this.#serialized(async () => {
      const ack = await this.#converge(desired, { cacheOnly: false });
      if (ack.generation === desired.generation) {
        await this.#snapshot.save(desired).catch((err) => {
          this.#logger.warn(
            { err },
            "could not save the applied state; a restart will wait for the control plane",
          );
        });
      }
      return ack;
    });
  }

  #serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#applying.then(task, task);
    this.#applying = run.catch(() => {});
    return run;
  }

  async #restore(saved: DesiredState): Promise<void> {
    const ack = await this.#converge(saved, { cacheOnly: true });
    const missing = ack.results.filter((r) => r.status !== "OK");
    if (missing.length > 0) {
      // Serve what the cache had, but do not claim the generation: the control plane then
      // sends the full state again when it is reachable.
      this.#generation = "0";
      this.#lastAck = { generation: "0", results: ack.results };
    }
    this.#logger.info(
      {
        generation: saved.generation,
        restored: ack.results.length - missing.length,
        missing: missing.length,
      },
      "restored the last applied state from the local cache",
    );
  }

  async #converge(desired: DesiredState, how: { cacheOnly: boolean }): Promise<Ack> {
    if (parseGeneration(desired.generation) < parseGeneration(this.#generation)) {
      this.#logger.debug(
        { generation: desired.generation, serving: this.#generation },
        "ignoring an older desired state",
      );
      return this.#lastAck;
    }

    const seen = new Set<string>();
    const outcomes = await mapLimit(desired.functions, APPLY_CONCURRENCY, (spec) => {
      if (seen.has(spec.function_id)) {
        return Promise.resolve(
          failed(spec, "INVALID_MODULE", "function_id appears twice in the desired state"),
        );
      }
      seen.add(spec.function_id);
      return this.#ensureLoaded(spec, how.cacheOnly);
    });

    const loaded = new Map<string, ServedFunction>();
    const functions = new Map<string, ServedFunction>();
    for (const o of outcomes) {
      if (o.fn === undefined) continue;
      loaded.set(o.key, o.fn);
      functions.set(o.fn.fn.spec.function_id, o.fn);
    }
    // A new version that failed to load (its artifact store down, a bad download) must not take
    // its function off the air: the version served until now keeps its routes, and the ack
    // still reports the failure. Matched by project and name; only if nothing of that name loaded.
    const stand = new Map<string, string>();
    for (const o of outcomes) {
      if (o.fn !== undefined) continue;
      const spec = desired.functions.find((f) => f.function_id === o.result.function_id);
      if (!spec) continue;
      const named = (f: FunctionSpec) => f.project === spec.project && f.name === spec.name;
      if ([...functions.values()].some((f) => named(f.fn.spec))) continue;
      const prior = [...this.#loaded.entries()].find(([, f]) => named(f.fn.spec));
      if (!prior) continue;
      loaded.set(prior[0], prior[1]);
      functions.set(prior[1].fn.spec.function_id, prior[1]);
      stand.set(spec.function_id, prior[1].fn.spec.function_id);
      this.#logger.warn(
        { function: spec.name, failed_version: spec.version, serving_version: prior[1].fn.spec.version },
        "new version not loaded; the previous version keeps serving",
      );
    }
    // A route to a function that failed to load is left out; the rest of the state still serves.
    const routes: RouteSpec[] = [];
    for (const desiredRoute of desired.routes) {
      const standIn = stand.get(desiredRoute.function_id);
      const route = standIn ? { ...desiredRoute, function_id: standIn } : desiredRoute;
      if (functions.has(route.function_id)) routes.push(route);
      else if (!desired.functions.some((f) => f.function_id === route.function_id)) {
        this.#logger.warn({ route }, "route names a function that is not in the desired state; skipped");
      }
    }

    const previous = this.#loaded;
    this.#serving = { routes: compileRoutes(routes), functions };
    this.#loaded = loaded;
    this.#pinned = new Set([
      ...desired.functions.map((f) => `${f.function_id}@${f.version}`),
      ...[...loaded.values()].map((f) => `${f.fn.spec.function_id}@${f.fn.spec.version}`),
    ]);
    for (const [key, served] of previous) {
      if (loaded.has(key)) continue;
      served.fn.close();
      served.metrics?.remove();
    }
    await this.#evictCache();

    const results = outcomes.map((o) => o.result);
    this.#generation = desired.generation;
    this.#lastAck = { generation: desired.generation, results };
    const failures = results.filter((r) => r.status !== "OK");
    this.#logger.info(
      {
        generation: desired.generation,
        functions: results.length,
        failed: failures.length,
        routes: routes.length,
      },
      "applied desired state",
    );
    for (const f of failures) this.#logger.warn({ result: f }, "function version not served");
    return this.#lastAck;
  }

  async #ensureLoaded(spec: FunctionSpec, cacheOnly: boolean): Promise<Outcome> {
    const key = specKey(spec);
    const current = this.#loaded.get(key);
    if (current) return { key, fn: current, result: ok(spec) };

    let bytes: Uint8Array;
    try {
      bytes = await this.#obtain(spec, cacheOnly);
    } catch (err) {
      const e = err as EdgeError;
      const status = e.code === "EDGE_ERR_ARTIFACT_SHA256_MISMATCH" ? "SHA256_MISMATCH" : "DOWNLOAD_FAILED";
      return failed(spec, status, e.message ?? String(err));
    }
    try {
      const fn = await this.#getEngine().load(spec, bytes);
      return {
        key,
        fn: { fn, metrics: this.metrics.forVersion(spec.name || spec.function_id, spec.version) },
        result: ok(spec),
      };
    } catch (err) {
      return failed(spec, "INVALID_MODULE", (err as Error).message ?? String(err));
    }
  }

  /** Per function version, requests and 5xx answers since the previous heartbeat (those with traffic). */
  #takeCounters(): {
    function_id: string;
    version: string;
    requests: string;
    errors: string;
    p99_ms: number;
  }[] {
    const out: { function_id: string; version: string; requests: string; errors: string; p99_ms: number }[] =
      [];
    for (const served of this.#loaded.values()) {
      const taken = served.metrics?.take();
      if (!taken || taken.requests === 0) continue;
      const { requests, errors, p99Ms } = taken;
      const spec = served.fn.spec;
      out.push({
        function_id: spec.function_id,
        version: spec.version,
        requests: String(requests),
        errors: String(errors),
        p99_ms: p99Ms,
      });
    }
    return out;
  }

  /** The verified module bytes: from the local cache, else downloaded, verified and cached. */
  async #obtain(spec: FunctionSpec, cacheOnly: boolean): Promise<Uint8Array> {
    const cached = await this.#cache.get(spec.function_id, spec.version, spec.sha256);
    if (cached) return cached;
    if (cacheOnly) throw edgeError("EDGE_ERR_ARTIFACT_NOT_FOUND", "not in the local cache");

    const bytes = await downloadArtifact(spec.artifact_url, {
      maxBytes: this.#options.artifactMaxBytes,
      attempts: this.#options.downloadAttempts,
      minDelayMs: this.#options.downloadRetryMinDelayMs,
      maxDelayMs: this.#options.downloadRetryMaxDelayMs,
      onRetry: (attempt, delayMs, error) => {
        this.metrics.downloadRetries.inc();
        this.#logger.warn(
          { function_id: spec.function_id, attempt, delay_ms: delayMs, err: error.message },
          "download failed; retrying",
        );
      },
    });
    try {
      // put() verifies the sha256 before writing anything.
      await this.#cache.put(spec.function_id, spec.version, bytes, spec.sha256);
    } catch (err) {
      if ((err as EdgeError).code === "EDGE_ERR_ARTIFACT_SHA256_MISMATCH") throw err;
      // The bytes are verified (put checks before writing): serve them, just not from disk next time.
      this.#logger.warn({ err, function_id: spec.function_id }, "could not cache a verified artifact");
    }
    return bytes;
  }
}

function ok(spec: FunctionSpec): FunctionResult {
  return { function_id: spec.function_id, version: spec.version, status: "OK", message: "" };
}

function failed(spec: FunctionSpec, status: FunctionResultStatus, message: string): Outcome {
  return { key: "", result: { function_id: spec.function_id, version: spec.version, status, message } };
}

/** Like Promise.all over `items.map(fn)`, with at most `limit` calls running at once; keeps order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
