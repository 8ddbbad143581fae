// The control plane composed: database (PostgreSQL or PGlite) with migrations, artifact store,
// registered projects, reconciler, rollouts to runners, status reporting, the polling
// fallback, the HTTP API and the gRPC control server.

import { mkdir, readFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type Koa from "koa";
import { type ArtifactStore, LocalArtifactStore, S3ArtifactStore } from "../builder/index.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import { createApi } from "./api.ts";
import { bootstrapAdminToken } from "./auth.ts";
import {
  type CompiledControlPlaneOptions,
  type ControlPlaneOptions,
  compileControlPlaneOptions,
} from "./config.ts";
import { ControlServer } from "./control-server.ts";
import { type Db, migrate, PgliteDb, PostgresDb } from "./db.ts";
import { type ControlPlaneMetrics, createMetrics } from "./metrics.ts";
import { currentGeneration } from "./nodes.ts";
import { DESIRED_STATE_CHANNEL } from "./outbox.ts";
import { Poller } from "./poller.ts";
import { PreviewManager } from "./previews.ts";
import { ProgressiveRollouts } from "./progressive.ts";
import { registerProject } from "./projects.ts";
import { type ReconcileFinished, Reconciler } from "./reconcile.ts";
import { getReconciliation } from "./reconciliations.ts";
import { type RolloutOutcome, rollout, targetNodes } from "./rollout.ts";
import { DirectorySource, GitSource } from "./source.ts";
import { StatusReporter, type StatusTarget } from "./status.ts";

export interface ControlPlane {
  readonly options: CompiledControlPlaneOptions;
  readonly db: Db;
  readonly reconciler: Reconciler;
  readonly control: ControlServer;
  readonly status: StatusReporter;
  readonly metrics: ControlPlaneMetrics;
  readonly poller: Poller;
  /** Pull-request previews (previews.ts). */
  readonly previews: PreviewManager;
  /** Progressive rollouts in flight on this replica (progressive.ts). */
  readonly progressive: ProgressiveRollouts;
  /** The HTTP API (Koa), e.g. to list its routes. */
  readonly app: Koa;
  /** Bound ports, known after start(). */
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves when every rollout and status delivery started so far has finished. */
  settled(): Promise<void>;
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
  const control = new ControlServer({
    db,
    log,
    artifactUrl: (key) => store.url(key),
    offlineAfterMs: o.offlineAfterMs,
  });
  const status = new StatusReporter(db, log, {
    githubApiBase: o.github?.apiBase ?? null,
    githubToken: o.github?.token ?? null,
    publicUrl: () => o.publicUrl ?? cp.url,
    attempts: o.statusRetry.attempts,
    retryMinDelayMs: o.statusRetry.minDelayMs,
    retryMaxDelayMs: o.statusRetry.maxDelayMs,
  });
  const targets = new Map<string, StatusTarget>();
  const rollouts = new Set<Promise<unknown>>();

  const metrics = createMetrics(db);
  const progressive = new ProgressiveRollouts({
    db,
    log,
    control,
    ackTimeoutMs: o.ackTimeoutMs,
    leaseMs: o.rolloutLeaseMs,
    commitStatus: (r, context, state, description, reconciliationId) => {
      const target = [...targets.values()].find((t) => t.projectId === r.project_id);
      if (target) status.commitStatus(target, reconciliationId, r.commit_sha, context, state, description);
    },
  });
  const previews = new PreviewManager({
    db,
    store,
    log,
    builder: o.builder,
    status,
    control,
    ackTimeoutMs: o.ackTimeoutMs,
    ttlMs: o.previewTtlMs,
    ...(o.previewClock ? { now: o.previewClock } : {}),
    dataDir: o.dataDir,
    target: (project) => targets.get(project)!,
  });

  /** After a reconcile: metrics, statuses, notifications, and for a new generation the rollout. */
  const finished = (r: ReconcileFinished) => {
    metrics.reconcileTotal.inc({ result: r.status });
    metrics.reconcileDuration.observe(r.durationMs / 1000);
    for (const ms of r.buildMs) metrics.buildDuration.observe(ms / 1000);
    const target = targets.get(r.project.name)!;
    const summary = {
      id: r.id,
      project: r.project.name,
      commit: r.commit,
      status: r.status,
      plan: r.plan,
      error: r.error,
    };
    if (r.status === "failed") {
      status.commitStatus(
        target,
        r.id,
        r.commit,
        "edgeplane",
        "failure",
        `${r.error?.code}: ${r.error?.message}`,
      );
      void notifyWithStoredSpec(r, { reconciliation: summary });
      return;
    }
    status.notify(target, r.projectSpec, r.id, "reconcile", { reconciliation: summary });
    if (r.generation === null) {
      status.commitStatus(target, r.id, r.commit, "edgeplane", "success", "no changes");
      return;
    }
    const generation = r.generation;
    const p = targetNodes(db)
      .then((nodes) => {
        for (const pop of new Set(nodes.map((n) => n.pop))) {
          status.commitStatus(target, r.id, r.commit, `edgeplane/${pop}`, "pending", "deploying");
        }
        return rollout({ db, control, ackTimeoutMs: o.ackTimeoutMs }, r.id, generation, nodes);
      })
      .then(async (outcome: RolloutOutcome) => {
        // Propagation: from the commit being received to the last target runner's ack.
        const complete = outcome.pops.every((p) => p.nodes.every((n) => n.acked));
        const row = await getReconciliation(db, r.id);
        if (complete && row) metrics.propagation.observe((Date.now() - Date.parse(row.created_at)) / 1000);
        // Functions with a progressive rollout reach the POPs wave by wave (progressive.ts
        // reports each POP when its wave is reached); the rest are live everywhere already.
        const waves = await progressive.runningFor(r.id);
        for (const pop of outcome.pops) {
          if (waves > 0 && pop.state === "success") {
            status.commitStatus(
              target,
              r.id,
              r.commit,
              `edgeplane/${pop.pop}`,
              "pending",
              "waiting for its rollout wave",
            );
          } else {
            status.commitStatus(target, r.id, r.commit, `edgeplane/${pop.pop}`, pop.state, pop.description);
          }
        }
        const failed = outcome.pops.filter((p) => p.state === "failure").map((p) => p.pop);
        status.commitStatus(
          target,
          r.id,
          r.commit,
          "edgeplane",
          failed.length ? "failure" : waves > 0 ? "pending" : "success",
          failed.length
            ? `deploy failed in ${failed.join(", ")}`
            : waves > 0
              ? `${waves} function(s) rolling out wave by wave`
              : `${r.plan?.changes.length ?? 0} change(s) live in ${outcome.pops.length} POP(s)`,
        );
        status.notify(target, r.projectSpec, r.id, "deploy", { reconciliation: summary, outcome });
        if (waves === 0) return;
        const ends = await progressive.startFor(r.id);
        const rolledBack = ends.filter((e) => e.status === "rolled_back");
        if (rolledBack.length) {
          status.commitStatus(
            target,
            r.id,
            r.commit,
            "edgeplane",
            "failure",
            rolledBack.map((e) => `${e.function} rolled back: ${e.reason}`).join("; "),
          );
        } else if (ends.every((e) => e.status === "succeeded") && !failed.length) {
          status.commitStatus(
            target,
            r.id,
            r.commit,
            "edgeplane",
            "success",
            `${r.plan?.changes.length ?? 0} change(s) live; ${ends.length} rollout(s) healthy in every wave`,
          );
        }
        status.notify(target, r.projectSpec, r.id, "deploy", {
          reconciliation: summary,
          outcome,
          rollouts: ends,
        });
      })
      .catch((err) => log.error({ err, reconcile_id: r.id }, "rollout failed"));
    rollouts.add(p);
    void p.finally(() => rollouts.delete(p));
  };

  /** A failed commit may carry no usable Project document: notify the last applied one's targets. */
  const notifyWithStoredSpec = async (r: ReconcileFinished, payload: Record<string, unknown>) => {
    const [row] = await db.query<{ spec: ReconcileFinished["projectSpec"] }>(
      "SELECT spec FROM projects WHERE id = $1",
      [r.project.id],
    );
    status.notify(
      targets.get(r.project.name)!,
      r.projectSpec ?? row?.spec ?? null,
      r.id,
      "reconcile",
      payload,
    );
  };

  const reconciler = new Reconciler({
    db,
    store,
    log,
    builder: o.builder,
    leaseTtlMs: o.reconcileLeaseMs,
    hooks: {
      started: (r) =>
        status.commitStatus(
          targets.get(r.project.name)!,
          r.id,
          r.commit,
          "edgeplane",
          "pending",
          "reconciling",
        ),
      finished,
      superseded: (ids) => metrics.reconcileTotal.inc({ result: "superseded" }, ids.length),
    },
  });
  for (const p of o.projects) {
    const id = await registerProject(db, p);
    // An "api" project has nothing to reconcile: its state is written by the imperative API.
    if (p.source === "api") continue;
    const source =
      p.source === "directory"
        ? new DirectorySource(p.repo)
        : new GitSource(p.repo, p.branch, path.join(o.dataDir, "git", p.name));
    reconciler.addProject({ id, name: p.name, source, missingToolchain: p.missingToolchain });
    if (p.source === "git") {
      previews.addProject({
        id,
        name: p.name,
        repo: p.repo,
        branch: p.branch,
        fullName: p.fullName,
        missingToolchain: p.missingToolchain,
      });
    }
    targets.set(p.name, { projectId: id, fullName: p.fullName, notificationSecret: p.notificationSecret });
  }
  const poller = new Poller(db, reconciler, log, o.pollIntervalMs);
  const app = createApi({
    db,
    reconciler,
    store,
    projects: o.projects,
    maxWebhookBytes: o.maxWebhookBytes,
    runnerToken: o.runnerToken,
    apiRateLimit: o.apiRateLimit,
    maxUploadBytes: o.maxUploadBytes,
    metrics,
    log,
    previewApi: { db, previews, status, target: (project) => targets.get(project) ?? null },
  });
  let server: Server | null = null;
  let unlisten: (() => Promise<void>) | null = null;
  let generationPoll: NodeJS.Timeout | null = null;

  const cp = {
    options: o,
    db,
    reconciler,
    control,
    status,
    metrics,
    poller,
    previews,
    progressive,
    app,
    httpPort: 0,
    grpcPort: 0,
    url: "",
    async start() {
      if (o.adminTokenFile) {
        await mkdir(path.dirname(o.adminTokenFile), { recursive: true });
        if (await bootstrapAdminToken(db, o.adminTokenFile))
          log.info({ file: o.adminTokenFile }, "created the first admin API token");
      }
      server = app.listen(o.httpPort, o.httpHost);
      await new Promise<void>((resolve, reject) => {
        server!.once("listening", resolve);
        server!.once("error", reject);
      });
      cp.httpPort = (server.address() as AddressInfo).port;
      const host = o.httpHost.includes(":") ? `[${o.httpHost}]` : o.httpHost;
      cp.url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${cp.httpPort}`;
      if (local) local.baseUrl = `${o.publicUrl ?? cp.url}/artifacts`;
      cp.grpcPort = await control.start(
        o.grpcHost,
        o.grpcPort,
        o.tls
          ? { ca: await readFile(o.tls.ca), cert: await readFile(o.tls.cert), key: await readFile(o.tls.key) }
          : undefined,
      );
      // A generation committed by any replica reaches the runners connected to this one: at
      // once through NOTIFY, and within generationPoll through the fallback poll should a
      // notification be lost (a dropped listener connection).
      const [{ schema }] = (await db.query<{ schema: string }>("SELECT current_schema() AS schema")) as [
        { schema: string },
      ];
      // After a dropped listener connection is back, broadcast once: a generation committed
      // while it was down sent a notification nobody heard.
      unlisten = await db.listen(
        `${DESIRED_STATE_CHANNEL}_${schema}`,
        () => void control.broadcast(),
        () => void control.broadcast(),
      );
      let seen = await currentGeneration(db);
      generationPoll = setInterval(() => {
        void currentGeneration(db)
          .then((g) => {
            if (g > seen) {
              seen = g;
              return control.broadcast();
            }
          })
          .catch(() => {});
      }, 2_000);
      generationPoll.unref();
      reconciler.start();
      poller.start();
      previews.start();
      // Running rollouts whose replica stopped or died are resumed here (and periodically).
      progressive.start();
      log.info(
        {
          http: cp.url,
          grpc: `${o.grpcHost}:${cp.grpcPort}`,
          database: db.kind,
          artifacts: local ? local.dir : `s3://${o.s3!.bucket}`,
        },
        "control plane listening",
      );
    },
    async settled() {
      await reconciler.idle();
      await previews.settled();
      while (rollouts.size > 0) await Promise.all([...rollouts]);
      await progressive.settled();
      await status.drain();
    },
    async stop() {
      if (generationPoll) clearInterval(generationPoll);
      await unlisten?.();
      await poller.stop();
      await previews.stop();
      await progressive.stop();
      await reconciler.stop();
      await cp.settled();
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
