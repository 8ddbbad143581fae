// edgectl reconcile: queue a reconcile of a project's branch head and, with --wait, follow it
// through build and deploy to every POP. Also the rendering of a reconciliation that
// `edgectl status` shares.

import { apiOptions, type Command, jsonOption } from "./args.ts";
import { ApiClient, seg } from "./client.ts";
import { CliError, EXIT, UsageError } from "./exit.ts";
import { Progress } from "./progress.ts";
import { duration, printJson, short, table } from "./table.ts";
import type { Reconciliation } from "./types.ts";

const TERMINAL = new Set(["succeeded", "failed", "superseded"]);

/** True when the reconciliation succeeded and every POP it deployed to reports success. */
export function reconciliationOk(r: Reconciliation): boolean {
  return r.status === "succeeded" && (r.outcome?.pops ?? []).every((p) => p.state === "success");
}

/** Where a reconciliation stands in words: "succeeded, live in 2 POP(s)", "deploying generation 7". */
export function deployState(r: Reconciliation): string {
  if (r.status !== "succeeded") return r.status;
  const generation = r.result?.generation ?? null;
  if (generation === null) return "no changes to deploy";
  if (!r.outcome) return `deploying generation ${generation}`;
  const failed = r.outcome.pops.filter((p) => p.state === "failure").length;
  if (r.outcome.pops.length === 0) return `generation ${generation}: no runner online`;
  return failed
    ? `generation ${generation} failed in ${failed} of ${r.outcome.pops.length} POP(s)`
    : `generation ${generation} live in ${r.outcome.pops.length} POP(s)`;
}

/** The plan, the error and the per-POP outcome of a reconciliation, as text. */
export function renderReconciliation(r: Reconciliation): string {
  let out = `${r.project}: reconcile ${r.status} at ${short(r.commit_sha)} (${r.trigger} by ${r.actor}, ${duration(r.duration_ms)})\n`;
  const changes = r.plan?.changes ?? [];
  if (changes.length) {
    const builds = new Map((r.result?.builds ?? []).map((b) => [b.function, b]));
    out += `\n${table(changes, [
      { header: "change", value: (c) => c.action },
      { header: "function", value: (c) => c.name },
      {
        header: "version",
        value: (c) => {
          const built = builds.get(c.name)?.version;
          if (c.action === "update") return `v${c.fromVersion} → v${built ?? "?"}`;
          if (c.action === "create") return built ? `v${built}` : "new";
          return c.version ? `v${c.version}` : "";
        },
      },
      { header: "reason", value: (c) => c.reason },
    ])}`;
  } else if (r.status === "succeeded") {
    out += "no changes\n";
  }
  for (const s of r.result?.skipped ?? []) out += `skipped ${s.function}: ${s.message}\n`;
  if (r.error) {
    out += `\n${r.error.code}: ${r.error.message}\n`;
    for (const d of r.error.details ?? []) out += `  ${d.where ? `${d.where}: ` : ""}${d.message}\n`;
  }
  if (r.status === "succeeded") {
    out += `\n${deployState(r)}\n`;
    if (r.outcome?.pops.length) {
      out += table(r.outcome.pops, [
        { header: "pop", value: (p) => p.pop },
        { header: "state", value: (p) => p.state },
        { header: "nodes", value: (p) => `${p.nodes.filter((n) => n.acked).length}/${p.nodes.length} acked` },
        { header: "description", value: (p) => p.description },
      ]);
    }
  }
  return out;
}

/**
 * Polls a reconciliation until it has finished and, when it produced a generation, until the
 * rollout has recorded its per-POP outcome. A superseded reconciliation is followed to the one
 * that replaced it.
 */
export async function follow(
  client: ApiClient,
  id: string,
  progress: Progress,
  timeoutMs: number,
): Promise<Reconciliation> {
  const deadline = Date.now() + timeoutMs;
  let current = id;
  for (;;) {
    const r = await client.get<Reconciliation>(`/api/v1/reconciliations/${seg(current)}`);
    if (r.status === "queued") progress.phase(`queued (reconciliation ${r.id})`);
    else if (r.status === "running")
      progress.phase(
        `reconciling ${r.commit_sha ? short(r.commit_sha) : "branch head"}: checkout, plan, build, apply`,
      );
    else if (r.status === "superseded" && r.result?.superseded_by) {
      progress.phase(`superseded by reconciliation ${r.result.superseded_by}; following it`);
      current = r.result.superseded_by;
      continue;
    } else if (TERMINAL.has(r.status)) {
      if (r.status !== "succeeded" || (r.result?.generation ?? null) === null || r.outcome) return r;
      progress.phase(`deploying generation ${r.result!.generation} to runners`);
    }
    if (Date.now() > deadline) {
      throw new CliError(
        EXIT.failure,
        `reconciliation ${current} still ${deployState(r)} after ${timeoutMs / 1000}s`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export const reconcile: Command = {
  name: "reconcile",
  summary: "reconcile a project's branch head now (--wait to follow build and deploy)",
  usage: "<project> [--wait] [options]",
  description: `Queues a reconcile of the production branch's head through the API. With --wait, shows
the phases (queued, reconciling, deploying) and ends with the plan and each POP's result; the exit
code is 0 only when the reconcile succeeded and every POP took the new generation.`,
  maxPositionals: 1,
  options: {
    wait: { type: "boolean", help: "follow the reconcile until it is deployed or has failed" },
    timeout: { type: "string", arg: "SECONDS", default: "600", help: "how long --wait waits" },
    ...jsonOption,
    ...apiOptions,
  },
  examples: ["edgectl reconcile acme --wait", "edgectl reconcile acme --wait --json | jq .outcome"],
  async run(args) {
    const project = args.required(0, "<project>");
    const timeout = args.int("timeout");
    if (timeout === 0) throw new UsageError("--timeout: must be greater than 0");
    const client = await ApiClient.from(args);
    const { reconciliation } = await client.post<{ reconciliation: string }>(
      `/api/v1/projects/${seg(project)}/reconcile`,
    );
    if (!args.flag("wait")) {
      if (args.flag("json")) printJson({ reconciliation });
      else process.stdout.write(`queued reconciliation ${reconciliation}\n`);
      return EXIT.ok;
    }
    const progress = new Progress();
    progress.phase(`queued (reconciliation ${reconciliation})`);
    let row: Reconciliation;
    try {
      row = await follow(client, reconciliation, progress, (timeout ?? 600) * 1000);
    } catch (err) {
      progress.stop("✗");
      throw err;
    }
    progress.stop(reconciliationOk(row) ? "✓" : "✗");
    if (args.flag("json")) printJson(row);
    else process.stdout.write(renderReconciliation(row));
    return reconciliationOk(row) ? EXIT.ok : EXIT.failure;
  },
};
