// Hostile input, end to end (issue 9). A real control plane on a fresh PostgreSQL schema, two
// Git projects in real repositories, and two real runners connected over mutual TLS serve a
// known-good production state. Then each hostile input is thrown at the system, and after each
// one the test checks (a) the refusal — status, error code, and a message that says where and
// why — and (b) that nothing else moved: both projects' hosts answer from both runners exactly
// as before, the stored functions and routes are unchanged, no audit row was written, and the
// control plane still accepts a legitimate push.
//
// The narrower tests of each part live elsewhere (webhook.test.ts, mtls.test.ts,
// runner-hostile.test.ts, manifest-loader.test.ts, builder-isolation.test.ts, api-auth.test.ts);
// this file is about the whole system standing after each attack.

import { createHmac, randomUUID } from "node:crypto";
import { once } from "node:events";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import path from "node:path";
import test, { type ExecutionContext } from "ava";
import wabtInit from "wabt";
import { createRunner, type Runner } from "../../edge-runner/index.ts";
import { createCa, issueRunnerCert, issueServerCert, writeCert } from "../../lib/certs.ts";
import { type ControlMessage, EdgeControlClient, grpc, type RunnerMessage } from "../../proto/index.ts";
import { type ControlPlane, createControlPlane } from "../../reconciler/index.ts";
import { bearer, projectToken } from "../helpers/auth.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo, type TestRepo } from "../helpers/git.ts";
import { request } from "../helpers/http.ts";
import { quietLogger } from "../helpers/runner.ts";
import { tempDir } from "../helpers/tmp.ts";
import { edgeWat, hostile, wat } from "../helpers/wasm.ts";
import { pushBody, sendWebhook } from "../helpers/webhook.ts";

// ---- the known-good production state ------------------------------------------------------------

interface Project {
  name: "acme" | "globex";
  fullName: string;
  secret: string;
  domain: string;
  /** The one function and the host it serves. */
  fn: string;
  host: string;
  repo: TestRepo;
  /** The good tree: path → content. */
  good: Record<string, string | Uint8Array>;
}

const projectManifest = (name: string, domains: string[]) => `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: ${name} }
spec:
  domains: [${domains.join(", ")}]
`;

const functionDoc = (
  name: string,
  routes: string[],
  opts: { path?: string; language?: string; limits?: string } = {},
) => `---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: ${name} }
spec:
  source: { path: ${opts.path ?? `./${name}`}, language: ${opts.language ?? "wasm"} }
${opts.limits ? `  limits: ${opts.limits}\n` : ""}  routes:
${routes.map((r) => `    - ${r}`).join("\n")}
`;

/** An edge-v1 module that answers `text` to every request. */
const answering = (text: string) => edgeWat((s) => `(call $respond ${s.ref(text)}) (i32.const 0)`);

// ---- the world ------------------------------------------------------------------------------------

interface World {
  cp: ControlPlane;
  dir: string;
  ca: ReturnType<typeof createCa>;
  runners: { id: string; runner: Runner; port: number }[];
  acme: Project;
  globex: Project;
  /** What every runner answers for each known-good host, as recorded at the start. */
  served: Record<string, { status: number; text: string }>;
  state: unknown;
  audits: number;
}

let w: World;
let cleanup: () => Promise<void> = async () => {};

const REQUEST_PATH = "/probe";

async function storedState(cp: ControlPlane): Promise<unknown> {
  const deployments = await cp.db.query(
    `SELECT p.name AS project, d.function_name, d.function_id, d.version, d.status
       FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.active
      ORDER BY p.name, d.function_name`,
  );
  const routes = await cp.db.query(
    `SELECT p.name AS project, r.function_name, r.function_id, r.host, r.path, r.methods, r.priority
       FROM routes r JOIN projects p ON p.id = r.project_id ORDER BY p.name, r.host, r.path`,
  );
  const versions = await cp.db.query("SELECT count(*)::int AS n FROM functions");
  return { deployments, routes, versions };
}

