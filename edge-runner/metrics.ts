// The runner's Prometheus metrics, with exactly the names of DESIGN.md "Metrics", on their own
// HTTP server (default :9090) so the data plane's routes and the scrape never meet.
//
// Each runner has its own registry (several runners may share a process, as in tests). On the
// request path nothing is looked up by label: a function version's label sets are resolved once,
// when it is loaded (CONVENTIONS.md "Hot path"). Seed Property 10 (Requirement 8.1): a request
// routed to a function adds exactly one to `wasm_invoke_count_total` and one observation to
// `wasm_invoke_latency_seconds`, whatever its outcome (`status` is the HTTP status sent).

import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { EvictionReason } from "./pool.ts";

export interface MetricSources {
  controlConnected(): boolean;
  cacheBytes(): number;
  hotInstances(): Array<{ function: string; version: string; count: number }>;
}

/** Recording for one function version, label sets resolved up front. */
export interface VersionMetrics {
  /** One invocation: its HTTP status and how long it took. */
  record(status: number, seconds: number): void;
  /** Drops the version's series (it is no longer deployed). */
  remove(): void;
  /**
   * Requests, 5xx answers and the p99 latency (ms, the upper bound of its histogram bucket)
   * since the previous call: the counters a heartbeat reports, which rollouts gate on.
   */
  take(): { requests: number; errors: number; p99Ms: number };
}

// Latency buckets from 0.25 ms (a hot hello) to the 60 s manifest maximum.
const LATENCY_BUCKETS = [
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60,
];

export class RunnerMetrics {
  readonly registry = new Registry();
  readonly invokeCount = new Counter({
    name: "wasm_invoke_count_total",
    help: "Requests routed to a function version, by the HTTP status answered.",
    labelNames: ["function", "version", "status"] as const,
    registers: [this.registry],
  });
  readonly invokeLatency = new Histogram({
    name: "wasm_invoke_latency_seconds",
    help: "Time from a request's arrival to its response, for requests routed to a function version.",
    labelNames: ["function", "version"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly coldStarts = new Counter({
    name: "wasm_cold_starts_total",
    help: "edge-v1 instances created (at deploy, on a new thread, after a trap, timeout or eviction).",
    registers: [this.registry],
  });
  readonly hotInstances = new Gauge({
    name: "wasm_hot_instances",
    help: "Hot edge-v1 instances held by executor threads.",
    labelNames: ["function", "version"] as const,
    registers: [this.registry],
  });
  readonly instanceEvictions = new Counter({
    name: "wasm_instance_evictions_total",
    help: "Hot instances dropped: lru_count, lru_memory, trap, timeout, killed (thread stopped), undeployed.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly cacheBytes = new Gauge({
    name: "wasm_cache_bytes",
    help: "Bytes of artifacts in the local cache.",
    registers: [this.registry],
  });
  readonly cacheEvictions = new Counter({
    name: "wasm_cache_evictions_total",
    help: "Artifacts deleted from the local cache to stay within cacheMaxBytes / cacheMaxEntries.",
    registers: [this.registry],
  });
  readonly cacheCorrupt = new Counter({
    name: "wasm_cache_corrupt_total",
    help: "Cached artifacts that no longer hashed to their sha256 when read; each was deleted and fetched again.",
    registers: [this.registry],
  });
  readonly controlConnected = new Gauge({
    name: "edge_control_connected",
    help: "1 while the control stream is open, else 0.",
    registers: [this.registry],
  });
  readonly downloadRetries = new Counter({
    name: "artifact_download_retries_total",
    help: "Artifact download tries that failed and were retried.",
    registers: [this.registry],
  });

  #sources: MetricSources | null = null;

  constructor() {
    // Label-less counters show 0 from the first scrape, not only after their first event.
    this.coldStarts.inc(0);
    this.cacheEvictions.inc(0);
    this.cacheCorrupt.inc(0);
    this.downloadRetries.inc(0);
    this.controlConnected.set(0);
    this.cacheBytes.set(0);
  }

  /** Where the gauges read their values at scrape time (state the runner holds anyway). */
  observe(sources: MetricSources): void {
    this.#sources = sources;
  }

  /** Brings the gauges up to date; called before every scrape. */
  refresh(): void {
    const s = this.#sources;
    if (s === null) return;
    this.controlConnected.set(s.controlConnected() ? 1 : 0);
    this.cacheBytes.set(s.cacheBytes());
    this.hotInstances.reset();
    for (const h of s.hotInstances()) this.hotInstances.labels(h.function, h.version).set(h.count);
  }

  forVersion(fn: string, version: string): VersionMetrics {
    const latency = this.invokeLatency.labels(fn, version);
    // Status children by code, made on first use: a version answers with a handful of codes.
    const counts = new Map<number, Counter.Internal>();
    const { invokeCount, invokeLatency } = this;
    let requests = 0;
    let errors = 0;
    // Per-interval bucket counts (the same buckets as the histogram) for the heartbeat's p99.
    const buckets = new Uint32Array(LATENCY_BUCKETS.length + 1);
    return {
      record(status, seconds) {
        requests++;
        if (status >= 500) errors++;
        let b = 0;
        while (b < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[b]!) b++;
        buckets[b]!++;
        let c = counts.get(status);
        if (c === undefined) {
          c = invokeCount.labels(fn, version, String(status));
          counts.set(status, c);
        }
        c.inc();
        latency.observe(seconds);
      },
      remove() {
        for (const status of counts.keys()) invokeCount.remove(fn, version, String(status));
        invokeLatency.remove(fn, version);
      },
      take() {
        let p99Ms = 0;
        if (requests > 0) {
          const rank = Math.ceil(requests * 0.99);
          let seen = 0;
          for (let b = 0; b < buckets.length; b++) {
            seen += buckets[b]!;
            if (seen >= rank) {
              p99Ms = (LATENCY_BUCKETS[b] ?? LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1]! * 2) * 1000;
              break;
            }
          }
        }
        const taken = { requests, errors, p99Ms };
        requests = 0;
        errors = 0;
        buckets.fill(0);
        return taken;
      },
    };
  }

  evicted(reason: EvictionReason): void {
    this.instanceEvictions.inc({ reason });
  }
}

/** `GET /metrics` (Prometheus text format) and `GET /healthz`; everything else 404. */
export async function serveMetrics(
  metrics: RunnerMetrics,
  host: string,
  port: number,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
    } else if (path === "/metrics") {
      metrics.refresh();
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(port, host);
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([err]) => {
      throw err;
    }),
  ]);
  return { server, port: (server.address() as AddressInfo).port };
}
