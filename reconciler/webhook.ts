// POST /webhooks/github: GitHub-style push webhooks. Order matters: find the project the
// payload names, verify the signature with that project's secret (@octokit/webhooks) before
// trusting anything else in it, record the delivery id (the same delivery twice runs once),
// then queue a reconcile of the pushed commit. The clone URL is never taken from the payload.

import { Webhooks } from "@octokit/webhooks";
import type { Context } from "koa";
import { edgeError } from "../lib/errors.ts";
import { readBody } from "./body.ts";
import type { CompiledProject } from "./config.ts";
import type { Db } from "./db.ts";
import type { PullRequestPayload } from "./previews.ts";
import type { Reconciler } from "./reconcile.ts";

interface PushPayload {
  ref?: string;
  after?: string;
  deleted?: boolean;
  repository?: { full_name?: string; clone_url?: string; html_url?: string };
  sender?: { login?: string };
}

export interface WebhookDeps {
  db: Db;
  reconciler: Reconciler;
  projects: CompiledProject[];
  maxBytes: number;
  /** edgeplane_webhook_deliveries_total{event,result}. */
  deliveries?: { inc(labels: { event: string; result: string }): void };
  /** Takes verified `pull_request` events (previews.ts); without it they are ignored. */
  previews?: { accept(project: string, payload: PullRequestPayload): string };
}

export function createWebhookHandler(deps: WebhookDeps) {
  const verifiers = new Map<string, Webhooks>();
  for (const p of deps.projects)
    if (p.webhookSecret) verifiers.set(p.name, new Webhooks({ secret: p.webhookSecret }));

  const findProject = (repo: PushPayload["repository"]): CompiledProject | undefined =>
    deps.projects.find(
      (p) =>
        p.source !== "api" &&
        ((p.fullName !== null && p.fullName === repo?.full_name) ||
          (repo?.clone_url !== undefined && p.repo === repo.clone_url) ||
          (repo?.html_url !== undefined && p.repo === repo.html_url)),
    );

  const handler = async (ctx: Context): Promise<void> => {
    const raw = await readBody(ctx.req, deps.maxBytes, "EDGE_ERR_WEBHOOK_TOO_LARGE");
    const event = ctx.get("x-github-event");
    const delivery = ctx.get("x-github-delivery");
    const signature = ctx.get("x-hub-signature-256");
    if (!event || !delivery)
      throw edgeError("EDGE_ERR_WEBHOOK_PAYLOAD", "missing X-GitHub-Event or X-GitHub-Delivery header");
    let payload: PushPayload;
    try {
      payload = JSON.parse(raw.toString("utf8")) as PushPayload;
    } catch {
      throw edgeError(
        "EDGE_ERR_WEBHOOK_PAYLOAD",
        "body is not JSON (set the webhook's content type to application/json)",
      );
    }
    const project = findProject(payload?.repository);
    if (!project)
      throw edgeError(
        "EDGE_ERR_WEBHOOK_UNKNOWN_REPO",
        `no registered project for repository ${payload?.repository?.full_name ?? "(none)"}`,
      );
    const verifier = verifiers.get(project.name);
    if (
      !verifier ||
      !signature ||
      !(await verifier.verify(raw.toString("utf8"), signature).catch(() => false))
    ) {
      throw edgeError("EDGE_ERR_WEBHOOK_SIGNATURE", "signature does not match the project's webhook secret");
    }

    const managed = deps.reconciler.project(project.name)!;
    const fresh = await deps.db.query(
      "INSERT INTO webhook_deliveries (delivery_id, event, project_id, result) VALUES ($1, $2, $3, 'received') ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id",
      [delivery, event, managed.id],
    );
    if (fresh.length === 0) {
      ctx.status = 200;
      ctx.body = { delivery, result: "duplicate" };
      return;
    }
    const done = async (status: number, result: string, reconciliation: string | null = null) => {
      await deps.db.query(
        "UPDATE webhook_deliveries SET result = $2, reconciliation_id = $3 WHERE delivery_id = $1",
        [delivery, result, reconciliation],
      );
      ctx.status = status;
      ctx.body = { delivery, result, ...(reconciliation ? { reconciliation } : {}) };
    };

    if (event === "ping") return done(200, "pong");
    if (event === "pull_request" && deps.previews)
      return done(202, deps.previews.accept(project.name, payload as PullRequestPayload));
    if (event !== "push") return done(202, `ignored: event ${event}`);
    if (payload.ref !== `refs/heads/${project.branch}`)
      return done(202, `ignored: ${payload.ref} is not the production branch`);
    if (payload.deleted || !payload.after || /^0+$/.test(payload.after))
      return done(202, "ignored: branch deleted");
    // Once per commit: a commit already queued, running or applied is joined, not queued again.
    const { id, joined } = await deps.reconciler.enqueuePush(project.name, {
      commit: payload.after,
      trigger: "push",
      actor: `github:${payload.sender?.login ?? "unknown"}`,
    });
    return done(202, joined ? "joined" : "queued", id);
  };

  // Every delivery is counted once: by what came of it, or by the error that refused it.
  return async (ctx: Context): Promise<void> => {
    const event = ctx.get("x-github-event") || "unknown";
    try {
      await handler(ctx);
      const result = String((ctx.body as { result?: string } | undefined)?.result ?? "ok").split(":")[0]!;
      deps.deliveries?.inc({ event, result });
    } catch (err) {
      deps.deliveries?.inc({ event, result: (err as { code?: string }).code ?? "error" });
      throw err;
    }
  };
}
