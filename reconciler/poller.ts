// The polling fallback for missed webhooks: every interval, ask each project's source where its
// branch head is, and queue a reconcile (trigger "poll") for a head no reconcile has seen yet.
// A commit that already has a reconciliation (in any state) is left alone: polling recovers
// lost webhooks, it does not retry failures.

import type { Logger } from "../lib/log.ts";
import type { Db } from "./db.ts";
import type { Reconciler } from "./reconcile.ts";
import { hasReconciliationFor } from "./reconciliations.ts";

export class Poller {
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;

  constructor(
    private readonly db: Db,
    private readonly reconciler: Reconciler,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.pollOnce(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.polling;
  }

  /** One polling round over every project; returns the reconciliation ids it queued. */
  async pollOnce(): Promise<string[]> {
    const run = async (): Promise<string[]> => {
      const queued: string[] = [];
      for (const project of this.reconciler.projectList()) {
        try {
          const head = await project.source.head();
          if (await hasReconciliationFor(this.db, project.id, head)) continue;
          queued.push(
            await this.reconciler.enqueue(project.name, { commit: head, trigger: "poll", actor: "poller" }),
          );
          this.log.info({ project: project.name, commit: head }, "poll found a commit no webhook announced");
        } catch (err) {
          this.log.warn({ err, project: project.name }, "poll failed");
        }
      }
      return queued;
    };
    const p = run();
    this.polling = p.then(() => {});
    return p;
  }
}
