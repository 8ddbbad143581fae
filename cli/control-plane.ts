// edgectl control-plane: the control plane alone (PostgreSQL or PGlite), for production.

import { readFile } from "node:fs/promises";
import path from "node:path";
import type { ControlPlaneOptions } from "../reconciler/index.ts";
import type { Command } from "./args.ts";
import { UsageError } from "./exit.ts";
import { onShutdown } from "./shutdown.ts";

export const controlPlane: Command = {
  name: "control-plane",
  summary: "run the control plane (API, webhooks, reconciler, gRPC control server)",
  usage: "[options]",
  description: `Options come from --config (docs/configuration.md) with the flags below overriding it.
The control protocol needs mutual TLS (--tls-dir, made by \`edgectl certs init\`) unless --insecure.`,
  options: {
    config: { type: "string", arg: "FILE", help: "YAML config file (projects, S3, builder, …)" },
    "database-url": {
      type: "string",
      arg: "URL",
      help: "PostgreSQL connection string (default: $EDGE_DATABASE_URL, else embedded PGlite)",
    },
    "http-port": { type: "string", arg: "PORT", help: "API and webhook port (default 8081)" },
    "grpc-port": { type: "string", arg: "PORT", help: "control protocol port (default 50051)" },
    "data-dir": {
      type: "string",
      arg: "DIR",
      help: "PGlite data, artifacts, git trees (default .edgeplane)",
    },
    "tls-dir": { type: "string", arg: "DIR", help: "ca.crt, control-plane.crt and control-plane.key" },
    insecure: { type: "boolean", help: "plaintext gRPC (local development only)" },
  },
  examples: [
    "edgectl control-plane --config edgeplane.yaml --tls-dir certs --database-url postgres://postgres@127.0.0.1:5432/edgeplane",
  ],
  async run(args) {
    const config = args.string("config");
    const { parse: parseYaml } = await import("yaml");
    const fromFile: ControlPlaneOptions = config ? (parseYaml(await readFile(config, "utf8")) ?? {}) : {};
    const databaseUrl = args.string("database-url") ?? process.env.EDGE_DATABASE_URL ?? fromFile.databaseUrl;
    const httpPort = args.string("http-port");
    const grpcPort = args.string("grpc-port");
    const dataDir = args.string("data-dir");
    const tlsDir = args.string("tls-dir");
    const options: ControlPlaneOptions = {
      ...fromFile,
      ...(databaseUrl ? { databaseUrl } : {}),
      ...(httpPort ? { httpPort: Number(httpPort) } : {}),
      ...(grpcPort ? { grpcPort: Number(grpcPort) } : {}),
      ...(dataDir ? { dataDir } : {}),
      ...(args.flag("insecure") ? { insecure: true } : {}),
      ...(tlsDir
        ? {
            tls: {
              ca: path.join(tlsDir, "ca.crt"),
              cert: path.join(tlsDir, "control-plane.crt"),
              key: path.join(tlsDir, "control-plane.key"),
            },
          }
        : {}),
    };
    if (!options.tls && !options.insecure) {
      throw new UsageError(
        "the control protocol needs mutual TLS: pass --tls-dir DIR (see edgectl certs init) or tls: in the config file; --insecure serves plaintext gRPC for local development",
      );
    }
    const { createControlPlane } = await import("../reconciler/index.ts");
    const cp = await createControlPlane(options);
    await cp.start();
    await onShutdown(() => cp.stop());
    return 0;
  },
};
