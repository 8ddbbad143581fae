// Fault: a runner is SIGKILLed and restarted while the control plane is down. It must serve
// again from its local cache and last applied state alone; the time from spawning the process to
// its first served request is measured and reported (docs/RELIABILITY.md).

import test from "ava";
import { faultEnv, functionFiles, get, manifest, metric, served, waitFor } from "./faults.ts";

const NAMES = ["alpha", "bravo", "charlie"];

test("faults: a runner killed and restarted with the control plane down serves again from its cache", async (t) => {
  const env = await faultEnv(t);
  const cp = await env.startCp();
  let runner = await env.startRunner("restart-1");
  const sha = await env.repo.commit(
    { "edge.yaml": manifest(NAMES), ...(await functionFiles(NAMES, "v1")) },
    "three",
  );
  const id = await env.push(cp.url, sha);
  for (const n of NAMES) await served(runner.port, `${n}.acme.test`, `${n} v1 /x`, 60_000);
  t.is(
    (await env.sql<{ status: string }>("SELECT status FROM reconciliations WHERE id = $1", [id]))[0]!.status,
    "succeeded",
  );
  // The runner acked (so it saved the applied state) before anything is killed.
  await waitFor("the runner's ack", async () => {
    const [n] = await env.sql<{ g: string }>(
      "SELECT acked_generation::text AS g FROM nodes WHERE id = 'restart-1'",
    );
    return n && n.g !== "0" ? true : undefined;
  });

  // Control plane gone, then the runner killed: nothing to restart from but its cache directory.
  await cp.kill("SIGKILL");
  const port = runner.port;
  await runner.kill("SIGKILL");
  await t.throwsAsync(get(port, "alpha.acme.test"), undefined, "the killed runner no longer answers");

  const spawned = performance.now();
  runner = await env.startRunner("restart-1", {}, port);
  const healthyMs = performance.now() - spawned;
  const first = await waitFor(
    "the first served request",
    async () => {
      const r = await get(port, "alpha.acme.test").catch(() => null);
      return r?.status === 200 ? { ...r, ms: performance.now() - spawned } : undefined;
    },
    30_000,
    5,
  );
  t.is(first.text, "alpha v1 /x");
  for (const n of NAMES)
    t.deepEqual(await get(port, `${n}.acme.test`, "/y"), { status: 200, text: `${n} v1 /y` });
  t.is((await get(port, "nope.acme.test")).status, 404);

  // It is serving without the control plane: the stream is down and no artifact was fetched.
  const metrics = await (await fetch(`http://127.0.0.1:${runner.metricsPort}/metrics`)).text();
  t.is(metric(metrics, "edge_control_connected"), 0);
  t.is(metric(metrics, "artifact_download_retries_total"), 0);

  t.log(
    `runner restarted with the control plane down: first served request ${Math.round(first.ms)} ms after spawn (metrics /healthz at ${Math.round(healthyMs)} ms)`,
  );
});
