// Pull-request previews end to end: a real git repository (PR heads pushed as refs/pull/N/head,
// as GitHub exposes them), the control plane on PostgreSQL, three runners in three POPs (two
// labelled tier=edge, the preview POPs), signed pull_request webhooks, and a local server
// standing in for GitHub's API (commit statuses, the PR comment).

import test, { type ExecutionContext } from "ava";
import { bearer } from "../helpers/auth.ts";
import {
  COMMENT_ID,
  converged,
  get,
  handler,
  manifest,
  prCommit,
  prEvent,
  previewWorld,
  sendPr,
} from "../helpers/previews.ts";
import type { Recorder } from "../helpers/recorder.ts";
import { pushCommit } from "../helpers/webhook.ts";

const SECRET = "preview-secret";

const world = (t: ExecutionContext) =>
  previewWorld(t, SECRET, [
    ["tokyo-1", "edge"],
    ["osaka-1", "edge"],
    ["frankfurt-1", "core"],
  ]);

const statuses = (rec: Recorder, sha: string) =>
  rec.calls
    .filter((c) => c.path === `/github/repos/acme/site/statuses/${sha}`)
    .map(
      (c) =>
        JSON.parse(c.body) as { context: string; state: string; description: string; target_url: string },
    );

test.serial(
  "previews: a PR is previewed on exactly the preview POPs with per-POP statuses and one comment; a push updates both; closing tears down",
  async (t) => {
    const w = await world(t);
    const { cp, repo, rec, runners } = w;

    // Production first: hello v1 everywhere.
    const sha0 = await repo.commit({ "edge.yaml": manifest, "hello/index.ts": handler("v1") }, "hello v1");
    t.is((await cp.reconciler.wait(await pushCommit(cp.url, sha0, "acme/site", SECRET))).status, "succeeded");
    await cp.settled();
    await converged(w);
    for (const r of Object.values(runners)) t.is(await get(r, "hello.acme.test"), "v1 /x");

    // 1. The PR is opened.
    const sha1 = await prCommit(repo, 7, { "hello/index.ts": handler("pr1") }, "pr: greet pr1");
    const opened = await sendPr(w, prEvent("opened", 7, sha1));
    t.deepEqual([opened.status, opened.result], [202, "queued preview"]);
    await converged(w);

    // Served by the preview POPs only: the POP host by that POP, the shared host by both.
    t.is(await get(runners["tokyo-1"]!, "hello--pr-7.tokyo-1.preview.acme.test"), "pr1 /x");
    t.is(await get(runners["osaka-1"]!, "hello--pr-7.osaka-1.preview.acme.test"), "pr1 /x");
    t.is(await get(runners["osaka-1"]!, "hello--pr-7.tokyo-1.preview.acme.test"), 404);
    t.is(await get(runners["tokyo-1"]!, "hello--pr-7.preview.acme.test"), "pr1 /x");
    t.is(await get(runners["osaka-1"]!, "hello--pr-7.preview.acme.test"), "pr1 /x");
    t.is(await get(runners["frankfurt-1"]!, "hello--pr-7.preview.acme.test"), 404);
    t.is(await get(runners["frankfurt-1"]!, "hello--pr-7.frankfurt-1.preview.acme.test"), 404);
    // Production untouched.
    for (const r of Object.values(runners)) t.is(await get(r, "hello.acme.test"), "v1 /x");
    const fns = (await (await fetch(`${cp.url}/api/v1/functions`, { headers: bearer(w.token) })).json()) as {
      functions: { name: string; version: number }[];
    };
    t.deepEqual(
      fns.functions.map((f) => [f.name, f.version]),
      [["hello", 1]],
    );

    // Per-POP statuses on the PR head, each linking to that POP's preview.
    const s1 = statuses(rec, sha1);
    const byContext = (all: typeof s1, ctx: string) =>
      all.filter((s) => s.context === ctx).map((s) => s.state);
    t.deepEqual([...new Set(s1.map((s) => s.context))].sort(), [
      "edgeplane/preview",
      "edgeplane/preview/osaka-1",
      "edgeplane/preview/tokyo-1",
    ]);
    t.deepEqual(byContext(s1, "edgeplane/preview/tokyo-1"), ["pending", "success"]);
    t.deepEqual(byContext(s1, "edgeplane/preview/osaka-1"), ["pending", "success"]);
    t.deepEqual(byContext(s1, "edgeplane/preview"), ["pending", "success"]);
    t.is(
      s1.find((s) => s.context === "edgeplane/preview/tokyo-1" && s.state === "success")!.target_url,
      "https://hello--pr-7.tokyo-1.preview.acme.test/",
    );
    t.is(
      s1.find((s) => s.context === "edgeplane/preview/osaka-1" && s.state === "success")!.target_url,
      "https://hello--pr-7.osaka-1.preview.acme.test/",
    );

    // Exactly one comment, with the plan for production POP by POP.
    const comments = () => rec.calls.filter((c) => c.path.startsWith("/github/repos/acme/site/issues/"));
    t.deepEqual(
      comments().map((c) => [c.method, c.path]),
      [["POST", "/github/repos/acme/site/issues/7/comments"]],
    );
    const body1 = (JSON.parse(comments()[0]!.body) as { body: string }).body;
    t.regex(
      body1,
      /\| `hello` \| update v1 → new version \| source changed \| frankfurt-1, osaka-1, tokyo-1 \|/,
    );
    t.true(body1.includes("https://hello--pr-7.tokyo-1.preview.acme.test/"));
    t.false(body1.includes("fork preview"));

    // The API lists the preview.
    const listed = (await (
      await fetch(`${cp.url}/api/v1/previews?project=acme`, { headers: bearer(w.token) })
    ).json()) as {
      previews: {
        pr: number;
        function: string;
        fork: boolean;
        pops: string[];
        urls: Record<string, string>;
        head_sha: string;
        status: string;
      }[];
    };
    t.is(listed.previews.length, 1);
    t.like(listed.previews[0], { pr: 7, function: "hello", fork: false, head_sha: sha1, status: "active" });
    t.deepEqual(listed.previews[0]!.pops, ["osaka-1", "tokyo-1"]);
    t.deepEqual(listed.previews[0]!.urls, {
      "osaka-1": "https://hello--pr-7.osaka-1.preview.acme.test/",
      "tokyo-1": "https://hello--pr-7.tokyo-1.preview.acme.test/",
      any: "https://hello--pr-7.preview.acme.test/",
    });
    const unauthenticated = await fetch(`${cp.url}/api/v1/previews`);
    t.is(unauthenticated.status, 401);

    // 2. A second push to the PR: the preview and the same comment (PATCHed) are updated.
    const sha2 = await prCommit(repo, 7, { "hello/index.ts": handler("pr2") }, "pr: greet pr2");
    t.is((await sendPr(w, prEvent("synchronize", 7, sha2))).result, "queued preview");
    await converged(w);
    t.is(await get(runners["tokyo-1"]!, "hello--pr-7.tokyo-1.preview.acme.test"), "pr2 /x");
    t.is(await get(runners["osaka-1"]!, "hello--pr-7.preview.acme.test"), "pr2 /x");
    t.deepEqual(
      comments().map((c) => [c.method, c.path]),
      [
        ["POST", "/github/repos/acme/site/issues/7/comments"],
        ["PATCH", `/github/repos/acme/site/issues/comments/${COMMENT_ID}`],
      ],
    );
    t.true((JSON.parse(comments()[1]!.body) as { body: string }).body.includes(sha2));
    const s2 = statuses(rec, sha2);
    t.deepEqual(byContext(s2, "edgeplane/preview/tokyo-1"), ["pending", "success"]);
    t.deepEqual(byContext(s2, "edgeplane/preview/osaka-1"), ["pending", "success"]);
    t.is(s2.filter((s) => s.context.includes("frankfurt")).length, 0);

    // 3. Closing tears the previews down everywhere, audited; production keeps serving.
    t.is((await sendPr(w, prEvent("closed", 7, sha2))).result, "queued preview teardown");
    await converged(w);
    for (const r of Object.values(runners)) {
      t.is(await get(r, "hello--pr-7.preview.acme.test"), 404);
      t.is(await get(r, "hello.acme.test"), "v1 /x");
    }
    t.is(await get(runners["tokyo-1"]!, "hello--pr-7.tokyo-1.preview.acme.test"), 404);
    const { audit } = (await (
      await fetch(`${cp.url}/api/v1/audit?project=acme&function=hello`, { headers: bearer(w.token) })
    ).json()) as { audit: { object_kind: string; action: string; trigger: string; commit_sha: string }[] };
    t.deepEqual(
      audit.filter((a) => a.object_kind === "preview").map((a) => [a.action, a.trigger, a.commit_sha]),
      [
        ["delete", "pull_request", sha2],
        ["update", "pull_request", sha2],
        ["create", "pull_request", sha1],
      ],
    );
    const after = (await (
      await fetch(`${cp.url}/api/v1/previews?project=acme`, { headers: bearer(w.token) })
    ).json()) as { previews: unknown[] };
    t.deepEqual(after.previews, []);
  },
);

