// edgectl plan: what a push of the local working tree would change. The desired state is
// computed from the local manifests exactly as a reconcile computes it (reconciler's
// describeFunction: source tree hash, config hash, routes), the stored state is read from the
// API, and the reconciler's pure plan() compares them. Nothing is built or changed.

import path from "node:path";
import { apiOptions, type Command, jsonOption } from "./args.ts";
import { ApiClient, seg } from "./client.ts";
import { CliError, EXIT, UsageError } from "./exit.ts";
import { printJson, table } from "./table.ts";
import type { FunctionRow, PlanChange, Project, RouteRow } from "./types.ts";
import { loadOrReport } from "./validate.ts";

interface Route {
  host: string;
  path: string;
  methods: string;
  priority: number;
}

const routeKey = (r: Route) =>
  `${r.host}${r.path} [${r.methods.split(",").filter(Boolean).sort().join(",") || "any"}] priority ${r.priority}`;

export const plan: Command = {
  name: "plan",
  summary: "show what pushing the local manifests would change on the control plane",
  usage: "[dir] [--project P] [--json]",
  description: `Compares the manifests and sources under dir (default: .) with what the control plane
runs for the project (default: the name in dir's Project document), the way a reconcile would:
a function is rebuilt when its source tree or build/run settings changed, re-routed when only
its routes changed. Source hashes cover every file under a function's directory (except .git
and node_modules), so uncommitted or ignored files there count as changes.`,
  maxPositionals: 1,
  options: {
    project: {
      type: "string",
      arg: "P",
      help: "the project to compare with (default: from the Project document)",
    },
    ...jsonOption,
    ...apiOptions,
  },
  examples: ["edgectl plan", "edgectl plan example-repo --project local --json"],
  async run(args) {
    const dir = path.resolve(args.positionals[0] ?? ".");
    const json = args.flag("json");
    const set = await loadOrReport(dir, json);
    if (!set) return EXIT.failure;
    const project = args.string("project") ?? set.project?.metadata.name;
    if (!project) throw new UsageError(`${dir} has no Project document: pass --project P`);

    const client = await ApiClient.from(args);
    const q = `?project=${seg(project)}`;
    const [{ projects }, { functions }, { routes }, { describeFunction, plan: diff }] = await Promise.all([
      client.get<{ projects: Project[] }>("/api/v1/projects"),
      client.get<{ functions: FunctionRow[] }>(`/api/v1/functions${q}`),
      client.get<{ routes: RouteRow[] }>(`/api/v1/routes${q}`),
      import("../reconciler/index.ts"),
    ]);
    if (!projects.some((p) => p.name === project)) {
      throw new CliError(EXIT.notFound, `no project ${project} on ${client.base}`, "EDGE_ERR_API_NOT_FOUND");
    }
    const active = functions.filter((f) => f.project === project);
    if (active.some((f) => typeof f.source_hash !== "string" || typeof f.config_hash !== "string")) {
      throw new CliError(
        EXIT.failure,
        `the control plane at ${client.base} does not report source_hash and config_hash in GET /api/v1/functions; upgrade it to use edgectl plan`,
      );
    }
    const storedRoutes = (name: string): Route[] =>
      routes
        .filter((r) => r.project === project && r.function_name === name)
        .map(({ host, path, methods, priority }) => ({ host, path, methods, priority }));
    const stored = active.map((f) => ({
      name: f.name,
      functionId: f.id,
      version: f.version,
      sourceHash: f.source_hash!.trim(),
      configHash: f.config_hash!.trim(),
      routes: storedRoutes(f.name),
    }));
    const desired = await Promise.all(set.functions.map((fn) => describeFunction(dir, fn)));
    const result = diff(desired, stored);

    const changes = result.changes.map((c) => {
      const before = new Set(stored.find((s) => s.name === c.name)?.routes.map(routeKey) ?? []);
      const after = new Set(desired.find((d) => d.name === c.name)?.routes.map(routeKey) ?? []);
      return {
        ...c,
        routesAdded: [...after].filter((r) => !before.has(r)),
        routesRemoved: [...before].filter((r) => !after.has(r)),
      };
    });
    if (json) {
      printJson({ project, api: client.base, dir, changes });
      return EXIT.ok;
    }
    if (changes.length === 0) {
      process.stdout.write(`${project}: no changes (the control plane runs what ${dir} describes)\n`);
      return EXIT.ok;
    }
    process.stdout.write(`${project}: ${changes.length} change(s) if ${dir} were pushed\n\n`);
    process.stdout.write(
      table(changes, [
        { header: "change", value: (c) => c.action },
        { header: "function", value: (c) => c.name },
        { header: "version", value: (c) => versionOf(c) },
        { header: "reason", value: (c) => c.reason },
      ]),
    );
    for (const c of changes) {
      if (c.routesAdded.length + c.routesRemoved.length === 0) continue;
      process.stdout.write(`\nroutes of ${c.name}:\n`);
      for (const r of c.routesAdded) process.stdout.write(`  + ${r}\n`);
      for (const r of c.routesRemoved) process.stdout.write(`  - ${r}\n`);
    }
    return EXIT.ok;
  },
};

function versionOf(c: PlanChange): string {
  switch (c.action) {
    case "create":
      return "new";
    case "update":
      return `v${c.fromVersion} → new`;
    default:
      return `v${c.version}`;
  }
}
