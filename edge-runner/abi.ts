// The byte formats of the edge-v1 ABI (DESIGN.md "Function ABI"): what a guest reads with
// `request_read` and what it writes with `response_write`. Kept free of I/O so the formats can be
// tested on their own and shared by every execution lane.

import { edgeError } from "../lib/errors.ts";

/** A request as the server hands it to a function. */
export interface GuestRequest {
  method: string;
  /** Origin-form request target: path plus `?query`, exactly as received. */
  target: string;
  /** Node's `rawHeaders`: name, value, name, value… in arrival order and original case. */
  rawHeaders: readonly string[];
  body: Uint8Array;
}

/** A function's parsed response. */
export interface GuestResponse {
  status: number;
  headers: Array<[name: string, value: string]>;
  body: Uint8Array;
}

/**
 * `METHOD /path?query HTTP/1.1\r\n`, one `Name: value\r\n` per header, `\r\n`, body. The head is
 * latin1 because that is how HTTP/1.1 header bytes arrive (RFC 9110 §5.5); the body is untouched.
 */
export function encodeRequest(req: GuestRequest): Uint8Array {
  let head = `${req.method} ${req.target} HTTP/1.1\r\n`;
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    head += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  }
  head += "\r\n";
  const headLen = Buffer.byteLength(head, "latin1");
  // Not from Buffer's shared pool: the bytes are posted to an executor thread, and posting a
  // view copies its whole ArrayBuffer (an 8 KiB pool slab for a 200-byte request).
  const out = Buffer.allocUnsafeSlow(headLen + req.body.byteLength);
  out.write(head, 0, "latin1");
  out.set(req.body, headLen);
  return out;
}

// Framing headers belong to the runner's connection to the client, not to the function
// (RFC 9110 §7.6.1); the runner sets Content-Length itself.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-connection",
  "content-length",
]);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Field values: visible characters, spaces and tabs; no CR, LF or other controls (RFC 9110 §5.5).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function badResponse(message: string): never {
  throw edgeError("EDGE_ERR_RUNTIME_BAD_RESPONSE", message);
}

function indexOfBlankLine(bytes: Uint8Array): { headEnd: number; bodyStart: number } | null {
  // CGI programs commonly end header lines with a bare LF, so accept the first "\r\n\r\n" or
  // "\n\n", whichever comes first. A response may also start with the blank line (no headers).
  if (bytes[0] === 0x0a) return { headEnd: 0, bodyStart: 1 };
  if (bytes[0] === 0x0d && bytes[1] === 0x0a) return { headEnd: 0, bodyStart: 2 };
  for (let i = 0; i < bytes.length - 1; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[i + 1] === 0x0a) return { headEnd: i, bodyStart: i + 2 };
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return { headEnd: i, bodyStart: i + 3 };
  }
  return null;
}

/**
 * Parses `Status: 200\r\nContent-Type: text/plain\r\n\r\nbody`. `Status` defaults to 200 and may
 * carry a reason phrase ("404 Not Found"), which is dropped. Anything that cannot become a valid
 * HTTP response throws EDGE_ERR_RUNTIME_BAD_RESPONSE.
 */
export function parseResponse(bytes: Uint8Array): GuestResponse {
  const blank = indexOfBlankLine(bytes);
  if (blank === null) badResponse("response has no blank line between headers and body");
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, blank.headEnd).toString("latin1");

  let status = 200;
  const headers: Array<[string, string]> = [];
  for (const rawLine of head.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) badResponse(`response header line without a name: ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name))
      badResponse(`response header name is not a token: ${JSON.stringify(name.slice(0, 80))}`);
    if (!FIELD_VALUE.test(value)) badResponse(`response header ${name} has a control character in its value`);
    const lower = name.toLowerCase();
    if (lower === "status") {
      const m = /^([1-5]\d\d)(?:\s.*)?$/.exec(value);
      const code = m ? Number(m[1]) : Number.NaN;
      // 1xx are interim responses a function cannot meaningfully send as its final answer.
      if (!(code >= 200 && code <= 599))
        badResponse(`response Status is not 200..599: ${JSON.stringify(value)}`);
      status = code;
    } else if (!HOP_BY_HOP.has(lower)) {
      headers.push([name, value]);
    }
  }
  return { status, headers, body: bytes.subarray(blank.bodyStart) };
}

// Request headers that must not become CGI variables: the body's own (they have CONTENT_LENGTH
// and CONTENT_TYPE, RFC 3875 §4.1.18), and `Proxy`, whose HTTP_PROXY would pass for the proxy
// setting of the guest's HTTP libraries ("httpoxy").
const NOT_CGI = new Set(["content-length", "content-type", "proxy"]);

/**
 * The CGI environment of a `wagi` request (RFC 3875 §4.1, as WAGI uses it): REQUEST_METHOD,
 * PATH_INFO, QUERY_STRING, SERVER_PROTOCOL, SERVER_NAME, CONTENT_LENGTH, CONTENT_TYPE and one
 * HTTP_* per request header (repeated headers joined with ", "), as `NAME=value` strings.
 */
export function cgiEnvironment(req: GuestRequest): string[] {
  const q = req.target.indexOf("?");
  const env = [
    `REQUEST_METHOD=${req.method}`,
    `PATH_INFO=${q < 0 ? req.target : req.target.slice(0, q)}`,
    `QUERY_STRING=${q < 0 ? "" : req.target.slice(q + 1)}`,
    "SERVER_PROTOCOL=HTTP/1.1",
    "GATEWAY_INTERFACE=CGI/1.1",
    `CONTENT_LENGTH=${req.body.byteLength}`,
  ];
  const headers = new Map<string, string>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const value = req.rawHeaders[i + 1]!;
    if (name === "content-type") env.push(`CONTENT_TYPE=${value}`);
    else if (name === "host") env.push(`SERVER_NAME=${value.replace(/:\d+$/, "")}`);
    if (NOT_CGI.has(name) || !TOKEN.test(name)) continue;
    const key = `HTTP_${name.toUpperCase().replace(/-/g, "_")}`;
    const prev = headers.get(key);
    headers.set(key, prev === undefined ? value : `${prev}, ${value}`);
  }
  for (const [key, value] of headers) env.push(`${key}=${value}`);
  return env;
}
