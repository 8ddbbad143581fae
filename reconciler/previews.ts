// Pull-request previews. A `pull_request` webhook (opened, synchronize, reopened) builds the PR
// head and serves every function of it as a preview version on the POPs the Project's
// `preview.pops` selects (narrowed by each function's placement), on
//   {function}--pr-{n}.{pop}.{preview.domain}   served only by that POP's runners, and
//   {function}--pr-{n}.{preview.domain}         routed on every preview POP.
// Production routes and versions are untouched: preview versions are immutable function rows
// like any other, but they get no deployment and no route row (nodes.ts adds their hosts when
// it cuts a node's desired state). Each push posts one commit status per preview POP (target:
// that POP's preview URL) and edits the one PR comment holding the plan for production.
// Closing the PR (merged or not) tears the previews down; previews older than the TTL expire.
//
// Previews do not use the reconcile queue (a newer PR push must not supersede a production
// push): jobs run one at a time per project in this replica, newest head per PR wins.

import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { availableParallelism } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { simpleGit } from "simple-git";
import {
  type ArtifactStore,
  artifactKey,
  type BuilderOptions,
  type BuildOutput,
  buildFunction,
} from "../builder/index.ts";
import { mapLimit } from "../lib/concurrency.ts";
import { EdgeError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/hash.ts";
import type { Logger } from "../lib/log.ts";
import { loadManifests, type ProjectSpec } from "../schema/index.ts";
import { audit } from "./audit.ts";
import type { ControlServer } from "./control-server.ts";
import type { Db, Queryable } from "./db.ts";
import { previewHost } from "./nodes.ts";
import { bumpGeneration } from "./outbox.ts";
import { type Change, type Plan, plan } from "./plan.ts";
import { describe } from "./reconcile.ts";
import { rollout } from "./rollout.ts";
import { matchesSelector } from "./selector.ts";
import { GitSource } from "./source.ts";
import {
  type BuiltArtifact,
  type DesiredFunctionDetail,
  insertFunctionVersion,
  loadStoredState,
} from "./state.ts";
import type { StatusReporter, StatusTarget } from "./status.ts";

const run = promisify(execFile);

/** The parts of a GitHub `pull_request` payload previews use. */
export interface PullRequestPayload {
  action?: string;
  number?: number;
  pull_request?: {
    number?: number;
    merged?: boolean;
    head?: { sha?: string; ref?: string; repo?: { full_name?: string } | null };
    base?: { ref?: string; repo?: { full_name?: string } };
  };
  sender?: { login?: string };
}

export interface PreviewProject {
  id: string;
  name: string;
  /** Clone URL from the registration (never from a payload). */
  repo: string;
  branch: string;
  fullName: string | null;
  missingToolchain: "fail" | "skip";
}

export interface PreviewDeps {
  db: Db;
  store: ArtifactStore;
  log: Logger;
  builder?: BuilderOptions;
  status: StatusReporter;
  control: ControlServer;
  ackTimeoutMs: number;
  /** Previews not pushed to for this long expire. */
  ttlMs: number;
  /** Working trees go under {dataDir}/git. */
  dataDir: string;
  target(project: string): StatusTarget;
  /** How often expired previews are swept. Default min(ttl / 2, 60 s). */
  sweepIntervalMs?: number;
  /**
   * The clock of preview expiry (a push sets expires_at = now() + ttl; expire() tears down those
   * with expires_at <= now()). Default: the database's clock. A seam for tests.
   */
  now?: () => Date;
}

interface Job {
  seq: number;
  project: PreviewProject;
  pr: number;
  kind: "deploy" | "close";
  headSha: string;
  headRef: string;
  headRepo: string | null;
  fork: boolean;
  merged: boolean;
  actor: string;
}

/** One row of GET /api/v1/previews. */
export interface PreviewListing {
  project: string;
  pr: number;
  head_sha: string;
  head_repo: string | null;
  fork: boolean;
  function: string;
  function_id: string;
  version: number;
  pops: string[];
  urls: Record<string, string>;
  status: "active" | "closed" | "expired";
  created_at: string;
  updated_at: string;
  expires_at: string;
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
const REF = /^(?!-)[A-Za-z0-9._/-]{1,255}$/;
const DEPLOY_ACTIONS = new Set(["opened", "synchronize", "reopened"]);
const MARKER = "<!-- edgeplane:preview -->";

export const previewUrl = (fn: string, pr: number, domain: string, pop?: string) =>
  `https://${previewHost(fn, pr, domain, pop)}/`;

interface NodeRow {
  id: string;
  pop: string;
  labels: Record<string, string>;
}

async function onlineNodes(q: Queryable): Promise<NodeRow[]> {
  const rows = await q.query<{ id: string; pop: string; metadata: { labels?: Record<string, string> } }>(
    "SELECT id, pop_id AS pop, metadata FROM nodes WHERE status = 'online' ORDER BY id",
  );
  return rows.map((r) => ({ id: r.id, pop: r.pop, labels: { ...(r.metadata?.labels ?? {}), pop: r.pop } }));
}

/** The POPs (sorted) having an online node that every selector matches. */
function popsMatching(nodes: NodeRow[], ...selectors: string[]): string[] {
  return [
    ...new Set(nodes.filter((n) => selectors.every((s) => matchesSelector(s, n.labels))).map((n) => n.pop)),
  ].sort();
}

export class PreviewManager {
  private readonly projects = new Map<string, PreviewProject>();
  private readonly chains = new Map<string, Promise<void>>();
  /** Newest job sequence per project#pr: an older deploy still queued is skipped. */
  private readonly newest = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private seq = 0;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly deps: PreviewDeps) {}

  addProject(p: PreviewProject): void {
    this.projects.set(p.name, p);
  }

  /**
   * Accepts a verified `pull_request` webhook for a project; the work runs in the background.
   * Returns the webhook's result ("queued …" or "ignored: …").
   */
  accept(projectName: string, payload: PullRequestPayload): string {
    const project = this.projects.get(projectName);
    if (!project) return "ignored: previews are not enabled for this project";
    const prPayload = payload.pull_request;
    const pr = Number(payload.number ?? prPayload?.number);
    if (!Number.isInteger(pr) || pr <= 0) return "ignored: no pull request number";
    if (prPayload?.base?.ref !== undefined && prPayload.base.ref !== project.branch)
      return `ignored: pull request targets ${prPayload.base.ref}, not the production branch`;
    const action = payload.action ?? "";
    const kind = DEPLOY_ACTIONS.has(action) ? "deploy" : action === "closed" ? "close" : null;
    if (!kind) return `ignored: pull_request action ${action || "(none)"}`;
    const headSha = prPayload?.head?.sha ?? "";
    if (kind === "deploy" && !SHA.test(headSha)) return "ignored: no head commit sha";
    const headRepo = prPayload?.head?.repo?.full_name ?? null;
    const baseRepo = prPayload?.base?.repo?.full_name ?? project.fullName;
    const headRef = prPayload?.head?.ref ?? "";
    const job: Job = {
      seq: ++this.seq,
      project,
      pr,
      kind,
      headSha,
      headRef: REF.test(headRef) ? headRef : "",
      headRepo,
      // A deleted fork has no head repository: still a fork.
      fork: headRepo === null || (baseRepo !== null && headRepo !== baseRepo),
      merged: prPayload?.merged === true,
      actor: `github:${payload.sender?.login ?? "unknown"}`,
    };
    this.newest.set(`${project.name}#${pr}`, job.seq);
    const previous = this.chains.get(project.name) ?? Promise.resolve();
    const next = previous.then(() => this.run(job));
    this.chains.set(project.name, next);
    const tracked = next.catch((err) => this.deps.log.error({ err, pr }, "preview job crashed"));
    this.inFlight.add(tracked);
    void tracked.finally(() => {
      this.inFlight.delete(tracked);
      if (this.chains.get(project.name) === next) this.chains.delete(project.name);
    });
    return kind === "deploy" ? "queued preview" : "queued preview teardown";
  }

  /** Resolves when every preview job started so far has finished (their deliveries included). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  start(): void {
    const every = this.deps.sweepIntervalMs ?? Math.max(50, Math.min(this.deps.ttlMs / 2, 60_000));
    this.sweeper = setInterval(() => {
      void this.expire().catch((err) => this.deps.log.warn({ err }, "preview expiry failed"));
    }, every);
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.settled();
  }

  /** Tears down previews whose TTL has passed; returns how many. */
  async expire(): Promise<number> {
    const { db } = this.deps;
    const at = this.deps.now?.() ?? null;
    return db.transaction(async (tx) => {
      const rows = await tx.query<{
        project_id: string;
        pr: number;
        function_name: string;
        version: number;
        head_sha: string;
      }>(
        `UPDATE previews SET status = 'expired', updated_at = now()
          WHERE status = 'active' AND expires_at <= coalesce($1::timestamptz, now())
          RETURNING project_id, pr, function_name, version, head_sha`,
        [at],
      );
      for (const r of rows) {
        await audit(tx, {
          actor: "system",
          trigger: "pull_request",
          commitSha: r.head_sha,
          projectId: r.project_id,
          objectKind: "preview",
          objectId: r.function_name,
          action: "expire",
          before: { pr: r.pr, version: r.version },
          after: null,
        });
      }
      if (rows.length) await bumpGeneration(tx, null, { previews_expired: rows.length });
      return rows.length;
    });
  }

  private async run(job: Job): Promise<void> {
    if (job.kind === "close") return this.close(job);
    if (this.newest.get(`${job.project.name}#${job.pr}`) !== job.seq) return; // a newer push is queued
    return this.deploy(job);
  }

  /** Fetches the PR head into the project's preview working tree (apart from production's). */
  private async checkout(job: Job): Promise<string> {
    const dir = path.join(this.deps.dataDir, "git", `${job.project.name}--previews`);
    if (!existsSync(path.join(dir, ".git"))) {
      await mkdir(path.dirname(dir), { recursive: true });
      await simpleGit().clone(job.project.repo, dir, ["--no-checkout", "--quiet"]);
    }
    const known =
      (
        await run("git", ["-C", dir, "cat-file", "-t", job.headSha]).catch(() => ({ stdout: "" }))
      ).stdout.trim() === "commit";
    if (!known) {
      const into = `refs/remotes/origin/pr/${job.pr}`;
      try {
        // GitHub exposes every PR head, forks' included, on the base repository.
        await simpleGit(dir).fetch(["--no-tags", "--force", "origin", `+refs/pull/${job.pr}/head:${into}`]);
      } catch (err) {
        if (job.fork || !job.headRef) throw err;
        await simpleGit(dir).fetch(["--no-tags", "--force", "origin", `+refs/heads/${job.headRef}:${into}`]);
      }
    }
    return (await new GitSource(job.project.repo, job.project.branch, dir).checkout(job.headSha)).dir;
  }

  private async deploy(job: Job): Promise<void> {
    const { db, store, status } = this.deps;
    const log = this.deps.log.child({ project: job.project.name, pr: job.pr });
    const target = this.deps.target(job.project.name);
    const rid = randomUUID();
    const started = performance.now();
    let projectSpec: ProjectSpec | null = null;
    let productionPlan: Plan | null = null;
    status.commitStatus(target, rid, job.headSha, "edgeplane/preview", "pending", "building preview");
    try {
      const dir = await this.checkout(job);
      const manifests = await loadManifests(dir);
      projectSpec = manifests.project?.spec ?? null;
      const described = await mapLimit(manifests.functions, 16, (fn) => describe(dir, fn));
      const stored = await loadStoredState(db, job.project.id);
      productionPlan = plan(described, stored.functions);
      const nodes = await onlineNodes(db);
      const preview = projectSpec?.preview ?? null;
      if (!preview) {
        await this.recordReconciliation(
          db,
          rid,
          job,
          "succeeded",
          productionPlan,
          { pr: job.pr, previews: [] },
          null,
          started,
        );
        status.commitStatus(
          target,
          rid,
          job.headSha,
          "edgeplane/preview",
          "success",
          "no preview domain in the Project manifest",
        );
        await this.comment(job, rid, await this.render(job, productionPlan, [], nodes, null));
        return;
      }

      // Fork PRs get no secret env values: a fork's code must not read the project's secrets.
      const detail = described.map((d): DesiredFunctionDetail => {
        const removed = job.fork ? (d.secretEnv ?? []).filter((n) => n in d.env).sort() : [];
        if (removed.length === 0) return d;
        const env = Object.fromEntries(Object.entries(d.env).filter(([k]) => !removed.includes(k)));
        return { ...d, env, configHash: sha256Hex(`${d.configHash}\0fork-without:${removed.join(",")}`) };
      });
      // A version already built from the same source and settings is reused (no rebuild).
      const reuse = new Map<string, { id: string; version: number }>();
      for (const d of detail) {
        const [row] = await db.query<{ id: string; version: number }>(
          `SELECT id, version FROM functions WHERE project_id = $1 AND name = $2 AND source_hash = $3 AND config_hash = $4
            ORDER BY version DESC LIMIT 1`,
          [job.project.id, d.name, d.sourceHash, d.configHash],
        );
        if (row) reuse.set(d.name, row);
      }
      const toBuild = detail.filter((d) => !reuse.has(d.name));
      const outputs = await mapLimit(toBuild, Math.max(1, availableParallelism()), async (d) => {
        const fn = manifests.functions.find((f) => f.manifest.metadata.name === d.name)!;
        const spec = fn.manifest.spec;
        try {
          return await buildFunction({
            repoDir: dir,
            sourceDir: fn.sourceDir,
            language: spec.source.language,
            ...(spec.source.entry ? { entry: spec.source.entry } : {}),
            abi: spec.abi,
            memoryPages: spec.limits.memoryPages,
            runtime: spec.runtime,
            ...(this.deps.builder ? { options: this.deps.builder } : {}),
          });
        } catch (err) {
          if (
            err instanceof EdgeError &&
            err.code === "EDGE_ERR_BUILD_TOOLCHAIN_MISSING" &&
            job.project.missingToolchain === "skip"
          )
            return err;
          if (err instanceof EdgeError)
            throw Object.assign(err, { message: `function "${d.name}": ${err.message}` });
          throw err;
        }
      });
      const built = new Map<
        string,
        { d: DesiredFunctionDetail; out: BuildOutput; functionId: string; key: string; size: number }
      >();
      for (const [i, d] of toBuild.entries()) {
        const out = outputs[i]!;
        if (out instanceof EdgeError) continue;
        const functionId = randomUUID();
        // The key needs a version; the final number is taken under the lock below, so the key
        // carries the function id alone (ids are unique; the key just has to be stable).
        const key = artifactKey(functionId, "preview");
        const put = await store.put(key, out.bytes);
        built.set(d.name, { d, out, functionId, key, size: put.size });
      }

      const listed: { name: string; version: number; functionId: string; pops: string[] }[] = [];
      const generation = await db.transaction(async (tx) => {
        await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [job.project.id]);
        const base = {
          actor: job.actor,
          trigger: "pull_request",
          commitSha: job.headSha,
          projectId: job.project.id,
          reconciliationId: rid,
        };
        const existing = await tx.query<{ id: string; function_name: string; version: number }>(
          "SELECT id, function_name, version FROM previews WHERE project_id = $1 AND pr = $2 AND status = 'active'",
          [job.project.id, job.pr],
        );
        for (const d of detail) {
          let functionId: string;
          let version: number;
          const b = built.get(d.name);
          if (b) {
            const [max] = await tx.query<{ v: number | null }>(
              "SELECT max(version) AS v FROM functions WHERE project_id = $1 AND name = $2",
              [job.project.id, d.name],
            );
            version = Number(max?.v ?? 0) + 1;
            functionId = b.functionId;
            const artifact: BuiltArtifact = {
              functionId,
              version,
              artifactKey: b.key,
              sha256: b.out.sha256,
              size: b.size,
            };
            await insertFunctionVersion(tx, job.project.id, d, artifact, job.headSha);
          } else if (reuse.has(d.name)) {
            ({ id: functionId, version } = reuse.get(d.name)!);
          } else {
            continue; // skipped: toolchain missing
          }
          const pops = popsMatching(nodes, preview.pops ?? "", d.popSelector);
          listed.push({ name: d.name, version, functionId, pops });
          const values = [
            job.project.id,
            job.pr,
            job.headSha,
            job.headRepo,
            job.fork,
            d.name,
            functionId,
            version,
            preview.domain,
            preview.pops ?? "",
            d.popSelector,
            JSON.stringify(pops),
            this.deps.ttlMs,
            this.deps.now?.() ?? null,
          ];
          const old = existing.find((e) => e.function_name === d.name);
          if (old) {
            await tx.query(
              `UPDATE previews SET head_sha = $3, head_repo = $4, fork = $5, function_id = $7, version = $8, domain = $9,
                 preview_selector = $10, pop_selector = $11, pops = $12, updated_at = now(),
                 expires_at = coalesce($14::timestamptz, now()) + $13 * interval '1 millisecond'
               WHERE project_id = $1 AND pr = $2 AND function_name = $6 AND status = 'active'`,
              values,
            );
          } else {
            await tx.query(
              `INSERT INTO previews (id, project_id, pr, head_sha, head_repo, fork, function_name, function_id, version, domain,
                 preview_selector, pop_selector, pops, status, expires_at)
               VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'active',
                 coalesce($14::timestamptz, now()) + $13 * interval '1 millisecond')`,
              values,
            );
          }
          await audit(tx, {
            ...base,
            objectKind: "preview",
            objectId: d.name,
            action: old ? "update" : "create",
            before: old ? { pr: job.pr, version: old.version } : null,
            after: { pr: job.pr, version, function_id: functionId, pops, fork: job.fork },
          });
        }
        for (const old of existing.filter((e) => !detail.some((d) => d.name === e.function_name))) {
          await tx.query("UPDATE previews SET status = 'closed', updated_at = now() WHERE id = $1", [old.id]);
          await audit(tx, {
            ...base,
            objectKind: "preview",
            objectId: old.function_name,
            action: "delete",
            before: { pr: job.pr, version: old.version },
            after: null,
          });
        }
        await this.recordReconciliation(
          tx,
          rid,
          job,
          "succeeded",
          productionPlan,
          {
            pr: job.pr,
            fork: job.fork,
            previews: listed.map((l) => ({ function: l.name, version: l.version, pops: l.pops })),
          },
          null,
          started,
        );
        return bumpGeneration(tx, job.project.id, { preview: job.pr, reconciliation_id: rid });
      });

      // Per-POP statuses on the PR head, each linking to that POP's preview URL.
      const allPops = [...new Set(listed.flatMap((l) => l.pops))].sort();
      const urlOn = (pop: string) => {
        const first = listed.find((l) => l.pops.includes(pop));
        return first ? previewUrl(first.name, job.pr, preview.domain, pop) : undefined;
      };
      const kind = job.fork ? "fork preview" : "preview";
      for (const pop of allPops) {
        status.commitStatus(
          target,
          rid,
          job.headSha,
          `edgeplane/preview/${pop}`,
          "pending",
          `deploying ${kind}`,
          urlOn(pop),
        );
      }
      const targets = nodes.filter((n) => allPops.includes(n.pop)).map((n) => ({ id: n.id, pop: n.pop }));
      const outcome = await rollout(
        { db, control: this.deps.control, ackTimeoutMs: this.deps.ackTimeoutMs },
        rid,
        generation,
        targets,
      );
      for (const p of outcome.pops) {
        const names = listed.filter((l) => l.pops.includes(p.pop)).map((l) => l.name);
        status.commitStatus(
          target,
          rid,
          job.headSha,
          `edgeplane/preview/${p.pop}`,
          p.state,
          p.state === "success" ? `${kind} of ${names.join(", ")} live` : p.description,
          urlOn(p.pop),
        );
      }
      status.commitStatus(
        target,
        rid,
        job.headSha,
        "edgeplane/preview",
        outcome.pops.every((p) => p.state === "success") ? "success" : "failure",
        `${kind} of ${listed.length} function(s) on ${allPops.length} POP(s)`,
        listed[0] ? previewUrl(listed[0].name, job.pr, preview.domain) : undefined,
      );
      await this.comment(job, rid, await this.render(job, productionPlan, listed, nodes, preview.domain));
      status.notify(target, projectSpec, rid, "preview", {
        project: job.project.name,
        pr: job.pr,
        head_sha: job.headSha,
        fork: job.fork,
        previews: listed.map((l) => ({
          function: l.name,
          version: l.version,
          pops: l.pops,
          url: previewUrl(l.name, job.pr, preview.domain),
        })),
        outcome,
      });
      log.info({ functions: listed.length, pops: allPops, generation }, "preview deployed");
    } catch (err) {
      const e =
        err instanceof EdgeError
          ? { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) }
          : { code: "EDGE_ERR_INTERNAL", message: (err as Error).message };
      log.warn({ err, code: e.code }, "preview failed; previous previews keep serving");
      await this.recordReconciliation(db, rid, job, "failed", productionPlan, null, e, started).catch(
        () => {},
      );
      status.commitStatus(
        target,
        rid,
        job.headSha,
        "edgeplane/preview",
        "failure",
        `${e.code}: ${e.message}`,
      );
      await this.comment(
        job,
        rid,
        `${MARKER}\n### edgeplane preview for #${job.pr} at \`${job.headSha.slice(0, 7)}\`${job.fork ? " (fork preview)" : ""}\n\n` +
          `The preview could not be built: **${e.code}**: ${e.message}\n\nThe previous preview (if any) keeps serving.\n`,
      );
    }
  }

  private async close(job: Job): Promise<void> {
    const { db } = this.deps;
    const rid = randomUUID();
    const closed = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [job.project.id]);
      const rows = await tx.query<{ function_name: string; version: number; head_sha: string }>(
        `UPDATE previews SET status = 'closed', updated_at = now()
          WHERE project_id = $1 AND pr = $2 AND status = 'active' RETURNING function_name, version, head_sha`,
        [job.project.id, job.pr],
      );
      for (const r of rows) {
        await audit(tx, {
          actor: job.actor,
          trigger: "pull_request",
          commitSha: r.head_sha,
          projectId: job.project.id,
          objectKind: "preview",
          objectId: r.function_name,
          action: "delete",
          before: { pr: job.pr, version: r.version },
          after: { reason: job.merged ? "pull request merged" : "pull request closed" },
        });
      }
      if (rows.length) await bumpGeneration(tx, job.project.id, { preview: job.pr, closed: true });
      return rows;
    });
    this.newest.delete(`${job.project.name}#${job.pr}`);
    if (closed.length === 0) return;
    this.deps.log.info(
      { project: job.project.name, pr: job.pr, previews: closed.length },
      "previews torn down",
    );
    const [stored] = await db.query<{ comment_id: number }>(
      "SELECT comment_id FROM pr_comments WHERE project_id = $1 AND pr = $2",
      [job.project.id, job.pr],
    );
    if (stored) {
      await this.comment(
        job,
        rid,
        `${MARKER}\n### edgeplane preview for #${job.pr}\n\nThe pull request was ${job.merged ? "merged" : "closed"}: ` +
          `the previews of ${closed.map((c) => `\`${c.function_name}\``).join(", ")} were torn down on every POP.\n`,
      );
    }
  }

  /** Posts the PR's comment, or edits the one already posted (its id is stored). */
  private async comment(job: Job, rid: string, body: string): Promise<void> {
    const { db } = this.deps;
    const [stored] = await db.query<{ comment_id: number }>(
      "SELECT comment_id FROM pr_comments WHERE project_id = $1 AND pr = $2",
      [job.project.id, job.pr],
    );
    const id = await this.deps.status.prComment(
      this.deps.target(job.project.name),
      rid,
      job.pr,
      stored ? Number(stored.comment_id) : null,
      body,
    );
    if (id !== null && id !== Number(stored?.comment_id)) {
      await db.query(
        `INSERT INTO pr_comments (project_id, pr, comment_id) VALUES ($1, $2, $3)
         ON CONFLICT (project_id, pr) DO UPDATE SET comment_id = $3, updated_at = now()`,
        [job.project.id, job.pr, id],
      );
    }
  }

  private async recordReconciliation(
    q: Queryable,
    rid: string,
    job: Job,
    state: "succeeded" | "failed",
    planned: Plan | null,
    result: unknown,
    error: unknown,
    started: number,
  ): Promise<void> {
    await q.query(
      `INSERT INTO reconciliations (id, project_id, commit_sha, trigger, actor, status, plan, result, error, started_at,
         finished_at, duration_ms)
       VALUES ($1, $2, $3, 'pull_request', $4, $5, $6, $7, $8, now(), now(), $9)`,
      [
        rid,
        job.project.id,
        job.headSha,
        job.actor,
        state,
        planned === null ? null : JSON.stringify(planned),
        result === null ? null : JSON.stringify(result),
        error === null ? null : JSON.stringify(error),
        Math.round(performance.now() - started),
      ],
    );
  }

  /** The PR comment: preview URLs, then what merging would change in production, function by function, POP by POP. */
  private async render(
    job: Job,
    planned: Plan,
    listed: { name: string; version: number; pops: string[] }[],
    nodes: NodeRow[],
    domain: string | null,
  ): Promise<string> {
    const lines = [
      MARKER,
      `### edgeplane preview for #${job.pr} at \`${job.headSha.slice(0, 7)}\`${job.fork ? " — fork preview (secret env values withheld)" : ""}`,
      "",
    ];
    if (domain === null) {
      lines.push("Previews are off: the Project manifest has no `spec.preview.domain`.", "");
    } else if (listed.length === 0) {
      lines.push("No functions to preview.", "");
    } else {
      lines.push("| function | version | preview | per POP |", "| --- | --- | --- | --- |");
      for (const l of listed) {
        const perPop = l.pops.length
          ? l.pops.map((p) => `${p}: ${previewUrl(l.name, job.pr, domain, p)}`).join("<br>")
          : "no preview POP online";
        lines.push(`| \`${l.name}\` | v${l.version} | ${previewUrl(l.name, job.pr, domain)} | ${perPop} |`);
      }
      lines.push("");
    }
    lines.push("#### Plan for production when merged", "");
    if (planned.changes.length === 0) {
      lines.push("Merging changes nothing in production.");
    } else {
      // POPs per change: where the function is (delete) or will be (create/update/routes) placed.
      const placement = new Map<string, string>();
      const rows = await this.deps.db.query<{ name: string; pop_selector: string }>(
        `SELECT f.name, f.pop_selector FROM deployments d JOIN functions f ON f.id = d.function_id
          WHERE d.project_id = $1 AND d.active`,
        [job.project.id],
      );
      for (const r of rows) placement.set(r.name, r.pop_selector);
      const desiredSel = new Map<string, string>();
      const prev = await this.deps.db.query<{ function_name: string; pop_selector: string }>(
        "SELECT function_name, pop_selector FROM previews WHERE project_id = $1 AND pr = $2 AND status = 'active'",
        [job.project.id, job.pr],
      );
      for (const r of prev) desiredSel.set(r.function_name, r.pop_selector);
      lines.push("| function | change | reason | POPs |", "| --- | --- | --- | --- |");
      for (const c of planned.changes) {
        const sel =
          c.action === "delete"
            ? (placement.get(c.name) ?? "")
            : (desiredSel.get(c.name) ?? placement.get(c.name) ?? "");
        const pops = popsMatching(nodes, sel);
        lines.push(
          `| \`${c.name}\` | ${describeChange(c)} | ${c.reason} | ${pops.length ? pops.join(", ") : "none online"} |`,
        );
      }
    }
    lines.push(
      "",
      `<sub>Updated for ${job.headSha}. This comment is edited in place on every push.</sub>`,
      "",
    );
    return lines.join("\n");
  }
}

