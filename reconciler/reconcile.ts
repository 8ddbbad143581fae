// The reconcile loop: queue → checkout → load manifests → plan → build → apply (one
// transaction) → hooks (rollout to runners, status reporting). The queue lives in the database
// so that control-plane replicas share it; see Reconciler below.

import { randomUUID } from "node:crypto";
import { availableParallelism, hostname } from "node:os";
import path from "node:path";
import {
  type ArtifactStore,
  artifactKey,
  type BuilderOptions,
  type BuildOutput,
  buildFunction,
  defaultEntry,
  hashSourceTree,
} from "../builder/index.ts";
import { freshSingleFlight, mapLimit } from "../lib/concurrency.ts";
import { EdgeError, type ErrorDetail } from "../lib/errors.ts";
import { canonicalJson, sha256Hex } from "../lib/hash.ts";
import type { Logger } from "../lib/log.ts";
import { type LoadedFunction, loadManifests, type ProjectSpec } from "../schema/index.ts";
import type { Db } from "./db.ts";
import { releaseLease, renewLease, tryLease } from "./leases.ts";
import { normalizeRoutes, type Plan, plan } from "./plan.ts";
import { compileRollout } from "./progressive.ts";
import {
  type ClaimedReconciliation,
  claimNewest,
  countPending,
  enqueuePush,
  enqueueReconciliation,
  getReconciliation,
  markFailed,
  type ReconciliationRow,
  setCommit,
  supersedeStale,
} from "./reconciliations.ts";
import type { ProjectSource } from "./source.ts";
import { applyPlan, type BuiltArtifact, type DesiredFunctionDetail, loadStoredState } from "./state.ts";

export interface ReconcileRequest {
  /** Commit to reconcile; null = head of the production branch. */
  commit: string | null;
  trigger: "push" | "api" | "local" | "poll";
  actor: string;
}

export interface ManagedProject {
  id: string;
  name: string;
  source: ProjectSource;
  /** What a build that lacks its toolchain does to the reconcile: fail it (default) or skip that function. */
  missingToolchain?: "fail" | "skip";
}

/** What a finished reconcile tells the rest of the control plane (rollout, status reporting). */
export interface ReconcileFinished {
  id: string;
  project: ManagedProject;
  commit: string | null;
  status: "succeeded" | "failed";
  /** The new generation, or null when nothing changed (or the reconcile failed). */
  generation: number | null;
  plan: Plan | null;
  error: { code: string; message: string; details?: ErrorDetail[] } | null;
  /** The Project document of the reconciled commit, when it loaded. */
  projectSpec: ProjectSpec | null;
  durationMs: number;
  /** Milliseconds each build took. */
  buildMs: number[];
}

export interface ReconcilerHooks {
  /** The reconcile resolved its commit and is about to load and build it. */
  started?(r: { id: string; project: ManagedProject; commit: string }): void;
  finished?(r: ReconcileFinished): void;
  /** Queued reconciles were superseded by a newer request. */
  superseded?(ids: string[]): void;
}

export interface ReconcilerDeps {
  db: Db;
  store: ArtifactStore;
  log: Logger;
  hooks?: ReconcilerHooks;
  /** Builder options (toolchains, sandbox, limits, cache directory). */
  builder?: BuilderOptions;
  /**
   * How long a project lease lasts without renewal. Default 60 s. A replica that dies leaves its
   * reconcile running; it is queued again once this has passed (see claimNewest).
   */
  leaseTtlMs?: number;
  /** How often a replica retries a lease another replica holds. Default 250 ms. */
  leaseRetryMs?: number;
}

const TERMINAL = new Set(["succeeded", "failed", "superseded"]);

/**
 * Runs reconciles. Requests are rows in `reconciliations`; any replica may enqueue, and the one
 * holding the project's lease claims the newest queued row and runs it. So at most one
 * reconcile per project runs at a time across replicas, and a newer request supersedes an
 * older queued one wherever either arrived.
 */
export class Reconciler {
  private readonly projects = new Map<string, ManagedProject>();
  private readonly loops = new Map<string, { running: boolean; again: boolean }>();
  private readonly wakeups = new Set<() => void>();
  /** This replica's name in leases and in reconciliations.runner. */
  readonly holder = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly leaseTtlMs: number;
  private readonly leaseRetryMs: number;
  private stopped = false;
  private sweep: NodeJS.Timeout | null = null;

  constructor(private readonly deps: ReconcilerDeps) {
    this.leaseTtlMs = deps.leaseTtlMs ?? 60_000;
    this.leaseRetryMs = deps.leaseRetryMs ?? 250;
  }

  addProject(p: ManagedProject): void {
    this.projects.set(p.name, p);
    this.loops.set(p.name, { running: false, again: false });
  }

  project(name: string): ManagedProject | undefined {
    return this.projects.get(name);
  }

