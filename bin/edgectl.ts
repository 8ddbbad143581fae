// edgectl subcommands. Each one parses its flags (node:util parseArgs), composes the
// components it needs through their index.ts, and returns an exit code.
//
//   edgectl serve [dir]            control plane + runner in one process, serving dir (default example-repo)
//   edgectl control-plane          the control plane (config file or flags; PostgreSQL or PGlite)
//   edgectl runner                 an edge runner connected to a control plane
//   edgectl validate [dir]         check the manifests of a repository; exit 1 with file:line:col errors
//   edgectl reconcile <project>    queue a reconcile of the branch head through the API (--wait to follow it)
//   edgectl audit                  read the audit log through the API, with filters
//   edgectl certs init|runner      make the CA and certificates for mutual TLS on the control protocol

import { watch } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { createRunner } from "../edge-runner/index.ts";
import { createCa, issueRunnerCert, issueServerCert, readCert, writeCert } from "../lib/certs.ts";
import { EdgeError } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { type ControlPlaneOptions, createControlPlane } from "../reconciler/index.ts";
import { loadManifests } from "../schema/index.ts";

const USAGE = `usage: edgectl <command> [options]

commands:
  serve [dir]        run control plane + runner in one process on dir (default: example-repo)
                     --port 8080 --api-port 8081 --grpc-port 50051 --metrics-port 9090
                     --data-dir .edgeplane --watch
  control-plane      run the control plane: --config edgeplane.yaml (see docs/configuration.md),
                     --database-url postgres://… (or EDGE_DATABASE_URL), --http-port, --grpc-port
  runner             run an edge runner: --control host:port --node-id ID --pop POP [--label k=v]…
                     --port 8080 --metrics-port 9090 --cache-dir DIR --tls-dir certs (or --insecure)
  validate [dir]     validate the manifests of a repository (default: .)
  reconcile <name>   reconcile a project's branch head now: --wait, --api URL
  audit              the audit log: --project P --function F --commit SHA --since T --until T
                     --limit N --json, --api URL
  certs init         make a CA, the control plane's certificate and runner certificates in --dir (certs):
                     --hosts localhost,127.0.0.1 (the control plane's names) --runners id1,id2
  certs runner <id>  one more runner certificate, signed by the CA in --dir
API commands talk to --api (default $EDGE_API_URL or http://127.0.0.1:8081).
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "serve":
        return await serve(rest);
      case "control-plane":
        return await controlPlane(rest);
      case "runner":
        return await runner(rest);
      case "validate":
        return await validate(rest);
      case "reconcile":
        return await reconcileCommand(rest);
      case "audit":
        return await auditCommand(rest);
      case "certs":
        return await certsCommand(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`edgectl: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof EdgeError) {
      process.stderr.write(`edgectl: ${err.code}: ${err.message}\n`);
      for (const d of err.details ?? [])
        process.stderr.write(`  ${d.where ? `${d.where}: ` : ""}${d.message}\n`);
    } else {
      process.stderr.write(`edgectl: ${(err as Error).message}\n`);
    }
    return 1;
  }
}

async function validate(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const dir = positionals[0] ?? ".";
  try {
    const set = await loadManifests(dir);
    process.stdout.write(
      `ok: ${set.files.length} file(s), ${set.project ? "1 project" : "no project"}, ${set.functions.length} function(s): ${set.functions
        .map((f) => f.manifest.metadata.name)
        .join(", ")}\n`,
    );
    return 0;
  } catch (err) {
    if (!(err instanceof EdgeError)) throw err;
    for (const d of err.details ?? [{ message: err.message }])
      process.stderr.write(`${d.where ? `${d.where}: ` : ""}${d.message}\n`);
    process.stderr.write(`${err.code}: ${(err.details ?? []).length || 1} problem(s)\n`);
    return 1;
  }
}

function onShutdown(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const handler = () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
      stop().finally(resolve);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}

