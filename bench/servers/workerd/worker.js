// The workerd peer of bench/servers/raw-wasm.ts: a module worker that calls the same edge-v1
// export with the same glue (one instance made at startup, request bytes in, CGI body out).
import wasm from "hello.wasm";

const encoder = new TextEncoder();
let request = new Uint8Array(0);
let readAt = 0;
let chunks = [];
let written = 0;
let memory;

const instance = new WebAssembly.Instance(wasm, {
  edge: {
    request_len: () => request.length,
    request_read: (ptr, len) => {
      const n = Math.min(len, request.length - readAt);
      new Uint8Array(memory.buffer).set(request.subarray(readAt, readAt + n), ptr);
      readAt += n;
      return n;
    },
    response_write: (ptr, len) => {
      chunks.push(new Uint8Array(memory.buffer, ptr, len).slice());
      written += len;
      return len;
    },
    log: () => {},
  },
});
memory = instance.exports.memory;
instance.exports._initialize?.();

export default {
  async fetch(req) {
    const url = new URL(req.url);
    let head = `${req.method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
    for (const [name, value] of req.headers) head += `${name}: ${value}\r\n`;
    request = encoder.encode(`${head}\r\n`);
    readAt = 0;
    chunks = [];
    written = 0;
    instance.exports.edge_handle();
    const out = new Uint8Array(written);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    let split = 0;
    while (
      split + 3 < out.length &&
      !(out[split] === 13 && out[split + 1] === 10 && out[split + 2] === 13 && out[split + 3] === 10)
    )
      split++;
    return new Response(out.subarray(split + 4), {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};
