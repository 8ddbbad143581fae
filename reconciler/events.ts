// Live updates for the web console: GET /api/v1/events, a server-sent-event stream
// (text/event-stream) of small change notices. The notices come from PostgreSQL: triggers
// (migrations/007_console_events.sql) NOTIFY on a per-schema channel whenever a reconcile,
// an audit row, a deployment or a node changes, whichever replica made the change. Each
// replica holds one LISTEN, shared by all of its clients, and forwards every notice a client's
// token may see. The notices carry ids, not data: the console refetches what it shows.

import type Koa from "koa";
import type { Logger } from "../lib/log.ts";
import type { Db } from "./db.ts";

/** The NOTIFY channel the console triggers send on, suffixed with the schema (`_<schema>`). */
export const CONSOLE_EVENTS_CHANNEL = "edgeplane_console";

export type ConsoleEventType = "reconciliation" | "audit" | "deployment" | "preview" | "node";

/** One notice, as sent to clients in a `data:` line. */
export interface ConsoleEvent {
  type: ConsoleEventType;
  /** The project the row belongs to; null for nodes (fleet-wide) and project-less audit rows. */
  project: string | null;
  /** The row's id (reconciliation uuid, audit row id, deployment or preview uuid, node id). */
  id: string;
  /** The row's status where it has one (reconciliation, deployment, preview, node), else null. */
  status: string | null;
}

/**
 * Who may see an event: an admin (scope null) sees everything; a project token sees its own
 * project's events and node events. Nodes are shared infrastructure, not project data: a node
 * notice says only that a runner's status or heartbeat changed, which a project's developers
 * need to watch where their functions run. Rows without a project (e.g. drift audit rows) are
 * for admins only.
 */
export function eventVisible(event: ConsoleEvent, scope: string | null): boolean {
  if (scope === null) return true;
  if (event.type === "node") return true;
  return event.project === scope;
}

/** Parses a NOTIFY payload; null for anything that is not a console event. */
export function parseEvent(payload: string): ConsoleEvent | null {
  try {
    const v = JSON.parse(payload) as Partial<ConsoleEvent>;
    if (typeof v.type !== "string" || typeof v.id !== "string") return null;
    return {
      type: v.type as ConsoleEventType,
      project: typeof v.project === "string" ? v.project : null,
      id: v.id,
      status: typeof v.status === "string" ? v.status : null,
    };
  } catch {
    return null;
  }
}

/**
 * One LISTEN per process, opened with the first subscriber and closed with the last (a pg
 * LISTEN holds a connection of its own, so it is never one per browser).
 */
export class EventHub {
  private readonly subscribers = new Set<(e: ConsoleEvent) => void>();
  private listening: Promise<(() => Promise<void>) | null> | null = null;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
  ) {}

  /** Resolves once events flow to fn; the returned function unsubscribes. */
  async subscribe(fn: (e: ConsoleEvent) => void): Promise<() => void> {
    this.subscribers.add(fn);
    this.listening ??= this.start();
    await this.listening;
    return () => {
      if (!this.subscribers.delete(fn) || this.subscribers.size > 0) return;
      const stopping = this.listening;
      this.listening = null;
      void stopping?.then((unlisten) => unlisten?.()).catch(() => {});
    };
  }

  get size(): number {
    return this.subscribers.size;
  }

  private async start(): Promise<(() => Promise<void>) | null> {
    try {
      const [row] = await this.db.query<{ schema: string }>("SELECT current_schema() AS schema");
      return await this.db.listen(`${CONSOLE_EVENTS_CHANNEL}_${row!.schema}`, (payload) => {
        const event = parseEvent(payload);
        if (!event) return;
        for (const fn of this.subscribers) fn(event);
      });
    } catch (err) {
      // The stream still opens (and heartbeats); the console falls back to periodic refreshes.
      this.log.warn({ err }, "console events: LISTEN failed");
      return null;
    }
  }
}

export interface EventsOptions {
  hub: EventHub;
  /** The project the request's token is scoped to; null = admin (sees every event). */
  scope: (ctx: Koa.Context) => string | null;
  /** A comment line this often keeps proxies from closing an idle stream. Default 15 s. */
  heartbeatMs?: number;
}

/** The handler of GET /api/v1/events. Authentication happens before it (see console.ts). */
export function createEventsHandler(opts: EventsOptions): Koa.Middleware {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  return async (ctx) => {
    const scope = opts.scope(ctx);
    // The response is written directly (ctx.respond = false): a client going away is how
    // every stream ends, not an error for Koa to report.
    const res = ctx.res;
    const write = (chunk: string) => {
      if (!res.writableEnded && !res.destroyed) res.write(chunk);
    };
    const unsubscribe = await opts.hub.subscribe((event) => {
      if (eventVisible(event, scope)) write(`data: ${JSON.stringify(event)}\n\n`);
    });
    const heartbeat = setInterval(() => write(": heartbeat\n\n"), heartbeatMs);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      if (!res.writableEnded) res.end();
    };
    ctx.req.on("close", close);
    res.on("close", close);
    ctx.status = 200;
    ctx.respond = false;
    // A client that left while the subscription was being set up has already closed.
    if (ctx.req.socket.destroyed) return close();
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      Connection: "keep-alive",
      // nginx buffers proxied responses unless told not to.
      "X-Accel-Buffering": "no",
    });
    // The first event says the subscription is live: whatever changes after it is delivered.
    write(
      `retry: 3000\ndata: ${JSON.stringify({ type: "ready", project: scope, id: "", status: null })}\n\n`,
    );
  };
}
