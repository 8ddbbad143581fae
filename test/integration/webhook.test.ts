// The webhook receiver and reconcile queue over real HTTP, on an embedded (PGlite) control
// plane with a real git repository. No runner: these tests are about what is accepted,
// refused and recorded. One control plane serves the whole file (PGlite takes ~3 s to start),
// so the tests run serially and compare counts before and after instead of expecting emptiness.

import { randomUUID } from "node:crypto";
import path from "node:path";
import test from "ava";
import { type ControlPlane, createControlPlane } from "../../reconciler/index.ts";
import { adminToken, bearer } from "../helpers/auth.ts";
import { createTestRepo, type TestRepo } from "../helpers/git.ts";
import { tempDir } from "../helpers/tmp.ts";
import { sendWebhook, pushBody as signedPushBody } from "../helpers/webhook.ts";

const SECRET = "hook-secret";
const MANIFEST = `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec: { domains: [acme.test] }
`;

interface Ctx {
  cp: ControlPlane;
  repo: TestRepo;
  sha: string;
}

let shared: Ctx;

test.before(async () => {
  const tmp = await tempDir();
  const repo = await createTestRepo(tmp.dir);
  const sha = await repo.commit({ "edge.yaml": MANIFEST }, "init");
  const cp = await createControlPlane({
    dataDir: path.join(tmp.dir, "cp"),
    httpPort: 0,
    grpcPort: 0,
    maxWebhookBytes: "64KiB",
    projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site", webhookSecret: SECRET }],
  });
  await cp.start();
  shared = { cp, repo, sha };
  stop = async () => {
    await cp.stop();
    await tmp.remove();
  };
});

let stop: () => Promise<void> = async () => {};
test.after.always(() => stop());

const count = async (cp: ControlPlane, table: string) =>
  (await cp.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n;

const send = (cp: ControlPlane, body: string, headers: Record<string, string> = {}) =>
  sendWebhook(cp.url, body, { secret: SECRET, headers });

const pushBody = (sha: string, over: Record<string, unknown> = {}) => signedPushBody(sha, "acme/site", over);

test.serial("webhook: refuses an oversize body with 413 before reading it whole", async (t) => {
  const { cp, sha } = shared;
  const res = await send(cp, pushBody(sha, { padding: "x".repeat(70_000) }));
  t.is(res.status, 413);
  t.is(((await res.json()) as { error: { code: string } }).error.code, "EDGE_ERR_WEBHOOK_TOO_LARGE");
});

test.serial("webhook: a body that is not JSON is a 400 that says so", async (t) => {
  const { cp } = shared;
  const res = await send(cp, "ref=refs/heads/main");
  t.is(res.status, 400);
  t.regex(((await res.json()) as { error: { message: string } }).error.message, /not JSON/);
});

test.serial("webhook: missing event or delivery headers are a 400", async (t) => {
  const { cp, sha } = shared;
  const res = await send(cp, pushBody(sha), { "x-github-event": "" });
  t.is(res.status, 400);
});

test.serial("webhook: an unregistered repository is a 404 and nothing is recorded", async (t) => {
  const { cp, sha } = shared;
  const before = await count(cp, "webhook_deliveries");
  const res = await send(
    cp,
    pushBody(sha, { repository: { full_name: "mallory/evil", clone_url: "https://evil.invalid/x.git" } }),
  );
  t.is(res.status, 404);
  t.is(await count(cp, "webhook_deliveries"), before);
});

test.serial("webhook: a missing signature is a 401 and nothing is recorded", async (t) => {
  const { cp, sha } = shared;
  const before = [await count(cp, "webhook_deliveries"), await count(cp, "reconciliations")];
  const res = await send(cp, pushBody(sha), { "x-hub-signature-256": "" });
  t.is(res.status, 401);
  t.deepEqual([await count(cp, "webhook_deliveries"), await count(cp, "reconciliations")], before);
});

test.serial(
  "webhook: ping answers pong; pushes to other branches and branch deletions are ignored",
  async (t) => {
    const { cp, sha } = shared;
    const before = await count(cp, "reconciliations");
    const ping = await send(cp, pushBody(sha), { "x-github-event": "ping" });
    t.is(ping.status, 200);
    t.like(await ping.json(), { result: "pong" });
    const other = await send(cp, pushBody(sha, { ref: "refs/heads/feature" }));
    t.is(other.status, 202);
    t.like(await other.json(), { result: "ignored: refs/heads/feature is not the production branch" });
    const deleted = await send(cp, pushBody("0".repeat(40), { deleted: true }));
    t.like(await deleted.json(), { result: "ignored: branch deleted" });
    t.is(await count(cp, "reconciliations"), before);
  },
);

test.serial(
  "reconcile: a commit that is not in the repository fails with a git error and applies nothing",
  async (t) => {
    const { cp } = shared;
    const res = await send(cp, pushBody("f".repeat(40)));
    const { reconciliation } = (await res.json()) as { reconciliation: string };
    const row = await cp.reconciler.wait(reconciliation);
    t.is(row.status, "failed");
    t.is(row.error?.code, "EDGE_ERR_GIT_FETCH");
  },
);

test.serial(
  "reconcile: a newer request supersedes a queued older one, which is recorded as superseded",
  async (t) => {
    const { cp, repo, sha } = shared;
    const sha2 = await repo.commit({ "README.md": "2" }, "two");
    const sha3 = await repo.commit({ "README.md": "3" }, "three");
    const ids: string[] = [];
    for (const s of [sha, sha2, sha3])
      ids.push(((await (await send(cp, pushBody(s))).json()) as { reconciliation: string }).reconciliation);
    const rows = await Promise.all(ids.map((id) => cp.reconciler.wait(id)));
    // sha3 was on the branch before the first push ran: that push is not applied (it would roll
    // the state back), but recorded as superseded by the branch head.
    t.is(rows[0]!.status, "superseded");
    t.like(rows[0]!.result, { superseded_by_commit: sha3 });
    t.is(rows[1]!.status, "superseded");
    t.deepEqual(rows[1]!.result, { superseded_by: ids[2] });
    t.is(rows[2]!.status, "succeeded");
    t.is(rows[2]!.commit_sha, sha3);
  },
);

test.serial(
  "api: a manual reconcile of the branch head, and JSON 404s for unknown paths and objects",
  async (t) => {
    const { cp, repo } = shared;
    const sha = await repo.head();
    const headers = bearer(await adminToken(cp));
    const res = await fetch(`${cp.url}/api/v1/projects/acme/reconcile`, { method: "POST", headers });
    t.is(res.status, 202);
    const row = await cp.reconciler.wait(((await res.json()) as { reconciliation: string }).reconciliation);
    t.like(row, { status: "succeeded", commit_sha: sha, trigger: "api" });
    const missing = await fetch(`${cp.url}/api/v1/reconciliations/${randomUUID()}`, { headers });
    t.is(missing.status, 404);
    t.like(await missing.json(), { error: { code: "EDGE_ERR_API_NOT_FOUND" } });
    t.is((await fetch(`${cp.url}/nope`)).status, 404);
  },
);
