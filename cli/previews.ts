// edgectl previews: the preview deployments of open pull requests, one row per POP URL.

import { apiOptions, type Command, jsonOption } from "./args.ts";
import { ApiClient } from "./client.ts";
import { EXIT } from "./exit.ts";
import { ago, printJson, short, table } from "./table.ts";

interface Preview {
  project: string;
  pr: number;
  head_sha: string;
  fork: boolean;
  function: string;
  version: number;
  pops: string[];
  urls: Record<string, string>;
  status: string;
  created_at: string;
  expires_at: string | null;
}

export const previews: Command = {
  name: "previews",
  summary: "list preview deployments of pull requests and their URL per POP",
  usage: "[--project P] [--pr N] [--status S] [--json]",
  maxPositionals: 0,
  options: {
    project: { type: "string", arg: "P", help: "only previews of this project" },
    pr: { type: "string", arg: "N", help: "only previews of this pull request" },
    status: {
      type: "string",
      arg: "S",
      default: "active",
      help: "active, closed, expired or all",
    },
    ...jsonOption,
    ...apiOptions,
  },
  examples: ["edgectl previews --project acme", "edgectl previews --project acme --pr 42 --json"],
  async run(args) {
    const pr = args.int("pr");
    const project = args.string("project");
    const client = await ApiClient.from(args);
    const query = new URLSearchParams({ status: args.string("status")! });
    if (project) query.set("project", project);
    let { previews: rows } = await client.get<{ previews: Preview[] }>(`/api/v1/previews?${query}`);
    if (pr !== undefined) rows = rows.filter((p) => p.pr === pr);
    if (args.flag("json")) {
      printJson({ previews: rows });
      return EXIT.ok;
    }
    if (rows.length === 0) {
      process.stdout.write(
        `no ${args.string("status") === "all" ? "" : `${args.string("status")} `}previews${project ? ` in project ${project}` : ""}\n`,
      );
      return EXIT.ok;
    }
    // One line per POP, so each URL is on a line of its own and greppable.
    const lines = rows.flatMap((p) =>
      (p.pops.length ? p.pops : ["any"]).map((pop) => ({ p, pop, url: p.urls[pop] ?? "" })),
    );
    process.stdout.write(
      table(lines, [
        { header: "project", value: (l) => l.p.project },
        { header: "pr", value: (l) => `#${l.p.pr}${l.p.fork ? " (fork)" : ""}` },
        { header: "head", value: (l) => short(l.p.head_sha) },
        { header: "function", value: (l) => `${l.p.function} v${l.p.version}` },
        { header: "status", value: (l) => l.p.status },
        { header: "pop", value: (l) => l.pop },
        { header: "url", value: (l) => l.url },
        { header: "expires", value: (l) => (l.p.expires_at ? `in ${until(l.p.expires_at)}` : "") },
        { header: "created", value: (l) => ago(l.p.created_at) },
      ]),
    );
    return EXIT.ok;
  },
};

function until(iso: string): string {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  if (s <= 0) return "0s";
  return ago(new Date(Date.now() - s * 1000).toISOString()).replace(" ago", "");
}
