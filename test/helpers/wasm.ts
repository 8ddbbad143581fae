// Real edge-v1 modules for tests, compiled from AssemblyScript in memory with the same helper
// (`example-repo/hello/edge.ts`) that example functions use. Compiling takes about a second, so
// results are cached for the life of the test process.

import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import asc from "assemblyscript/asc";
import { ascFlags } from "../../builder/index.ts";

/** The AssemblyScript edge-v1 helper shipped with the example repo. */
export const EDGE_TS = readFileSync(new URL("../../example-repo/hello/edge.ts", import.meta.url), "utf8");

const compiled = new Map<string, Promise<Uint8Array>>();

/** Compiles AssemblyScript files (entry: `index.ts`) to wasm bytes; `edge.ts` is added unless given. */
export function compileAs(files: Record<string, string>): Promise<Uint8Array> {
  const all = { "edge.ts": EDGE_TS, ...files };
  const key = JSON.stringify(Object.entries(all).sort());
  let result = compiled.get(key);
  if (result === undefined) {
    result = compileNow(all);
    compiled.set(key, result);
  }
  return result;
}

async function compileNow(files: Record<string, string>): Promise<Uint8Array> {
  const outputs: Record<string, Uint8Array | string> = {};
  let diagnostics = "";
  const { error } = await asc.main(["index.ts", "--outFile", "out.wasm", ...ascFlags(16)], {
    readFile: (name) => files[name] ?? null,
    writeFile: (name, contents) => {
      outputs[name] = contents;
    },
    listFiles: () => [],
    stderr: {
      write(chunk: Uint8Array | string) {
        diagnostics += String(chunk);
        return true;
      },
    },
  });
  const wasm = outputs["out.wasm"];
  if (error || !(wasm instanceof Uint8Array)) {
    throw new Error(`AssemblyScript compile failed: ${error?.message ?? "no output"}\n${diagnostics}`);
  }
  return wasm;
}

/** A handler module: `body` is the inside of `function handle(req: Request): Response { … }`. */
export function handlerModule(body: string, prelude = ""): Promise<Uint8Array> {
  return compileAs({
    "index.ts": `import { Request, Response, serve, log } from "./edge";
${prelude}
function handle(req: Request): Response {
${body}
}
export function edge_handle(): i32 {
  return serve(handle);
}
`,
  });
}

/** Answers `{method} {path} {body}` with a custom header, so tests see what the guest saw. */
export const echoModule = () =>
  handlerModule(
    `  return new Response(req.method + " " + req.path + "?" + req.query + " " + req.body).set("X-Echo-Host", req.header("host"));`,
  );

/** Counts requests in a global: the count only climbs if the same instance serves them all. */
export const counterModule = (tag: string) =>
  handlerModule(`  count++;\n  return new Response("${tag} " + count.toString());`, "let count: i32 = 0;");

/** Traps (`unreachable`) on `/trap`, answers "ok" otherwise. */
export const trapModule = () =>
  handlerModule(`  if (req.path == "/trap") unreachable();\n  return new Response("ok " + req.path);`);

/** edge_handle returns 1 without writing anything. */
export const failingModule = () =>
  compileAs({ "index.ts": "export function edge_handle(): i32 {\n  return 1;\n}\n" });

/** Writes a response with a custom status and headers, and logs through the host. */
export const statusModule = () =>
  handlerModule(
    `  log("status module called");\n  return new Response("made", 201).set("Content-Type", "application/x-test").set("X-Multi", "a").set("X-Multi", "b");`,
  );

export interface ArtifactServer {
  /** Serves `bytes` at `/{name}` and returns its URL. */
  add(name: string, bytes: Uint8Array): string;
  /** GET requests received per name, including those answered 404. */
  hits(name: string): number;
  close(): Promise<void>;
}

/** A tiny node:http server on 127.0.0.1 that hands out wasm modules, as an artifact store would. */
export async function serveArtifacts(): Promise<ArtifactServer> {
  const files = new Map<string, Uint8Array>();
  const counts = new Map<string, number>();
  const server = createServer((req, res) => {
    const name = (req.url ?? "/").split("?")[0]!.slice(1);
    counts.set(name, (counts.get(name) ?? 0) + 1);
    const bytes = files.get(name);
    if (bytes === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/wasm", "content-length": bytes.byteLength });
    res.end(bytes);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    add(name, bytes) {
      files.set(name, bytes);
      return `http://127.0.0.1:${port}/${name}`;
    },
    hits: (name) => counts.get(name) ?? 0,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
