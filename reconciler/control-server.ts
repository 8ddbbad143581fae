// The gRPC side of the control plane: runners connect (EdgeControl.Connect), say hello, and
// get their full desired state; after every applied change, broadcast() sends each connected
// runner its new desired state. Acks and heartbeats are written to the node registry.

import type { Logger } from "../lib/log.ts";
import {
  type Ack,
  type ControlMessage,
  edgeControlService,
  grpc,
  type Hello,
  type RunnerMessage,
  type ServerConnectStream,
} from "../proto/index.ts";
import type { Db } from "./db.ts";
import { desiredStateFor, markNode, recordAck, touchNode, upsertNode } from "./nodes.ts";

interface Session {
  nodeId: string;
  labels: Record<string, string>;
  call: ServerConnectStream;
  /** Generation and content fingerprint last sent, so an unchanged state is not resent. */
  sentGeneration: string;
  ackedGeneration: number;
}

export interface ControlServerDeps {
  db: Db;
  log: Logger;
  artifactUrl: (key: string) => Promise<string>;
}

const HELLO_TIMEOUT_MS = 10_000;
const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/;

export class ControlServer {
  private readonly server = new grpc.Server();
  private readonly sessions = new Map<string, Session>();
  private readonly ackWaiters = new Set<() => void>();
  /** Sends are serialised so a runner never receives generations out of order. */
  private sending: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ControlServerDeps) {
    this.server.addService(edgeControlService, { Connect: (call: ServerConnectStream) => this.accept(call) });
  }

  async start(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(
        `${host.includes(":") ? `[${host}]` : host}:${port}`,
        grpc.ServerCredentials.createInsecure(),
        (err, bound) => (err ? reject(err) : resolve(bound)),
      );
    });
  }

  async stop(): Promise<void> {
    for (const s of this.sessions.values()) s.call.end();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }

  /** The nodes connected to this control plane right now. */
  connected(): { nodeId: string; ackedGeneration: number }[] {
    return [...this.sessions.values()].map((s) => ({ nodeId: s.nodeId, ackedGeneration: s.ackedGeneration }));
  }

  /** Resolves once every connected node has acked at least `generation` (or the timeout passes). */
  async waitForAcks(generation: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while ([...this.sessions.values()].some((s) => s.ackedGeneration < generation)) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.ackWaiters.add(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  /** Sends every connected runner its current desired state. */
  broadcast(): Promise<void> {
    this.sending = this.sending.then(async () => {
      for (const s of [...this.sessions.values()]) await this.sendDesired(s);
    });
    return this.sending;
  }

  private async sendDesired(s: Session): Promise<void> {
    try {
      const desired = await desiredStateFor(this.deps.db, s.labels, this.deps.artifactUrl);
      if (desired.generation === s.sentGeneration) return;
      s.sentGeneration = desired.generation;
      const msg: ControlMessage = { desired };
      s.call.write(msg);
    } catch (err) {
      this.deps.log.error({ err, node: s.nodeId }, "could not send desired state");
    }
  }

  private accept(call: ServerConnectStream): void {
    let session: Session | null = null;
    const helloTimer = setTimeout(() => {
      if (!session) call.destroy(new Error("no hello within 10 s"));
    }, HELLO_TIMEOUT_MS);

    call.on("data", (msg: RunnerMessage) => {
      if ("hello" in msg && msg.hello) {
        clearTimeout(helloTimer);
        if (session) return; // a second hello on one stream is ignored
        const hello = msg.hello;
        if (!NODE_ID.test(hello.node_id) || !hello.pop) {
          call.destroy(new Error("hello needs a node_id ([A-Za-z0-9._-], ≤128) and a pop"));
          return;
        }
        session = this.register(call, hello);
      } else if (session && "ack" in msg && msg.ack) {
        void this.onAck(session, msg.ack);
      } else if (session && "heartbeat" in msg && msg.heartbeat) {
        void touchNode(this.deps.db, session.nodeId).catch((err) =>
          this.deps.log.warn({ err }, "heartbeat not recorded"),
        );
      }
    });
    const close = () => {
      clearTimeout(helloTimer);
      if (session && this.sessions.get(session.nodeId) === session) {
        this.sessions.delete(session.nodeId);
        void markNode(this.deps.db, session.nodeId, "offline").catch(() => {});
        this.deps.log.info({ node: session.nodeId }, "runner disconnected");
      }
      session = null;
    };
    call.on("end", () => {
      close();
      call.end();
    });
    call.on("error", close);
    call.on("cancelled", close);
  }

  private register(call: ServerConnectStream, hello: Hello): Session {
    const labels = { ...hello.labels, pop: hello.pop };
    const previous = this.sessions.get(hello.node_id);
    if (previous) previous.call.end(); // the node reconnected; its old stream is stale
    const session: Session = {
      nodeId: hello.node_id,
      labels,
      call,
      sentGeneration: "",
      ackedGeneration: Number(hello.generation) || 0,
    };
    this.sessions.set(hello.node_id, session);
    const ip = call.getPeer().replace(/:\d+$/, "");
    this.sending = this.sending.then(async () => {
      try {
        await upsertNode(this.deps.db, {
          nodeId: hello.node_id,
          pop: hello.pop,
          labels: hello.labels,
          ip,
          httpAddress: hello.http_address,
        });
      } catch (err) {
        this.deps.log.error({ err, node: hello.node_id }, "could not record node");
      }
      await this.sendDesired(session);
    });
    this.deps.log.info(
      { node: hello.node_id, pop: hello.pop, generation: hello.generation },
      "runner connected",
    );
    return session;
  }

  private async onAck(s: Session, ack: Ack): Promise<void> {
    const generation = Number(ack.generation) || 0;
    s.ackedGeneration = Math.max(s.ackedGeneration, generation);
    try {
      await recordAck(this.deps.db, s.nodeId, generation, ack.results);
    } catch (err) {
      this.deps.log.warn({ err, node: s.nodeId }, "ack not recorded");
    }
    for (const wake of this.ackWaiters) wake();
    this.ackWaiters.clear();
  }
}
