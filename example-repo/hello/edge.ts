// edge.ts — the edge-v1 ABI helper for AssemblyScript handlers.
//
// A handler module imports `Request`, `Response` and `serve` from here, and exports
// `edge_handle` as `serve(handler)`. The host functions below are the `edge` import module
// described in docs/abi.md; this file is the only place that touches raw pointers.

@external("edge", "request_len")
declare function request_len(): i32;
@external("edge", "request_read")
declare function request_read(ptr: usize, len: i32): i32;
@external("edge", "response_write")
declare function response_write(ptr: usize, len: i32): i32;
@external("edge", "log")
declare function host_log(ptr: usize, len: i32): void;

/** An HTTP request as the runner hands it over: request line, headers, body. */
export class Request {
  method: string = "GET";
  path: string = "/";
  query: string = "";
  body: string = "";
  private names: string[] = [];
  private values: string[] = [];

  /** The first header with this name (case-insensitive), or "". */
  header(name: string): string {
    const lower = name.toLowerCase();
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i] == lower) return this.values[i];
    }
    return "";
  }

  static read(): Request {
    const len = request_len();
    const buf = new ArrayBuffer(len);
    request_read(changetype<usize>(buf), len);
    const raw = String.UTF8.decode(buf);
    const req = new Request();
    let headEnd = raw.indexOf("\r\n\r\n");
    if (headEnd < 0) headEnd = raw.length;
    else req.body = raw.substring(headEnd + 4);
    const lines = raw.substring(0, headEnd).split("\r\n");
    const first = lines[0].split(" ");
    if (first.length >= 2) {
      req.method = first[0];
      const target = first[1];
      const q = target.indexOf("?");
      if (q >= 0) {
        req.path = target.substring(0, q);
        req.query = target.substring(q + 1);
      } else {
        req.path = target;
      }
    }
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon <= 0) continue;
      req.names.push(lines[i].substring(0, colon).trim().toLowerCase());
      req.values.push(lines[i].substring(colon + 1).trim());
    }
    return req;
  }
}

/** A response: status, headers and a text body, written out CGI-style. */
export class Response {
  status: i32;
  body: string;
  private headers: string[] = [];

  constructor(body: string = "", status: i32 = 200) {
    this.body = body;
    this.status = status;
  }

  /** Adds a header; returns this so calls chain. */
  set(name: string, value: string): Response {
    this.headers.push(name + ": " + value);
    return this;
  }

  write(): void {
    let head = "Status: " + this.status.toString() + "\r\n";
    let hasType = false;
    for (let i = 0; i < this.headers.length; i++) {
      if (this.headers[i].toLowerCase().startsWith("content-type:")) hasType = true;
      head += this.headers[i] + "\r\n";
    }
    if (!hasType) head += "Content-Type: text/plain; charset=utf-8\r\n";
    writeString(head + "\r\n");
    writeString(this.body);
  }
}

function writeString(s: string): void {
  const buf = String.UTF8.encode(s);
  response_write(changetype<usize>(buf), buf.byteLength);
}

/** Writes a line to the runner's log for this function. */
export function log(message: string): void {
  const buf = String.UTF8.encode(message);
  host_log(changetype<usize>(buf), buf.byteLength);
}

/** Reads the request, runs the handler, writes its response; the value of `edge_handle`. */
export function serve(handler: (req: Request) => Response): i32 {
  handler(Request.read()).write();
  return 0;
}
