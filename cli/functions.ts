// edgectl functions: the active version of every function, or one version in detail.

import { apiOptions, type Command, jsonOption } from "./args.ts";
import { ApiClient, seg } from "./client.ts";
import { CliError, EXIT } from "./exit.ts";
import { ago, bytes, printJson, short, table } from "./table.ts";
import type { FunctionRow } from "./types.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const functions: Command = {
  name: "functions",
  summary: "list the active function versions, or show one version",
  usage: "[name | version-id] [--project P] [--json]",
  description: `Without an argument, the active version of every function the token can see. With a
function name, that function's active version(s); with a version id (from the list), that
immutable version in full: limits, env, capabilities, routes, artifact.`,
  maxPositionals: 1,
  options: {
    project: { type: "string", arg: "P", help: "only functions of this project" },
    ...jsonOption,
    ...apiOptions,
  },
  examples: [
    "edgectl functions --project acme",
    "edgectl functions 5f0c…-…",
    "edgectl functions hello --json",
  ],
  async run(args) {
    const client = await ApiClient.from(args);
    const which = args.positionals[0];
    if (which && UUID.test(which)) {
      const row = await client.get<Record<string, unknown>>(`/api/v1/functions/${seg(which)}`);
      if (args.flag("json")) printJson(row);
      else process.stdout.write(describeVersion(row));
      return EXIT.ok;
    }
    const project = args.string("project");
    // The API narrows to the project (and refuses one the token may not read).
    let { functions: rows } = await client.get<{ functions: FunctionRow[] }>(
      `/api/v1/functions${project ? `?project=${seg(project)}` : ""}`,
    );
    if (project) rows = rows.filter((f) => f.project === project);
    if (which) {
      rows = rows.filter((f) => f.name === which);
      if (rows.length === 0)
        throw new CliError(EXIT.notFound, `no active function ${which}`, "EDGE_ERR_API_NOT_FOUND");
    }
    if (args.flag("json")) {
      printJson({ functions: rows });
      return EXIT.ok;
    }
    if (rows.length === 0) {
      process.stdout.write(`no functions${project ? ` in project ${project}` : ""}\n`);
      return EXIT.ok;
    }
    process.stdout.write(
      table(rows, [
        { header: "project", value: (f) => f.project },
        { header: "function", value: (f) => f.name },
        { header: "version", value: (f) => `v${f.version}`, align: "right" },
        { header: "language", value: (f) => f.language },
        { header: "abi", value: (f) => f.abi },
        { header: "size", value: (f) => bytes(f.size_bytes), align: "right" },
        { header: "sha256", value: (f) => short(f.sha256) },
        { header: "commit", value: (f) => short(f.commit_sha) },
        { header: "deployment", value: (f) => f.deployment_status },
        { header: "created", value: (f) => ago(f.created_at) },
        { header: "id", value: (f) => f.id },
      ]),
    );
    return EXIT.ok;
  },
};

function describeVersion(row: Record<string, unknown>): string {
  const routes =
    (row.routes as { host: string; path: string; methods: string; priority: number }[] | undefined) ?? [];
  const fields: [string, unknown][] = [
    ["function", `${row.project}/${row.name} v${row.version}${row.active ? " (active)" : ""}`],
    ["id", row.id],
    ["language", `${row.language} (entry ${row.entrypoint}, source ${row.source_path || "."})`],
    ["runtime", `${row.runtime}, abi ${row.abi}`],
    ["artifact", `${row.artifact_key}, ${bytes(row.size_bytes as number)}, sha256 ${row.sha256}`],
    [
      "limits",
      `${row.memory_pages} pages, ${row.max_execution_ms} ms, ${bytes(row.max_request_bytes as number)} request, ${row.max_instances} instances`,
    ],
    ["env", Object.keys((row.env as object) ?? {}).join(", ") || "-"],
    [
      "capabilities",
      Object.entries((row.capabilities as Record<string, boolean>) ?? {})
        .filter(([, on]) => on)
        .map(([k]) => k)
        .join(", ") || "none",
    ],
    ["placement", row.pop_selector || "every POP"],
    ["commit", row.commit_sha ?? "-"],
    ["created", row.created_at],
  ];
  const width = Math.max(...fields.map(([k]) => k.length));
  let out = fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
  out += "\n";
  if (routes.length) {
    out += `\n${table(routes, [
      { header: "host", value: (r) => r.host },
      { header: "path", value: (r) => r.path },
      { header: "methods", value: (r) => r.methods || "any" },
      { header: "priority", value: (r) => r.priority, align: "right" },
    ])}`;
  }
  return out;
}
