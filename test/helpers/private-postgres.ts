// A private, real PostgreSQL cluster for fault tests: initdb into a temp directory, a free port
// on loopback, its unix socket in the temp directory, trust authentication. A test may stop and
// restart it at will without touching the shared PostgreSQL on 5432 that other tests use.
// PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.

import { execFile } from "node:child_process";
import { chown, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "./processes.ts";

const run = promisify(execFile);

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Starts the server (after stop()); resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server: "fast" (default) disconnects clients and shuts down cleanly, "immediate" aborts. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** stop(mode), wait downMs, start(). */
  restart(downMs?: number, mode?: "fast" | "immediate"): Promise<void>;
  /** Stops the server and removes its directory. */
  remove(): Promise<void>;
  /** The server log so far (for failure messages). */
  log(): Promise<string>;
}

/** The bin directory of the newest PostgreSQL under /usr/lib/postgresql (Debian layout). */
async function binDir(): Promise<string> {
  const root = "/usr/lib/postgresql";
  const versions = (await readdir(root)).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`no PostgreSQL under ${root}`);
  return path.join(root, versions[0]!, "bin");
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = await binDir();
  const dir = await mkdtemp(path.join(tmpdir(), "edgeplane-pg-"));
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const pgRun = (tool: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", path.join(bin, tool), ...args])
      : run(path.join(bin, tool), args);
  const data = path.join(dir, "data");
  const logFile = path.join(dir, "server.log");
  await pgRun("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
  ].join(" ");
  let running = false;
  const pg: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async start() {
      await pgRun("pg_ctl", ["-D", data, "-l", logFile, "-o", serverOptions, "-w", "-t", "30", "start"]);
      running = true;
    },
    async stop(mode = "fast") {
      await pgRun("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "30", "stop"]);
      running = false;
    },
    async restart(downMs = 0, mode = "fast") {
      await pg.stop(mode);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await pg.start();
    },
    async remove() {
      if (running) await pg.stop("immediate").catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
    log: () => readFile(logFile, "utf8").catch(() => ""),
  };
  await pg.start();
  return pg;
}
