// Progressive rollout end to end: a real git repository, the control plane on PostgreSQL, two
// runners (a canary POP and a regular one) reporting per-function counters in heartbeats every
// 100 ms, and a local server standing in for GitHub's commit-status API.

import test from "ava";
import { bearer } from "../helpers/auth.ts";
import { request } from "../helpers/http.ts";
import { startStack } from "../helpers/stack.ts";
import { pushCommit } from "../helpers/webhook.ts";

const SECRET = "rollout-secret";

const manifest = `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec:
  domains: [acme.test]
---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: hello }
spec:
  source: { path: ./hello, language: assemblyscript }
  routes: [{ host: hello.acme.test, path: /* }]
  rollout:
    waves:
      - { pops: "canary=true", bake: 3s }
      - { pops: "*" }
    maxErrorRate: 0.1
`;

const handler = (greeting: string, status = 200) => `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("${greeting}", ${status}));
}
`;

test("progressive rollout: a canary answering 5xx stops the rollout and rolls the canary back; the next POP never gets the bad version", async (t) => {
  const { cp, repo, rec, token, runner, connected } = await startStack(t, SECRET);
  const canary = await runner("canary-1", { canary: "true" });
  const tokyo = await runner("tokyo-1", {});
  await connected(2);
  const get = async (port: number) => {
    const r = await request(port, "hello.acme.test", "/");
    return `${r.status} ${r.text}`;
  };
  const servedBy = async (port: number, expect: string) => {
    let got = "";
    for (let i = 0; i < 300 && got !== expect; i++) {
      got = await get(port);
      if (got !== expect) await new Promise((r) => setTimeout(r, 20));
    }
    return got;
  };
  const rolloutStatus = async () =>
    (await cp.db.query<{ status: string }>("SELECT status FROM rollouts ORDER BY created_at DESC LIMIT 1"))[0]
      ?.status;
  const statuses = (sha: string, context: string) =>
    rec.calls
      .filter((c) => c.path === `/github/repos/acme/site/statuses/${sha}`)
      .map((c) => JSON.parse(c.body) as { context: string; state: string; description: string })
      .filter((s) => s.context === context);

  // v1: a new function goes everywhere at once (there is nothing to roll back to).
  const sha1 = await repo.commit({ "edge.yaml": manifest, "hello/index.ts": handler("v1") }, "hello v1");
  t.is((await cp.reconciler.wait(await pushCommit(cp.url, sha1, "acme/site", SECRET))).status, "succeeded");
  await cp.settled();
  t.is(await servedBy(canary.port, "200 v1"), "200 v1");
  t.is(await servedBy(tokyo.port, "200 v1"), "200 v1");

  // v2 answers 500: the canary gets it first, its heartbeats report the errors, the rollout stops.
  const sha2 = await repo.commit({ "hello/index.ts": handler("v2", 500) }, "hello v2 (broken)");
  const r2 = await cp.reconciler.wait(await pushCommit(cp.url, sha2, "acme/site", SECRET));
  t.is(r2.status, "succeeded");
  t.like(r2.result, { rollouts: [{ function: "hello", from_version: 1, to_version: 2, waves: 2 }] });
  const seenOnTokyo = new Set<string>();
  const seenOnCanary = new Set<string>();
  const deadline = Date.now() + 30_000;
  while ((await rolloutStatus()) === "running" && Date.now() < deadline) {
    seenOnCanary.add(await get(canary.port));
    seenOnTokyo.add(await get(tokyo.port));
    await new Promise((r) => setTimeout(r, 10));
  }
  await cp.settled();
  t.is(await rolloutStatus(), "rolled_back");
  t.true(seenOnCanary.has("500 v2"), [...seenOnCanary].join());
  t.deepEqual([...seenOnTokyo], ["200 v1"]);
  t.is(await servedBy(canary.port, "200 v1"), "200 v1");
  t.is(await get(tokyo.port), "200 v1");

  // The commit status says why; the audit log has the start, the rollback and the pin.
  const overall = statuses(sha2, "edgeplane");
  t.is(overall.at(-1)!.state, "failure");
  t.regex(overall.at(-1)!.description, /hello rolled back: error rate .* above the maximum 10\.0%/);
  t.is(statuses(sha2, "edgeplane/canary-1").at(-1)!.state, "failure");
  t.is(statuses(sha2, "edgeplane/rollout").at(-1)!.state, "failure");
  t.false(statuses(sha2, "edgeplane/tokyo-1").some((s) => s.state === "success"));
  const { audit } = (await (
    await fetch(`${cp.url}/api/v1/audit?project=acme&function=hello`, { headers: bearer(token) })
  ).json()) as {
    audit: { object_kind: string; action: string; trigger: string; after: { reason?: string } }[];
  };
  t.deepEqual(
    audit.slice(0, 4).map((a) => [a.object_kind, a.action, a.trigger]),
    [
      ["function", "pin", "rollback"],
      ["rollout", "rollback", "rollback"],
      ["rollout", "start", "push"],
      ["function", "update", "push"],
    ],
  );
  t.regex(audit[1]!.after.reason!, /error rate/);
  const { rollouts } = (await (
    await fetch(`${cp.url}/api/v1/rollouts`, { headers: bearer(token) })
  ).json()) as {
    rollouts: { function: string; status: string; reason: string }[];
  };
  t.like(rollouts[0], { function: "hello", status: "rolled_back" });

  // A fixed v3 passes the canary's bake and then reaches every POP; the pin is lifted.
  const sha3 = await repo.commit({ "hello/index.ts": handler("v3") }, "hello v3 (fixed)");
  const r3 = await cp.reconciler.wait(await pushCommit(cp.url, sha3, "acme/site", SECRET));
  t.like(r3.result, { unpinned: [{ function: "hello" }], rollouts: [{ from_version: 1, to_version: 3 }] });
  t.is(await servedBy(canary.port, "200 v3"), "200 v3");
  t.is(await get(tokyo.port), "200 v1"); // still waiting for its wave
  await cp.settled();
  t.is(await rolloutStatus(), "succeeded");
  t.is(await servedBy(tokyo.port, "200 v3"), "200 v3");
  t.is(statuses(sha3, "edgeplane").at(-1)!.state, "success");
  t.is(statuses(sha3, "edgeplane/tokyo-1").at(-1)!.state, "success");
});