const count = async (cp: ControlPlane, table: string) =>
  (await cp.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds (the runners converge asynchronously after an ack). */
async function eventually<T>(probe: () => Promise<T>, check: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last = await probe();
  while (!check(last) && Date.now() < deadline) {
    await sleep(50);
    last = await probe();
  }
  return last;
}

/** What each runner answers for each known-good host. */
async function probeAll(): Promise<Record<string, { status: number; text: string }>> {
  const out: Record<string, { status: number; text: string }> = {};
  for (const r of w.runners) {
    for (const p of [w.acme, w.globex]) {
      const { status, text } = await request(r.port, p.host, REQUEST_PATH);
      out[`${r.id} ${p.host}`] = { status, text };
    }
  }
  return out;
}

/** Pushes `sha` of project p with a valid signature and waits for the reconcile to finish. */
async function pushAndWait(p: Project, sha: string) {
  const res = await sendWebhook(w.cp.url, pushBody(sha, p.fullName), { secret: p.secret });
  const body = (await res.json()) as { reconciliation?: string; result?: string };
  if (res.status !== 202 || !body.reconciliation) throw new Error(`push refused: ${JSON.stringify(body)}`);
  return w.cp.reconciler.wait(body.reconciliation);
}

/** Commits a hostile change on top of the good tree, pushes it, and returns the reconcile. */
async function pushHostile(p: Project, files: Record<string, string | Uint8Array | null>, message: string) {
  const sha = await p.repo.commit(files, message);
  return pushAndWait(p, sha);
}

/**
 * (b): the rest of the system is untouched. Both hosts answer from both runners as at the start,
 * the stored functions and routes are the same rows, no audit row was written since `audits`,
 * and a legitimate push of the good tree (removing `leftovers`) to `p` is accepted.
 */
async function untouched(
  t: ExecutionContext,
  audits: number,
  p: Project | null,
  leftovers: string[] = [],
): Promise<void> {
  t.deepEqual(await probeAll(), w.served, "both projects' hosts answer as before from both runners");
  t.deepEqual(await storedState(w.cp), w.state, "stored functions and routes unchanged");
  t.is(await count(w.cp, "audit_logs"), audits, "no audit row for the refused input");
  for (const project of p ? [p] : [w.acme, w.globex]) {
    const restore: Record<string, string | Uint8Array | null> = {
      ...project.good,
      "README.md": `legitimate push ${randomUUID()}\n`,
    };
    for (const l of project === p ? leftovers : []) restore[l] = null;
    const sha = await project.repo.commit(restore, "a legitimate push");
    const row = await pushAndWait(project, sha);
    t.is(
      row.status,
      "succeeded",
      `a legitimate push to ${project.name} is accepted: ${JSON.stringify(row.error)}`,
    );
    t.deepEqual(row.plan, { changes: [] }, "the good tree is what is stored: nothing to change");
  }
  t.is(await count(w.cp, "audit_logs"), audits, "the legitimate no-op push writes no audit row either");
  t.deepEqual(await storedState(w.cp), w.state);
}

test.before(async () => {
  const tmp = await tempDir("edge-hostile-");
  const { schema, drop } = await freshSchema();
  const dir = tmp.dir;
  const ca = createCa();
  await writeCert(dir, "ca", ca);
  await writeCert(dir, "control-plane", issueServerCert(ca, ["localhost", "127.0.0.1"]));
  for (const id of ["edge-a", "edge-b"]) await writeCert(dir, `runner-${id}`, issueRunnerCert(ca, id));

  const mk = async (
    name: "acme" | "globex",
    fullName: string,
    fn: string,
    text: string,
  ): Promise<Project> => {
    const repo = await createTestRepo(path.join(dir, `repo-${name}`));
    const domain = `${name}.test`;
    const host = `${fn}.${domain}`;
    const good = {
      "edge.yaml": projectManifest(name, [domain]) + functionDoc(fn, [`{ host: ${host}, path: /* }`]),
      [`${fn}/module.wasm`]: await answering(text),
    };
    return { name, fullName, secret: `${name}-webhook-secret`, domain, fn, host, repo, good };
  };
  const acme = await mk("acme", "acme/site", "hello", "acme says hello");
  const globex = await mk("globex", "globex/shop", "shop", "globex shop is open");

  const cp = await createControlPlane({
    dataDir: path.join(dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    adminTokenFile: false,
    tls: {
      ca: path.join(dir, "ca.crt"),
      cert: path.join(dir, "control-plane.crt"),
      key: path.join(dir, "control-plane.key"),
    },
    // A small artifact limit so that "a huge module" stays a small repository.
    builder: { maxArtifactSize: "1MiB" },
    projects: [acme, globex].map((p) => ({
      name: p.name,
      repo: p.repo.origin,
      fullName: p.fullName,
      webhookSecret: p.secret,
    })),
  });
  await cp.start();

  const runners: World["runners"] = [];
  for (const [i, id] of ["edge-a", "edge-b"].entries()) {
    const runner = createRunner({
      nodeId: id,
      pop: `pop-${i + 1}`,
      httpHost: "127.0.0.1",
      httpPort: 0,
      metricsPort: null,
      cacheDir: path.join(dir, `cache-${id}`),
      logger: quietLogger,
      workers: 2,
      spareWorkers: 1,
      heartbeatInterval: "200ms",
      reconnectMinDelay: "50ms",
      downloadAttempts: 1,
      // Short client timeouts so that a slow-loris client is cut off within the test's budget.
      headersTimeout: "1s",
      requestTimeout: "2s",
      maxHeaderBytes: "4KiB",
      maxHeaderCount: 30,
      control: {
        address: `localhost:${cp.grpcPort}`,
        tls: {
          ca: path.join(dir, "ca.crt"),
          cert: path.join(dir, `runner-${id}.crt`),
          key: path.join(dir, `runner-${id}.key`),
        },
      },
    });
    const { httpPort } = await runner.start();
    runners.push({ id, runner, port: httpPort });
  }
  cleanup = async () => {
    for (const r of runners) await r.runner.stop();
    await cp.stop();
    await drop();
    await tmp.remove();
  };
  w = { cp, dir, ca, runners, acme, globex, served: {}, state: null, audits: 0 };
  await eventually(
    async () => cp.control.connected().length,
    (n) => n === 2,
  );

  // The known-good production state of both projects.
  for (const p of [acme, globex]) {
    const row = await pushAndWait(p, await p.repo.commit(p.good, "known good"));
    if (row.status !== "succeeded") throw new Error(`setup reconcile failed: ${JSON.stringify(row.error)}`);
  }
  const expected = {
    "edge-a hello.acme.test": { status: 200, text: "acme says hello" },
    "edge-a shop.globex.test": { status: 200, text: "globex shop is open" },
    "edge-b hello.acme.test": { status: 200, text: "acme says hello" },
    "edge-b shop.globex.test": { status: 200, text: "globex shop is open" },
  };
  const served = await eventually(probeAll, (s) => JSON.stringify(s) === JSON.stringify(expected));
  if (JSON.stringify(served) !== JSON.stringify(expected))
    throw new Error(`runners did not converge: ${JSON.stringify(served)}`);
  w.served = served;
  // Deployments turn "completed" once every runner has acked; the baseline is taken after that.
  w.state = await eventually(
    () => storedState(cp),
    (s) => (s as { deployments: { status: string }[] }).deployments.every((d) => d.status === "completed"),
  );
  w.audits = await count(cp, "audit_logs");
});

test.after.always(() => cleanup());

type Row = Awaited<ReturnType<typeof pushAndWait>>;

/** (a) for a commit: the reconcile failed with `code`, and its first detail says where and why. */
function refusedCommit(t: ExecutionContext, row: Row, code: string, where: RegExp, why: RegExp): void {
  t.is(row.status, "failed");
  t.is(row.error?.code, code, JSON.stringify(row.error));
  const details = row.error?.details ?? [];
  t.true(
    details.some((d) => where.test(d.where ?? "") && why.test(d.message)) ||
      (where.test(row.error?.message ?? "") && why.test(row.error?.message ?? "")),
    `expected a detail at ${where} saying ${why}; got ${JSON.stringify(row.error)}`,
  );
}

// ---- webhooks -----------------------------------------------------------------------------------

const errorOf = async (res: Response) =>
  ((await res.json()) as { error: { code: string; message: string } }).error;

test.serial(
  "hostile input: a webhook signed with the wrong secret is refused 401; nothing recorded",
  async (t) => {
    const { acme } = w;
    const before = [await count(w.cp, "webhook_deliveries"), await count(w.cp, "reconciliations")];
    const res = await sendWebhook(w.cp.url, pushBody(await acme.repo.head(), acme.fullName), {
      secret: "guessed-secret",
    });
    t.is(res.status, 401);
    const err = await errorOf(res);
    t.is(err.code, "EDGE_ERR_WEBHOOK_SIGNATURE");
    t.regex(err.message, /signature does not match the project's webhook secret/);
    t.deepEqual([await count(w.cp, "webhook_deliveries"), await count(w.cp, "reconciliations")], before);
    await untouched(t, w.audits, acme);
  },
);

test.serial(
  "hostile input: a webhook carrying the signature of a different body is refused 401",
  async (t) => {
    const { acme } = w;
    const before = [await count(w.cp, "webhook_deliveries"), await count(w.cp, "reconciliations")];
    // A genuine signature, lifted from another delivery, on a body the attacker wrote.
    const genuine = pushBody(await acme.repo.head(), acme.fullName);
    const lifted = `sha256=${createHmac("sha256", acme.secret).update(genuine).digest("hex")}`;
    const forged = pushBody("d".repeat(40), acme.fullName, { sender: { login: "mallory" } });
    const res = await sendWebhook(w.cp.url, forged, {
      secret: acme.secret,
      headers: { "x-hub-signature-256": lifted },
    });
    t.is(res.status, 401);
    t.is((await errorOf(res)).code, "EDGE_ERR_WEBHOOK_SIGNATURE");
    t.deepEqual([await count(w.cp, "webhook_deliveries"), await count(w.cp, "reconciliations")], before);
    await untouched(t, w.audits, acme);
  },
);

test.serial("hostile input: a webhook without a signature is refused 401", async (t) => {
  const { globex } = w;
  const before = [await count(w.cp, "webhook_deliveries"), await count(w.cp, "reconciliations")];
  const res = await sendWebhook(w.cp.url, pushBody(await globex.repo.head(), globex.fullName), {
    secret: globex.secret,
    headers: { "x-hub-signature-256": "" },
  });
  t.is(res.status, 401);
  t.is((await errorOf(res)).code, "EDGE_ERR_WEBHOOK_SIGNATURE");
  t.deepEqual([await count(w.cp, "webhook_deliveries"), await count(w.cp, "reconciliations")], before);
  await untouched(t, w.audits, globex);
});

test.serial(
  "hostile input: a replayed webhook (same X-GitHub-Delivery) is recorded as a duplicate and runs once",
  async (t) => {
    const { acme } = w;
    const sha = await acme.repo.commit({ "README.md": `replayed ${randomUUID()}\n` }, "to be replayed");
    const body = pushBody(sha, acme.fullName);
    const delivery = randomUUID();
    const reconciliations = await count(w.cp, "reconciliations");
    const first = await sendWebhook(w.cp.url, body, { secret: acme.secret, delivery });
    t.is(first.status, 202);
    const { reconciliation } = (await first.json()) as { reconciliation: string };
    // The replay: byte-identical, correctly signed (it is a real delivery, captured).
    const replays = await Promise.all(
      [1, 2, 3].map(() => sendWebhook(w.cp.url, body, { secret: acme.secret, delivery })),
    );
    for (const r of replays) {
      t.is(r.status, 200);
      t.like(await r.json(), { delivery, result: "duplicate" });
    }
    t.is((await w.cp.reconciler.wait(reconciliation)).status, "succeeded");
    t.is(await count(w.cp, "reconciliations"), reconciliations + 1, "one reconcile for four deliveries");
    const rows = await w.cp.db.query<{ result: string; reconciliation_id: string }>(
      "SELECT result, reconciliation_id FROM webhook_deliveries WHERE delivery_id = $1",
      [delivery],
    );
    t.deepEqual(rows, [{ result: "queued", reconciliation_id: reconciliation }]);
    await untouched(t, w.audits, acme);
  },
);

// ---- one project reaching for another's hosts -------------------------------------------------------

test.serial(
  "hostile input: a route outside the project's own domains rejects the whole commit",
  async (t) => {
    const { globex, acme } = w;
    const manifest =
      globex.good["edge.yaml"] +
      functionDoc("grab", [`{ host: ${acme.host}, path: /*, priority: 100 }`], { path: "./shop" });
    const row = await pushHostile(globex, { "edge.yaml": manifest }, "route acme's host");
    refusedCommit(
      t,
      row,
      "EDGE_ERR_MANIFEST_INVALID",
      /^edge\.yaml:\d+:\d+$/,
      /"hello\.acme\.test" is outside the project's domains \(globex\.test\)/,
    );
    await untouched(t, w.audits, globex);
  },
);

for (const [label, host] of [
  ["the same host", "hello.acme.test"],
  ["a wildcard covering it", "*.acme.test"],
] as const) {
  test.serial(
    `hostile input: a project claiming another's domain and routing ${label} it serves is rejected, naming both`,
    async (t) => {
      const { globex } = w;
      // globex declares acme's domain as its own: the manifest alone cannot tell this is wrong;
      // only the database, where acme already routes the host, can.
      const manifest =
        projectManifest("globex", ["globex.test", "acme.test"]) +
        functionDoc("shop", ["{ host: shop.globex.test, path: /* }"]) +
        functionDoc("grab", [`{ host: "${host}", path: /*, priority: 1000 }`], { path: "./shop" });
      const row = await pushHostile(globex, { "edge.yaml": manifest }, `steal ${host}`);
      t.is(row.status, "failed");
      t.is(row.error?.code, "EDGE_ERR_MANIFEST_INVALID", JSON.stringify(row.error));
      t.regex(row.error!.message, new RegExp(`${host.replace(/[.*]/g, "\\$&")}.*project "acme"`));
      t.true(
        (row.error?.details ?? []).some(
          (d) =>
            /^edge\.yaml:\d+:\d+$/.test(d.where ?? "") &&
            /function "grab" routes host .*hello\.acme\.test.* project "acme" already routes/.test(d.message),
        ),
        JSON.stringify(row.error),
      );
      await untouched(t, w.audits, globex);
    },
  );
}

// ---- source.path escaping the repository --------------------------------------------------------------

for (const [label, sourcePath, why] of [
  ["../", "../../../etc", /points outside the repository/],
  ["an absolute path", "/etc", /must be relative to the manifest's directory/],
  ["a symlink pointing outside", "./escape", /leads outside the repository through a symlink/],
] as const) {
  test.serial(`hostile input: source.path escaping the repository through ${label} is refused`, async (t) => {
    const { acme } = w;
    if (sourcePath === "./escape") await symlink("/etc", path.join(acme.repo.work, "escape"));
    const manifest =
      acme.good["edge.yaml"] +
      functionDoc("escape", ["{ host: x.acme.test, path: /* }"], { path: sourcePath });
    const row = await pushHostile(acme, { "edge.yaml": manifest }, `escape via ${label}`);
    refusedCommit(t, row, "EDGE_ERR_MANIFEST_INVALID", /^edge\.yaml:\d+:\d+$/, why);
    await untouched(t, w.audits, acme, ["escape"]);
  });
}

test.serial(
  "hostile input: a symlink inside a function's directory leading outside is refused at build",
  async (t) => {
    const { acme } = w;
    await symlink("/etc/passwd", path.join(acme.repo.work, "hello", "passwd"));
    const row = await pushHostile(
      acme,
      { "hello/touch": "changed so the function rebuilds\n" },
      "symlink out",
    );
    t.is(row.status, "failed");
    t.is(row.error?.code, "EDGE_ERR_BUILD_COMPILE", JSON.stringify(row.error));
    t.regex(row.error!.message, /hello\/passwd: symlink leads outside the repository/);
    await untouched(t, w.audits, acme, ["hello/passwd", "hello/touch"]);
  },
);

// ---- YAML bombs, oversize manifests, too many files ---------------------------------------------------

test.serial("hostile input: a YAML alias bomb is refused without expanding it", async (t) => {
  const { acme } = w;
  const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    const name = String.fromCharCode(97 + i);
    levels.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(", ")}]`);
  }
  const bomb = `${levels.join("\n")}\n`; // 10^9 leaves if expanded
  const started = Date.now();
  const row = await pushHostile(acme, { "bomb.edge.yaml": bomb }, "billion laughs");
  refusedCommit(t, row, "EDGE_ERR_MANIFEST_SYNTAX", /^bomb\.edge\.yaml:\d+:\d+$/, /alias/i);
  t.true(Date.now() - started < 10_000, "refused quickly, not after expanding");
  await untouched(t, w.audits, acme, ["bomb.edge.yaml"]);
});

test.serial("hostile input: a manifest over 1 MiB is refused without being parsed", async (t) => {
  const { acme } = w;
  const big = `# ${"x".repeat(1024 * 1024 + 10)}\n${acme.good["edge.yaml"]}`;
  const row = await pushHostile(acme, { "edge.yaml": big }, "oversize manifest");
  refusedCommit(
    t,
    row,
    "EDGE_ERR_MANIFEST_INVALID",
    /^edge\.yaml:1:1$/,
    /file is \d+ bytes; the limit is 1048576/,
  );
  await untouched(t, w.audits, acme);
});

test.serial("hostile input: a repository with more manifest files than allowed is refused", async (t) => {
  const { acme } = w;
  // Empty files: the limit is on how many there are, and the count is checked before parsing.
  const dir = path.join(acme.repo.work, "many");
  await mkdir(dir);
  const names = Array.from({ length: 5001 }, (_, i) => `m${String(i).padStart(4, "0")}.edge.yaml`);
  for (let i = 0; i < names.length; i += 500)
    await Promise.all(names.slice(i, i + 500).map((n) => writeFile(path.join(dir, n), "")));
  const row = await pushHostile(acme, {}, "5001 manifest files");
  refusedCommit(
    t,
    row,
    "EDGE_ERR_MANIFEST_INVALID",
    /^many\/m\d{4}\.edge\.yaml$/,
    /more than 5000 manifest files/,
  );
  await untouched(t, w.audits, acme, ["many"]);
});

// ---- the hostile wasm catalogue, pushed as prebuilt modules ------------------------------------------

let wabt: ReturnType<typeof wabtInit> | null = null;
/** WAT with the threads feature (shared memories), which the shared helper does not enable. */
async function watThreads(text: string): Promise<Uint8Array> {
  wabt ??= wabtInit();
  const m = (await wabt).parseWat("shared.wat", text, { threads: true });
  try {
    return new Uint8Array(m.toBinary({}).buffer);
  } finally {
    m.destroy();
  }
}

/** Appends a custom section of `size` bytes: valid wasm, just big. */
function padded(bytes: Uint8Array, size: number): Uint8Array {
  const uleb = (n: number) => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n) b |= 0x80;
      out.push(b);
    } while (n);
    return out;
  };
  const name = Buffer.from("padding");
  const body = [...uleb(name.length), ...name];
  const header = [0x00, ...uleb(body.length + size), ...body];
  const out = new Uint8Array(bytes.length + header.length + size);
  out.set(bytes);
  out.set(header, bytes.length);
  return out;
}