  projectList(): ManagedProject[] {
    return [...this.projects.values()];
  }

  /**
   * Queues the reconcile of a pushed commit once per commit (enqueuePush): a push of a commit
   * that already has a reconciliation joins it. Returns the id and whether it joined.
   */
  async enqueuePush(
    projectName: string,
    req: ReconcileRequest & { commit: string },
  ): Promise<{ id: string; joined: boolean }> {
    const project = this.projects.get(projectName);
    if (!project) throw new Error(`unknown project ${projectName}`);
    const r = await enqueuePush(
      this.deps.db,
      {
        id: randomUUID(),
        projectId: project.id,
        commitSha: req.commit,
        trigger: req.trigger,
        actor: req.actor,
      },
      this.branchHead(project),
    );
    if (r.superseded.length) this.deps.hooks?.superseded?.(r.superseded);
    this.wake();
    this.kick(project);
    return { id: r.id, joined: r.joined };
  }

  private readonly heads = new Map<string, () => Promise<string>>();
  /** Where the project's branch is now, one remote round trip shared by concurrent askers. */
  private branchHead(project: ManagedProject): () => Promise<string> {
    let head = this.heads.get(project.name);
    if (!head) {
      head = freshSingleFlight(() => project.source.head());
      this.heads.set(project.name, head);
    }
    return head;
  }

  /** Queues a reconcile and returns its id at once; it runs in the background. */
  async enqueue(projectName: string, req: ReconcileRequest): Promise<string> {
    const project = this.projects.get(projectName);
    if (!project) throw new Error(`unknown project ${projectName}`);
    const id = randomUUID();
    const superseded = await enqueueReconciliation(this.deps.db, {
      id,
      projectId: project.id,
      commitSha: req.commit,
      trigger: req.trigger,
      actor: req.actor,
    });
    if (superseded.length) this.deps.hooks?.superseded?.(superseded);
    this.wake();
    this.kick(project);
    return id;
  }

