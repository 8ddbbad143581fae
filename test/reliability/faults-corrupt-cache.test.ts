// Fault: a cached artifact is corrupted on disk while the runner is down. On restart the runner
// must not trust it: the sha256 check on read finds it, the file is deleted (logged, counted in
// wasm_cache_corrupt_total), the runner reports generation 0 so the control plane sends the
// full state, the artifact is fetched again and the function serves correctly.

import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import { faultEnv, functionFiles, get, manifest, metric, served, waitFor } from "./faults.ts";

const NAMES = ["alpha", "bravo"];
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

test("faults: a corrupted cached artifact is detected by sha256 on restart, deleted, fetched again and served", async (t) => {
  const env = await faultEnv(t);
  const cp = await env.startCp();
  let runner = await env.startRunner("corrupt-1");
  const sha = await env.repo.commit(
    { "edge.yaml": manifest(NAMES), ...(await functionFiles(NAMES, "v1")) },
    "two",
  );
  await env.push(cp.url, sha);
  for (const n of NAMES) await served(runner.port, `${n}.acme.test`, `${n} v1 /x`, 60_000);

  const fns = await env.sql<{ id: string; name: string; version: number; sha256: string }>(
    "SELECT id, name, version, sha256 FROM functions ORDER BY name",
  );
  const file = (f: { id: string; version: number }) =>
    path.join(env.cacheDir("corrupt-1"), f.id, `${f.version}.wasm`);
  const [alpha, bravo] = fns as [(typeof fns)[0], (typeof fns)[0]];
  const good = await readFile(file(alpha));
  t.is(sha256(good), alpha.sha256);
  const bravoBefore = await readFile(file(bravo));

  // Stop the runner, then flip bytes in the middle of alpha's cached module (same size, so only
  // the hash can tell).
  const port = runner.port;
  await runner.kill("SIGKILL");
  const bad = Buffer.from(good);
  for (let i = Math.floor(bad.length / 2); i < Math.floor(bad.length / 2) + 16; i++) bad[i]! ^= 0xff;
  await writeFile(file(alpha), bad);
  t.not(sha256(await readFile(file(alpha))), alpha.sha256);

  const spawned = performance.now();
  runner = await env.startRunner("corrupt-1", {}, port);
  // alpha is served correctly again: from a fresh download, not from the corrupt file.
  await served(port, "alpha.acme.test", "alpha v1 /x", 30_000);
  t.log(
    `corrupt artifact replaced and served ${Math.round(performance.now() - spawned)} ms after the runner was spawned`,
  );
  t.deepEqual(await get(port, "alpha.acme.test", "/y"), { status: 200, text: "alpha v1 /y" });
  t.deepEqual(await get(port, "bravo.acme.test", "/y"), { status: 200, text: "bravo v1 /y" });

  // The file on disk is the good module again; bravo's was left as it was.
  t.is(sha256(await readFile(file(alpha))), alpha.sha256);
  t.deepEqual(await readFile(file(bravo)), bravoBefore);
  // Counted once and logged with both hashes.
  const metrics = await (await fetch(`http://127.0.0.1:${runner.metricsPort}/metrics`)).text();
  t.is(metric(metrics, "wasm_cache_corrupt_total"), 1);
  t.regex(runner.output(), /cached artifact is corrupt; deleting it/);
  t.true(runner.output().includes(alpha.sha256) && runner.output().includes(sha256(bad)));
  // The control plane's view agrees: the node acked the current generation with both versions OK.
  await waitFor("the node's inventory to be whole", async () => {
    const rows = await env.sql<{ status: string }>(
      "SELECT status FROM node_inventory WHERE node_id = 'corrupt-1' AND status = 'OK'",
    );
    return rows.length === 2 ? true : undefined;
  });
});
