// Pull-request previews in tests: the preview world (project acme with preview POPs), PR commits
// published the way GitHub does (refs/pull/N/head), pull_request webhooks, and waiting for runners.

import path from "node:path";
import type { ExecutionContext } from "ava";
import { simpleGit } from "simple-git";
import type { ControlPlane, ControlPlaneOptions } from "../../reconciler/index.ts";
import type { TestRepo } from "./git.ts";
import { request } from "./http.ts";
import type { Recorder } from "./recorder.ts";
import type { TestRunner } from "./runner.ts";
import { startStack } from "./stack.ts";
import { sendWebhook } from "./webhook.ts";

export const COMMENT_ID = 4242;

export const manifest = `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec:
  domains: [acme.test]
  preview: { domain: preview.acme.test, pops: "tier=edge" }
---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: hello }
spec:
  source: { path: ./hello, language: assemblyscript }
  env: { GREETING: hi, API_KEY: s3cr3t }
  secretEnv: [API_KEY]
  routes: [{ host: hello.acme.test, path: /* }]
`;

export const handler = (greeting: string) => `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("${greeting} " + req.path));
}
`;

export interface World {
  cp: ControlPlane;
  repo: TestRepo;
  rec: Recorder;
  runners: Record<string, TestRunner>;
  token: string;
  secret: string;
}

/**
 * The preview world: project acme (`secret`), runners `pops` ([pop, tier]; tier=edge are the
 * preview POPs), the GitHub recorder answering comment creation with COMMENT_ID.
 */
export async function previewWorld(
  t: ExecutionContext,
  secret: string,
  pops: [string, string][],
  options: Partial<ControlPlaneOptions> = {},
): Promise<World> {
  const stack = await startStack(t, secret, options);
  stack.rec.reply = (c) =>
    c.method === "POST" && c.path.endsWith("/comments") ? JSON.stringify({ id: COMMENT_ID }) : "{}";
  const runners: Record<string, TestRunner> = {};
  for (const [pop, tier] of pops) runners[pop] = await stack.runner(pop, { tier });
  await stack.connected(pops.length);
  return { cp: stack.cp, repo: stack.repo, rec: stack.rec, runners, token: stack.token, secret };
}

/** Commits on a PR branch and publishes it the way GitHub does (refs/pull/N/head). */
export async function prCommit(repo: TestRepo, pr: number, files: Record<string, string>, message: string) {
  const git = simpleGit(repo.work);
  const branches = await git.branchLocal();
  if (!branches.all.includes(`pr-${pr}`)) await git.checkoutLocalBranch(`pr-${pr}`);
  else await git.checkout(`pr-${pr}`);
  const { writeFile, mkdir } = await import("node:fs/promises");
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(repo.work, rel)), { recursive: true });
    await writeFile(path.join(repo.work, rel), content);
  }
  await git.add(["-A"]);
  await git.commit(message);
  await git.push("origin", `HEAD:refs/pull/${pr}/head`, ["--force"]);
  const sha = (await git.revparse(["HEAD"])).trim();
  await git.checkout("main");
  return sha;
}

export const prEvent = (
  action: string,
  pr: number,
  sha: string,
  opts: { fork?: boolean; merged?: boolean } = {},
): string =>
  JSON.stringify({
    action,
    number: pr,
    pull_request: {
      number: pr,
      merged: opts.merged ?? false,
      head: { sha, ref: `pr-${pr}`, repo: { full_name: opts.fork ? "mallory/site" : "acme/site" } },
      base: { ref: "main", repo: { full_name: "acme/site" } },
    },
    repository: { full_name: "acme/site" },
    sender: { login: "dev" },
  });

export async function sendPr(w: World, body: string) {
  const res = await sendWebhook(w.cp.url, body, { secret: w.secret, event: "pull_request" });
  const json = (await res.json()) as { result: string };
  await w.cp.settled();
  return { status: res.status, result: json.result };
}

export const get = async (runner: TestRunner, host: string) => {
  const r = await request(runner.port, host, "/x");
  return r.status === 200 ? r.text : r.status;
};

/** Waits until every runner acked the newest generation (previews converge asynchronously). */
export async function converged(w: World) {
  const [{ g }] = (await w.cp.db.query<{ g: number }>("SELECT max(id) AS g FROM outbox")) as [{ g: number }];
  for (let i = 0; i < 300; i++) {
    if (w.cp.control.connected().every((n) => n.ackedGeneration >= g)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
}
