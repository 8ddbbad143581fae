// Load: a control plane (a real process on a fresh PostgreSQL schema) under a burst of 1,000
// signed push webhooks for 50 commits. Each commit is delivered DUPLICATES times under one
// X-GitHub-Delivery id and once under each of EXTRA_IDS further ids (a second hook, a manual
// redelivery), all sent by CONCURRENCY clients at once in random order, while the commits reach
// the repository in WAVES pushes (so some deliveries name a commit the branch has already moved
// past, and some arrive after a newer commit's). What must hold afterwards:
// - every distinct delivery id is recorded once in webhook_deliveries; every other delivery is
//   answered "duplicate" and changes nothing;
// - every commit has exactly one reconciliation row (a second delivery id of a commit joins the
//   first's reconciliation), which either applied it or records why not: superseded by a newer
//   request, or by the branch having moved past it. None failed;
// - commits are applied in order: the succeeded reconciles, by finish time, name ever newer
//   commits, and the last one is the newest commit, which is what the stored routes say;
// - edgeplane_webhook_deliveries_total{event,result} agrees with all of it.

import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import test from "ava";
import { simpleGit } from "simple-git";
import { pushBody, sendWebhook } from "../helpers/webhook.ts";
import { faultEnv, functionFiles, manifest, metric, SECRET, waitFor } from "./faults.ts";

const COMMITS = 50;
const DUPLICATES = 14;
const EXTRA_IDS = 6;
const WAVES = 5;
const CONCURRENCY = 64;
const TOTAL = COMMITS * (DUPLICATES + EXTRA_IDS); // 1,000

/** edge.yaml of commit i: the function alpha routed at /c{i}/* (a routes-only change: no build). */
const manifestOf = (i: number) => manifest(["alpha"]).replace("path: /*", `path: /c${i}/*`);

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

