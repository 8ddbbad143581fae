// Rollback end to end: a real git repository, the control plane on PostgreSQL, a runner over
// gRPC. A rollback pins an older immutable version (no rebuild), a push that leaves the
// function alone keeps the pin and says so, a push that changes it lifts the pin and says so.

import test from "ava";
import { servedBy, startStack } from "../helpers/stack.ts";
import { pushCommit } from "../helpers/webhook.ts";

const SECRET = "rollback-secret";

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
`;

const handler = (greeting: string) => `import { Request, Response, serve } from "./edge";
export function edge_handle(): i32 {
  return serve((req: Request): Response => new Response("${greeting}"));
}
`;

test("rollback: pins the previous version without a rebuild, survives unrelated pushes, and is lifted by a push changing the function", async (t) => {
  const { cp, repo, rec, api: call, runner } = await startStack(t, SECRET);
  const { port } = await runner("tokyo-1");
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await call(method, p, body);
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown> & { error?: { code: string } },
    };
  };
  const served = async (expect: string) =>
    (await servedBy(port, "hello.acme.test", `200 ${expect}`)).replace(/^\d+ /, "");
  const reconcile = async (sha: string) => {
    const row = await cp.reconciler.wait(await pushCommit(cp.url, sha, "acme/site", SECRET));
    await cp.settled();
    return row;
  };

  const sha1 = await repo.commit({ "edge.yaml": manifest, "hello/index.ts": handler("v1") }, "hello v1");
  t.is((await reconcile(sha1)).status, "succeeded");
  const sha2 = await repo.commit({ "hello/index.ts": handler("v2") }, "hello v2");
  t.is((await reconcile(sha2)).status, "succeeded");
  t.is(await served("v2"), "v2");
  const versionsBefore = await cp.db.query("SELECT id FROM functions");

  // Roll back: v1 is pinned, no rebuild, and the answer says how Git can agree.
  const rb = await api("POST", "/api/v1/projects/acme/functions/hello/rollback", {});
  t.is(rb.status, 200, JSON.stringify(rb.body));
  t.like(rb.body, {
    function: "hello",
    project: "acme",
    pinned_version: 1,
    from_version: 2,
    revert: `git revert ${sha2}`,
  });
  t.regex(String(rb.body.message), /pinned to v1/);
  t.is(await served("v1"), "v1");
  t.is((await cp.db.query("SELECT id FROM functions")).length, versionsBefore.length);
  const pins = await api("GET", "/api/v1/pins?project=acme");
  t.like((pins.body.pins as unknown[])[0], { function: "hello", version: 1, from_version: 2 });
  await cp.settled();
  const pinStatus = rec.calls
    .filter((c) => c.path === `/github/repos/acme/site/statuses/${sha2}`)
    .map((c) => JSON.parse(c.body));
  t.like(
    pinStatus.find((s) => s.context === "edgeplane/pin/hello"),
    { state: "failure" },
  );

  // Bad requests are refused with the reason.
  t.is(
    (await api("POST", "/api/v1/projects/acme/functions/hello/rollback", { to: 9 })).body.error?.code,
    "EDGE_ERR_API_NOT_FOUND",
  );
  t.is((await api("POST", "/api/v1/projects/acme/functions/hello/rollback", { to: "x" })).status, 400);
  t.is((await api("POST", "/api/v1/projects/acme/functions/nope/rollback", {})).status, 404);

  // A push that does not change hello keeps the pin and says so.
  const sha3 = await repo.commit({ "README.md": "docs only\n" }, "docs");
  const r3 = await reconcile(sha3);
  t.is(r3.status, "succeeded");
  t.like(r3.result, { pinned: [{ function: "hello", version: 1, from_version: 2 }] });
  t.is(await served("v1"), "v1");

  // A push that changes hello lifts the pin and says so.
  const sha4 = await repo.commit({ "hello/index.ts": handler("v3") }, "hello v3");
  const r4 = await reconcile(sha4);
  t.is(r4.status, "succeeded");
  t.like(r4.result, { unpinned: [{ function: "hello", version: 1 }] });
  t.false("pinned" in (r4.result as object));
  t.is(await served("v3"), "v3");
  t.deepEqual((await api("GET", "/api/v1/pins")).body.pins, []);

  // A pin lifted by hand: roll back to v2 explicitly, then DELETE the pin.
  const rb2 = await api("POST", "/api/v1/projects/acme/functions/hello/rollback", { to: 2 });
  t.like(rb2.body, { pinned_version: 2, from_version: 3, revert: `git revert ${sha4}` });
  t.is(await served("v2"), "v2");
  const del = await api("DELETE", "/api/v1/projects/acme/functions/hello/pin");
  t.like(del.body, { function: "hello", unpinned_version: 2, version: 3 });
  t.is(await served("v3"), "v3");
  t.is((await api("DELETE", "/api/v1/projects/acme/functions/hello/pin")).status, 404);

  // Every pin and unpin is in the audit log.
  const audit = (await api("GET", "/api/v1/audit?project=acme&function=hello")).body.audit as {
    action: string;
    trigger: string;
  }[];
  t.deepEqual(
    audit.filter((a) => a.action === "pin" || a.action === "unpin").map((a) => [a.action, a.trigger]),
    [
      ["unpin", "api"],
      ["pin", "rollback"],
      ["unpin", "push"],
      ["pin", "rollback"],
    ],
  );
});
