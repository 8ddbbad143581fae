// Baseline for the runner's hot path: plain node:http calling the same wasm export in-process,
// with the least glue that works (one instance, request bytes in, CGI body out, no routing,
// no limits, no error handling). Usage: raw-wasm.ts <module.wasm> <port>

import { readFileSync } from "node:fs";
import http from "node:http";

const [wasmPath, port] = process.argv.slice(2) as [string, string];
let request = new Uint8Array(0);
let readAt = 0;
let chunks: Buffer[] = [];
let memory: WebAssembly.Memory;
const mem = () => new Uint8Array(memory.buffer);

const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), {
  edge: {
    request_len: () => request.length,
    request_read: (ptr: number, len: number) => {
      const n = Math.min(len, request.length - readAt);
      mem().set(request.subarray(readAt, readAt + n), ptr);
      readAt += n;
      return n;
    },
    response_write: (ptr: number, len: number) => {
      chunks.push(Buffer.from(mem().slice(ptr, ptr + len)));
      return len;
    },
    log: () => {},
  },
});
memory = instance.exports.memory as WebAssembly.Memory;
(instance.exports._initialize as (() => void) | undefined)?.();
const handle = instance.exports.edge_handle as () => number;

http
  .createServer((req, res) => {
    let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      head += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    request = Buffer.from(`${head}\r\n`, "latin1");
    readAt = 0;
    chunks = [];
    handle();
    const out = Buffer.concat(chunks);
    const split = out.indexOf("\r\n\r\n");
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    res.end(out.subarray(split + 4));
  })
  .listen(Number(port), "127.0.0.1", () => process.stdout.write("ready\n"));
