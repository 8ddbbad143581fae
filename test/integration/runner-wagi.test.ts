// The wagi lane with real WASI programs: Rust (std) and C (wasi-libc) compiled here with the
// toolchains the builder uses, served through the runner's deny-by-default WASI. Their standard
// libraries exercise the shim the way ordinary programs do (stdio setup, environment, stdin,
// failed file opens, exit codes).

import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { pino } from "pino";
import { createRunner } from "../../edge-runner/index.ts";
import { sha256Hex } from "../../lib/hash.ts";
import type { FunctionSpec } from "../../proto/index.ts";
import { request } from "../helpers/http.ts";
import { serveArtifacts } from "../helpers/wasm.ts";

const RUST = `use std::io::Read;
fn main() {
    let mut body = String::new();
    std::io::stdin().read_to_string(&mut body).unwrap();
    let method = std::env::var("REQUEST_METHOD").unwrap_or_default();
    let greeting = std::env::var("GREETING").unwrap_or_default();
    let home = std::env::var("HOME").is_ok();
    let fs = match std::fs::read("/etc/passwd") { Ok(_) => "read".to_string(), Err(_) => "denied".to_string() };
    eprintln!("rust guest on stderr");
    if body == "exit" { std::process::exit(3); }
    print!("Status: 200\\r\\nContent-Type: text/plain\\r\\n\\r\\n{} {} body={} fs={} home={}", greeting, method, body, fs, home);
}
`;

const C = `#include <stdio.h>
#include <stdlib.h>
int main(void) {
  const char *m = getenv("REQUEST_METHOD");
  const char *q = getenv("QUERY_STRING");
  FILE *f = fopen("/etc/passwd", "r");
  printf("Status: 200\\r\\nContent-Type: text/plain\\r\\n\\r\\nc %s q=%s fopen=%s", m ? m : "?", q ? q : "?", f ? "opened" : "denied");
  return 0;
}
`;

function has(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const toolchains = has("/usr/bin/rustc") && has("clang-14");

(toolchains ? test : test.skip)(
  "wagi: Rust and C WASI programs serve through the shim, refused files and all",
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "edge-runner-wagi-"));
    const artifacts = await serveArtifacts();
    const lines: string[] = [];
    const runner = createRunner({
      nodeId: "n",
      pop: "p",
      httpHost: "127.0.0.1",
      httpPort: 0,
      cacheDir: join(dir, "cache"),
      logger: pino({ level: "info" }, { write: (l: string) => void lines.push(l) }),
    });
    const { httpPort } = await runner.start();
    t.teardown(async () => {
      await runner.stop();
      await artifacts.close();
      await rm(dir, { recursive: true, force: true });
    });

    await writeFile(join(dir, "main.rs"), RUST);
    execFileSync("/usr/bin/rustc", [
      "--target",
      "wasm32-wasi",
      "-O",
      "-o",
      join(dir, "rust.wasm"),
      join(dir, "main.rs"),
    ]);
    await writeFile(join(dir, "main.c"), C);
    execFileSync("clang-14", [
      "--target=wasm32-wasi",
      "--sysroot=/usr",
      "-O2",
      "-o",
      join(dir, "c.wasm"),
      join(dir, "main.c"),
    ]);

    const fn = async (id: string, file: string, extra: Partial<FunctionSpec> = {}): Promise<FunctionSpec> => {
      const bytes = await readFile(join(dir, file));
      return {
        function_id: id,
        name: id,
        version: "v1",
        project: "p",
        artifact_url: artifacts.add(file, bytes),
        sha256: sha256Hex(bytes),
        abi: "wagi",
        // Rust reserves 1 MiB of stack in linear memory: 17 pages before the heap.
        memory_pages: 64,
        max_execution_ms: 2000,
        max_request_bytes: 1024,
        max_instances: 2,
        env: { GREETING: "hello" },
        capabilities: {},
        ...extra,
      };
    };
    const ack = await runner.apply({
      generation: "1",
      functions: [
        await fn("rust", "rust.wasm"),
        await fn("c", "c.wasm"),
        await fn("small", "rust.wasm", { function_id: "small", memory_pages: 16 }),
      ],
      routes: [
        { host: "rust.test", path: "/*", methods: [], priority: 0, function_id: "rust" },
        { host: "c.test", path: "/*", methods: [], priority: 0, function_id: "c" },
      ],
    });
    t.deepEqual(
      ack.results.map((r) => r.status),
      ["OK", "OK", "INVALID_MODULE"],
    );
    t.regex(ack.results[2]!.message, /starts with 17 pages; the limit is memoryPages = 16/);

    const rust = await request(httpPort, "rust.test", "/", { method: "POST", body: "ping" });
    t.is(rust.status, 200);
    t.is(rust.text, "hello POST body=ping fs=denied home=false");
    t.true(lines.some((l) => l.includes("rust guest on stderr")));

    const exited = await request(httpPort, "rust.test", "/", { method: "POST", body: "exit" });
    t.is(exited.status, 500, "a non-zero exit code is a failed request");

    const c = await request(httpPort, "c.test", "/x?y=1");
    t.is(c.status, 200);
    t.is(c.text, "c GET q=y=1 fopen=denied");
  },
);
