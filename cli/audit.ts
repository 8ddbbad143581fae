// edgectl audit: read the audit log, filtered by project, function, commit and time.

import { apiOptions, type Command, jsonOption } from "./args.ts";
import { ApiClient } from "./client.ts";
import { EXIT } from "./exit.ts";
import { printJson, short, table, time } from "./table.ts";

interface AuditRow {
  id: number | string;
  at: string;
  actor: string;
  trigger: string;
  commit_sha: string | null;
  project: string | null;
  object_kind: string;
  object_id: string;
  action: string;
  before: unknown;
  after: unknown;
}

const FILTERS = ["project", "function", "commit", "since", "until", "limit"] as const;

export const audit: Command = {
  name: "audit",
  summary: "read the audit log, newest first, with filters",
  usage: "[--project P] [--function F] [--commit SHA] [--since T] [--until T] [--limit N] [--json]",
  description:
    "Every change of stored state is one row: when, who, why (trigger), what (object, action, version).",
  maxPositionals: 0,
  options: {
    project: { type: "string", arg: "P", help: "only rows of this project" },
    function: { type: "string", arg: "F", help: "only rows about this function (or node id)" },
    commit: { type: "string", arg: "SHA", help: "only rows of this commit" },
    since: { type: "string", arg: "T", help: "rows at or after this ISO 8601 time" },
    until: { type: "string", arg: "T", help: "rows before this ISO 8601 time" },
    limit: { type: "string", arg: "N", help: "at most N rows (default 100, at most 1000)" },
    ...jsonOption,
    ...apiOptions,
  },
  examples: [
    "edgectl audit --project acme --since 2026-11-01T00:00:00Z",
    "edgectl audit --function hello --limit 5 --json",
  ],
  async run(args) {
    args.int("limit");
    const query = new URLSearchParams();
    for (const key of FILTERS) {
      const v = args.string(key);
      if (v) query.set(key, v);
    }
    const client = await ApiClient.from(args);
    const { audit: rows } = await client.get<{ audit: AuditRow[] }>(`/api/v1/audit?${query}`);
    if (args.flag("json")) {
      printJson({ audit: rows });
      return EXIT.ok;
    }
    if (rows.length === 0) {
      process.stdout.write("no audit rows match\n");
      return EXIT.ok;
    }
    process.stdout.write(
      table(rows, [
        { header: "at", value: (a) => time(a.at) },
        { header: "project", value: (a) => a.project },
        { header: "action", value: (a) => a.action },
        {
          header: "object",
          value: (a) => {
            const version =
              (a.after as { version?: number } | null)?.version ??
              (a.before as { version?: number } | null)?.version;
            return `${a.object_kind}/${a.object_id}${version ? `@v${version}` : ""}`;
          },
        },
        { header: "trigger", value: (a) => a.trigger },
        { header: "actor", value: (a) => a.actor },
        { header: "commit", value: (a) => short(a.commit_sha) },
      ]),
    );
    return EXIT.ok;
  },
};