const catalogue: [string, () => Promise<Uint8Array>, RegExp][] = [
  [
    "memory over the limit",
    () => edgeWat(() => "(i32.const 0)", { memory: '(memory (export "memory") 64)' }),
    /memory starts with 64 pages; limits\.memoryPages is 16/,
  ],
  [
    "a shared memory",
    () =>
      watThreads(
        '(module (memory (export "memory") 1 1 shared) (func (export "edge_handle") (result i32) (i32.const 0)))',
      ),
    /memory is shared \(threads\); shared memories are not allowed/,
  ],
  [
    "a forbidden import",
    () => hostile.unknownImport(),
    /imports "env\.open_socket": only the "edge" and "wasi_snapshot_preview1" modules are provided/,
  ],
  [
    "an infinite loop in its start function",
    () =>
      wat(
        '(module (memory (export "memory") 1 1) (func $spin (loop $l (br $l))) (start $spin) (func (export "edge_handle") (result i32) (i32.const 0)))',
      ),
    /start function/,
  ],
  [
    "a huge module",
    async () => padded(await answering("big"), 1536 * 1024),
    /module is \d+ bytes; the artifact size limit is 1048576 bytes/,
  ],
];

for (const [label, make, why] of catalogue) {
  test.serial(`hostile input: a prebuilt module with ${label} is refused at build, saying why`, async (t) => {
    const { acme } = w;
    const manifest = acme.good["edge.yaml"] + functionDoc("bad", ["{ host: bad.acme.test, path: /* }"]);
    const row = await pushHostile(acme, { "edge.yaml": manifest, "bad/module.wasm": await make() }, label);
    t.is(row.status, "failed");
    t.is(row.error?.code, "EDGE_ERR_BUILD_INVALID_MODULE", JSON.stringify(row.error));
    t.regex(row.error!.message, /^function "bad": /);
    t.regex(row.error!.message, why);
    await untouched(t, w.audits, acme, ["bad"]);
  });
}