async function serve(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      port: { type: "string", default: "8080" },
      "api-port": { type: "string", default: "8081" },
      "grpc-port": { type: "string", default: "50051" },
      "metrics-port": { type: "string", default: "9090" },
      "data-dir": { type: "string", default: ".edgeplane" },
      watch: { type: "boolean", default: false },
    },
  });
  const dir = path.resolve(positionals[0] ?? "example-repo");
  const log = createLogger("edgectl");
  let name = "local";
  try {
    name = (await loadManifests(dir)).project?.metadata.name ?? name;
  } catch {
    // The reconcile below reports the problems in full.
  }
  const cp = await createControlPlane(
    {
      dataDir: values["data-dir"],
      httpPort: Number(values["api-port"]),
      grpcPort: Number(values["grpc-port"]),
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
    httpPort: Number(values.port),
    metricsPort: Number(values["metrics-port"]),
    cacheDir: path.join(dataDir, "runner-cache"),
    control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
    logger: log,
  });
  const { httpPort } = await node.start();

  const reconcile = async () => {
    const id = await cp.reconciler.enqueue(name, { commit: null, trigger: "local", actor: "edgectl serve" });
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
    process.stdout.write(`  API: ${cp.url}/api/v1/functions   (Ctrl-C to stop)\n`);
  };
  await reconcile();

  let watcher: ReturnType<typeof watch> | null = null;
  if (values.watch) {
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
}

async function controlPlane(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string" },
      "database-url": { type: "string" },
      "http-port": { type: "string" },
      "grpc-port": { type: "string" },
      "data-dir": { type: "string" },
      "tls-dir": { type: "string" },
      insecure: { type: "boolean" },
    },
  });
  const fromFile: ControlPlaneOptions = values.config
    ? (parseYaml(await readFile(values.config, "utf8")) ?? {})
    : {};
  const databaseUrl = values["database-url"] ?? process.env.EDGE_DATABASE_URL ?? fromFile.databaseUrl;
  const options: ControlPlaneOptions = {
    ...fromFile,
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(values["http-port"] ? { httpPort: Number(values["http-port"]) } : {}),
    ...(values["grpc-port"] ? { grpcPort: Number(values["grpc-port"]) } : {}),
    ...(values["data-dir"] ? { dataDir: values["data-dir"] } : {}),
    ...(values.insecure ? { insecure: true } : {}),
    ...(values["tls-dir"]
      ? {
          tls: {
            ca: path.join(values["tls-dir"], "ca.crt"),
            cert: path.join(values["tls-dir"], "control-plane.crt"),
            key: path.join(values["tls-dir"], "control-plane.key"),
          },
        }
      : {}),
  };
  if (!options.tls && !options.insecure) {
    throw new Error(
      "the control protocol needs mutual TLS: pass --tls-dir DIR (see edgectl certs init) or tls: in the config file; --insecure serves plaintext gRPC for local development",
    );
  }
  const cp = await createControlPlane(options);
  await cp.start();
  await onShutdown(() => cp.stop());
  return 0;
}

async function runner(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      control: { type: "string" },
      "node-id": { type: "string" },
      pop: { type: "string" },
      label: { type: "string", multiple: true, default: [] },
      port: { type: "string", default: "8080" },
      "metrics-port": { type: "string", default: "9090" },
      host: { type: "string", default: "0.0.0.0" },
      "cache-dir": { type: "string", default: ".edgeplane/runner-cache" },
      "tls-dir": { type: "string" },
      insecure: { type: "boolean", default: false },
    },
  });
  if (!values["node-id"] || !values.pop) throw new Error("runner needs --node-id and --pop");
  const labels: Record<string, string> = {};
  for (const l of values.label) {
    const [k, ...v] = l.split("=");
    if (!k || v.length === 0) throw new Error(`--label ${l}: expected key=value`);
    labels[k] = v.join("=");
  }
  const node = createRunner({
    nodeId: values["node-id"],
    pop: values.pop,
    labels,
    httpHost: values.host,
    httpPort: Number(values.port),
    metricsPort: Number(values["metrics-port"]),
    cacheDir: values["cache-dir"],
    ...(values.control
      ? {
          control: {
            address: values.control,
            insecure: values.insecure,
            // edgectl certs init names them ca.crt and runner-<node id>.{crt,key}.
            ...(values["tls-dir"]
              ? {
                  tls: {
                    ca: path.join(values["tls-dir"], "ca.crt"),
                    cert: path.join(values["tls-dir"], `runner-${values["node-id"]}.crt`),
                    key: path.join(values["tls-dir"], `runner-${values["node-id"]}.key`),
                  },
                }
              : {}),
          },
        }
      : {}),
  });
  const { httpPort } = await node.start();
  process.stderr.write(`edge runner ${values["node-id"]} (${values.pop}) serving on :${httpPort}\n`);
  await onShutdown(() => node.stop());
  return 0;
}

const apiBase = (flag: string | undefined) =>
  (flag ?? process.env.EDGE_API_URL ?? "http://127.0.0.1:8081").replace(/\/$/, "");

