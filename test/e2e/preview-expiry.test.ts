// Preview expiry end to end: previews nobody pushed to for previewTtl (1 h here) are torn down
// by PreviewManager.expire() (the sweeper's work). Time is moved with the control plane's
// previewClock seam instead of sleeping: a push sets expires_at = clock + ttl, expire() tears down
// what has expires_at <= clock. Real git, PostgreSQL, runners over gRPC, signed webhooks.

import test, { type ExecutionContext } from "ava";
import { bearer } from "../helpers/auth.ts";
import {
  converged,
  get,
  handler,
  manifest,
  prCommit,
  prEvent,
  previewWorld,
  sendPr,
} from "../helpers/previews.ts";
import { pushCommit } from "../helpers/webhook.ts";

const SECRET = "preview-expiry-secret";

/** The clock preview expiry reads (the control plane's previewClock seam), moved by the test. */
let clock = Date.now();

const world = (t: ExecutionContext) =>
  previewWorld(
    t,
    SECRET,
    [
      ["tokyo-1", "edge"],
      ["osaka-1", "edge"],
    ],
    { previewTtl: "1h", previewClock: () => new Date(clock) },
  );

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