test.serial(
  "hostile input: a handler that never returns is served 504 at its deadline while the other functions keep answering 200",
  async (t) => {
    const { acme } = w;
    const manifest =
      acme.good["edge.yaml"] +
      functionDoc("spin", ["{ host: spin.acme.test, path: /* }"], { limits: "{ maxExecutionMs: 100 }" });
    const audits = await count(w.cp, "audit_logs");
    const row = await pushHostile(
      acme,
      { "edge.yaml": manifest, "spin/module.wasm": await hostile.infiniteLoop() },
      "spin",
    );
    // Runtime-only hostility: nothing static gives it away, so it is accepted and deployed.
    t.is(row.status, "succeeded", JSON.stringify(row.error));
    for (const r of w.runners) {
      const spin = await eventually(
        () => request(r.port, "spin.acme.test", "/"),
        (x) => x.status !== 404,
      );
      const others = Promise.all(Array.from({ length: 10 }, () => request(r.port, acme.host, REQUEST_PATH)));
      const [again, many] = await Promise.all([request(r.port, "spin.acme.test", "/"), others]);
      for (const x of [spin, again]) {
        t.is(x.status, 504);
        t.is(JSON.parse(x.text).error.code, "EDGE_ERR_RUNTIME_TIMEOUT");
      }
      t.deepEqual(
        many.map((x) => [x.status, x.text]),
        Array(10).fill([200, "acme says hello"]),
      );
    }
    t.deepEqual(await probeAll(), w.served);
    // Take it away again; the good state is back (with two audit rows: create and delete spin).
    const sha = await acme.repo.commit({ ...acme.good, spin: null }, "remove spin");
    const removed = await pushAndWait(acme, sha);
    t.is(removed.status, "succeeded");
    t.like(removed.plan, { changes: [{ action: "delete", name: "spin" }] });
    t.is(await count(w.cp, "audit_logs"), audits + 2);
    w.audits = audits + 2;
    w.state = {
      ...(w.state as object),
      versions: ((await storedState(w.cp)) as { versions: unknown }).versions,
    };
    for (const r of w.runners)
      t.is(
        (
          await eventually(
            () => request(r.port, "spin.acme.test", "/"),
            (x) => x.status === 404,
          )
        ).status,
        404,
      );
    await untouched(t, w.audits, acme);
  },
);

