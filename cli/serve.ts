// edgectl serve: control plane + runner in one process on embedded defaults (PGlite, a local
// artifact directory), serving one directory. What `npm start` runs.

import { watch } from "node:fs";
import path from "node:path";
import type { Command } from "./args.ts";
import { onShutdown } from "./shutdown.ts";

export const serve: Command = {
  name: "serve",
  summary: "run control plane + runner in one process, serving a directory",
  usage: "[dir] [options]",
  description: `Reconciles dir (default: example-repo) as project "local" (or the name of its Project
document) and serves its functions on --port. Functions whose toolchain is not installed are
skipped with a message. The API listens on --api-port.`,
  maxPositionals: 1,
  options: {
    port: { type: "string", arg: "PORT", default: "8080", help: "runner HTTP port (the functions)" },
    "api-port": { type: "string", arg: "PORT", default: "8081", help: "control plane API port" },
    "grpc-port": { type: "string", arg: "PORT", default: "50051", help: "control protocol port" },
    "metrics-port": { type: "string", arg: "PORT", default: "9090", help: "runner metrics port" },
    "data-dir": { type: "string", arg: "DIR", default: ".edgeplane", help: "PGlite data, artifacts, caches" },
    watch: { type: "boolean", help: "reconcile again when a file under dir changes" },
  },
  examples: ["edgectl serve example-repo --watch"],
  async run(args) {
    const [{ createRunner }, { createLogger }, { createControlPlane }, { loadManifests }] = await Promise.all(
      [
        import("../edge-runner/index.ts"),
        import("../lib/log.ts"),
        import("../reconciler/index.ts"),
        import("../schema/index.ts"),
      ],
    );
    const dir = path.resolve(args.positionals[0] ?? "example-repo");
    const log = createLogger("edgectl");
    let name = "local";
    try {
      name = (await loadManifests(dir)).project?.metadata.name ?? name;
    } catch {
      // The reconcile below reports the problems in full.
    }
    const cp = await createControlPlane(
      {
        dataDir: args.string("data-dir")!,
        httpPort: Number(args.string("api-port")),
        grpcPort: Number(args.string("grpc-port")),
        // A laptop may lack the Rust or C toolchain: serve what it can build, say what it skipped.
        projects: [{ name, repo: dir, source: "directory", missingToolchain: "skip" }],
      },
      log,
    );
    await cp.start();
    const dataDir = cp.options.dataDir;
    const node = createRunner({
      nodeId: "local",
      pop: "local",
      httpHost: "127.0.0.1",
      httpPort: Number(args.string("port")),
      metricsPort: Number(args.string("metrics-port")),
      cacheDir: path.join(dataDir, "runner-cache"),
      control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
      logger: log,
    });
    const { httpPort } = await node.start();

    const reconcile = async () => {
      const id = await cp.reconciler.enqueue(name, {
        commit: null,
        trigger: "local",
        actor: "edgectl serve",
      });
      const row = await cp.reconciler.wait(id);
      if (row.status === "failed") {
        process.stderr.write(`reconcile failed: ${row.error?.code}: ${row.error?.message}\n`);
        for (const d of row.error?.details ?? [])
          process.stderr.write(`  ${d.where ? `${d.where}: ` : ""}${d.message}\n`);
        process.stderr.write("the last good state keeps serving\n");
        return;
      }
      for (const skip of (row.result as { skipped?: { function: string; message: string }[] } | null)
        ?.skipped ?? []) {
        process.stderr.write(`skipped ${skip.function}: ${skip.message}\n`);
      }
      // Wait until the runner has acked what was just applied, so the URLs printed answer.
      const generation = (row.result as { generation?: number } | null)?.generation;
      if (generation) await cp.control.waitForAcks(generation, 10_000);
      const routes = await cp.db.query<{ host: string; path: string; function_name: string }>(
        "SELECT host, path, function_name FROM routes ORDER BY host, path",
      );
      process.stdout.write(
        `\nedgeplane serving ${dir} (${row.status}, ${(row.plan as { changes: unknown[] } | null)?.changes.length ?? 0} change(s))\n`,
      );
      for (const r of routes) {
        const p = r.path.replace(/\*$/, "").replace(/:([^/]+)/g, "$1");
        process.stdout.write(
          `  ${r.function_name.padEnd(12)} curl -H 'Host: ${r.host}' http://localhost:${httpPort}${p}\n`,
        );
      }
      // The API needs a token; the control plane wrote an admin one into the data directory,
      // where edgectl reads it by default.
      const hint = [
        "node bin/edgectl status",
        args.string("api-port") === "8081" ? "" : `--api ${cp.url}`,
        args.string("data-dir") === ".edgeplane" ? "" : `--data-dir ${args.string("data-dir")}`,
      ]
        .filter(Boolean)
        .join(" ");
      const tokenFile = cp.options.adminTokenFile
        ? path.relative(process.cwd(), cp.options.adminTokenFile)
        : null;
      process.stdout.write(
        `  API: ${cp.url}/api/v1/${tokenFile ? ` (admin token in ${tokenFile}; try: ${hint})` : ""}   (Ctrl-C to stop)\n`,
      );
    };
    await reconcile();

    let watcher: ReturnType<typeof watch> | null = null;
    if (args.flag("watch")) {
      let timer: NodeJS.Timeout | null = null;
      watcher = watch(dir, { recursive: true }, () => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => void reconcile(), 300);
      });
    }
    await onShutdown(async () => {
      watcher?.close();
      await node.stop();
      await cp.stop();
    });
    return 0;
  },
};
