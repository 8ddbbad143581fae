// Status reporting: GitHub commit statuses (one context per POP plus an overall one) and
// signed notification webhooks to the Project's `notifications` URLs. Every delivery is a row
// in status_deliveries and is sent in the background with bounded exponential retries, so a
// slow or failing receiver never holds up a reconcile. Deliveries to the same commit status
// context are sent in order, so a late "pending" can never overwrite a "success".

import { createHmac, randomUUID } from "node:crypto";
import type { Logger } from "../lib/log.ts";
import type { ProjectSpec } from "../schema/index.ts";
import type { Db } from "./db.ts";

export interface StatusReporterOptions {
  /** GitHub API base URL, e.g. https://api.github.com (tests: a local server). null = no commit statuses. */
  githubApiBase: string | null;
  githubToken: string | null;
  /** Base URL of this control plane's API, for target URLs. */
  publicUrl: () => string;
  attempts: number;
  retryMinDelayMs: number;
  retryMaxDelayMs: number;
}

export type CommitState = "pending" | "success" | "failure" | "error";

export interface StatusTarget {
  projectId: string;
  /** "owner/repo"; commit statuses need it. */
  fullName: string | null;
  /** Secret that signs notification bodies. */
  notificationSecret: string | null;
}

interface Delivery {
  id: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

export class StatusReporter {
  private readonly inFlight = new Set<Promise<void>>();
  /** Per commit-status context, the tail of its delivery chain. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly options: StatusReporterOptions,
  ) {}

  /** Posts a commit status (context "edgeplane" or "edgeplane/<pop>") for a git commit. */
  commitStatus(
    target: StatusTarget,
    reconciliationId: string,
    sha: string | null,
    context: string,
    state: CommitState,
    description: string,
    /** Where the status links to; default the reconciliation in the API (previews: the preview URL). */
    targetUrl?: string,
  ): void {
    if (!this.options.githubApiBase || !target.fullName || !sha || !SHA.test(sha)) return;
    const payload = {
      state,
      context,
      // GitHub caps descriptions at 140 characters.
      description: description.length > 140 ? `${description.slice(0, 139)}…` : description,
      target_url: targetUrl ?? `${this.options.publicUrl()}/api/v1/reconciliations/${reconciliationId}`,
    };
    const url = `${this.options.githubApiBase.replace(/\/$/, "")}/repos/${target.fullName}/statuses/${sha}`;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/vnd.github+json",
      ...(this.options.githubToken ? { authorization: `Bearer ${this.options.githubToken}` } : {}),
    };
    const key = `${target.fullName}\n${sha}\n${context}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(() =>
      this.deliver(
        target.projectId,
        reconciliationId,
        "commit_status",
        `status ${context} ${state}`,
        payload,
        {
          id: randomUUID(),
          url,
          headers,
          body: JSON.stringify(payload),
        },
      ),
    );
    this.chains.set(key, next);
    this.track(next.finally(() => this.chains.get(key) === next && this.chains.delete(key)));
  }

  /**
   * Creates the pull request's comment (commentId null) or edits it in place; resolves with the
   * comment's id, or null when no GitHub API is configured or every attempt failed. Deliveries
   * of one pull request's comment are sent in order, like a commit status context's.
   */
  prComment(
    target: StatusTarget,
    reconciliationId: string,
    pr: number,
    commentId: number | null,
    body: string,
  ): Promise<number | null> {
    if (!this.options.githubApiBase || !target.fullName) return Promise.resolve(null);
    const base = `${this.options.githubApiBase.replace(/\/$/, "")}/repos/${target.fullName}/issues`;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/vnd.github+json",
      ...(this.options.githubToken ? { authorization: `Bearer ${this.options.githubToken}` } : {}),
    };
    const key = `${target.fullName}\n#${pr}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      const send = async (method: "POST" | "PATCH", url: string) => {
        const id = randomUUID();
        const payload = { body };
        await this.db.query(
          `INSERT INTO status_deliveries (id, project_id, reconciliation_id, kind, target, event, payload, status)
           VALUES ($1, $2, $3, 'pr_comment', $4, $5, $6, 'pending')`,
          [id, target.projectId, reconciliationId, url, `comment ${method} #${pr}`, JSON.stringify(payload)],
        );
        let delay = this.options.retryMinDelayMs;
        for (let attempt = 1; attempt <= this.options.attempts; attempt++) {
          let error: string;
          let status: number | null = null;
          try {
            const res = await fetch(url, {
              method,
              headers,
              body: JSON.stringify(payload),
              signal: AbortSignal.timeout(10_000),
            });
            status = res.status;
            const text = await res.text();
            if (res.ok) {
              await this.record(id, "delivered", attempt, null, status);
              const parsed = JSON.parse(text || "{}") as { id?: number };
              return { status, id: typeof parsed.id === "number" ? parsed.id : null };
            }
            error = `HTTP ${res.status}`;
            if (res.status < 500 && res.status !== 408 && res.status !== 429) {
              await this.record(id, "failed", attempt, error, status);
              return { status, id: null };
            }
          } catch (err) {
            error = (err as Error).message;
          }
          const last = attempt === this.options.attempts;
          await this.record(id, last ? "failed" : "pending", attempt, error, status);
          if (last) return { status, id: null };
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, this.options.retryMaxDelayMs);
        }
        return { status: null, id: null };
      };
      if (commentId !== null) {
        const edited = await send("PATCH", `${base}/comments/${commentId}`);
        // A comment someone deleted is made again; any other failure keeps the stored id.
        if (edited.status !== 404) return edited.status !== null && edited.status < 300 ? commentId : null;
      }
      return (await send("POST", `${base}/${pr}/comments`)).id;
    });
    const tail = next.then(
      () => {},
      () => {},
    );
    this.chains.set(key, tail);
    this.track(tail.finally(() => this.chains.get(key) === tail && this.chains.delete(key)));
    return next.catch((err) => {
      this.log.error({ err }, "PR comment delivery crashed");
      return null;
    });
  }

  /** Sends an event to every notification URL of the project that subscribes to it. */
  notify(
    target: StatusTarget,
    spec: ProjectSpec | null,
    reconciliationId: string,
    event: "reconcile" | "deploy" | "preview",
    payload: Record<string, unknown>,
  ): void {
    for (const n of spec?.notifications ?? []) {
      if (n.events && !n.events.includes(event)) continue;
      const id = randomUUID();
      const body = JSON.stringify({ event, delivery: id, ...payload });
      if (!target.notificationSecret) {
        this.log.warn({ url: n.url }, "notification skipped: the project has no notification secret");
        continue;
      }
      const signature = createHmac("sha256", target.notificationSecret).update(body).digest("hex");
      this.track(
        this.deliver(target.projectId, reconciliationId, "notification", event, JSON.parse(body), {
          id,
          url: n.url,
          headers: {
            "content-type": "application/json",
            "x-edgeplane-event": event,
            "x-edgeplane-delivery": id,
            "x-edgeplane-signature-256": `sha256=${signature}`,
          },
          body,
        }),
      );
    }
  }

  /** Resolves when every delivery started so far has succeeded or given up. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.then(
      () => {},
      (err) => this.log.error({ err }, "status delivery crashed"),
    );
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }

  private async deliver(
    projectId: string,
    reconciliationId: string,
    kind: "commit_status" | "notification",
    event: string,
    payload: unknown,
    d: Delivery,
  ): Promise<void> {
    await this.db.query(
      `INSERT INTO status_deliveries (id, project_id, reconciliation_id, kind, target, event, payload, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')`,
      [d.id, projectId, reconciliationId, kind, d.url, event, JSON.stringify(payload)],
    );
    let delay = this.options.retryMinDelayMs;
    for (let attempt = 1; attempt <= this.options.attempts; attempt++) {
      let error: string;
      let status: number | null = null;
      try {
        const res = await fetch(d.url, {
          method: "POST",
          headers: d.headers,
          body: d.body,
          signal: AbortSignal.timeout(10_000),
        });
        status = res.status;
        await res.body?.cancel();
        if (res.ok) {
          await this.record(d.id, "delivered", attempt, null, status);
          return;
        }
        error = `HTTP ${res.status}`;
        // A 4xx other than 408/429 will not get better by retrying.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) {
          await this.record(d.id, "failed", attempt, error, status);
          return;
        }
      } catch (err) {
        error = (err as Error).message;
      }
      const last = attempt === this.options.attempts;
      await this.record(d.id, last ? "failed" : "pending", attempt, error, status);
      if (last) {
        this.log.warn({ url: d.url, kind, event, attempts: attempt, error }, "status delivery failed");
        return;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, this.options.retryMaxDelayMs);
    }
  }

  private async record(
    id: string,
    status: string,
    attempts: number,
    error: string | null,
    code: number | null,
  ) {
    await this.db.query(
      `UPDATE status_deliveries SET status = $2, attempts = $3, last_error = $4, response_status = $5, updated_at = now()
        WHERE id = $1`,
      [id, status, attempts, error, code],
    );
  }
}