test("webhook burst: 1,000 deliveries of 50 commits, in random order with duplicates, reconcile every commit once and in order, ending at the newest", async (t) => {
  t.timeout(300_000);
  const env = await faultEnv(t);
  const cp = await env.startCp();

  // The base commit (one build), applied before the burst.
  const base = await env.repo.commit(
    { "edge.yaml": manifestOf(0), ...(await functionFiles(["alpha"], "v1")) },
    "base",
  );
  const baseId = await env.push(cp.url, base);
  await waitFor(
    "the base commit to be applied",
    async () => {
      const [r] = await env.sql<{ status: string }>("SELECT status FROM reconciliations WHERE id = $1", [
        baseId,
      ]);
      if (r?.status === "failed") throw new Error("the base reconcile failed");
      return r?.status === "succeeded" ? true : undefined;
    },
    120_000,
  );

  // 50 commits, committed locally now and pushed to the origin in WAVES pushes during the burst.
  const git = simpleGit(env.repo.work);
  const shas: string[] = [];
  const commitIndex = new Map<string, number>([[base, 0]]);
  for (let i = 1; i <= COMMITS; i++) {
    await writeFile(`${env.repo.work}/edge.yaml`, manifestOf(i));
    await git.add(["-A"]);
    await git.commit(`route /c${i}`);
    const sha = (await git.revparse(["HEAD"])).trim();
    shas.push(sha);
    commitIndex.set(sha, i);
  }
  const perWave = COMMITS / WAVES;
  const pushed = new Map<number, Promise<void>>();
  let pushMs = 0;
  const pushWave = (w: number): Promise<void> => {
    let p = pushed.get(w);
    if (!p) {
      const sha = shas[(w + 1) * perWave - 1]!;
      p = (w > 0 ? pushWave(w - 1) : Promise.resolve()).then(async () => {
        const at = performance.now();
        await git.push("origin", `${sha}:refs/heads/main`);
        pushMs += performance.now() - at;
      });
      pushed.set(w, p);
    }
    return p;
  };

  // The deliveries: per commit one id sent DUPLICATES times and EXTRA_IDS ids sent once; each
  // in the wave of its commit, or (one in ten) in a later wave: a late delivery.
  interface Delivery {
    id: string;
    sha: string;
    wave: number;
  }
  const waves: Delivery[][] = Array.from({ length: WAVES }, () => []);
  const commitOf = new Map<string, string>();
  for (const [i, sha] of shas.entries()) {
    const wave = Math.floor(i / perWave);
    const main = randomUUID();
    const ids = [
      ...Array.from({ length: DUPLICATES }, () => main),
      ...Array.from({ length: EXTRA_IDS }, () => randomUUID()),
    ];
    for (const id of ids) {
      commitOf.set(id, sha);
      const late = wave < WAVES - 1 && Math.random() < 0.1;
      const w = late ? wave + 1 + Math.floor(Math.random() * (WAVES - 1 - wave)) : wave;
      waves[w]!.push({ id, sha, wave });
    }
  }
  const queue = waves.flatMap((w, i) => shuffle(w).map((d) => ({ ...d, sendWave: i })));
  t.is(queue.length, TOTAL);
  const distinct = new Set(queue.map((d) => d.id)).size;
  t.is(distinct, COMMITS * (1 + EXTRA_IDS));

  const metricsBefore = await (await fetch(`${cp.url}/metrics`)).text();
  const answers: { ms: number; id: string; status: number; result: string; reconciliation?: string }[] = [];
  const latencies: number[] = [];
  let next = 0;
  const startedAt = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < queue.length) {
        const d = queue[next++]!;
        await pushWave(d.sendWave); // a delivery is sent only once its commit has been pushed
        const sentAt = performance.now();
        const res = await sendWebhook(cp.url, pushBody(d.sha, "acme/site"), {
          secret: SECRET,
          delivery: d.id,
        });
        const ms = performance.now() - sentAt;
        latencies.push(ms);
        const body = (await res.json()) as { result?: string; reconciliation?: string };
        answers.push({
          ms,
          id: d.id,
          status: res.status,
          result: body.result ?? JSON.stringify(body),
          ...(body.reconciliation ? { reconciliation: body.reconciliation } : {}),
        });
      }
    }),
  );
  const burstMs = performance.now() - startedAt;

  // Everything queued runs to an end.
  await waitFor(
    "the queue to drain",
    async () => {
      const [r] = await env.sql<{ n: number }>(
        "SELECT count(*)::int AS n FROM reconciliations WHERE status IN ('queued', 'running')",
      );
      return r!.n === 0 ? true : undefined;
    },
    240_000,
    200,
  );
  const drainedMs = performance.now() - startedAt;

  // Answers: one fresh answer per distinct id, every other one a duplicate.
  t.is(answers.length, TOTAL);
  t.deepEqual(
    answers.filter(
      (a) =>
        !(a.status === 202 && ["queued", "joined"].includes(a.result)) &&
        !(a.status === 200 && a.result === "duplicate"),
    ),
    [],
    "every delivery is answered queued, joined or duplicate",
  );
  const fresh = answers.filter((a) => a.result !== "duplicate");
  t.is(fresh.length, distinct, "exactly one fresh answer per delivery id");
  t.is(new Set(fresh.map((a) => a.id)).size, distinct);
  t.is(answers.filter((a) => a.result === "duplicate").length, TOTAL - distinct);

  // webhook_deliveries: each distinct id once, pointing at a reconciliation of its own commit.
  const deliveries = await env.sql<{ delivery_id: string; result: string; commit_sha: string | null }>(
    `SELECT d.delivery_id, d.result, r.commit_sha FROM webhook_deliveries d
       LEFT JOIN reconciliations r ON r.id = d.reconciliation_id`,
  );
  const burstDeliveries = deliveries.filter((d) => commitOf.has(d.delivery_id));
  t.is(burstDeliveries.length, distinct, "every distinct delivery recorded once");
  t.deepEqual(
    burstDeliveries.filter((d) => d.commit_sha !== commitOf.get(d.delivery_id)),
    [],
    "each delivery points at the reconciliation of its own commit",
  );

  // reconciliations: one per commit, none failed.
  const rows = await env.sql<{
    id: string;
    commit_sha: string;
    status: string;
    finished_at: Date;
    result: unknown;
  }>("SELECT id, commit_sha, status, finished_at, result FROM reconciliations ORDER BY created_at");
  const perCommit = new Map<string, number>();
  for (const r of rows) perCommit.set(r.commit_sha, (perCommit.get(r.commit_sha) ?? 0) + 1);
  t.deepEqual(
    shas
      .filter((s) => perCommit.get(s) !== 1)
      .map((s) => `commit ${commitIndex.get(s)}: ${perCommit.get(s) ?? 0} rows`),
    [],
    "exactly one reconciliation row per commit",
  );
  t.is(rows.length, COMMITS + 1);
  t.deepEqual(
    rows
      .filter((r) => !["succeeded", "superseded"].includes(r.status))
      .map((r) => `${commitIndex.get(r.commit_sha)} ${r.status}`),
    [],
  );

  // In order: applied commits, by finish time, only ever newer; the last is the newest commit.
  const applied = rows
    .filter((r) => r.status === "succeeded")
    .sort((a, b) => new Date(a.finished_at).getTime() - new Date(b.finished_at).getTime())
    .map((r) => commitIndex.get(r.commit_sha)!);
  t.deepEqual(
    applied,
    [...applied].sort((a, b) => a - b),
    `applied in order: ${applied.join(", ")}`,
  );
  t.is(new Set(applied).size, applied.length, "no commit applied twice");
  t.is(applied.at(-1), COMMITS, "the newest commit is applied last");

  // The stored state is the newest commit's.
  const routes = await env.sql<{ host: string; path: string }>(
    "SELECT host, path FROM routes ORDER BY host, path",
  );
  t.deepEqual(routes, [{ host: "alpha.acme.test", path: `/c${COMMITS}/*` }]);
  const [state] = await env.sql<{ n: number }>(
    "SELECT count(*)::int AS n FROM functions WHERE name = 'alpha'",
  );
  t.is(state!.n, 1, "route changes rebuilt nothing");

  // The counter agrees with the answers.
  const metricsAfter = await (await fetch(`${cp.url}/metrics`)).text();
  const delta = (result: string) => {
    const series = `edgeplane_webhook_deliveries_total{event="push",result="${result}"}`;
    return (metric(metricsAfter, series) || 0) - (metric(metricsBefore, series) || 0);
  };
  const byResult = (r: string) => answers.filter((a) => a.result === r).length;
  t.is(delta("duplicate"), TOTAL - distinct);
  t.is(delta("queued"), byResult("queued"));
  t.is(delta("joined"), byResult("joined"));
  t.is(delta("queued") + delta("joined"), distinct);
  const stored = (r: string) => burstDeliveries.filter((d) => d.result === r).length;
  t.is(stored("queued"), byResult("queued"));
  t.is(stored("joined"), byResult("joined"));

  const superseded = rows.filter((r) => r.status === "superseded");
  const stale = superseded.filter((r) => JSON.stringify(r.result).includes("moved past")).length;
  t.log(
    `${TOTAL} deliveries (${distinct} distinct ids, ${TOTAL - distinct} duplicates) of ${COMMITS} commits in ${WAVES} pushes, ${CONCURRENCY} concurrent senders: answered in ${(burstMs / 1000).toFixed(2)} s (${Math.round(TOTAL / (burstMs / 1000))} deliveries/s); queue drained ${(drainedMs / 1000).toFixed(2)} s after the first delivery`,
  );
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!.toFixed(0);
  t.log(
    `per delivery: p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${pct(100)} ms (p50 of duplicates ${median(answers.filter((a) => a.result === "duplicate").map((a) => a.ms)).toFixed(0)} ms, of fresh ones ${median(answers.filter((a) => a.result !== "duplicate").map((a) => a.ms)).toFixed(0)} ms); the test's ${WAVES} git pushes took ${(pushMs / 1000).toFixed(2)} s of the burst (deliveries of a wave wait for its push)`,
  );
  t.log(
    `answers: ${byResult("queued")} queued a reconcile, ${byResult("joined")} joined one, ${byResult("duplicate")} duplicates; reconciliations: ${applied.length} applied (commits ${applied.join(", ")}), ${superseded.length} superseded (${stale} because the branch had moved past them), 0 failed`,
  );
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

