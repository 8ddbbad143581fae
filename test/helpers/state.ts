// Applying desired function sets straight to the data layer (plan + applyPlan), without git or
// builds: for data-layer and property tests. Artifacts are fake keys with a given sha256.

import { randomUUID } from "node:crypto";
import type { CompiledProject } from "../../reconciler/config.ts";
import type { Db } from "../../reconciler/db.ts";
import { type DesiredFunction, type Plan, plan } from "../../reconciler/plan.ts";
import { registerProject } from "../../reconciler/projects.ts";
import { createReconciliation } from "../../reconciler/reconciliations.ts";
import {
  applyPlan,
  type BuiltArtifact,
  type DesiredFunctionDetail,
  loadStoredState,
} from "../../reconciler/state.ts";

export const project = (name: string): CompiledProject => ({
  name,
  repo: `/srv/${name}.git`,
  source: "git",
  domains: [],
  fullName: null,
  branch: "main",
  webhookSecret: null,
  notificationSecret: null,
  missingToolchain: "fail",
});

export function fn(name: string, over: Partial<DesiredFunctionDetail> = {}): DesiredFunctionDetail {
  return {
    name,
    sourceHash: "a".repeat(64),
    configHash: "b".repeat(64),
    routes: [{ host: `${name}.example.com`, path: "/*", methods: "", priority: 0 }],
    runtime: "wasm",
    abi: "edge-v1",
    language: "assemblyscript",
    entrypoint: "index.ts",
    sourcePath: name,
    memoryPages: 16,
    maxExecutionMs: 50,
    maxRequestBytes: 1024,
    maxInstances: 4,
    env: { GREETING: "hi" },
    capabilities: { clock: false, random: false },
    labels: {},
    popSelector: "",
    ...over,
  };
}

export interface Applied {
  plan: Plan;
  generation: number | null;
  builds: Map<string, BuiltArtifact>;
}

/** Registers a project and returns a function that reconciles desired sets into it. */
export async function projectReconciler(db: Db, name = "acme") {
  const projectId = await registerProject(db, project(name));
  const reconcile = async (
    desired: DesiredFunctionDetail[],
    commit: string,
    sha256 = "c".repeat(64),
  ): Promise<Applied> => {
    const stored = await loadStoredState(db, projectId);
    const p = plan(desired as DesiredFunction[], stored.functions);
    const builds = new Map<string, BuiltArtifact>();
    for (const c of p.changes) {
      if (c.action !== "create" && c.action !== "update") continue;
      const functionId = randomUUID();
      const version = (stored.maxVersion.get(c.name) ?? 0) + 1;
      builds.set(c.name, {
        functionId,
        version,
        artifactKey: `functions/${functionId}/${version}.wasm`,
        sha256,
        size: 10,
      });
    }
    const reconciliationId = randomUUID();
    await createReconciliation(db, {
      id: reconciliationId,
      projectId,
      commitSha: commit,
      trigger: "push",
      actor: "test",
    });
    const generation = await applyPlan(db, {
      projectId,
      reconciliationId,
      commitSha: commit,
      trigger: "push",
      actor: "test",
      plan: p,
      basedOn: stored.functions.map((f) => f.functionId),
      desired: new Map(desired.map((d) => [d.name, d])),
      builds,
      result: {},
      durationMs: 1,
    });
    return { plan: p, generation, builds };
  };
  return { projectId, reconcile };
}