// ---- API tokens across projects ----------------------------------------------------------------------

test.serial("hostile input: a project's API token cannot act on another project (403)", async (t) => {
  const token = await projectToken(w.cp, "globex");
  const audits = await count(w.cp, "audit_logs");
  const reconciliations = await count(w.cp, "reconciliations");
  const res = await fetch(`${w.cp.url}/api/v1/projects/acme/reconcile`, {
    method: "POST",
    headers: bearer(token),
  });
  t.is(res.status, 403);
  const err = await errorOf(res);
  t.is(err.code, "EDGE_ERR_API_FORBIDDEN");
  t.regex(err.message, /acme/);
  // Reading is scoped too: globex's token sees no acme function.
  const list = (await (await fetch(`${w.cp.url}/api/v1/functions`, { headers: bearer(token) })).json()) as {
    functions: { project: string }[];
  };
  t.deepEqual([...new Set(list.functions.map((f) => f.project))], ["globex"]);
  t.is(await count(w.cp, "reconciliations"), reconciliations);
  await untouched(t, audits, null);
});

// ---- runner certificates ------------------------------------------------------------------------------

/** Connects to the control protocol with these credentials as nodeId; the first message or error. */
function connect(credentials: grpc.ChannelCredentials, nodeId: string) {
  const client = new EdgeControlClient(`localhost:${w.cp.grpcPort}`, credentials);
  const call = client.Connect() as grpc.ClientDuplexStream<RunnerMessage, ControlMessage>;
  return new Promise<{ message?: ControlMessage; error?: grpc.ServiceError }>((resolve) => {
    const done = (r: { message?: ControlMessage; error?: grpc.ServiceError }) => {
      call.cancel();
      client.close();
      resolve(r);
    };
    call.on("data", (message: ControlMessage) => done({ message }));
    call.on("error", (error: grpc.ServiceError) => done({ error }));
    call.write({
      hello: { node_id: nodeId, pop: "pop-1", labels: {}, generation: "0", inventory: [], http_address: "" },
    });
  });
}

