// The gRPC side of the control plane: runners connect (EdgeControl.Connect), say hello, and
// get their full desired state; after every applied change, broadcast() sends each connected,
// online runner its new desired state. Acks and heartbeats are written to the node registry.
//
// Liveness (seed Property 14): a runner whose last heartbeat is older than offlineAfterMs is
// marked offline, gets no new intents and is not counted as a rollout target, until it speaks
// again. Drift: a heartbeat whose inventory lacks a function the node should serve makes the
// control plane resend the desired state, once per generation, and audit it.

import type { Logger } from "../lib/log.ts";
import {
  type Ack,
  type ControlMessage,
  type DesiredState,
  edgeControlService,
  grpc,
  type Heartbeat,
  type Hello,
  type RunnerMessage,
  type ServerConnectStream,
} from "../proto/index.ts";
import { audit } from "./audit.ts";
import type { Db } from "./db.ts";
import {
  desiredFromActive,
  isOffline,
  loadActiveState,
  markNode,
  recordAck,
  recordHeartbeat,
  sweepOfflineNodes,
  upsertNode,
} from "./nodes.ts";

/** Where a session's control messages go: a gRPC stream, or any small sink in tests. */
export interface MessageSink {
  write(message: ControlMessage): unknown;
  end(): void;
}

export interface Session {
  nodeId: string;
  pop: string;
  labels: Record<string, string>;
  sink: MessageSink;
  /** Generation last sent, so an unchanged state is not resent. */
  sentGeneration: string;
  ackedGeneration: number;
  lastHeartbeatMs: number;
  offline: boolean;
  /** Generation for which drift was last corrected (drift is acted on once per generation). */
  driftGeneration: string;
  /** The per-function results of the last ack recorded, to skip rewriting identical ones. */
  lastResults: string;
}

export interface ControlServerDeps {
  db: Db;
  log: Logger;
  artifactUrl: (key: string) => Promise<string>;
  /** No heartbeat for this long → offline. Default 2 minutes (DESIGN.md). */
  offlineAfterMs?: number;
  /** How often liveness is checked. Default 5 s. */
  sweepIntervalMs?: number;
  /** The clock; injectable so liveness can be tested without waiting minutes. */
  now?: () => number;
}

const HELLO_TIMEOUT_MS = 10_000;

/** Ends a runner's stream with a gRPC status the runner sees (destroy() would send none). */
function refuse(call: ServerConnectStream, code: grpc.status, details: string): void {
  call.emit("error", { code, details, message: details, name: "Error" });
}

const labelKey = (labels: Record<string, string>) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/;

export interface ConnectedNode {
  nodeId: string;
  pop: string;
  ackedGeneration: number;
  offline: boolean;
}

export class ControlServer {
  private readonly server = new grpc.Server();
  private readonly sessions = new Map<string, Session>();
  private readonly ackWaiters = new Set<() => void>();
  /** Sends are serialised so a runner never receives generations out of order. */
  private sending: Promise<void> = Promise.resolve();
  private sweeper: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly offlineAfterMs: number;
  private mtls = false;

  constructor(private readonly deps: ControlServerDeps) {
    this.now = deps.now ?? Date.now;
    this.offlineAfterMs = deps.offlineAfterMs ?? 120_000;
    this.server.addService(edgeControlService, { Connect: (call: ServerConnectStream) => this.accept(call) });
  }