/** Calls the control plane's API; an error response becomes an EdgeError-shaped message. */
async function api<T>(base: string, method: string, urlPath: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${base}${urlPath}`, { method });
  } catch (err) {
    throw new Error(
      `cannot reach the control plane at ${base}: ${(err as Error).cause ?? (err as Error).message}`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as T & { error?: { code: string; message: string } };
  if (!res.ok) throw new Error(`${body.error?.code ?? res.status}: ${body.error?.message ?? res.statusText}`);
  return body;
}

async function reconcileCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { api: { type: "string" }, wait: { type: "boolean", default: false } },
  });
  const project = positionals[0];
  if (!project) throw new Error("usage: edgectl reconcile <project> [--wait]");
  const base = apiBase(values.api);
  const { reconciliation } = await api<{ reconciliation: string }>(
    base,
    "POST",
    `/api/v1/projects/${encodeURIComponent(project)}/reconcile`,
  );
  process.stdout.write(`queued reconciliation ${reconciliation}\n`);
  if (!values.wait) return 0;
  for (;;) {
    const row = await api<{
      status: string;
      commit_sha: string | null;
      error: { code: string; message: string; details?: { where?: string; message: string }[] } | null;
      plan: { changes: { action: string; name: string; reason: string }[] } | null;
    }>(base, "GET", `/api/v1/reconciliations/${reconciliation}`);
    if (row.status === "queued" || row.status === "running") {
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    process.stdout.write(`${row.status} at ${row.commit_sha ?? "?"}\n`);
    for (const c of row.plan?.changes ?? [])
      process.stdout.write(`  ${c.action.padEnd(7)} ${c.name} (${c.reason})\n`);
    if (row.error) {
      process.stderr.write(`${row.error.code}: ${row.error.message}\n`);
      for (const d of row.error.details ?? [])
        process.stderr.write(`  ${d.where ? `${d.where}: ` : ""}${d.message}\n`);
    }
    return row.status === "succeeded" ? 0 : 1;
  }
}

async function auditCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      api: { type: "string" },
      project: { type: "string" },
      function: { type: "string" },
      commit: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      limit: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const query = new URLSearchParams();
  for (const key of ["project", "function", "commit", "since", "until", "limit"] as const) {
    if (values[key]) query.set(key, values[key]!);
  }
  const { audit } = await api<{
    audit: {
      at: string;
      actor: string;
      trigger: string;
      commit_sha: string | null;
      project: string | null;
      object_kind: string;
      object_id: string;
      action: string;
      after: unknown;
    }[];
  }>(apiBase(values.api), "GET", `/api/v1/audit?${query}`);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(audit, null, 2)}\n`);
    return 0;
  }
  for (const a of audit) {
    const version = (a.after as { version?: number } | null)?.version;
    process.stdout.write(
      `${new Date(a.at).toISOString()}  ${(a.project ?? "-").padEnd(10)} ${a.action.padEnd(7)} ${a.object_kind}/${a.object_id}${version ? `@v${version}` : ""}  ${a.trigger} by ${a.actor}  ${a.commit_sha?.slice(0, 12) ?? ""}\n`,
    );
  }
  return 0;
}

async function certsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      dir: { type: "string", default: "certs" },
      hosts: { type: "string", default: "localhost,127.0.0.1" },
      runners: { type: "string", default: "" },
    },
  });
  const [sub, nodeId] = positionals;
  const dir = path.resolve(values.dir);
  if (sub === "init") {
    const ca = createCa();
    await writeCert(dir, "ca", ca);
    await writeCert(dir, "control-plane", issueServerCert(ca, values.hosts.split(",").filter(Boolean)));
    const runners = values.runners.split(",").filter(Boolean);
    for (const id of runners) await writeCert(dir, `runner-${id}`, issueRunnerCert(ca, id));
    process.stdout.write(
      `wrote ${dir}/ca.{crt,key}, control-plane.{crt,key}${runners.map((r) => `, runner-${r}.{crt,key}`).join("")}\n` +
        "keep ca.key offline; give each runner ca.crt and its own runner-<id>.{crt,key}\n",
    );
    return 0;
  }
  if (sub === "runner" && nodeId) {
    const ca = await readCert(dir, "ca");
    await writeCert(dir, `runner-${nodeId}`, issueRunnerCert(ca, nodeId));
    process.stdout.write(`wrote ${dir}/runner-${nodeId}.{crt,key}\n`);
    return 0;
  }
  throw new Error(
    "usage: edgectl certs init [--dir certs] [--hosts h1,h2] [--runners id1,id2] | edgectl certs runner <node-id> [--dir certs]",
  );
}
