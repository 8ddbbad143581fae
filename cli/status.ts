// edgectl status: per project, the last reconcile (commit, result) and what each POP made of it.

import { apiOptions, type Command, jsonOption } from "./args.ts";
import { ApiClient, seg } from "./client.ts";
import { CliError, EXIT } from "./exit.ts";
import { deployState, renderReconciliation } from "./reconcile.ts";
import { ago, printJson, short, table } from "./table.ts";
import type { Project, Reconciliation } from "./types.ts";

export const status: Command = {
  name: "status",
  summary: "per project: the last reconcile, its commit and result, and per-POP state",
  usage: "[project] [--json]",
  description: `Without a project, one line per project the token can see; with one, that project's
last reconcile in full: its plan, error if any, and each POP's rollout result.`,
  maxPositionals: 1,
  options: { ...jsonOption, ...apiOptions },
  examples: ["edgectl status", "edgectl status acme"],
  async run(args) {
    const client = await ApiClient.from(args);
    const only = args.positionals[0];
    const { projects } = await client.get<{ projects: Project[] }>("/api/v1/projects");
    const selected = only ? projects.filter((p) => p.name === only) : projects;
    if (only && selected.length === 0)
      throw new CliError(EXIT.notFound, `no project ${only}`, "EDGE_ERR_API_NOT_FOUND");
    const rows = await Promise.all(
      selected.map(async (p) => {
        const { reconciliations } = await client.get<{ reconciliations: Reconciliation[] }>(
          `/api/v1/reconciliations?project=${seg(p.name)}`,
        );
        // The newest reconcile, and the newest that deployed something (its POP results stay the
        // current state of the runners after later reconciles that changed nothing).
        return {
          project: p,
          last: reconciliations[0] ?? null,
          deployed: reconciliations.find((r) => r.outcome) ?? null,
        };
      }),
    );
    if (args.flag("json")) {
      printJson({
        projects: rows.map(({ project, last, deployed }) => ({
          project: project.name,
          branch: project.branch,
          last_reconcile: last,
          last_deploy: deployed
            ? { reconciliation: deployed.id, commit_sha: deployed.commit_sha, ...deployed.outcome }
            : null,
        })),
      });
      return EXIT.ok;
    }
    if (only) {
      const { last, deployed } = rows[0]!;
      process.stdout.write(last ? renderReconciliation(last) : `${only}: never reconciled\n`);
      if (deployed && deployed !== last && deployed.outcome) {
        process.stdout.write(
          `\nlast deploy: generation ${deployed.outcome.generation} at ${short(deployed.commit_sha)} (${ago(deployed.finished_at)})\n${table(
            deployed.outcome.pops,
            [
              { header: "pop", value: (p) => p.pop },
              { header: "state", value: (p) => p.state },
              { header: "description", value: (p) => p.description },
            ],
          )}`,
        );
      }
      return EXIT.ok;
    }
    process.stdout.write(
      table(rows, [
        { header: "project", value: (r) => r.project.name },
        { header: "branch", value: (r) => r.project.branch },
        { header: "commit", value: (r) => short(r.last?.commit_sha) },
        { header: "result", value: (r) => r.last?.status ?? "never reconciled" },
        { header: "changes", value: (r) => r.last?.plan?.changes.length ?? "", align: "right" },
        { header: "deploy", value: (r) => (r.last ? deployState(r.last) : "") },
        {
          header: "pops",
          value: (r) =>
            (r.deployed?.outcome?.pops ?? [])
              .map((p) => `${p.pop}:${p.state === "success" ? "ok" : "failed"}`)
              .join(" "),
        },
        { header: "when", value: (r) => (r.last ? ago(r.last.finished_at ?? r.last.created_at) : "") },
      ]),
    );
    return EXIT.ok;
  },
};