test("webhook: a late delivery of an applied commit joins it, a force-push back reconciles it again, and a commit the branch moved past is superseded by the head", async (t) => {
  t.timeout(240_000);
  const env = await faultEnv(t);
  const cp = await env.startCp();
  const git = simpleGit(env.repo.work);
  const deliver = async (sha: string) => {
    const res = await sendWebhook(cp.url, pushBody(sha, "acme/site"), {
      secret: SECRET,
      delivery: randomUUID(),
    });
    return { status: res.status, ...((await res.json()) as { result: string; reconciliation: string }) };
  };
  const finished = (id: string) =>
    waitFor(
      `reconciliation ${id} to finish`,
      async () => {
        const [r] = await env.sql<{ status: string; commit_sha: string; result: Record<string, unknown> }>(
          "SELECT status, commit_sha, result FROM reconciliations WHERE id = $1",
          [id],
        );
        return r && ["succeeded", "failed", "superseded"].includes(r.status) ? r : undefined;
      },
      120_000,
    );
  const routePaths = async () =>
    (await env.sql<{ path: string }>("SELECT path FROM routes ORDER BY path")).map((r) => r.path);
  const rows = async () =>
    (await env.sql<{ n: number }>("SELECT count(*)::int AS n FROM reconciliations"))[0]!.n;

  const a = await env.repo.commit(
    { "edge.yaml": manifestOf(1), ...(await functionFiles(["alpha"], "v1")) },
    "a",
  );
  const ra = await deliver(a);
  t.is((await finished(ra.reconciliation)).status, "succeeded");
  const b = await env.repo.commit({ "edge.yaml": manifestOf(2) }, "b");
  const rb = await deliver(b);
  t.is((await finished(rb.reconciliation)).status, "succeeded");
  t.deepEqual(await routePaths(), ["/c2/*"]);

  // A late delivery of a, under a new id: the branch is at b, so nothing runs.
  const before = await rows();
  const late = await deliver(a);
  t.deepEqual([late.status, late.result, late.reconciliation], [202, "joined", ra.reconciliation]);
  t.is(await rows(), before);
  t.deepEqual(await routePaths(), ["/c2/*"]);

  // The branch force-pushed back to a: a push of a now reconciles it again.
  await git.push(["--force", "origin", `${a}:refs/heads/main`]);
  const back = await deliver(a);
  t.is(back.result, "queued");
  t.not(back.reconciliation, ra.reconciliation);
  t.is((await finished(back.reconciliation)).status, "succeeded");
  t.deepEqual(await routePaths(), ["/c1/*"]);

  // c and d on top of b; the branch goes to d; c's delivery comes first.
  // (a is an ancestor of b, so pushing c fast-forwards the branch again.)
  const c = await env.repo.commit({ "edge.yaml": manifestOf(3) }, "c");
  await writeFile(`${env.repo.work}/edge.yaml`, manifestOf(4));
  await git.add(["-A"]);
  await git.commit("d");
  const d = (await git.revparse(["HEAD"])).trim();
  await git.push("origin", `${d}:refs/heads/main`);
  const rc = await deliver(c);
  t.is(rc.result, "queued");
  const cRow = await finished(rc.reconciliation);
  t.is(cRow.status, "superseded");
  t.like(cRow.result, { superseded_by_commit: d, reason: "the branch has moved past this commit" });
  // The head got a reconciliation of its own; d's delivery joins it.
  const rd = await deliver(d);
  t.is(rd.result, "joined");
  t.is(rd.reconciliation, cRow.result.superseded_by as string);
  const dRow = await finished(rd.reconciliation);
  t.is(dRow.status, "succeeded");
  t.is(dRow.commit_sha, d);
  t.deepEqual(await routePaths(), ["/c4/*"]);
});
