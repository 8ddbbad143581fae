// The reconcile loop of one control plane: queue → checkout → load manifests → plan → build →
// apply (one transaction) → notify runners. At most one reconcile per project runs at a time
// in this process (and applyPlan's advisory lock covers other replicas); a newer request
// supersedes a queued older one, which is recorded as superseded rather than dropped.

import { randomUUID } from "node:crypto";
import path from "node:path";
import { type ArtifactStore, artifactKey, buildFunction, hashSourceTree } from "../builder/index.ts";
import { EdgeError } from "../lib/errors.ts";
import { canonicalJson, sha256Hex } from "../lib/hash.ts";
import type { Logger } from "../lib/log.ts";
import { type LoadedFunction, loadManifests } from "../schema/index.ts";
import type { Db } from "./db.ts";
import { normalizeRoutes, type Plan, plan } from "./plan.ts";
import {
  createReconciliation,
  getReconciliation,
  markFailed,
  markRunning,
  markSuperseded,
  type ReconciliationRow,
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
}

interface Queued extends ReconcileRequest {
  id: string;
}

interface ProjectQueue {
  running: boolean;
  pending: Queued | null;
}

export interface ReconcilerDeps {
  db: Db;
  store: ArtifactStore;
  log: Logger;
  /** Called after a commit that changed desired state, with the new generation. */
  onApplied: (generation: number) => void;
}

const TERMINAL = new Set(["succeeded", "failed", "superseded"]);

export class Reconciler {
  private readonly projects = new Map<string, ManagedProject>();
  private readonly queues = new Map<string, ProjectQueue>();
  private readonly finished = new Map<string, (() => void)[]>();

  constructor(private readonly deps: ReconcilerDeps) {}

  addProject(p: ManagedProject): void {
    this.projects.set(p.name, p);
    this.queues.set(p.name, { running: false, pending: null });
  }

  project(name: string): ManagedProject | undefined {
    return this.projects.get(name);
  }

  /** Queues a reconcile and returns its id at once; the reconcile runs in the background. */
  async enqueue(projectName: string, req: ReconcileRequest): Promise<string> {
    const project = this.projects.get(projectName);
    const queue = this.queues.get(projectName);
    if (!project || !queue) throw new Error(`unknown project ${projectName}`);
    const id = randomUUID();
    await createReconciliation(this.deps.db, {
      id,
      projectId: project.id,
      commitSha: req.commit,
      trigger: req.trigger,
      actor: req.actor,
    });
    if (queue.pending) {
      await markSuperseded(this.deps.db, queue.pending.id, id);
      this.settle(queue.pending.id);
    }
    queue.pending = { id, ...req };
    this.drain(project, queue);
    return id;
  }

  /** Resolves with the reconciliation once it has finished (succeeded, failed or superseded). */
  async wait(id: string): Promise<ReconciliationRow> {
    for (;;) {
      const row = await getReconciliation(this.deps.db, id);
      if (!row) throw new Error(`no reconciliation ${id}`);
      if (TERMINAL.has(row.status)) return row;
      await new Promise<void>((resolve) => {
        const list = this.finished.get(id) ?? [];
        list.push(resolve);
        this.finished.set(id, list);
      });
    }
  }

  /** Resolves when no reconcile is running or queued. */
  async idle(): Promise<void> {
    while ([...this.queues.values()].some((q) => q.running || q.pending))
      await new Promise((r) => setTimeout(r, 20));
  }

  private settle(id: string): void {
    for (const resolve of this.finished.get(id) ?? []) resolve();
    this.finished.delete(id);
  }

  private drain(project: ManagedProject, queue: ProjectQueue): void {
    if (queue.running || !queue.pending) return;
    const next = queue.pending;
    queue.pending = null;
    queue.running = true;
    this.run(project, next)
      .catch((err) => this.deps.log.error({ err, reconcile_id: next.id }, "reconcile crashed"))
      .finally(() => {
        queue.running = false;
        this.settle(next.id);
        this.drain(project, queue);
      });
  }

  private async run(project: ManagedProject, req: Queued): Promise<void> {
    const { db, store } = this.deps;
    const log = this.deps.log.child({ reconcile_id: req.id, project: project.name });
    const started = performance.now();
    let planned: Plan | null = null;
    try {
      const checkout = await project.source.checkout(req.commit);
      await markRunning(db, req.id, checkout.commit);
      const manifests = await loadManifests(checkout.dir);
      if (manifests.project && manifests.project.metadata.name !== project.name) {
        log.warn(
          { manifest_project: manifests.project.metadata.name },
          "Project document names another project",
        );
      }
      const desired = new Map<string, DesiredFunctionDetail>();
      for (const fn of manifests.functions)
        desired.set(fn.manifest.metadata.name, await describe(checkout.dir, fn));

      const stored = await loadStoredState(db, project.id);
      planned = plan([...desired.values()], stored.functions);

      const builds = new Map<string, BuiltArtifact>();
      const buildLog: Record<string, unknown>[] = [];
      for (const change of planned.changes) {
        if (change.action !== "create" && change.action !== "update") continue;
        const fn = manifests.functions.find((f) => f.manifest.metadata.name === change.name)!;
        const spec = fn.manifest.spec;
        const out = await buildFunction({
          repoDir: checkout.dir,
          sourceDir: fn.sourceDir,
          language: spec.source.language,
          ...(spec.source.entry ? { entry: spec.source.entry } : {}),
          abi: spec.abi,
          memoryPages: spec.limits.memoryPages,
        }).catch((err: unknown) => {
          if (err instanceof EdgeError) {
            throw Object.assign(err, { message: `function "${change.name}": ${err.message}` });
          }
          throw err;
        });
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
          ms: Math.round(out.durationMs),
        });
      }

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
        result: { builds: buildLog, manifests: manifests.files },
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
      if (generation !== null) this.deps.onApplied(generation);
    } catch (err) {
      const e =
        err instanceof EdgeError
          ? { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) }
          : { code: "EDGE_ERR_INTERNAL", message: (err as Error).message };
      log.warn({ err, code: e.code }, "reconcile failed; nothing applied");
      await markFailed(db, req.id, e, planned, performance.now() - started);
    }
  }
}

/** Desired state of one function: its manifest settings plus the hashes that decide rebuilds. */
async function describe(repoDir: string, fn: LoadedFunction): Promise<DesiredFunctionDetail> {
  const { metadata, spec } = fn.manifest;
  const entrypoint =
    spec.source.entry ?? (spec.source.language === "assemblyscript" ? "index.ts" : "module.wasm");
  const config = {
    language: spec.source.language,
    entrypoint,
    runtime: spec.runtime,
    abi: spec.abi,
    limits: spec.limits,
    env: spec.env ?? {},
    capabilities: spec.capabilities ?? {},
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
    capabilities: { clock: false, random: false, ...spec.capabilities },
    labels: metadata.labels ?? {},
    popSelector: spec.placement?.pops ?? "",
  };
}