function describeChange(c: Change): string {
  switch (c.action) {
    case "create":
      return "create (new version)";
    case "update":
      return `update v${c.fromVersion} → new version`;
    case "routes":
      return `routes of v${c.version}`;
    case "delete":
      return `delete v${c.version}`;
  }
}

/** Previews for the API, newest first; `project` null = every project. */
export async function listPreviews(
  q: Queryable,
  filter: { project: string | null; status: "active" | "closed" | "expired" | "all" },
): Promise<PreviewListing[]> {
  const rows = await q.query<
    Omit<PreviewListing, "urls" | "function"> & { function_name: string; domain: string }
  >(
    `SELECT p.name AS project, v.pr, v.head_sha, v.head_repo, v.fork, v.function_name, v.function_id, v.version, v.pops,
            v.status, v.domain, v.created_at, v.updated_at, v.expires_at
       FROM previews v JOIN projects p ON p.id = v.project_id
      WHERE ($1::text IS NULL OR p.name = $1) AND ($2::text = 'all' OR v.status = $2)
      ORDER BY v.updated_at DESC, p.name, v.pr, v.function_name LIMIT 500`,
    [filter.project, filter.status],
  );
  return rows.map(({ function_name, domain, ...r }) => ({
    ...r,
    function: function_name,
    urls: {
      ...Object.fromEntries(r.pops.map((pop) => [pop, previewUrl(function_name, r.pr, domain, pop)])),
      any: previewUrl(function_name, r.pr, domain),
    },
  }));
}
