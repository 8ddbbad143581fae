// The data plane: a node:http server (HTTP keep-alive is Node's default) that looks up the
// route, reads the body within the function's limit, runs the function and writes its response.
//
// Errors become HTTP responses in exactly one place, `sendError` (CONVENTIONS.md "Errors"):
// 4xx show their message, 5xx only the code and an error id, which is also the request id in
// `x-edge-request-id` and the key of the full error in the log.

import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { edgeError, toHttpError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { functionLimitDefaults } from "./config.ts";
import type { RouteTable } from "./router.ts";
import type { LoadedFunction } from "./runtime.ts";

/** What the server serves: swapped as a whole when a desired state is applied. */
export interface ServingState {
  routes: RouteTable;
  functions: ReadonlyMap<string, LoadedFunction>;
}

export interface EdgeServerOptions {
  /** Read on every request, so a new desired state takes effect atomically between requests. */
  current(): ServingState;
  logger: Logger;
}

export interface EdgeServer {
  server: Server;
  /** Requests being served right now (for heartbeats). */
  inFlight(): number;
}

export function createEdgeServer(options: EdgeServerOptions): EdgeServer {
  const { logger } = options;
  let inFlight = 0;

  // keepAlive here turns on TCP keep-alive probes, so dead idle client connections are noticed.
  // Request ids: a random per-process prefix and a counter. Unique within the process's life,
  // unguessable across processes, and without a crypto call on every request.
  const idPrefix = randomBytes(4).toString("hex");
  let idCounter = 0;
  const server = createServer({ keepAlive: true }, (req, res) => {
    inFlight++;
    res.once("close", () => inFlight--);
    idCounter = (idCounter + 1) % 0x100000000;
    const requestId = idPrefix + idCounter.toString(16).padStart(8, "0");
    res.setHeader("x-edge-request-id", requestId);
    handle(req, res, options.current()).catch((err) => sendError(req, res, err, requestId, logger));
  });
  return { server, inFlight: () => inFlight };
}

async function handle(req: IncomingMessage, res: ServerResponse, state: ServingState): Promise<void> {
  const method = req.method ?? "GET";
  const target = originForm(req.url ?? "/");
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  const host = req.headers.host ?? "";

  const match = state.routes.lookup(host, path, method);
  const fn = match === null ? undefined : state.functions.get(match.functionId);
  if (fn === undefined) {
    throw edgeError("EDGE_ERR_RUNTIME_NO_ROUTE", `no route for ${method} ${host}${path}`);
  }

  const body = await readBody(req, fn.spec.max_request_bytes || functionLimitDefaults.maxRequestBytes);
  const out = await fn.invoke({ method, target, rawHeaders: req.rawHeaders, body });

  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of out.headers) {
    const key = name.toLowerCase();
    const prev = headers[key];
    headers[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  headers["content-length"] = String(out.body.byteLength);
  res.writeHead(out.status, headers);
  res.end(out.body);
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

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 §6.3), so
  // there is nothing to wait for; most GETs take this path.
  if (req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined) {
    return EMPTY;
  }
  const tooLarge = () =>
    edgeError("EDGE_ERR_RUNTIME_BODY_TOO_LARGE", `request body is larger than ${maxBytes} bytes`);
  // Refuse before reading a byte when the client says up front that it is too big.
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();

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

/** The one place where an error becomes an HTTP response. */
function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
  errorId: string,
  logger: Logger,
): void {
  const { status, body } = toHttpError(err, errorId);
  if (status >= 500)
    logger.error({ err, error_id: errorId, method: req.method, url: req.url }, "request failed");
  else logger.debug({ err, error_id: errorId }, "request refused");

  if (res.headersSent) {
    res.destroy();
    return;
  }
  const json = JSON.stringify(body);
  const headers: Record<string, string> = {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(json)),
  };
  // A body we stopped reading would otherwise have to be drained before the next request on
  // this connection; closing is cheaper than reading megabytes we already refused.
  if (!req.complete) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(json);
}