const nodeIds = async () =>
  (await w.cp.db.query<{ id: string }>("SELECT id FROM nodes ORDER BY id")).map((r) => r.id);

test.serial(
  "hostile input: a runner certificate signed by another CA is refused; the real runners stay",
  async (t) => {
    const audits = await count(w.cp, "audit_logs");
    const rogueCa = createCa("rogue CA");
    const cert = issueRunnerCert(rogueCa, "edge-a"); // even under a legitimate node's name
    const r = await connect(
      grpc.credentials.createSsl(Buffer.from(w.ca.cert), Buffer.from(cert.key), Buffer.from(cert.cert)),
      "edge-a",
    );
    t.is(r.error?.code, grpc.status.UNAVAILABLE);
    t.is(r.message, undefined, "no desired state was handed out");
    t.deepEqual(await nodeIds(), ["edge-a", "edge-b"]);
    t.deepEqual(
      w.cp.control
        .connected()
        .map((n) => [n.nodeId, n.offline])
        .sort(),
      [
        ["edge-a", false],
        ["edge-b", false],
      ],
    );
    await untouched(t, audits, null);
  },
);

test.serial(
  "hostile input: a runner whose certificate names one node claiming another node's id is refused",
  async (t) => {
    const audits = await count(w.cp, "audit_logs");
    const cert = issueRunnerCert(w.ca, "edge-x");
    const creds = () =>
      grpc.credentials.createSsl(Buffer.from(w.ca.cert), Buffer.from(cert.key), Buffer.from(cert.cert));
    // Claiming a node that exists (to take over its stream) and one that does not.
    for (const claimed of ["edge-b", "edge-y"]) {
      const r = await connect(creds(), claimed);
      t.is(r.error?.code, grpc.status.PERMISSION_DENIED);
      t.regex(r.error!.details, new RegExp(`"${claimed}" does not match the certificate's "edge-x"`));
    }
    t.deepEqual(await nodeIds(), ["edge-a", "edge-b"]);
    t.deepEqual(
      w.cp.control
        .connected()
        .map((n) => n.nodeId)
        .sort(),
      ["edge-a", "edge-b"],
      "edge-b's real stream was not replaced",
    );
    await untouched(t, audits, null);
  },
);

