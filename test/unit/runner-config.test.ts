import test from "ava";
import { reconnectDelay } from "../../edge-runner/control-client.ts";
import { compileRunnerOptions, withDefaults } from "../../edge-runner/index.ts";
import { EdgeError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";

const logger = createLogger("runner-config-test", "silent");

test("config: fills every default and compiles units to milliseconds and bytes", (t) => {
  const defaults = withDefaults({ nodeId: "n", pop: "p", logger });
  t.like(defaults, {
    labels: {},
    httpHost: "0.0.0.0",
    httpPort: 8080,
    cacheDir: ".edgeplane/runner-cache",
    control: undefined,
    reconnectMinDelay: "500ms",
    reconnectMaxDelay: "30s",
    responseMaxBytes: "8MiB",
  });
  t.like(compileRunnerOptions({ nodeId: "n", pop: "p", logger }), {
    reconnectMinDelayMs: 500,
    reconnectMaxDelayMs: 30_000,
    heartbeatIntervalMs: 30_000,
    responseMaxBytes: 8 * 1024 * 1024,
    artifactMaxBytes: 64 * 1024 * 1024,
    downloadAttempts: 5,
    downloadRetryMinDelayMs: 1000,
    downloadRetryMaxDelayMs: 60_000,
  });
});

test("config: keeps what the operator wrote", (t) => {
  const compiled = compileRunnerOptions({
    nodeId: "n",
    pop: "p",
    labels: { region: "jp" },
    httpPort: 0,
    control: { address: "cp.internal:7443", insecure: true },
    reconnectMinDelay: "1s",
    reconnectMaxDelay: "2m",
    responseMaxBytes: "512KiB",
    logger,
  });
  t.like(compiled, {
    labels: { region: "jp" },
    httpPort: 0,
    control: { address: "cp.internal:7443", insecure: true },
    reconnectMinDelayMs: 1000,
    reconnectMaxDelayMs: 120_000,
    responseMaxBytes: 512 * 1024,
  });
});

for (const [name, bad] of [
  ["an empty nodeId", { nodeId: "" }],
  ["a port out of range", { httpPort: 70000 }],
  ["a control address without a port", { control: { address: "cp.internal", insecure: true } }],
  ["a TLS control connection (not supported yet)", { control: { address: "cp:1", insecure: false } }],
  ["a duration without a unit", { reconnectMinDelay: "5" }],
  ["a min delay above the max delay", { reconnectMinDelay: "1m", reconnectMaxDelay: "1s" }],
  ["a size that is not a size", { responseMaxBytes: "lots" }],
  ["zero download attempts", { downloadAttempts: 0 }],
  ["zero workers", { workers: 0 }],
  ["a metrics port out of range", { metricsPort: -1 }],
  ["a fractional queue depth", { queueDepth: 1.5 }],
  ["a header limit below 1 KiB", { maxHeaderBytes: 100 }],
  ["a cache size that is not a size", { cacheMaxBytes: "big" }],
  [
    "TLS without a key file",
    { tls: { certFile: "c.pem" } as unknown as { certFile: string; keyFile: string } },
  ],
] as const) {
  test(`config: rejects ${name} with EDGE_ERR_CONFIG_INVALID`, (t) => {
    const err = t.throws(() => compileRunnerOptions({ nodeId: "n", pop: "p", logger, ...bad }), {
      instanceOf: EdgeError,
    });
    t.is(err?.code, "EDGE_ERR_CONFIG_INVALID");
  });
}

test("config: runtime, metrics, cache, header and TLS options have documented defaults", (t) => {
  const compiled = compileRunnerOptions({ nodeId: "n", pop: "p", logger });
  t.like(compiled, {
    metricsHost: "0.0.0.0",
    metricsPort: 9090,
    spareWorkers: 1,
    maxHotInstances: 256,
    maxHotMemoryBytes: 1024 ** 3,
    queueDepth: 128,
    cacheMaxBytes: 1024 ** 3,
    cacheMaxEntries: 1000,
    maxHeaderBytes: 16 * 1024,
    maxHeaderCount: 100,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    tls: undefined,
  });
  t.true(compiled.workers >= 1);
  // An ephemeral data plane gets an ephemeral metrics port; null turns the server off.
  t.is(compileRunnerOptions({ nodeId: "n", pop: "p", logger, httpPort: 0 }).metricsPort, 0);
  t.is(compileRunnerOptions({ nodeId: "n", pop: "p", logger, metricsPort: null }).metricsPort, null);
  t.like(compileRunnerOptions({ nodeId: "n", pop: "p", logger, tls: { certFile: "c", keyFile: "k" } }).tls, {
    certFile: "c",
    keyFile: "k",
    reloadIntervalMs: 10_000,
  });
});

test("config: reconnect delays double from the minimum, stay within [min, max] and carry jitter", (t) => {
  t.is(reconnectDelay(0, 500, 30_000, 1), 500);
  t.is(reconnectDelay(3, 500, 30_000, 1), 4000);
  t.is(reconnectDelay(3, 500, 30_000, 0), 2000);
  t.is(reconnectDelay(20, 500, 30_000, 1), 30_000);
  for (let failures = 0; failures < 40; failures++) {
    for (const r of [0, 0.37, 0.99]) {
      const d = reconnectDelay(failures, 500, 30_000, r);
      t.true(d >= 500 && d <= 30_000, `failures=${failures} r=${r} gave ${d}`);
    }
  }
});
