// Fault: the control plane is down for a while (SIGKILLed; 20 s by default,
// EDGE_RELIABILITY_CP_DOWN_SECONDS for longer runs such as 180). A client hammering the runner
// with keep-alive requests must see no failed request at all, before, during and after the
// outage; once the control plane is back the runner is online again with a fresh heartbeat and
// converges to a commit pushed right after the return.

import http from "node:http";
import test from "ava";
import { faultEnv, functionFiles, get, manifest, metric, served, sleep, waitFor } from "./faults.ts";

const NAMES = ["alpha", "bravo"];
const DOWN_SECONDS = Number(process.env.EDGE_RELIABILITY_CP_DOWN_SECONDS ?? 20);
const CONCURRENCY = 4;

test("faults: runners keep serving with zero failed requests while the control plane is down, then reconnect and converge", async (t) => {
  t.timeout((DOWN_SECONDS + 100) * 1000);
  const env = await faultEnv(t);
  let cp = await env.startCp();
  const runner = await env.startRunner("down-1");
  const sha1 = await env.repo.commit(
    { "edge.yaml": manifest(NAMES), ...(await functionFiles(NAMES, "v1")) },
    "v1",
  );
  await env.push(cp.url, sha1);
  for (const n of NAMES) await served(runner.port, `${n}.acme.test`, `${n} v1 /x`, 60_000);

  // The client: CONCURRENCY loops of sequential keep-alive requests, each checking the answer.
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const counts = { served: 0, failed: 0, servedWhileDown: 0 };
  const failures: string[] = [];
  let cpDown = false;
  let stop = false;
  let lastOk = Date.now();
  let maxGapMs = 0;
  const loop = async (i: number) => {
    for (let k = 0; !stop; k++) {
      const name = NAMES[(i + k) % NAMES.length]!;
      try {
        const r = await get(runner.port, `${name}.acme.test`, `/r${k}`, agent);
        if (r.status === 200 && (r.text === `${name} v1 /r${k}` || r.text === `${name} v2 /r${k}`)) {
          counts.served++;
          if (cpDown) counts.servedWhileDown++;
          const now = Date.now();
          maxGapMs = Math.max(maxGapMs, now - lastOk);
          lastOk = now;
        } else {
          counts.failed++;
          failures.push(`${r.status} ${r.text.slice(0, 100)}`);
        }
      } catch (err) {
        counts.failed++;
        failures.push((err as Error).message);
      }
    }
  };
  const client = Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => loop(i)));
  t.teardown(() => {
    stop = true;
    agent.destroy();
  });
  await sleep(1000);

  // The outage.
  await cp.kill("SIGKILL");
  cpDown = true;
  const downAt = Date.now();
  await waitFor("the runner to see the stream gone", async () => {
    const m = await (await fetch(`http://127.0.0.1:${runner.metricsPort}/metrics`)).text();
    return metric(m, "edge_control_connected") === 0 ? true : undefined;
  });
  await sleep(Math.max(0, DOWN_SECONDS * 1000 - (Date.now() - downAt)));
  const downMs = Date.now() - downAt;

  // The return: the runner reconnects by itself and is online with a fresh heartbeat.
  const restartAt = new Date();
  cp = await env.startCp();
  cpDown = false;
  const readyAt = Date.now();
  const token = await env.adminToken();
  const node = await waitFor(
    "the runner to be online again",
    async () => {
      const res = await fetch(`${cp.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${token}` } });
      const { nodes } = (await res.json()) as {
        nodes: { id: string; status: string; last_heartbeat: string }[];
      };
      const n = nodes.find((x) => x.id === "down-1");
      return n?.status === "online" && Date.parse(n.last_heartbeat) > restartAt.getTime() ? n : undefined;
    },
    30_000,
  );
  const reconnectMs = Date.now() - readyAt;
  t.is(node.status, "online");
  // The stream counts as connected once the control plane has answered the Hello.
  await waitFor("edge_control_connected 1", async () => {
    const m = await (await fetch(`http://127.0.0.1:${runner.metricsPort}/metrics`)).text();
    return metric(m, "edge_control_connected") === 1 ? true : undefined;
  });

  // A commit pushed right after the return reaches the runner.
  const sha2 = await env.repo.commit(await functionFiles(["alpha"], "v2"), "alpha v2");
  const id2 = await env.push(cp.url, sha2);
  await served(runner.port, "alpha.acme.test", "alpha v2 /x", 60_000).catch(async (err) => {
    // Say where it stuck: the reconcile, the rollout, or the runner.
    const rows = await env.sql("SELECT status, error, outcome FROM reconciliations WHERE id = $1", [id2]);
    const nodes = await env.sql("SELECT status, last_heartbeat, acked_generation FROM nodes");
    const gen = await env.sql("SELECT max(id) AS g FROM outbox");
    throw new Error(
      `${(err as Error).message}\nreconciliation ${JSON.stringify(rows)}\nnodes ${JSON.stringify(nodes)} outbox ${JSON.stringify(gen)}\ncontrol plane:\n${cp.output().slice(-4000)}\nrunner:\n${runner.output().slice(-4000)}`,
    );
  });
  const [r2] = await env.sql<{ status: string }>("SELECT status FROM reconciliations WHERE id = $1", [id2]);
  t.is(r2!.status, "succeeded");
  await waitFor("the runner's ack of the new generation", async () => {
    const [row] = await env.sql<{ acked: string; g: string }>(
      "SELECT (SELECT acked_generation::text FROM nodes WHERE id = 'down-1') AS acked, (SELECT max(id)::text FROM outbox) AS g",
    );
    return row && row.acked === row.g ? true : undefined;
  });
  const convergedMs = Date.now() - readyAt;
  await sleep(500);
  stop = true;
  await client;

  t.deepEqual(failures, [], "no request failed");
  t.is(counts.failed, 0);
  t.true(
    counts.servedWhileDown > DOWN_SECONDS,
    `only ${counts.servedWhileDown} requests served during the outage`,
  );
  t.true(maxGapMs < 2000, `a ${maxGapMs} ms gap between served requests`);
  t.is(((await get(runner.port, "bravo.acme.test")) as { text: string }).text, "bravo v1 /x");
  t.log(
    `control plane down ${(downMs / 1000).toFixed(1)} s; requests served ${counts.served} (${counts.servedWhileDown} during the outage), failed ${counts.failed}; longest gap between answers ${maxGapMs} ms; runner online ${reconnectMs} ms after the control plane was ready; new commit served and acked ${convergedMs} ms after it was ready`,
  );
});
