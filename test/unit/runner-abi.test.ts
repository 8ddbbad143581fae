import test from "ava";
import { cgiEnvironment, encodeRequest, parseResponse } from "../../edge-runner/abi.ts";
import { EdgeError } from "../../lib/errors.ts";

const bytes = (s: string) => Buffer.from(s, "latin1");
const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");

test("abi: encodes the request line, headers in arrival order, a blank line and the body", (t) => {
  const out = encodeRequest({
    method: "POST",
    target: "/api/x?name=ann",
    rawHeaders: ["Host", "h.test", "X-Two", "2"],
    body: Buffer.from("héllo"),
  });
  t.is(text(out), "POST /api/x?name=ann HTTP/1.1\r\nHost: h.test\r\nX-Two: 2\r\n\r\nhéllo");
});

test("abi: encodes a request without headers or body", (t) => {
  t.is(
    text(encodeRequest({ method: "GET", target: "/", rawHeaders: [], body: new Uint8Array() })),
    "GET / HTTP/1.1\r\n\r\n",
  );
});

test("abi: parses status, headers and body of a CGI response", (t) => {
  const res = parseResponse(bytes("Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nnope"));
  t.is(res.status, 404);
  t.deepEqual(res.headers, [
    ["Content-Type", "text/plain"],
    ["X-A", "1"],
  ]);
  t.is(text(res.body), "nope");
});

test("abi: status defaults to 200", (t) => {
  const res = parseResponse(bytes("Content-Type: text/plain\r\n\r\nhi"));
  t.is(res.status, 200);
  t.is(text(res.body), "hi");
});

test("abi: accepts a response with no headers at all and bare-LF line endings", (t) => {
  const empty = parseResponse(bytes("\r\nbody only"));
  t.is(empty.status, 200);
  t.deepEqual(empty.headers, []);
  t.is(text(empty.body), "body only");
  const lf = parseResponse(bytes("Status: 201\nX-A: 1\n\nlf"));
  t.is(lf.status, 201);
  t.deepEqual(lf.headers, [["X-A", "1"]]);
  t.is(text(lf.body), "lf");
});

test("abi: keeps a body that itself contains blank lines and binary bytes", (t) => {
  const body = Buffer.from([0, 13, 10, 13, 10, 255]);
  const res = parseResponse(Buffer.concat([bytes("Status: 200\r\n\r\n"), body]));
  t.deepEqual(Buffer.from(res.body), body);
});

test("abi: drops hop-by-hop and length headers the runner owns", (t) => {
  const res = parseResponse(
    bytes("Connection: close\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\nX-Keep: y\r\n\r\n"),
  );
  t.deepEqual(res.headers, [["X-Keep", "y"]]);
});

for (const [name, input] of [
  ["a missing blank line", "Status: 200\r\nContent-Type: text/plain\r\nbody"],
  ["an empty response", ""],
  ["a non-numeric status", "Status: ok\r\n\r\n"],
  ["a status out of range", "Status: 700\r\n\r\n"],
  ["an interim 1xx status", "Status: 101\r\n\r\n"],
  ["a header line without a colon", "Status: 200\r\nnonsense\r\n\r\n"],
  ["a header name with a space", "Bad Name: x\r\n\r\n"],
  ["a control character in a header value", "X-A: a\u0001b\r\n\r\n"],
] as const) {
  test(`abi: rejects ${name} with EDGE_ERR_RUNTIME_BAD_RESPONSE`, (t) => {
    const err = t.throws(() => parseResponse(bytes(input)), { instanceOf: EdgeError });
    t.is(err?.code, "EDGE_ERR_RUNTIME_BAD_RESPONSE");
    t.is(err?.status, 502);
  });
}

test("abi: the CGI environment of a wagi request carries method, path, query, body headers and HTTP_*", (t) => {
  const env = cgiEnvironment({
    method: "POST",
    target: "/api/items?name=ann&x=1",
    rawHeaders: [
      "Host",
      "h.test:8080",
      "Content-Type",
      "text/plain",
      "X-Multi",
      "a",
      "x-multi",
      "b",
      "Proxy",
      "evil:3128",
    ],
    body: Buffer.from("hello"),
  });
  t.deepEqual(env, [
    "REQUEST_METHOD=POST",
    "PATH_INFO=/api/items",
    "QUERY_STRING=name=ann&x=1",
    "SERVER_PROTOCOL=HTTP/1.1",
    "GATEWAY_INTERFACE=CGI/1.1",
    "CONTENT_LENGTH=5",
    "SERVER_NAME=h.test",
    "CONTENT_TYPE=text/plain",
    "HTTP_HOST=h.test:8080",
    "HTTP_X_MULTI=a, b",
  ]);
  // No HTTP_PROXY ("httpoxy"), no HTTP_CONTENT_TYPE / HTTP_CONTENT_LENGTH (RFC 3875 §4.1.18).
  t.false(env.some((e) => e.startsWith("HTTP_PROXY=") || e.startsWith("HTTP_CONTENT_")));
});
