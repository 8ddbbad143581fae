// edgectl runner: one edge runner, connected to a control plane over gRPC.

import { readFile } from "node:fs/promises";
import path from "node:path";
import type { RunnerOptions } from "../edge-runner/index.ts";
import type { Command } from "./args.ts";
import { UsageError } from "./exit.ts";
import { onShutdown } from "./shutdown.ts";

export const runner: Command = {
  name: "runner",
  summary: "run an edge runner connected to a control plane",
  usage: "--node-id ID --pop POP [options]",
  description: `With --tls-dir the runner presents runner-<node id>.{crt,key} and trusts ca.crt, as
\`edgectl certs init\` names them. Without --control it serves only what its cache holds.`,
  options: {
    config: {
      type: "string",
      arg: "FILE",
      help: "YAML file of runner options (docs/configuration.md: heartbeatInterval, limits, …); flags override it",
    },
    control: { type: "string", arg: "HOST:PORT", help: "the control plane's gRPC address" },
    "node-id": { type: "string", arg: "ID", help: "this node's id (required)" },
    pop: { type: "string", arg: "POP", help: "the POP this node is in (required)" },
    label: { type: "string", arg: "K=V", multiple: true, help: "a label placement selectors match" },
    port: { type: "string", arg: "PORT", default: "8080", help: "HTTP port of the functions" },
    "metrics-port": { type: "string", arg: "PORT", default: "9090", help: "Prometheus metrics port" },
    host: { type: "string", arg: "ADDR", default: "0.0.0.0", help: "HTTP listen address" },
    "cache-dir": { type: "string", arg: "DIR", default: ".edgeplane/runner-cache", help: "artifact cache" },
    "tls-dir": { type: "string", arg: "DIR", help: "ca.crt and runner-<node id>.{crt,key}" },
    insecure: { type: "boolean", help: "plaintext gRPC (local development only)" },
  },
  examples: [
    "edgectl runner --control localhost:50051 --tls-dir certs --node-id tokyo-1a --pop tokyo-1 --label region=jp",
  ],
  async run(args) {
    const nodeId = args.string("node-id");
    const pop = args.string("pop");
    if (!nodeId || !pop) throw new UsageError("runner needs --node-id and --pop");
    const labels: Record<string, string> = {};
    for (const l of args.list("label")) {
      const [k, ...v] = l.split("=");
      if (!k || v.length === 0) throw new UsageError(`--label ${l}: expected key=value`);
      labels[k] = v.join("=");
    }
    const control = args.string("control");
    const tlsDir = args.string("tls-dir");
    const { createRunner } = await import("../edge-runner/index.ts");
    const config = args.string("config");
    const { parse: parseYaml } = await import("yaml");
    const fromFile: Partial<RunnerOptions> = config ? (parseYaml(await readFile(config, "utf8")) ?? {}) : {};
    const node = createRunner({
      ...fromFile,
      nodeId,
      pop,
      labels: { ...fromFile.labels, ...labels },
      httpHost: args.string("host")!,
      httpPort: Number(args.string("port")),
      metricsPort: Number(args.string("metrics-port")),
      cacheDir: args.string("cache-dir")!,
      ...(control
        ? {
            control: {
              address: control,
              insecure: args.flag("insecure"),
              // edgectl certs init names them ca.crt and runner-<node id>.{crt,key}.
              ...(tlsDir
                ? {
                    tls: {
                      ca: path.join(tlsDir, "ca.crt"),
                      cert: path.join(tlsDir, `runner-${nodeId}.crt`),
                      key: path.join(tlsDir, `runner-${nodeId}.key`),
                    },
                  }
                : {}),
            },
          }
        : {}),
    });
    const { httpPort } = await node.start();
    process.stderr.write(`edge runner ${nodeId} (${pop}) serving on :${httpPort}\n`);
    await onShutdown(() => node.stop());
    return 0;
  },
};
