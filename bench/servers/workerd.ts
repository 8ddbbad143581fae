// workerd (npm package, its own binary) serving the benchmark's wasm from a module worker
// (bench/servers/workerd/). The config embeds files relative to itself, so they are copied with
// the module into a temp directory. Usage: workerd.ts <module.wasm> <port>

import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

const [wasmPath, port] = process.argv.slice(2) as [string, string];
const here = path.join(import.meta.dirname, "workerd");
const dir = mkdtempSync(path.join(tmpdir(), "edgeplane-workerd-"));
for (const f of ["config.capnp", "worker.js"]) copyFileSync(path.join(here, f), path.join(dir, f));
copyFileSync(wasmPath, path.join(dir, "hello.wasm"));

const child = spawn(
  path.resolve("node_modules/.bin/workerd"),
  ["serve", path.join(dir, "config.capnp"), "--socket-addr", `http=127.0.0.1:${port}`],
  { stdio: ["ignore", "inherit", "inherit"] },
);
child.once("exit", (code) => process.exit(code ?? 1));
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => child.kill(signal));

// Ready once the socket accepts connections.
for (;;) {
  const ok = await new Promise<boolean>((resolve) => {
    const s = connect(Number(port), "127.0.0.1", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
  if (ok) break;
  await new Promise((r) => setTimeout(r, 50));
}
process.stdout.write("ready\n");