  /**
   * Listens for runners. With tls, the connection is mutual TLS: a runner must present a
   * certificate signed by tls.ca, and its node id is its certificate's common name.
   */
  async start(host: string, port: number, tls?: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<number> {
    this.mtls = tls !== undefined;
    const credentials = tls
      ? grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true)
      : grpc.ServerCredentials.createInsecure();
    this.sweeper = setInterval(() => void this.sweep(), this.deps.sweepIntervalMs ?? 5_000);
    this.sweeper.unref();
    return new Promise((resolve, reject) => {
      this.server.bindAsync(
        `${host.includes(":") ? `[${host}]` : host}:${port}`,
        credentials,
        (err, bound) => (err ? reject(err) : resolve(bound)),
      );
    });
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const s of this.sessions.values()) s.sink.end();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }

  /** The nodes connected to this control plane right now. */
  connected(): ConnectedNode[] {
    return [...this.sessions.values()].map((s) => ({
      nodeId: s.nodeId,
      pop: s.pop,
      ackedGeneration: s.ackedGeneration,
      offline: s.offline,
    }));
  }

  /** Resolves once the given nodes (default: every online node) acked `generation`, or false at the timeout. */
  async waitForAcks(generation: number, timeoutMs: number, nodeIds?: string[]): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const pending = () =>
      [...this.sessions.values()].some(
        (s) => (nodeIds ? nodeIds.includes(s.nodeId) : !s.offline) && s.ackedGeneration < generation,
      );
    while (pending()) {
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

  /** Resolves at the next ack this replica receives, or after timeoutMs. */
  nextAck(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = this.ackWaiters;
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      waiters.add(done);
    });
  }

  /**
   * Sends every connected, online runner its current desired state. The active state is read
   * once per broadcast and cut once per distinct label set, so a thousand runners in a few
   * POPs cost a few cuts, not a thousand queries.
   */
  broadcast(): Promise<void> {
    return this.enqueueSend(async () => {
      const sessions = [...this.sessions.values()].filter((s) => !s.offline);
      if (sessions.length === 0) return;
      const active = await loadActiveState(this.deps.db);
      const cuts = new Map<string, Promise<DesiredState>>();
      for (const s of sessions) {
        if (s.sentGeneration === active.generation) continue;
        const key = labelKey(s.labels);
        let cut = cuts.get(key);
        if (!cut) {
          cut = desiredFromActive(active, s.labels, this.urlCache());
          cuts.set(key, cut);
        }
        await this.sendDesired(s, await cut);
      }
    });
  }

  /** Artifact URLs for one broadcast, each made once (presigning is not free). */
  private urlCache(): (key: string) => Promise<string> {
    const urls = new Map<string, Promise<string>>();
    return (key) => {
      let url = urls.get(key);
      if (!url) {
        url = this.deps.artifactUrl(key);
        urls.set(key, url);
      }
      return url;
    };
  }

  /**
   * Marks nodes whose last heartbeat is older than offlineAfterMs offline (seed Property 14).
   * Runs on a timer; callable directly.
   */
  async sweep(): Promise<void> {
    // Nodes of any replica (including one that died) whose heartbeat is too old in the database.
    await sweepOfflineNodes(this.deps.db, this.offlineAfterMs).catch((err) =>
      this.deps.log.warn({ err }, "offline sweep failed"),
    );
    const now = this.now();
    for (const s of this.sessions.values()) {
      if (!s.offline && isOffline(s.lastHeartbeatMs, now, this.offlineAfterMs)) {
        s.offline = true;
        this.deps.log.warn({ node: s.nodeId, pop: s.pop }, "runner missed its heartbeats; marked offline");
        await markNode(this.deps.db, s.nodeId, "offline").catch(() => {});
      }
    }
  }

  /**
   * Registers a runner that said hello on `sink` and sends it its desired state. The gRPC
   * handler calls this; tests may call it with their own sink.
   */
  attach(sink: MessageSink, hello: Hello, ip = ""): Session {
    const previous = this.sessions.get(hello.node_id);
    if (previous) previous.sink.end(); // the node reconnected; its old stream is stale
    const session: Session = {
      nodeId: hello.node_id,
      pop: hello.pop,
      labels: { ...hello.labels, pop: hello.pop },
      sink,
      sentGeneration: "",
      ackedGeneration: Number(hello.generation) || 0,
      lastHeartbeatMs: this.now(),
      offline: false,
      driftGeneration: "",
      lastResults: "",
    };
    this.sessions.set(hello.node_id, session);
    void this.enqueueSend(async () => {
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

  /** Forgets a session (its stream ended). */
  detach(session: Session): void {
    if (this.sessions.get(session.nodeId) !== session) return;
    this.sessions.delete(session.nodeId);
    void markNode(this.deps.db, session.nodeId, "offline").catch(() => {});
    this.deps.log.info({ node: session.nodeId }, "runner disconnected");
  }

  async onHeartbeat(s: Session, hb: Heartbeat): Promise<void> {
    s.lastHeartbeatMs = this.now();
    // The generation acked when this heartbeat arrived: its inventory is from before any later
    // ack. Read after the awaits below, an ack processed meanwhile would make a heartbeat sent
    // mid-convergence look like drift (a spurious resync and audit row).
    const ackedOnArrival = s.ackedGeneration;
    const wasOffline = s.offline;
    s.offline = false;
    await recordHeartbeat(this.deps.db, s.nodeId, hb.inventory, hb.in_flight, hb.counters ?? []).catch(
      (err) => this.deps.log.warn({ err }, "heartbeat not recorded"),
    );
    const desired = await this.desiredFor(s);
    if (wasOffline) {
      // Back online: catch up on whatever it missed.
      await this.enqueueSend(() => this.sendDesired(s, desired));
      return;
    }
    const held = new Set(hb.inventory.map((i) => `${i.function_id}@${i.version}`));
    const missing = desired.functions.filter((f) => !held.has(`${f.function_id}@${f.version}`));
    if (
      missing.length === 0 ||
      s.driftGeneration === desired.generation ||
      ackedOnArrival < Number(desired.generation)
    ) {
      return; // in step, already corrected for this generation, or still converging on it
    }
    s.driftGeneration = desired.generation;
    this.deps.log.warn(
      { node: s.nodeId, missing: missing.map((f) => f.name) },
      "runner drifted; resending its desired state",
    );
    await audit(this.deps.db, {
      actor: "system",
      trigger: "drift",
      commitSha: null,
      projectId: null,
      objectKind: "node",
      objectId: s.nodeId,
      action: "resync",
      before: {
        missing: missing.map((f) => ({ function: f.name, function_id: f.function_id, version: f.version })),
      },
      after: { generation: desired.generation },
    });
    s.sentGeneration = "";
    await this.enqueueSend(() => this.sendDesired(s, desired));
  }

  private enqueueSend(fn: () => Promise<void>): Promise<void> {
    this.sending = this.sending.then(fn).catch((err) => this.deps.log.error({ err }, "send failed"));
    return this.sending;
  }

  private async desiredFor(s: Session): Promise<DesiredState> {
    const active = await loadActiveState(this.deps.db);
    return desiredFromActive(active, s.labels, this.urlCache());
  }

  private async sendDesired(s: Session, known?: DesiredState): Promise<void> {
    try {
      const desired = known ?? (await this.desiredFor(s));
      if (desired.generation === s.sentGeneration) return;
      s.sentGeneration = desired.generation;
      s.sink.write({ desired });
    } catch (err) {
      this.deps.log.error({ err, node: s.nodeId }, "could not send desired state");
    }
  }

  private accept(call: ServerConnectStream): void {
    let session: Session | null = null;
    const helloTimer = setTimeout(() => {
      if (!session) refuse(call, grpc.status.DEADLINE_EXCEEDED, "no hello within 10 s");
    }, HELLO_TIMEOUT_MS);

    call.on("data", (msg: RunnerMessage) => {
      if ("hello" in msg && msg.hello) {
        clearTimeout(helloTimer);
        if (session) return; // a second hello on one stream is ignored
        const hello = msg.hello;
        if (!NODE_ID.test(hello.node_id) || !hello.pop) {
          refuse(
            call,
            grpc.status.INVALID_ARGUMENT,
            "hello needs a node_id ([A-Za-z0-9._-], ≤128) and a pop",
          );
          return;
        }
        if (this.mtls) {
          // The certificate, not the message, says who this is.
          const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
          if (cn !== hello.node_id) {
            this.deps.log.warn(
              { claimed: hello.node_id, certificate: cn },
              "runner claimed a node id its certificate does not carry",
            );
            refuse(
              call,
              grpc.status.PERMISSION_DENIED,
              `node id "${hello.node_id}" does not match the certificate's "${cn ?? "(none)"}"`,
            );
            return;
          }
        }
        session = this.attach(call, hello, call.getPeer().replace(/:\d+$/, ""));
      } else if (session && "ack" in msg && msg.ack) {
        void this.onAck(session, msg.ack);
      } else if (session && "heartbeat" in msg && msg.heartbeat) {
        void this.onHeartbeat(session, msg.heartbeat).catch((err) =>
          this.deps.log.warn({ err }, "heartbeat failed"),
        );
      }
    });
    const close = () => {
      clearTimeout(helloTimer);
      if (session) this.detach(session);
      session = null;
    };
    call.on("end", () => {
      close();
      call.end();
    });
    call.on("error", close);
    call.on("cancelled", close);
  }

  async onAck(s: Session, ack: Ack): Promise<void> {
    const generation = Number(ack.generation) || 0;
    s.ackedGeneration = Math.max(s.ackedGeneration, generation);
    try {
      const results = JSON.stringify(ack.results);
      await recordAck(this.deps.db, s.nodeId, generation, ack.results, results !== s.lastResults);
      s.lastResults = results;
    } catch (err) {
      this.deps.log.warn({ err, node: s.nodeId }, "ack not recorded");
    }
    const waiters = [...this.ackWaiters];
    this.ackWaiters.clear();
    for (const wake of waiters) wake();
  }
}
