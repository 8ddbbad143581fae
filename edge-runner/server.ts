// The data plane: a node:http (or, with TLS, node:https) server with keep-alive that checks the
// request head, looks up the route, reads the body within the function's limit, runs the
// function and writes its response.
//
// Errors become HTTP responses in exactly one place, `sendError` (CONVENTIONS.md "Errors"):
// 4xx show their message, 5xx only the code and an error id, which is also the request id in
// `x-edge-request-id` and the key of the full error in the log. Requests Node's parser refuses
// (malformed, head too large, too slow) never reach the routing; `sendError` answers them on
// the raw socket.

import { randomBytes } from "node:crypto";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import { type EdgeError, edgeError, toHttpError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { functionLimitDefaults } from "./config.ts";
import type { VersionMetrics } from "./metrics.ts";
import type { RouteTable } from "./router.ts";
import type { LoadedFunction } from "./runtime.ts";
import type { RequestTrace, Tracing } from "./trace.ts";

/** A function version as the server serves it. */
export interface ServedFunction {
  fn: LoadedFunction;
  metrics: VersionMetrics | null;
}

/** What the server serves: swapped as a whole when a desired state is applied. */
export interface ServingState {
  routes: RouteTable;
  functions: ReadonlyMap<string, ServedFunction>;
}

export interface EdgeServerOptions {
  /** Read on every request, so a new desired state takes effect atomically between requests. */
  current(): ServingState;
  logger: Logger;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** PEM certificate chain and key: serve HTTPS. */
  tls?: { cert: Buffer; key: Buffer };
  tracing?: Tracing;
}

export interface EdgeServer {
  server: Server;
  /** Requests being served right now (for heartbeats). */
  inFlight(): number;
}

interface RequestContext {
  id: string;
  started: number;
  served: ServedFunction | null;
  trace: RequestTrace | null;
}

export function createEdgeServer(options: EdgeServerOptions): EdgeServer {
  const { logger } = options;
  let inFlight = 0;

  // Request ids: a random per-process prefix and a counter. Unique within the process's life,
  // unguessable across processes, and without a crypto call on every request.
  const idPrefix = randomBytes(4).toString("hex");
  let idCounter = 0;
  const nextId = () => {
    idCounter = (idCounter + 1) % 0x100000000;
    return idPrefix + idCounter.toString(16).padStart(8, "0");
  };

  const finish = (ctx: RequestContext, status: number) => {
    inFlight--;
    ctx.served?.metrics?.record(status, (performance.now() - ctx.started) / 1000);
    ctx.trace?.end(status);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    const ctx: RequestContext = { id: nextId(), started: performance.now(), served: null, trace: null };
    handle(req, res, options.current(), ctx, options).then(
      () => finish(ctx, res.statusCode),
      (err) => {
        sendError({ req, res }, err, ctx, logger);
        finish(ctx, res.statusCode);
      },
    );
  };

  const serverOptions = {
    // keepAlive here turns on TCP keep-alive probes, so dead idle client connections are noticed.
    keepAlive: true,
    maxHeaderSize: options.maxHeaderBytes,
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    // Node enforces both timeouts only when it sweeps its connections, every 30 s by default:
    // a slow-loris client would hold its socket for up to 30 s past headersTimeout. Sweep often
    // enough that a timeout is enforced within a quarter of itself (at most every 2 s).
    connectionsCheckingInterval: Math.min(
      2000,
      Math.max(50, Math.floor(Math.min(options.headersTimeoutMs, options.requestTimeoutMs) / 4)),
    ),
    // Checked in `handle`, so the answer is the runner's JSON error like every other refusal.
    requireHostHeader: false,
  };
  const server: Server = options.tls
    ? (createHttpsServer(
        { ...serverOptions, cert: options.tls.cert, key: options.tls.key },
        onRequest,
      ) as unknown as Server)
    : createHttpServer(serverOptions, onRequest);
  // One more than allowed, so `handle` can tell "too many" from "exactly the limit".
  server.maxHeadersCount = options.maxHeaderCount + 1;

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const code =
      err.code === "HPE_HEADER_OVERFLOW"
        ? "EDGE_ERR_RUNTIME_HEADERS_TOO_LARGE"
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? "EDGE_ERR_RUNTIME_REQUEST_TIMEOUT"
          : "EDGE_ERR_RUNTIME_BAD_REQUEST";
    const message =
      code === "EDGE_ERR_RUNTIME_HEADERS_TOO_LARGE"
        ? `request head is larger than ${options.maxHeaderBytes} bytes`
        : code === "EDGE_ERR_RUNTIME_REQUEST_TIMEOUT"
          ? "request was not received in time"
          : `malformed request (${err.code ?? "parse error"})`;
    sendError({ socket }, edgeError(code, message, undefined, err), { id: nextId(), trace: null }, logger);
  });
  return { server, inFlight: () => inFlight };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  state: ServingState,
  ctx: RequestContext,
  options: EdgeServerOptions,
): Promise<void> {
  checkHead(req, options.maxHeaderCount);
  const method = req.method ?? "GET";
  const target = originForm(req.url ?? "/");
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  const host = req.headers.host ?? "";

  const match = state.routes.lookup(host, path, method);
  const served = match === null ? undefined : state.functions.get(match.functionId);
  if (served === undefined) {
    throw edgeError("EDGE_ERR_RUNTIME_NO_ROUTE", `no route for ${method} ${host}${path}`);
  }
  ctx.served = served;
  const { fn } = served;

  let rawHeaders = req.rawHeaders;
  const headers = req.headers;
  const tracing = options.tracing;
  if (tracing !== undefined && (tracing.always || headers.traceparent !== undefined)) {
    ctx.trace = tracing.start(
      headers.traceparent as string | undefined,
      headers.tracestate as string | undefined,
      {
        "http.request.method": method,
        "url.path": path,
        "server.address": host,
        "faas.name": fn.spec.name,
        "faas.version": fn.spec.version,
      },
    );
    if (ctx.trace?.traceparent) rawHeaders = withTraceparent(rawHeaders, ctx.trace.traceparent);
  }

  const read = readBody(req, fn.spec.max_request_bytes || functionLimitDefaults.maxRequestBytes);
  const body = read instanceof Uint8Array ? read : await read;
  const out = await fn.invoke(
    { method, target, rawHeaders, body },
    ctx.trace ? { requestId: ctx.id, traceId: ctx.trace.traceId } : { requestId: ctx.id },
  );

  // Name, value, name, value…: repeated names stay separate header lines, as the function wrote them.
  const outHeaders: string[] = [];
  for (const [name, value] of out.headers) {
    if (name.length === 17 && name.toLowerCase() === "x-edge-request-id") continue;
    outHeaders.push(name, value);
  }
  outHeaders.push("content-length", String(out.body.byteLength), "x-edge-request-id", ctx.id);
  res.writeHead(out.status, outHeaders);
  res.end(out.body);
}

