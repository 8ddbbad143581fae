// Every example function, one per language, end to end: the control plane (real PostgreSQL,
// a directory-source project copied from example-repo/) builds each with its real toolchain
// in build worker processes, stores the artifacts, and a runner connected over loopback gRPC
// serves every one of them over HTTP.

import { cp as copy, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import { createRunner } from "../../edge-runner/index.ts";
import { createControlPlane } from "../../reconciler/index.ts";
import { adminToken, bearer } from "../helpers/auth.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { request } from "../helpers/http.ts";
import { tempDir } from "../helpers/tmp.ts";

test("e2e (languages): every example function — AssemblyScript, WAT, Rust, C, prebuilt wasm — is built and served; a Rust compile error reaches the API with its file and line", async (t) => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const repo = path.join(tmp.dir, "repo");
  await copy("example-repo", repo, { recursive: true });
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    projects: [{ name: "example", repo, source: "directory" }],
  });
  await cp.start();
  const runner = createRunner({
    nodeId: "lang-1",
    pop: "test-1",
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir: path.join(tmp.dir, "cache"),
    control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
  });
  const { httpPort } = await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await cp.stop();
    await drop();
    await tmp.remove();
  });

  const id = await cp.reconciler.enqueue("example", { commit: null, trigger: "api", actor: "test" });
  const row = await cp.reconciler.wait(id);
  t.is(row.status, "succeeded", JSON.stringify(row.error));
  const builds = (row.result as { builds: { function: string; toolchain: string }[] }).builds;
  t.deepEqual(Object.fromEntries(builds.map((b) => [b.function, b.toolchain.split(" ")[0]])), {
    "echo-wat": "wabt",
    "greet-rust": "rustc",
    hello: "assemblyscript",
    "hello-c": "clang",
    "static-wasm": "prebuilt",
  });
  const generation = (row.result as { generation: number }).generation;
  t.true(await cp.control.waitForAcks(generation, 20_000));
  const inventory = await cp.db.query<{ status: string }>(
    "SELECT status FROM node_inventory WHERE node_id = 'lang-1'",
  );
  t.is(inventory.length, 5);
  t.true(
    inventory.every((r) => r.status === "OK"),
    JSON.stringify(inventory),
  );

  // AssemblyScript
  const hello = await request(httpPort, "hello.localhost", "/?name=langs");
  t.is(hello.status, 200);
  t.is(hello.text, "Hello, langs! (from edgeplane, GET /)\n");

  // WAT: the raw request comes back
  const echo = await request(httpPort, "echo.localhost", "/e?x=1", { method: "POST", body: "ping" });
  t.is(echo.status, 200);
  t.regex(echo.text, /^POST \/e\?x=1 HTTP\/1\.1\r\n/);
  t.regex(echo.text, /\r\n\r\nping$/);

  // Rust: JSON
  const rust = await request(httpPort, "rust.localhost", "/greet?name=Ferris");
  t.is(rust.status, 200);
  t.regex(String(rust.headers["content-type"]), /^application\/json/);
  t.deepEqual(JSON.parse(rust.text), { greeting: "Hello, Ferris!", language: "rust", path: "/greet" });

  // C
  const c = await request(httpPort, "c.localhost", "/from/c?q=1");
  t.is(c.status, 200);
  t.regex(c.text, /^Hello from C! GET \/from\/c \(\d+ request bytes\)\n$/);

  // A prebuilt module
  const wasm = await request(httpPort, "wasm.localhost", "/");
  t.is(wasm.status, 200);
  t.is(wasm.text, "Hello from a prebuilt module!\n");

  // A compile error: the reconcile fails with the source position in the API, nothing is
  // applied, and the last good version keeps serving.
  const lib = path.join(repo, "greet-rust/src/lib.rs");
  const source = await readFile(lib, "utf8");
  const line = source.split("\n").findIndex((l) => l.includes("let name = ")) + 1;
  await writeFile(lib, source.replace("let name = ", "let name: u32 = "));
  const failedId = await cp.reconciler.enqueue("example", { commit: null, trigger: "api", actor: "test" });
  t.is((await cp.reconciler.wait(failedId)).status, "failed");
  const api = await fetch(`${cp.url}/api/v1/reconciliations/${failedId}`, {
    headers: bearer(await adminToken(cp)),
  });
  const body = (await api.json()) as {
    error: { code: string; message: string; details: { where: string; message: string }[] };
  };
  t.is(body.error.code, "EDGE_ERR_BUILD_COMPILE");
  t.regex(
    body.error.message,
    /^function "greet-rust": greet-rust\/src\/lib\.rs:\d+:\d+: E0308: mismatched types$/,
  );
  t.regex(body.error.details[0]!.where, new RegExp(`^greet-rust/src/lib\\.rs:${line}:\\d+$`));
  t.notRegex(JSON.stringify(body), /\n\s+at /, "no stack trace");
  const still = await request(httpPort, "rust.localhost", "/?name=again");
  t.is(JSON.parse(still.text).greeting, "Hello, again!");
});
