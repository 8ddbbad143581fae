// Progressive rollout gated on p99 latency: the canary's new version busy-loops on every request
// (tens of ms) while the rollout allows a p99 of 10 ms. The runners report each interval's p99 in
// their heartbeats; the control plane stops the rollout and pins the previous version.

import test from "ava";
import { bearer } from "../helpers/auth.ts";
import { request } from "../helpers/http.ts";
import { servedBy, startStack } from "../helpers/stack.ts";
import { pushCommit } from "../helpers/webhook.ts";

const SECRET = "rollout-p99-secret";

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
  limits: { maxExecutionMs: 5000 }
  rollout:
    waves:
      - { pops: "canary=true", bake: 20s }
      - { pops: "*" }
    maxP99Ms: 10
`;

const fast = `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("v1"));
}
`;

// A xorshift loop the optimizer cannot drop (its result is answered).
const slow = `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => {
    let x: u32 = <u32>req.path.length + 1;
    for (let i = 0; i < 60000000; i++) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
    }
    return new Response("v2 " + (x & 1).toString());
  });
}
`;

test("rollout p99: a canary whose new version is slower than maxP99Ms is rolled back with a reason naming p99", async (t) => {
  const { cp, repo, rec, token, runner, connected } = await startStack(t, SECRET);
  const canary = await runner("canary-1", { canary: "true" });
  const tokyo = await runner("tokyo-1", {});
  await connected(2);
  const rolloutRow = async () =>
    (
      await cp.db.query<{ status: string; reason: string | null }>(
        "SELECT status, reason FROM rollouts ORDER BY created_at DESC LIMIT 1",
      )
    )[0];

  const sha1 = await repo.commit({ "edge.yaml": manifest, "hello/index.ts": fast }, "hello v1");
  t.is((await cp.reconciler.wait(await pushCommit(cp.url, sha1, "acme/site", SECRET))).status, "succeeded");
  await cp.settled();
  t.is(await servedBy(canary.port, "hello.acme.test", "200 v1"), "200 v1");
  t.is(await servedBy(tokyo.port, "hello.acme.test", "200 v1"), "200 v1");

  const sha2 = await repo.commit({ "hello/index.ts": slow }, "hello v2 (slow)");
  const r2 = await cp.reconciler.wait(await pushCommit(cp.url, sha2, "acme/site", SECRET));
  t.is(r2.status, "succeeded");
  const seenOnCanary = new Set<string>();
  const seenOnTokyo = new Set<string>();
  // The bake is 20 s: the rollout must stop long before it on the p99 alone.
  const deadline = Date.now() + 15_000;
  while ((await rolloutRow())?.status === "running" && Date.now() < deadline) {
    const c = await request(canary.port, "hello.acme.test", "/");
    seenOnCanary.add(c.text.split(" ")[0]!);
    seenOnTokyo.add((await request(tokyo.port, "hello.acme.test", "/")).text);
  }
  const row = await rolloutRow();
  t.is(row?.status, "rolled_back");
  t.regex(row?.reason ?? "", /^p99 latency [\d.]+ ms is above the maximum 10 ms$/);
  t.true(seenOnCanary.has("v2"), [...seenOnCanary].join());
  t.deepEqual([...seenOnTokyo], ["v1"]);
  await cp.settled();
  t.is(await servedBy(canary.port, "hello.acme.test", "200 v1"), "200 v1");
  t.is((await request(tokyo.port, "hello.acme.test", "/")).text, "v1");

  const statuses = rec.calls
    .filter((c) => c.path === `/github/repos/acme/site/statuses/${sha2}`)
    .map((c) => JSON.parse(c.body) as { context: string; state: string; description: string });
  const overall = statuses.filter((s) => s.context === "edgeplane").at(-1)!;
  t.is(overall.state, "failure");
  t.regex(overall.description, /hello rolled back: p99 latency/);
  const { audit } = (await (
    await fetch(`${cp.url}/api/v1/audit?project=acme&function=hello`, { headers: bearer(token) })
  ).json()) as { audit: { object_kind: string; action: string; after: { reason?: string } }[] };
  t.deepEqual(
    audit.slice(0, 2).map((a) => [a.object_kind, a.action]),
    [
      ["function", "pin"],
      ["rollout", "rollback"],
    ],
  );
  t.regex(audit[1]!.after.reason!, /p99 latency/);
});