  /** Resolves with the reconciliation once it has finished (succeeded, failed or superseded). */
  async wait(id: string, timeoutMs = 120_000): Promise<ReconciliationRow> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = await getReconciliation(this.deps.db, id);
      if (!row) throw new Error(`no reconciliation ${id}`);
      if (TERMINAL.has(row.status)) return row;
      if (Date.now() > deadline)
        throw new Error(`reconciliation ${id} still ${row.status} after ${timeoutMs} ms`);
      // Woken by this replica's progress, or polling for another replica's.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 200);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wakeups.add(done);
      });
    }
  }

  /** Resolves when this replica runs no reconcile loop. */
  async idle(): Promise<void> {
    while ([...this.loops.values()].some((l) => l.running)) await sleep(20);
  }

  /**
   * Picks up work no request on this replica announced: reconciles queued before a restart, and
   * those a dead replica left running (retried once its lease has expired). At once, then every
   * half lease, since another replica's lease expires while this one is up.
   */
  start(): void {
    const all = () => {
      for (const p of this.projects.values()) this.kick(p);
    };
    all();
    this.sweep = setInterval(all, Math.max(1000, this.leaseTtlMs / 2));
    this.sweep.unref();
  }

  /** Stops claiming new work; running reconciles finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweep) clearInterval(this.sweep);
    await this.idle();
  }

  private wake(): void {
    const pending = [...this.wakeups];
    this.wakeups.clear();
    for (const w of pending) w();
  }

  private kick(project: ManagedProject): void {
    const loop = this.loops.get(project.name)!;
    if (loop.running) {
      loop.again = true;
      return;
    }
    loop.running = true;
    this.drain(project, loop)
      .catch((err) => this.deps.log.error({ err, project: project.name }, "reconcile loop failed"))
      .finally(() => {
        loop.running = false;
        this.wake();
      });
  }

  /** Runs queued reconciles of one project until none is left, holding its lease meanwhile. */
  private async drain(project: ManagedProject, loop: { again: boolean }): Promise<void> {
    const { db } = this.deps;
    while (!this.stopped) {
      loop.again = false;
      if ((await countPending(db, project.id)) === 0) {
        if (loop.again) continue;
        return;
      }
      if (!(await tryLease(db, project.id, this.holder, this.leaseTtlMs))) {
        await sleep(this.leaseRetryMs); // another replica is reconciling this project
        continue;
      }
      const renew = setInterval(() => {
        void renewLease(db, project.id, this.holder, this.leaseTtlMs).catch(() => {});
      }, this.leaseTtlMs / 3);
      try {
        const claimed = await claimNewest(db, project.id, this.holder);
        if (claimed) {
          this.wake();
          await this.run(project, claimed);
        }
      } finally {
        clearInterval(renew);
        await releaseLease(db, project.id, this.holder).catch(() => {});
        this.wake();
      }
    }
  }

  private async run(project: ManagedProject, req: ClaimedReconciliation): Promise<void> {
    const { db, store, hooks } = this.deps;
    const log = this.deps.log.child({ reconcile_id: req.id, project: project.name });
    const started = performance.now();
    let planned: Plan | null = null;
    let commit: string | null = req.commit_sha;
    let projectSpec: ProjectSpec | null = null;
    try {
      // Milliseconds per phase, recorded with the result (where a slow reconcile spent its time).
      const timings: Record<string, number> = {};
      let mark = performance.now();
      const phase = (name: string) => {
        const now = performance.now();
        timings[name] = Math.round((now - mark) * 10) / 10;
        mark = now;
      };
      // A push delivered after a newer one (webhooks come in any order) is not applied: the
      // branch has moved past it, and applying it would roll the state back.
      if (req.trigger === "push" && req.commit_sha !== null && project.source.movedPast) {
        const head = await project.source.movedPast(req.commit_sha);
        if (head !== null) {
          const requeued = await supersedeStale(db, {
            id: req.id,
            projectId: project.id,
            head,
            trigger: req.trigger,
            actor: req.actor,
          });
          log.info(
            { commit: req.commit_sha, head, requeued },
            "push superseded: the branch has moved past it",
          );
          hooks?.superseded?.([req.id]);
          return;
        }
      }
      const checkout = await project.source.checkout(req.commit_sha);
      phase("checkout");
      commit = checkout.commit;
      if (req.commit_sha !== checkout.commit) await setCommit(db, req.id, checkout.commit);
      hooks?.started?.({ id: req.id, project, commit });
      const manifests = await loadManifests(checkout.dir);
      phase("manifests");
      projectSpec = manifests.project?.spec ?? null;
      if (manifests.project && manifests.project.metadata.name !== project.name) {
        log.warn(
          { manifest_project: manifests.project.metadata.name },
          "Project document names another project",
        );
      }
      // Source trees are hashed concurrently: a repository of many functions is mostly file I/O.
      const described = await mapLimit(manifests.functions, 16, (fn) => describe(checkout.dir, fn));
      const desired = new Map<string, DesiredFunctionDetail>(described.map((d) => [d.name, d]));
      // A function without a rollout of its own follows the Project's (if any).
      const projectRollout = compileRollout(projectSpec?.rollout);
      for (const d of desired.values()) d.rollout ??= projectRollout;

      const stored = await loadStoredState(db, project.id);
      planned = plan([...desired.values()], stored.functions);
      phase("plan");

      const builds = new Map<string, BuiltArtifact>();
      const buildLog: Record<string, unknown>[] = [];
      const skipped: { function: string; code: string; message: string }[] = [];
      const toBuild = planned.changes.filter((c) => c.action === "create" || c.action === "update");
      // Builds run in child processes, so as many at once as there are cores; results are
      // recorded in plan order whatever order they finish in.
      const outputs = await mapLimit(toBuild, Math.max(1, availableParallelism()), async (change) => {
        const fn = manifests.functions.find((f) => f.manifest.metadata.name === change.name)!;
        const spec = fn.manifest.spec;
        try {
          return await buildFunction({
            repoDir: checkout.dir,
            sourceDir: fn.sourceDir,
            language: spec.source.language,
            ...(spec.source.entry ? { entry: spec.source.entry } : {}),
            abi: spec.abi,
            memoryPages: spec.limits.memoryPages,
            runtime: spec.runtime,
            ...(this.deps.builder ? { options: this.deps.builder } : {}),
          });
        } catch (err) {
          if (!(err instanceof EdgeError)) throw err;
          // A project may choose to leave out functions whose toolchain this machine lacks
          // (edgectl serve does): the rest of the commit applies, the skip is recorded.
          if (err.code === "EDGE_ERR_BUILD_TOOLCHAIN_MISSING" && project.missingToolchain === "skip") {
            log.warn(
              { function: change.name, err: err.message },
              "function skipped: toolchain not installed",
            );
            return err;
          }
          throw Object.assign(err, { message: `function "${change.name}": ${err.message}` });
        }
      });
      for (const [i, change] of toBuild.entries()) {
        const out: BuildOutput | EdgeError = outputs[i]!;
        if (out instanceof EdgeError) {
          skipped.push({ function: change.name, code: out.code, message: out.message });
          continue;
        }
        const functionId = randomUUID();
        const version = (stored.maxVersion.get(change.name) ?? 0) + 1;
        const key = artifactKey(functionId, String(version));
        const put = await store.put(key, out.bytes);
        builds.set(change.name, {
          functionId,
          version,
          artifactKey: key,
          sha256: out.sha256,
          size: put.size,
        });
        buildLog.push({
          function: change.name,
          version,
          sha256: out.sha256,
          bytes: put.size,
          toolchain: out.toolchain,
          cacheHit: out.cacheHit,
          optimized: out.optimized,
          sandbox: out.sandbox,
          ms: Math.round(out.durationMs),
        });
      }
      if (skipped.length > 0) {
        const names = new Set(skipped.map((x) => x.function));
        planned = { changes: planned.changes.filter((c) => !names.has(c.name)) };
      }

      phase("build");
      const generation = await applyPlan(db, {
        projectId: project.id,
        reconciliationId: req.id,
        commitSha: checkout.commit,
        trigger: req.trigger,
        actor: req.actor,
        plan: planned,
        basedOn: stored.functions.map((f) => f.functionId),
        desired,
        builds,
        projectSpec,
        locations: new Map(
          manifests.functions.map((f) => [
            f.manifest.metadata.name,
            `${f.location.file}:${f.location.line}:${f.location.col}`,
          ]),
        ),
        result: {
          ...(req.interrupted ? { interrupted: req.interrupted } : {}),
          builds: buildLog,
          manifests: manifests.files,
          timings,
          ...(skipped.length ? { skipped } : {}),
        },
        durationMs: performance.now() - started,
      });
      log.info(
        {
          commit: checkout.commit,
          changes: planned.changes.length,
          generation,
          ms: Math.round(performance.now() - started),
        },
        "reconciled",
      );
      hooks?.finished?.({
        id: req.id,
        project,
        commit,
        status: "succeeded",
        generation,
        plan: planned,
        error: null,
        projectSpec,
        durationMs: performance.now() - started,
        buildMs: buildLog.map((b) => b.ms as number),
      });
    } catch (err) {
      const e =
        err instanceof EdgeError
          ? { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) }
          : { code: "EDGE_ERR_INTERNAL", message: (err as Error).message };
      log.warn({ err, code: e.code }, "reconcile failed; nothing applied");
      await markFailedRetrying(db, req.id, e, planned, performance.now() - started, log);
      hooks?.finished?.({
        id: req.id,
        project,
        commit,
        status: "failed",
        generation: null,
        plan: planned,
        error: e,
        projectSpec,
        durationMs: performance.now() - started,
        buildMs: [],
      });
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Records a failed reconcile. When the failure was the database going away (PostgreSQL
 * restarted mid-apply), recording it fails too: retry for ~16 s (0.25 s doubling to 8 s, six tries)
 * so the row ends failed, and re-triggerable, instead of staying "running" until the lease
 * expires. Nothing of the reconcile was applied either way (applyPlan is one transaction).
 */
async function markFailedRetrying(
  db: Db,
  id: string,
  error: { code: string; message: string; details?: ErrorDetail[] },
  planned: Plan | null,
  durationMs: number,
  log: Logger,
): Promise<void> {
  for (let delay = 250; ; delay *= 2) {
    try {
      await markFailed(db, id, error, planned, durationMs);
      return;
    } catch (err) {
      if (delay > 8_000) throw err;
      log.warn({ err, retry_ms: delay }, "could not record the failed reconcile; retrying");
      await sleep(delay);
    }
  }
}

/**
 * Desired state of one function: its manifest settings plus the hashes that decide rebuilds.
 * Exported so that `edgectl plan` computes a local checkout's desired state exactly as a reconcile does.
 */
export async function describe(repoDir: string, fn: LoadedFunction): Promise<DesiredFunctionDetail> {
  const { metadata, spec } = fn.manifest;
  const entrypoint = spec.source.entry ?? defaultEntry(spec.source.language);
  const config = {
    language: spec.source.language,
    entrypoint,
    runtime: spec.runtime,
    abi: spec.abi,
    limits: spec.limits,
    env: spec.env ?? {},
    capabilities: spec.capabilities,
    labels: metadata.labels ?? {},
    placement: spec.placement?.pops ?? "",
  };
  return {
    name: metadata.name,
    sourceHash: await hashSourceTree(path.join(repoDir, fn.sourceDir)),
    configHash: sha256Hex(canonicalJson(config)),
    routes: normalizeRoutes(
      spec.routes.map((r) => ({
        host: r.host,
        path: r.path,
        methods: (r.methods ?? []).join(","),
        priority: r.priority,
      })),
    ),
    runtime: spec.runtime,
    abi: spec.abi,
    language: spec.source.language,
    entrypoint,
    sourcePath: fn.sourceDir,
    memoryPages: spec.limits.memoryPages,
    maxExecutionMs: spec.limits.maxExecutionMs,
    maxRequestBytes: spec.limits.maxRequestBytes,
    maxInstances: spec.limits.maxInstances,
    env: spec.env ?? {},
    capabilities: spec.capabilities,
    labels: metadata.labels ?? {},
    popSelector: spec.placement?.pops ?? "",
    secretEnv: spec.secretEnv ?? [],
    rollout: compileRollout(spec.rollout),
  };
}
