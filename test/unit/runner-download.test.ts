import { once } from "node:events";
import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import type { ExecutionContext } from "ava";
import test from "ava";
import fc from "fast-check";
import { downloadArtifact, retryDelay } from "../../edge-runner/download.ts";
import { EdgeError } from "../../lib/errors.ts";

/** A loopback HTTP server answering with `handler`; returns its base URL. */
async function serve(t: ExecutionContext, handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("download: returns the body of a 200 response", async (t) => {
  const base = await serve(t, (_req, res) => res.end(Buffer.from([0, 97, 115, 109])));
  const bytes = await downloadArtifact(`${base}/a.wasm`, { maxBytes: 100 });
  t.deepEqual(Buffer.from(bytes), Buffer.from([0, 97, 115, 109]));
});

test("download: retries with delays doubling from 1 s, at most 5 tries, then reports EDGE_ERR_ARTIFACT_DOWNLOAD", async (t) => {
  let requests = 0;
  const base = await serve(t, (_req, res) => {
    requests++;
    res.writeHead(503).end();
  });
  const slept: number[] = [];
  const err = await t.throwsAsync(
    downloadArtifact(`${base}/a.wasm?X-Amz-Signature=secret`, {
      maxBytes: 100,
      sleep: async (ms) => void slept.push(ms),
    }),
    { instanceOf: EdgeError },
  );
  t.is(err?.code, "EDGE_ERR_ARTIFACT_DOWNLOAD");
  t.is(requests, 5);
  t.deepEqual(slept, [1000, 2000, 4000, 8000]);
  t.regex(err!.message, /503 \(after 5 tries\)/);
  t.notRegex(err!.message, /secret/);
});

// **Feature: wasmEdge-edge-functions, Property 13: exponential backoff retry**
// **Validates: Requirements 11.1**
test("download: for any number of failures, waits 1 s doubling to 60 s between tries and gives up after 5", async (t) => {
  let failuresLeft = 0;
  let requests = 0;
  const base = await serve(t, (_req, res) => {
    requests++;
    if (failuresLeft-- > 0) res.writeHead(503).end();
    else res.end("module");
  });
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 8 }), async (failures) => {
      failuresLeft = failures;
      requests = 0;
      const slept: number[] = [];
      const outcome = await downloadArtifact(`${base}/a.wasm`, {
        maxBytes: 100,
        sleep: async (ms) => void slept.push(ms),
      }).then(
        () => "ok",
        (err: EdgeError) => err.code,
      );
      const tries = Math.min(failures + 1, 5);
      const expectedSleeps = Array.from({ length: tries - 1 }, (_, i) => Math.min(1000 * 2 ** i, 60_000));
      return (
        requests === tries &&
        outcome === (failures < 5 ? "ok" : "EDGE_ERR_ARTIFACT_DOWNLOAD") &&
        JSON.stringify(slept) === JSON.stringify(expectedSleeps)
      );
    }),
    { numRuns: 100 },
  );
  t.pass();
});

test("download: succeeds on a later try after transient failures", async (t) => {
  let requests = 0;
  const base = await serve(t, (_req, res) => {
    requests++;
    if (requests < 3) res.writeHead(500).end();
    else res.end("ok");
  });
  const bytes = await downloadArtifact(`${base}/a.wasm`, { maxBytes: 100, sleep: async () => {} });
  t.is(Buffer.from(bytes).toString(), "ok");
  t.is(requests, 3);
});

test("download: retry delays are capped at the maximum", (t) => {
  t.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelay(n, 1000, 60_000)),
    [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000],
  );
});

test("download: an artifact over the size cap fails at once, declared or streamed", async (t) => {
  let requests = 0;
  const base = await serve(t, (req, res) => {
    requests++;
    if (req.url === "/declared") res.writeHead(200, { "content-length": "1000" }).end(Buffer.alloc(1000));
    else {
      res.writeHead(200); // chunked, no length given
      res.end(Buffer.alloc(1000));
    }
  });
  for (const path of ["/declared", "/streamed"]) {
    const err = await t.throwsAsync(
      downloadArtifact(`${base}${path}`, { maxBytes: 100, sleep: async () => {} }),
      {
        instanceOf: EdgeError,
      },
    );
    t.is(err?.code, "EDGE_ERR_ARTIFACT_DOWNLOAD");
    t.regex(err!.message, /larger than 100 bytes/);
  }
  t.is(requests, 2);
});

test("download: refuses URLs that are not http or https", async (t) => {
  for (const url of ["file:///etc/passwd", "not a url"]) {
    const err = await t.throwsAsync(downloadArtifact(url, { maxBytes: 100 }), { instanceOf: EdgeError });
    t.is(err?.code, "EDGE_ERR_ARTIFACT_DOWNLOAD");
  }
});

test("download: a refused connection is a download error", async (t) => {
  // A port that was just free: bind it, note it, close it.
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));

  const err = await t.throwsAsync(
    downloadArtifact(`http://127.0.0.1:${port}/a.wasm`, {
      maxBytes: 100,
      attempts: 2,
      sleep: async () => {},
    }),
    { instanceOf: EdgeError },
  );
  t.is(err?.code, "EDGE_ERR_ARTIFACT_DOWNLOAD");
  t.regex(err!.message, /ECONNREFUSED \(after 2 tries\)/);
});