test.serial("previews: a fork's PR is labelled a fork preview and gets no secret env values", async (t) => {
  const w = await world(t);
  const { cp, repo, rec } = w;
  const sha0 = await repo.commit({ "edge.yaml": manifest, "hello/index.ts": handler("v1") }, "hello v1");
  t.is((await cp.reconciler.wait(await pushCommit(cp.url, sha0, "acme/site", SECRET))).status, "succeeded");
  await cp.settled();

  const sha1 = await prCommit(repo, 9, { "hello/index.ts": handler("fork") }, "fork: change hello");
  t.is((await sendPr(w, prEvent("opened", 9, sha1, { fork: true }))).result, "queued preview");
  await converged(w);
  t.is(await get(w.runners["tokyo-1"]!, "hello--pr-9.tokyo-1.preview.acme.test"), "fork /x");

  const listed = (await (await fetch(`${cp.url}/api/v1/previews`, { headers: bearer(w.token) })).json()) as {
    previews: { fork: boolean; function_id: string }[];
  };
  t.is(listed.previews.length, 1);
  t.true(listed.previews[0]!.fork);
  const version = (await (
    await fetch(`${cp.url}/api/v1/functions/${listed.previews[0]!.function_id}`, { headers: bearer(w.token) })
  ).json()) as { env: Record<string, string> };
  t.deepEqual(version.env, { GREETING: "hi" });
  // Production keeps its secret.
  const [prod] = await cp.db.query<{ env: Record<string, string> }>(
    "SELECT f.env FROM deployments d JOIN functions f ON f.id = d.function_id WHERE d.active",
  );
  t.deepEqual(prod!.env, { GREETING: "hi", API_KEY: "s3cr3t" });

  const comment = rec.calls.find((c) => c.path === "/github/repos/acme/site/issues/9/comments")!;
  t.regex((JSON.parse(comment.body) as { body: string }).body, /fork preview \(secret env values withheld\)/);
  t.true(
    statuses(rec, sha1)
      .filter((s) => s.context.startsWith("edgeplane/preview/") && s.state === "success")
      .every((s) => s.description.startsWith("fork preview of hello")),
  );
});