/**
 * What Node's parser lets through but a function must not see: more headers than allowed, and
 * a missing (HTTP/1.1) or repeated Host, which RFC 9112 §3.2 requires a server to answer 400.
 */
function checkHead(req: IncomingMessage, maxHeaderCount: number): void {
  const raw = req.rawHeaders;
  if (raw.length > maxHeaderCount * 2) {
    throw edgeError("EDGE_ERR_RUNTIME_HEADERS_TOO_LARGE", `request has more than ${maxHeaderCount} headers`);
  }
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === "host") hosts++;
  }
  if (hosts > 1) throw edgeError("EDGE_ERR_RUNTIME_BAD_REQUEST", "request has more than one Host header");
  if (hosts === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
    throw edgeError("EDGE_ERR_RUNTIME_BAD_REQUEST", "HTTP/1.1 request without a Host header");
  }
}

/** The client's headers with `traceparent` set to the runner's span. */
function withTraceparent(raw: readonly string[], traceparent: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "traceparent" || raw[i]!.toLowerCase() === "tracestate") continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  out.push("traceparent", traceparent);
  return out;
}

/** Proxies may send absolute-form targets (RFC 9112 §3.2.2); functions always see origin-form. */
function originForm(url: string): string {
  if (url.startsWith("/")) return url;
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return "/";
  }
}

const EMPTY = new Uint8Array(0);

/** The body; synchronously (no promise to wait for) when the request has none. */
function readBody(req: IncomingMessage, maxBytes: number): Uint8Array | Promise<Uint8Array> {
  // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 §6.3), so
  // there is nothing to wait for; most GETs take this path.
  if (req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined) {
    return EMPTY;
  }
  const tooLarge = () =>
    edgeError("EDGE_ERR_RUNTIME_BODY_TOO_LARGE", `request body is larger than ${maxBytes} bytes`);
  // Refuse before reading a byte when the client says up front that it is too big.
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.reject(tooLarge());

  // Event listeners rather than `for await`: leaving an async iterator early destroys the
  // socket, and then the 413 could not be sent.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const done = (err: Error | null) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      if (err) reject(err);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > maxBytes) done(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => done(null);
    const onError = (err: Error) => done(err);
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/**
 * The one place where an error becomes an HTTP response: on a request's response, or on the
 * raw socket of a request Node's parser refused.
 */
function sendError(
  to: { req: IncomingMessage; res: ServerResponse } | { socket: Duplex },
  err: unknown,
  ctx: Pick<RequestContext, "id" | "trace">,
  logger: Logger,
): void {
  const { status, body } = toHttpError(err, ctx.id);
  const req = "req" in to ? to.req : undefined;
  const fields = {
    err,
    error_id: ctx.id,
    request_id: ctx.id,
    trace_id: ctx.trace?.traceId,
    method: req?.method,
    url: req?.url,
  };
  if (status >= 500) logger.error(fields, "request failed");
  else logger.debug(fields, `request refused: ${(err as EdgeError)?.code ?? "error"}`);

  const json = JSON.stringify(body);
  const headers: Record<string, string> = {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(json)),
  };
  if ("socket" in to) {
    // Node's parser cannot continue on this connection: answer and close it.
    const head = Object.entries({ ...headers, "x-edge-request-id": ctx.id, connection: "close" })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    to.socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n${head}\r\n${json}`);
    return;
  }
  const { res } = to;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // A body we stopped reading would otherwise have to be drained before the next request on
  // this connection; closing is cheaper than reading megabytes we already refused.
  if (!to.req.complete) headers.connection = "close";
  headers["x-edge-request-id"] = ctx.id;
  res.writeHead(status, headers);
  res.end(json);
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
};