// ---- raw HTTP against the runner ----------------------------------------------------------------------

/** Sends raw bytes; returns what the server answered before closing (or after `waitMs`). */
async function raw(port: number, bytes: string, waitMs = 3000): Promise<{ text: string; closed: boolean }> {
  const socket = netConnect(port, "127.0.0.1");
  await once(socket, "connect");
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  socket.on("error", () => {});
  socket.write(bytes);
  const closed = await Promise.race([
    once(socket, "close").then(() => true),
    sleep(waitMs).then(() => false),
  ]);
  socket.destroy();
  return { text: Buffer.concat(chunks).toString("latin1"), closed };
}

const statusOf = (response: string) => Number(response.split(" ")[1]);
const codeOf = (response: string) =>
  (JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4)) as { error: { code: string } }).error.code;

/** Legitimate requests to a runner in a loop until stopped; every status seen. */
function legitimateTraffic(port: number, host: string) {
  const statuses: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      statuses.push((await request(port, host, REQUEST_PATH).catch(() => ({ status: 0 }))).status);
      await sleep(10);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return statuses;
    },
  };
}

/** Label, request bytes, status, code, and whether the runner must close the connection. */
const rawCases: [string, string, number, string, boolean][] = [
  [
    "conflicting Content-Length and Transfer-Encoding",
    "POST / HTTP/1.1\r\nHost: hello.acme.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: hello.acme.test\r\n\r\n",
    400,
    "EDGE_ERR_RUNTIME_BAD_REQUEST",
    true,
  ],
  [
    "two different Content-Length headers",
    "POST / HTTP/1.1\r\nHost: hello.acme.test\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
    400,
    "EDGE_ERR_RUNTIME_BAD_REQUEST",
    true,
  ],
  [
    "an oversize header block",
    `GET / HTTP/1.1\r\nHost: hello.acme.test\r\nX-Big: ${"a".repeat(8192)}\r\n\r\n`,
    431,
    "EDGE_ERR_RUNTIME_HEADERS_TOO_LARGE",
    true,
  ],
  [
    "too many headers",
    `GET / HTTP/1.1\r\nHost: hello.acme.test\r\n${Array.from({ length: 40 }, (_, i) => `X-H${i}: ${i}\r\n`).join("")}\r\n`,
    431,
    "EDGE_ERR_RUNTIME_HEADERS_TOO_LARGE",
    false, // refused per request once parsed; the connection may stay open
  ],
];

