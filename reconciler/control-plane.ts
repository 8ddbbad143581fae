// The control plane composed: database (PostgreSQL or PGlite) with migrations, artifact store,
// registered projects, reconciler, HTTP API and the gRPC control server.

import { mkdir } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { type ArtifactStore, LocalArtifactStore, S3ArtifactStore } from "../builder/index.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import { createApi } from "./api.ts";
import {
  type CompiledControlPlaneOptions,
  type ControlPlaneOptions,
  compileControlPlaneOptions,
} from "./config.ts";
import { ControlServer } from "./control-server.ts";
import { type Db, migrate, PgliteDb, PostgresDb } from "./db.ts";
import { registerProject } from "./projects.ts";
import { Reconciler } from "./reconcile.ts";
import { DirectorySource, GitSource } from "./source.ts";

export interface ControlPlane {
  readonly options: CompiledControlPlaneOptions;
  readonly db: Db;
  readonly reconciler: Reconciler;
  readonly control: ControlServer;
  /** Bound ports, known after start(). */
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function createControlPlane(
  options: ControlPlaneOptions,
  log: Logger = createLogger("control-plane"),
): Promise<ControlPlane> {
  const o = compileControlPlaneOptions(options);
  if (!o.databaseUrl) await mkdir(o.dataDir, { recursive: true });
  const db: Db = o.databaseUrl
    ? new PostgresDb(o.databaseUrl, o.databaseSchema ?? undefined)
    : new PgliteDb(path.join(o.dataDir, "pglite"));
  await migrate(db);
  const local = o.s3 ? null : new LocalArtifactStore(o.artifactsDir);
  const store: ArtifactStore = local ?? new S3ArtifactStore(o.s3!);
  const control = new ControlServer({ db, log, artifactUrl: (key) => store.url(key) });
  const reconciler = new Reconciler({
    db,
    store,
    log,
    onApplied: () => void control.broadcast(),
  });
  for (const p of o.projects) {
    const id = await registerProject(db, p);
    const source =
      p.source === "directory"
        ? new DirectorySource(p.repo)
        : new GitSource(p.repo, p.branch, path.join(o.dataDir, "git", p.name));
    reconciler.addProject({ id, name: p.name, source });
  }
  const app = createApi({
    db,
    reconciler,
    store,
    projects: o.projects,
    maxWebhookBytes: o.maxWebhookBytes,
    log,
  });
  let server: Server | null = null;

  const cp = {
    options: o,
    db,
    reconciler,
    control,
    httpPort: 0,
    grpcPort: 0,
    url: "",
    async start() {
      server = app.listen(o.httpPort, o.httpHost);
      await new Promise<void>((resolve, reject) => {
        server!.once("listening", resolve);
        server!.once("error", reject);
      });
      cp.httpPort = (server.address() as AddressInfo).port;
      const host = o.httpHost.includes(":") ? `[${o.httpHost}]` : o.httpHost;
      cp.url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${cp.httpPort}`;
      if (local) local.baseUrl = `${o.publicUrl ?? cp.url}/artifacts`;
      cp.grpcPort = await control.start(o.grpcHost, o.grpcPort);
      log.info(
        { http: cp.url, grpc: `${o.grpcHost}:${cp.grpcPort}`, database: db.kind },
        "control plane listening",
      );
    },
    async stop() {
      await reconciler.idle();
      await control.stop();
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
      await db.close();
      store.close?.();
    },
  };
  return cp;
}
