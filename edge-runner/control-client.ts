// The runner's side of `EdgeControl.Connect` (proto/edge.proto, DESIGN.md "Control protocol").
//
// One long-lived stream: the runner says Hello (who it is, the generation it serves, what its
// cache holds), then applies every DesiredState it receives and acks its generation. When the
// stream ends or fails the client reconnects with exponential backoff and jitter; meanwhile the
// runner keeps serving what it has, and the next Hello tells the control plane where it stands.
// Plaintext gRPC only for now; mTLS is a later issue.

import { readFileSync } from "node:fs";
import type { Logger } from "../lib/log.ts";
import {
  type Ack,
  type ConnectStream,
  type ControlMessage,
  type DesiredState,
  EdgeControlClient,
  grpc,
  type Heartbeat,
  type Hello,
} from "../proto/index.ts";

export interface ControlClientOptions {
  /** `host:port` of the EdgeControl service. */
  address: string;
  reconnectMinDelayMs: number;
  reconnectMaxDelayMs: number;
  heartbeatIntervalMs: number;
  /** PEM file paths for mutual TLS; absent = plaintext. */
  tls?: { ca: string; cert: string; key: string };
  logger: Logger;
  /** Built afresh for every connection, so it carries the generation applied by then. */
  hello(): Promise<Hello>;
  heartbeat(): Promise<Heartbeat>;
  /** Converges on a desired state; the result is sent back as the Ack. */
  apply(desired: DesiredState): Promise<Ack>;
  /** Jitter source in [0, 1); injectable so tests can pin delays. */
  random?: () => number;
}

/**
 * The delay before reconnect number `failures + 1`: min·2^failures capped at max, then "equal
 * jitter" (half fixed, half random) so runners that lost the same control plane do not all
 * come back in the same instant, yet never sooner than `min`.
 */
export function reconnectDelay(failures: number, minMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, minMs * 2 ** failures);
  return Math.max(minMs, Math.round(base / 2 + (random * base) / 2));
}

export class ControlClient {
  readonly #options: ControlClientOptions;
  readonly #client: grpc.Client;
  #stream: ConnectStream | null = null;
  #connected = false;
  #stopped = true;
  #failures = 0;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  #connections = 0;

  constructor(options: ControlClientOptions) {
    this.#options = options;
    // With TLS the runner proves its identity with its certificate (mutual TLS) and checks the
    // control plane's against the CA; otherwise plaintext, for local development.
    const credentials = options.tls
      ? grpc.credentials.createSsl(
          readFileSync(options.tls.ca),
          readFileSync(options.tls.key),
          readFileSync(options.tls.cert),
        )
      : grpc.credentials.createInsecure();
    // grpc-js keeps its own reconnect backoff per channel (1 s growing to 120 s by default): after
    // a long outage the channel would sit in TRANSIENT_FAILURE, failing our reconnects at once,
    // for up to two minutes after the control plane is back. Bound it by our own backoff.
    this.#client = new EdgeControlClient(options.address, credentials, {
      "grpc.initial_reconnect_backoff_ms": options.reconnectMinDelayMs,
      "grpc.max_reconnect_backoff_ms": options.reconnectMaxDelayMs,
    });
  }

  /** True while a stream to the control plane is open and has answered. */
  get connected(): boolean {
    return this.#connected;
  }

  /** How many streams were opened so far (observable reconnects). */
  get connections(): number {
    return this.#connections;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.#connect();
  }

  /** Closes the stream and stops reconnecting. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#stopHeartbeat();
    const stream = this.#stream;
    this.#stream = null;
    this.#connected = false;
    if (stream) {
      stream.end();
      stream.cancel();
    }
    this.#client.close();
  }

  async #connect(): Promise<void> {
    this.#reconnectTimer = null;
    let hello: Hello;
    try {
      hello = await this.#options.hello();
    } catch (err) {
      this.#options.logger.error({ err }, "could not build Hello; retrying");
      this.#scheduleReconnect();
      return;
    }
    if (this.#stopped) return;

    const { logger } = this.#options;
    const stream = (this.#client as unknown as { Connect(): ConnectStream }).Connect();
    this.#stream = stream;
    this.#connections++;
    let ended = false;

    const answered = () => {
      if (ended || this.#connected) return;
      this.#connected = true;
      this.#failures = 0;
      logger.info({ address: this.#options.address }, "connected to control plane");
    };
    const onEnded = (err?: Error) => {
      if (ended) return;
      ended = true;
      if (this.#stream === stream) this.#stream = null;
      const wasConnected = this.#connected;
      this.#connected = false;
      this.#stopHeartbeat();
      if (this.#stopped) return;
      if (wasConnected || err === undefined)
        logger.warn({ err: err?.message }, "control stream ended; reconnecting");
      else logger.debug({ err: err?.message }, "control plane unreachable; retrying");
      stream.end();
      this.#scheduleReconnect();
    };

    stream.on("metadata", answered);
    stream.on("data", (msg: ControlMessage) => {
      answered();
      if (msg.desired) void this.#onDesired(msg.desired, () => ended, stream);
    });
    stream.on("error", (err: Error) => onEnded(err));
    stream.on("end", () => onEnded());

    stream.write({ hello });
    this.#startHeartbeat(stream, () => ended);
  }

  async #onDesired(desired: DesiredState, isEnded: () => boolean, stream: ConnectStream): Promise<void> {
    let ack: Ack;
    try {
      ack = await this.#options.apply(desired);
    } catch (err) {
      this.#options.logger.error({ err, generation: desired.generation }, "applying a desired state failed");
      return;
    }
    // If the stream died meanwhile, the next Hello carries the generation instead of this Ack.
    if (!isEnded()) stream.write({ ack });
  }

  #startHeartbeat(stream: ConnectStream, isEnded: () => boolean): void {
    this.#stopHeartbeat();
    this.#heartbeatTimer = setInterval(() => {
      this.#options
        .heartbeat()
        .then((heartbeat) => {
          if (!isEnded()) stream.write({ heartbeat });
        })
        .catch((err) => this.#options.logger.warn({ err }, "could not build Heartbeat"));
    }, this.#options.heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
  }

  #stopHeartbeat(): void {
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = null;
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#reconnectTimer) return;
    const { reconnectMinDelayMs: min, reconnectMaxDelayMs: max } = this.#options;
    const delay = reconnectDelay(this.#failures, min, max, (this.#options.random ?? Math.random)());
    this.#failures++;
    this.#reconnectTimer = setTimeout(() => void this.#connect(), delay);
  }
}