for (const [label, bytes, status, code, closes] of rawCases) {
  test.serial(
    `hostile input: ${label} is refused ${status} by the runner while legitimate requests get 200`,
    async (t) => {
      const audits = await count(w.cp, "audit_logs");
      const port = w.runners[0]!.port;
      const traffic = legitimateTraffic(port, w.acme.host);
      // A connection the runner keeps open is given 500 ms to answer, one it must close 3 s.
      const answers = await Promise.all([1, 2, 3].map(() => raw(port, bytes, closes ? 3000 : 500)));
      await sleep(100);
      const statuses = await traffic.stop();
      for (const a of answers) {
        t.is(statusOf(a.text), status, a.text);
        t.is(codeOf(a.text), code);
        if (closes) t.true(a.closed, "the connection is closed after the refusal");
        t.notRegex(a.text, /acme says hello/, "nothing reached the function");
      }
      t.true(statuses.length > 0);
      t.deepEqual([...new Set(statuses)], [200]);
      await untouched(t, audits, null);
    },
  );
}

test.serial(
  "hostile input: a slow-loris client is cut off with 408 after headersTimeout while legitimate requests get 200",
  async (t) => {
    const audits = await count(w.cp, "audit_logs");
    const port = w.runners[1]!.port;
    const traffic = legitimateTraffic(port, w.acme.host);
    const head = "GET / HTTP/1.1\r\nHost: hello.acme.test\r\nX-Slow: dripping-one-byte-at-a-time\r\n\r\n";
    const socket = netConnect(port, "127.0.0.1");
    await once(socket, "connect");
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => {});
    let closed = false;
    socket.on("close", () => {
      closed = true;
    });
    const started = Date.now();
    let sent = 0;
    // One byte every 150 ms: the whole head would take ~12 s; headersTimeout is 1 s.
    while (!closed && sent < head.length && Date.now() - started < 8000) {
      socket.write(head[sent++]!);
      await sleep(150);
    }
    const elapsed = Date.now() - started;
    socket.destroy();
    const statuses = await traffic.stop();
    const text = Buffer.concat(chunks).toString("latin1");
    t.true(closed, `the runner closed the connection (after ${elapsed} ms)`);
    t.true(sent < head.length, "cut off before the head was complete");
    t.is(statusOf(text), 408, text);
    t.is(codeOf(text), "EDGE_ERR_RUNTIME_REQUEST_TIMEOUT");
    t.true(statuses.length > 0);
    t.deepEqual([...new Set(statuses)], [200]);
    t.log(`slow-loris cut off after ${elapsed} ms, ${sent} of ${head.length} bytes sent`);
    await untouched(t, audits, null);
  },
);
