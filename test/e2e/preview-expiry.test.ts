// Preview expiry end to end: previews nobody pushed to for previewTtl (1 h here) are torn down
// by PreviewManager.expire() (the sweeper's work). Time is moved with the control plane's
// previewClock seam instead of sleeping: a push sets expires_at = clock + ttl, expire() tears down
// what has expires_at <= clock. Real git, PostgreSQL, runners over gRPC, signed webhooks.

import path from "node:path";
import test from "ava";
import { simpleGit } from "simple-git";
import type { ControlPlane } from "../../reconciler/index.ts";
import { bearer } from "../helpers/auth.ts";
import type { TestRepo } from "../helpers/git.ts";
import { request } from "../helpers/http.ts";
import type { Recorder } from "../helpers/recorder.ts";
import type { startTestRunner, TestRunner } from "../helpers/runner.ts";
import { startStack } from "../helpers/stack.ts";
import { pushCommit, sendWebhook } from "../helpers/webhook.ts";

const SECRET = "preview-expiry-secret";
const COMMENT_ID = 4242;

const manifest = `apiVersion: edgeplane.dev/v1
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

const handler = (greeting: string) => `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("${greeting} " + req.path));
}
`;

interface World {
  cp: ControlPlane;
  repo: TestRepo;
  rec: Recorder;
  runners: Record<string, TestRunner>;
  token: string;
}

/** The clock preview expiry reads (the control plane's previewClock seam), moved by the test. */
let clock = Date.now();

async function world(t: Parameters<typeof startTestRunner>[0]): Promise<World> {
  const stack = await startStack(t, SECRET, { previewTtl: "1h", previewClock: () => new Date(clock) });
  stack.rec.reply = (c) =>
    c.method === "POST" && c.path.endsWith("/comments") ? JSON.stringify({ id: COMMENT_ID }) : "{}";
  const runners: Record<string, TestRunner> = {};
  for (const [pop, tier] of [
    ["tokyo-1", "edge"],
    ["osaka-1", "edge"],
  ] as const) {
    runners[pop] = await stack.runner(pop, { tier });
  }
  await stack.connected(2);
  return { cp: stack.cp, repo: stack.repo, rec: stack.rec, runners, token: stack.token };
}

/** Commits on a PR branch and publishes it the way GitHub does (refs/pull/N/head). */
async function prCommit(repo: TestRepo, pr: number, files: Record<string, string>, message: string) {
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

const prEvent = (
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

async function sendPr(w: World, body: string) {
  const res = await sendWebhook(w.cp.url, body, { secret: SECRET, event: "pull_request" });
  const json = (await res.json()) as { result: string };
  await w.cp.settled();
  return { status: res.status, result: json.result };
}

const get = async (runner: TestRunner, host: string) => {
  const r = await request(runner.port, host, "/x");
  return r.status === 200 ? r.text : r.status;
};

/** Waits until every runner acked the newest generation (previews converge asynchronously). */
async function converged(w: World) {
  const [{ g }] = (await w.cp.db.query<{ g: number }>("SELECT max(id) AS g FROM outbox")) as [{ g: number }];
  for (let i = 0; i < 300; i++) {
    if (w.cp.control.connected().every((n) => n.ackedGeneration >= g)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const MINUTE = 60_000;

test("preview expiry: a preview nobody pushed to for previewTtl is torn down on every POP, marked expired and audited; a PR pushed to recently keeps its preview", async (t) => {
  const w = await world(t);
  const { cp, repo, runners } = w;
  const tokyo = runners["tokyo-1"]!;
  const osaka = runners["osaka-1"]!;

  const sha0 = await repo.commit({ "edge.yaml": manifest, "hello/index.ts": handler("v1") }, "hello v1");
  t.is((await cp.reconciler.wait(await pushCommit(cp.url, sha0, "acme/site", SECRET))).status, "succeeded");
  await cp.settled();

  // Two PRs opened at the same time.
  const a1 = await prCommit(repo, 1, { "hello/index.ts": handler("pr1") }, "pr 1");
  t.is((await sendPr(w, prEvent("opened", 1, a1))).status, 202);
  const b1 = await prCommit(repo, 2, { "hello/index.ts": handler("pr2") }, "pr 2");
  t.is((await sendPr(w, prEvent("opened", 2, b1))).status, 202);
  await converged(w);
  for (const r of [tokyo, osaka]) {
    t.is(await get(r, "hello--pr-1.preview.acme.test"), "pr1 /x");
    t.is(await get(r, "hello--pr-2.preview.acme.test"), "pr2 /x");
  }
  t.is(await cp.previews.expire(), 0); // nothing is due yet

  // 50 minutes later PR 2 gets a push (its TTL starts again); PR 1 does not.
  clock += 50 * MINUTE;
  const b2 = await prCommit(repo, 2, { "hello/index.ts": handler("pr2b") }, "pr 2 again");
  t.is((await sendPr(w, prEvent("synchronize", 2, b2))).status, 202);
  await converged(w);
  t.is(await get(tokyo, "hello--pr-2.preview.acme.test"), "pr2b /x");

  // 70 minutes after the PRs were opened: PR 1's preview is past its hour, PR 2's is not.
  clock += 20 * MINUTE;
  t.is(await cp.previews.expire(), 1);
  await converged(w);
  for (const r of [tokyo, osaka]) {
    t.is(await get(r, "hello--pr-1.preview.acme.test"), 404);
    t.is(await get(r, `hello--pr-1.${r === tokyo ? "tokyo-1" : "osaka-1"}.preview.acme.test`), 404);
    t.is(await get(r, "hello--pr-2.preview.acme.test"), "pr2b /x");
    t.is(await get(r, "hello.acme.test"), "v1 /x"); // production untouched
  }
  t.is(await cp.previews.expire(), 0); // already torn down

  const { previews } = (await (
    await fetch(`${cp.url}/api/v1/previews?status=all`, { headers: bearer(w.token) })
  ).json()) as { previews: { pr: number; status: string; head_sha: string }[] };
  t.deepEqual(previews.map((p) => [p.pr, p.status, p.head_sha]).sort(), [
    [1, "expired", a1],
    [2, "active", b2],
  ]);
  const audit = await cp.db.query<{
    actor: string;
    trigger: string;
    object_kind: string;
    object_id: string;
    commit_sha: string;
    before: { pr: number; version: number };
    after: unknown;
  }>(
    "SELECT actor, trigger, object_kind, object_id, commit_sha, before, after FROM audit_logs WHERE action = 'expire'",
  );
  t.is(audit.length, 1);
  t.like(audit[0], {
    actor: "system",
    trigger: "pull_request",
    object_kind: "preview",
    object_id: "hello",
    commit_sha: a1,
    before: { pr: 1 },
    after: null,
  });

  // Another hour without pushes: PR 2's preview expires too.
  clock += 60 * MINUTE;
  t.is(await cp.previews.expire(), 1);
  await converged(w);
  t.is(await get(tokyo, "hello--pr-2.preview.acme.test"), 404);
});
