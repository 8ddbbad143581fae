// edgectl as a user runs it: the real `node bin/edgectl …` in a child process, against a real
// control plane (PostgreSQL schema of its own, a real git repository, a runner over loopback
// gRPC) shared by the tests of this file. Tests that change state run serially, in order.

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import test from "ava";
import { commands, isGroup } from "../../cli/index.ts";
import { Progress } from "../../cli/progress.ts";
import { createRunner, type Runner } from "../../edge-runner/index.ts";
import { type ControlPlane, createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo, type TestRepo } from "../helpers/git.ts";
import { quietLogger } from "../helpers/runner.ts";
import { tempDir } from "../helpers/tmp.ts";

const ROOT = path.resolve(".");
const EDGECTL = path.join(ROOT, "bin/edgectl");

const manifest = (
  routes = "    - { host: echo.acme.test, path: /*, methods: [GET] }",
) => `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec:
  domains: [acme.test]
---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: echo }
spec:
  source: { path: ./echo, language: wat }
  limits: { memoryPages: 4 }
  routes:
${routes}
`;

interface Ctx {
  tmp: { dir: string; remove: () => Promise<void> };
  drop: () => Promise<void>;
  schema: string;
  repo: TestRepo;
  cp: ControlPlane;
  runner: Runner;
  admin: string;
  sha: string;
}
let ctx: Ctx;

test.before(async () => {
  const tmp = await tempDir("edgectl-");
  const { schema, drop } = await freshSchema();
  const repo = await createTestRepo(tmp.dir);
  await repo.copyIn(path.resolve("example-repo/echo-wat"), "echo");
  const sha = await repo.commit({ "edge.yaml": manifest() }, "add echo");
  const cp = await createControlPlane(
    {
      dataDir: path.join(tmp.dir, "cp"),
      databaseUrl: DATABASE_URL,
      databaseSchema: schema,
      httpPort: 0,
      grpcPort: 0,
      pollInterval: "0",
      ackTimeout: "10s",
      projects: [{ name: "acme", repo: repo.origin }],
    },
    quietLogger,
  );
  await cp.start();
  const runner = createRunner({
    nodeId: "cli-node-1",
    pop: "test-1",
    labels: { region: "test" },
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir: path.join(tmp.dir, "runner-cache"),
    control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
    reconnectMinDelay: "50ms",
    heartbeatInterval: "100ms",
    logger: quietLogger,
  });
  await runner.start();
  // The control plane wrote its first admin token into its data directory, as `edgectl serve` does.
  const admin = (await readFile(path.join(tmp.dir, "cp", "admin-token"), "utf8")).trim();
  // Wait for the runner to register, so rollouts target it.
  for (let i = 0; i < 200; i++) {
    const rows = await cp.db.query("SELECT 1 FROM nodes WHERE id = 'cli-node-1' AND status = 'online'");
    if (rows.length) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  ctx = { tmp, drop, schema, repo, cp, runner, admin, sha };
});

test.after.always(async () => {
  if (!ctx) return;
  await ctx.runner.stop();
  await ctx.cp.stop();
  await ctx.drop();
  await ctx.tmp.remove();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/edgectl …` with the shared control plane and admin token in its environment. */
function edgectl(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const base: Record<string, string | undefined> = {
    ...process.env,
    EDGE_API: ctx?.cp.url,
    EDGE_TOKEN: ctx?.admin,
    EDGE_DATA_DIR: ctx ? path.join(ctx.tmp.dir, "no-data-dir") : undefined,
    EDGE_LOG_LEVEL: "silent",
    ...env,
  };
  for (const k of Object.keys(base)) if (base[k] === undefined) delete base[k];
  return new Promise((resolve) => {
    execFile(
      "node",
      [EDGECTL, ...args],
      { cwd: ROOT, env: base as NodeJS.ProcessEnv },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const show = (r: Run) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs `fn` over items two at a time (the machine has two cores). */
async function pairwise<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 2) await Promise.all(items.slice(i, i + 2).map(fn));
}

test("edgectl: --help works for every command and subcommand and lists its options", async (t) => {
  const targets = commands.flatMap((c) =>
    isGroup(c)
      ? [
          { name: c.name, options: [] as string[] },
          ...c.subcommands.map((s) => ({ name: s.name, options: Object.keys(s.options) })),
        ]
      : [{ name: c.name, options: Object.keys(c.options) }],
  );
  t.true(targets.length >= 19);
  await pairwise(targets, async ({ name, options }) => {
    const r = await edgectl([...name.split(" "), "--help"]);
    t.is(r.code, 0, `${name}: ${show(r)}`);
    t.true(r.stdout.startsWith(`edgectl ${name}: `), `${name}: ${r.stdout}`);
    t.regex(r.stdout, name.includes(" ") || options.length ? /usage: edgectl / : /subcommands:/);
    for (const o of options) t.true(r.stdout.includes(`--${o}`), `${name} --help lists --${o}`);
  });
  const top = await edgectl(["--help"]);
  t.is(top.code, 0);
  for (const c of commands) t.true(top.stdout.includes(`  ${c.name} `), `edgectl --help lists ${c.name}`);
  t.regex(top.stdout, /exit codes: 0 ok, 1 operation failed, 2 usage error/);
  const helpAudit = await edgectl(["help", "audit"]);
  t.is(helpAudit.code, 0);
  t.true(helpAudit.stdout.startsWith("edgectl audit: "));
});

test("edgectl: usage errors exit 2 and say what is wrong", async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /usage: edgectl <command>/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["audit", "--bogus"], /Unknown option '--bogus'/],
    [["audit", "--limit", "ten"], /--limit: expected a non-negative integer/],
    [["reconcile"], /missing <project>/],
    [["tokens"], /subcommands:/],
    [["tokens", "mint"], /unknown subcommand "tokens mint"/],
    [["tokens", "create", "--name", "x"], /exactly one of --project P or --admin/],
    [["rollback", "echo"], /missing --project P/],
    [["functions", "a", "b"], /unexpected argument "b"/],
  ];
  await pairwise(cases, async ([args, expected]) => {
    const r = await edgectl(args);
    t.is(r.code, 2, `${args.join(" ")}: ${show(r)}`);
    t.regex(r.stderr, expected, args.join(" "));
    t.is(r.stdout, "", `${args.join(" ")} prints nothing on stdout`);
  });
});

test("edgectl: validate names file:line:col of a bad manifest and exits 1; a good repo lists its functions", async (t) => {
  const dir = path.join(ctx.tmp.dir, "bad-repo");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, "edge.yaml"),
    "apiVersion: edgeplane.dev/v1\nkind: Function\nmetadata: { name: bad }\nspec:\n  source: { path: ./bad, language: cobol }\n  routes: []\n",
  );
  const bad = await edgectl(["validate", dir]);
  t.is(bad.code, 1, show(bad));
  t.regex(bad.stderr, /edge\.yaml:5:\d+: /);
  t.regex(bad.stderr, /EDGE_ERR_MANIFEST_\w+: \d+ problem\(s\)/);
  const badJson = await edgectl(["validate", dir, "--json"]);
  t.is(badJson.code, 1);
  const parsed = JSON.parse(badJson.stdout) as { ok: boolean; error: { details: { where: string }[] } };
  t.false(parsed.ok);
  t.true(
    parsed.error.details.some((d) => /^edge\.yaml:5:\d+$/.test(d.where)),
    badJson.stdout,
  );

  const good = await edgectl(["validate", ctx.repo.work]);
  t.is(good.code, 0, show(good));
  t.regex(good.stdout, /ok: 1 file\(s\), project acme, 1 function\(s\)/);
  t.regex(good.stdout, /^FUNCTION\s+LANGUAGE\s+ABI\s+SOURCE\s+ROUTES\s+DEFINED AT$/m);
  t.regex(good.stdout, /^echo\s+wat\s+edge-v1\s+echo\s+echo\.acme\.test\/\*\s+edge\.yaml:\d+:\d+$/m);
});

test.serial(
  "edgectl: reconcile --wait follows the phases and ends with the plan and each POP's result",
  async (t) => {
    const r = await edgectl(["reconcile", "acme", "--wait"]);
    t.is(r.code, 0, show(r));
    // Not a terminal: one plain line per phase on stderr.
    t.regex(r.stderr, /^(queued \(reconciliation [0-9a-f-]{36}\)|reconciling \w+)/m);
    // (Whether "deploying generation N" shows depends on how fast the runner acks; not asserted.)
    t.false(r.stderr.includes("\r"), "no in-place redraws when stderr is not a terminal");
    t.regex(r.stdout, new RegExp(`acme: reconcile succeeded at ${ctx.sha.slice(0, 12)}`));
    t.regex(r.stdout, /^create\s+echo\s+v1\s+new function$/m);
    t.regex(r.stdout, /^test-1\s+success\s+1\/1 acked\s+generation \d+ live on 1 node$/m);

    // Reconciling the same head again changes nothing; --json gives the reconciliation row.
    const again = await edgectl(["reconcile", "acme", "--wait", "--json"]);
    t.is(again.code, 0, show(again));
    const row = JSON.parse(again.stdout) as {
      status: string;
      commit_sha: string;
      plan: { changes: unknown[] };
    };
    t.is(row.status, "succeeded");
    t.is(row.commit_sha, ctx.sha);
    t.deepEqual(row.plan.changes, []);
  },
);

test.serial(
  "edgectl: status shows the last reconcile's commit and result and the per-POP state",
  async (t) => {
    const r = await edgectl(["status"]);
    t.is(r.code, 0, show(r));
    t.regex(r.stdout, /^PROJECT\s+BRANCH\s+COMMIT\s+RESULT\s+CHANGES\s+DEPLOY\s+POPS\s+WHEN$/m);
    t.regex(
      r.stdout,
      new RegExp(
        `^acme\\s+main\\s+${ctx.sha.slice(0, 12)}\\s+succeeded\\s+0\\s+no changes to deploy\\s+test-1:ok\\s+\\d+s ago$`,
        "m",
      ),
    );
    const one = await edgectl(["status", "acme"]);
    t.is(one.code, 0, show(one));
    t.regex(one.stdout, /acme: reconcile succeeded/);
    t.regex(one.stdout, /^last deploy: generation \d+ at \w{12}/m);
    t.regex(one.stdout, /^test-1\s+success\s+generation \d+ live on 1 node$/m);
    const json = await edgectl(["status", "--json"]);
    const parsed = JSON.parse(json.stdout) as {
      projects: {
        project: string;
        last_reconcile: { commit_sha: string };
        last_deploy: { pops: { pop: string; state: string }[] };
      }[];
    };
    t.is(parsed.projects[0]!.project, "acme");
    t.is(parsed.projects[0]!.last_reconcile.commit_sha, ctx.sha);
    t.deepEqual(
      parsed.projects[0]!.last_deploy.pops.map((p) => [p.pop, p.state]),
      [["test-1", "success"]],
    );
    const missing = await edgectl(["status", "nosuch"]);
    t.is(missing.code, 4, show(missing));
  },
);

test.serial("edgectl: functions, nodes and audit print aligned tables, and JSON with --json", async (t) => {
  // Read-only: run the commands at once.
  const [fns, fnsJsonRun, none, nodes, nodesJsonRun, audit, filteredRun, empty, badTime] = await Promise.all([
    edgectl(["functions"]),
    edgectl(["functions", "--json"]),
    edgectl(["functions", "--project", "other"]),
    edgectl(["nodes"]),
    edgectl(["nodes", "--json"]),
    edgectl(["audit", "--project", "acme"]),
    edgectl(["audit", "--function", "echo", "--limit", "1", "--json"]),
    edgectl(["audit", "--commit", "0000000"]),
    edgectl(["audit", "--since", "yesterday"]),
  ]);
  t.is(fns.code, 0, show(fns));
  const lines = fns.stdout.trimEnd().split("\n");
  t.regex(
    lines[0]!,
    /^PROJECT\s+FUNCTION\s+VERSION\s+LANGUAGE\s+ABI\s+SIZE\s+SHA256\s+COMMIT\s+DEPLOYMENT\s+CREATED\s+ID$/,
  );
  t.regex(lines[1]!, /^acme\s+echo\s+v1\s+wat\s+edge-v1\s+\d+ B\s+[0-9a-f]{12}\s+/);
  // Aligned: every column starts at the same offset on each line.
  t.is(lines[0]!.indexOf("FUNCTION"), lines[1]!.indexOf("echo"));
  t.is(lines[0]!.indexOf("LANGUAGE"), lines[1]!.indexOf("wat"));
  const fnsJson = JSON.parse(fnsJsonRun.stdout) as {
    functions: { id: string; name: string; version: number; sha256: string }[];
  };
  t.deepEqual(
    fnsJson.functions.map((f) => [f.name, f.version]),
    [["echo", 1]],
  );
  const one = await edgectl(["functions", fnsJson.functions[0]!.id]);
  t.is(one.code, 0, show(one));
  t.regex(one.stdout, /^function\s+acme\/echo v1 \(active\)$/m);
  t.regex(one.stdout, /^echo\.acme\.test\s+\/\*\s+GET\s+0$/m);
  t.is(none.stdout, "no functions in project other\n");

  t.is(nodes.code, 0, show(nodes));
  t.regex(nodes.stdout, /^NODE\s+POP\s+STATUS\s+HEARTBEAT\s+GENERATION\s+ADDRESS\s+LABELS$/m);
  t.regex(nodes.stdout, /^cli-node-1\s+test-1\s+online\s+\d+s ago\s+\d+\s+\S+\s+region=test$/m);
  const nodesJson = JSON.parse(nodesJsonRun.stdout) as { nodes: { id: string }[] };
  t.deepEqual(
    nodesJson.nodes.map((n) => n.id),
    ["cli-node-1"],
  );

  t.is(audit.code, 0, show(audit));
  t.regex(audit.stdout, /^AT\s+PROJECT\s+ACTION\s+OBJECT\s+TRIGGER\s+ACTOR\s+COMMIT$/m);
  t.regex(
    audit.stdout,
    new RegExp(
      `^\\S+Z\\s+acme\\s+create\\s+function/echo@v1\\s+api\\s+\\S+\\s+${ctx.sha.slice(0, 12)}$`,
      "m",
    ),
  );
  const filtered = JSON.parse(filteredRun.stdout) as {
    audit: { object_id: string }[];
  };
  t.is(filtered.audit.length, 1);
  t.is(filtered.audit[0]!.object_id, "echo");
  t.is(empty.stdout, "no audit rows match\n");
  t.is(badTime.code, 1, show(badTime));
  t.regex(badTime.stderr, /^edgectl: EDGE_ERR_API_BAD_REQUEST: since: expected an ISO 8601 time/m);
});

test.serial(
  "edgectl: plan shows what pushing a local edit would change, without changing anything",
  async (t) => {
    const work = ctx.repo.work;
    const clean = await edgectl(["plan", work]);
    t.is(clean.code, 0, show(clean));
    t.regex(clean.stdout, /^acme: no changes/);

    const wat = path.join(work, "echo", "module.wat");
    const original = await readFile(wat, "utf8");
    await writeFile(wat, `${original}\n;; edited\n`);
    await writeFile(
      path.join(work, "edge.yaml"),
      manifest("    - { host: echo.acme.test, path: /v2/*, methods: [GET, POST] }"),
    );
    try {
      const r = await edgectl(["plan", work]);
      t.is(r.code, 0, show(r));
      t.regex(r.stdout, /^acme: 1 change\(s\) if /m);
      t.regex(r.stdout, /^CHANGE\s+FUNCTION\s+VERSION\s+REASON$/m);
      t.regex(r.stdout, /^update\s+echo\s+v1 → new\s+source changed$/m);
      t.regex(r.stdout, /^ {2}\+ echo\.acme\.test\/v2\/\* \[GET,POST\] priority 0$/m);
      t.regex(r.stdout, /^ {2}- echo\.acme\.test\/\* \[GET\] priority 0$/m);

      // Only the routes edited: a route change, no rebuild.
      await writeFile(wat, original);
      const routes = JSON.parse((await edgectl(["plan", work, "--json"])).stdout) as {
        project: string;
        changes: { action: string; name: string; routesAdded: string[] }[];
      };
      t.is(routes.project, "acme");
      t.deepEqual(
        routes.changes.map((c) => [c.action, c.name, c.routesAdded]),
        [["routes", "echo", ["echo.acme.test/v2/* [GET,POST] priority 0"]]],
      );
    } finally {
      await writeFile(wat, original);
      await writeFile(path.join(work, "edge.yaml"), manifest());
    }
    // Nothing was applied by planning.
    const fns = JSON.parse((await edgectl(["functions", "--json"])).stdout) as {
      functions: { version: number }[];
    };
    t.is(fns.functions[0]!.version, 1);

    const unknown = await edgectl(["plan", work, "--project", "nosuch"]);
    t.is(unknown.code, 4, show(unknown));
    t.regex(unknown.stderr, /no project nosuch/);
  },
);

test("edgectl: build writes each function's wasm and prints its size, sha256 and time", async (t) => {
  const out = path.join(ctx.tmp.dir, "build-out");
  const r = await edgectl(["build", ctx.repo.work, "--out", out, "--no-cache"]);
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /^building echo \(wat\) \[1\/1\]$/m);
  const bytes = await readFile(path.join(out, "echo.wasm"));
  const sha = createHash("sha256").update(bytes).digest("hex");
  t.regex(r.stdout, /^FUNCTION\s+LANGUAGE\s+STATUS\s+SIZE\s+SHA256\s+TIME\s+CACHE\s+TOOLCHAIN$/m);
  t.regex(
    r.stdout,
    new RegExp(
      `^echo\\s+wat\\s+built\\s+${bytes.length} B\\s+${sha.slice(0, 12)}\\s+\\d+(ms|\\.\\ds)\\s+miss\\s+`,
      "m",
    ),
  );
  const json = JSON.parse(
    (await edgectl(["build", ctx.repo.work, "--out", out, "--no-cache", "--json"])).stdout,
  ) as {
    builds: { function: string; status: string; sha256: string; bytes: number }[];
  };
  t.deepEqual(
    json.builds.map((b) => [b.function, b.status, b.sha256, b.bytes]),
    [["echo", "built", sha, bytes.length]],
  );

  const missing = await edgectl(["build", ctx.repo.work, "--function", "nosuch"]);
  t.is(missing.code, 4, show(missing));

  // A module that does not assemble: exit 1 with the assembler's complaint.
  const broken = path.join(ctx.tmp.dir, "broken-repo");
  const { cp, mkdir } = await import("node:fs/promises");
  await mkdir(broken, { recursive: true });
  await cp(path.join(ctx.repo.work, "edge.yaml"), path.join(broken, "edge.yaml"));
  await mkdir(path.join(broken, "echo"));
  await writeFile(path.join(broken, "echo", "module.wat"), "(module (func $f (result i32) (i32.add)))");
  const failed = await edgectl(["build", broken, "--out", out, "--no-cache"]);
  t.is(failed.code, 1, show(failed));
  t.regex(failed.stdout, /^echo\s+wat\s+failed\s+/m);
  t.regex(failed.stderr, /^echo: EDGE_ERR_BUILD_\w+: /m);
  await rm(broken, { recursive: true, force: true });
});

test.serial(
  "edgectl: tokens create, list and revoke; a project token is refused admin endpoints",
  async (t) => {
    const created = await edgectl(["tokens", "create", "--project", "acme", "--name", "ci", "--json"]);
    t.is(created.code, 0, show(created));
    const token = JSON.parse(created.stdout) as {
      id: string;
      token: string;
      project: string;
      admin: boolean;
      name: string;
    };
    t.like(token, { project: "acme", admin: false, name: "ci" });
    t.regex(token.token, /^edp_/);

    const human = await edgectl(["tokens", "create", "--admin", "--name", "ops"]);
    t.is(human.code, 0, show(human));
    t.regex(human.stdout, /^edp_\S+\n\ntoken [0-9a-f-]{36} \(ops\): admin\nshown once/);

    // The project token works for its project…
    const asProject = await edgectl(["functions"], { EDGE_TOKEN: token.token });
    t.is(asProject.code, 0, show(asProject));
    t.regex(asProject.stdout, /^acme\s+echo\s+v1/m);
    // …and is refused the admin-only token list: 403, exit 3.
    const forbidden = await edgectl(["tokens", "list"], { EDGE_TOKEN: token.token });
    t.is(forbidden.code, 3, show(forbidden));
    t.regex(forbidden.stderr, /^edgectl: EDGE_ERR_API_FORBIDDEN: /m);

    const list = await edgectl(["tokens", "list"]);
    t.is(list.code, 0, show(list));
    t.regex(list.stdout, /^ID\s+NAME\s+SCOPE\s+PREFIX\s+CREATED\s+LAST USED\s+REVOKED$/m);
    t.regex(
      list.stdout,
      new RegExp(`^${token.id}\\s+ci\\s+project acme\\s+${token.token.slice(0, 10)}…\\s+`, "m"),
    );

    const revoked = await edgectl(["tokens", "revoke", token.id]);
    t.is(revoked.code, 0, show(revoked));
    t.is(revoked.stdout, `revoked token ${token.id}\n`);
    const after = await edgectl(["functions"], { EDGE_TOKEN: token.token });
    t.is(after.code, 3, show(after));
    t.regex(after.stderr, /EDGE_ERR_API_UNAUTHORIZED: the token is unknown or revoked/);
    t.regex(after.stderr, /^hint: the token from \$EDGE_TOKEN was refused/m);
    const listed = await edgectl(["tokens", "list", "--json"]);
    t.false(
      (JSON.parse(listed.stdout) as { tokens: { id: string }[] }).tokens.some((x) => x.id === token.id),
    );
    const all = await edgectl(["tokens", "list", "--all", "--json"]);
    t.true(
      (JSON.parse(all.stdout) as { tokens: { id: string; revoked_at: string }[] }).tokens.some(
        (x) => x.id === token.id && x.revoked_at,
      ),
    );
    const again = await edgectl(["tokens", "revoke", token.id]);
    t.is(again.code, 4, show(again));
  },
);

test.serial("edgectl: tokens create --database-url bootstraps a token without the API", async (t) => {
  const r = await edgectl(
    [
      "tokens",
      "create",
      "--admin",
      "--name",
      "bootstrap-2",
      "--database-url",
      DATABASE_URL,
      "--database-schema",
      ctx.schema,
      "--json",
    ],
    { EDGE_TOKEN: undefined, EDGE_API: "http://127.0.0.1:9" },
  );
  t.is(r.code, 0, show(r));
  const { token } = JSON.parse(r.stdout) as { token: string };
  const use = await edgectl(["nodes"], { EDGE_TOKEN: token });
  t.is(use.code, 0, show(use));
  const noProject = await edgectl(
    [
      "tokens",
      "create",
      "--project",
      "nosuch",
      "--database-url",
      DATABASE_URL,
      "--database-schema",
      ctx.schema,
    ],
    { EDGE_TOKEN: undefined },
  );
  t.is(noProject.code, 4, show(noProject));
});

test("edgectl: exit codes: 3 for a bad or missing token, 4 for not found, 5 when the control plane is unreachable", async (t) => {
  const bad = await edgectl(["functions"], { EDGE_TOKEN: "edp_not-a-real-token" });
  t.is(bad.code, 3, show(bad));
  t.regex(bad.stderr, /^edgectl: EDGE_ERR_API_UNAUTHORIZED: /m);

  const none = await edgectl(["functions"], { EDGE_TOKEN: undefined });
  t.is(none.code, 3, show(none));
  t.regex(none.stderr, /^hint: no token: /m);

  // The admin token edgectl serve (here: the control plane) wrote into its data directory.
  const fromFile = await edgectl(["functions", "--data-dir", path.join(ctx.tmp.dir, "cp")], {
    EDGE_TOKEN: undefined,
  });
  t.is(fromFile.code, 0, show(fromFile));
  const fromFlag = await edgectl(["nodes", "--token", ctx.admin, "--api", ctx.cp.url], {
    EDGE_TOKEN: undefined,
    EDGE_API: undefined,
  });
  t.is(fromFlag.code, 0, show(fromFlag));

  const missing = await edgectl(["reconcile", "nosuch"]);
  t.is(missing.code, 4, show(missing));
  t.regex(missing.stderr, /^edgectl: EDGE_ERR_API_NOT_FOUND: /m);
  const missingVersion = await edgectl(["functions", "00000000-0000-4000-8000-000000000000"]);
  t.is(missingVersion.code, 4, show(missingVersion));

  const port = await closedPort();
  const down = await edgectl(["status", "--api", `http://127.0.0.1:${port}`]);
  t.is(down.code, 5, show(down));
  t.regex(
    down.stderr,
    new RegExp(`^edgectl: cannot reach the control plane at http://127.0.0.1:${port}: ECONNREFUSED`, "m"),
  );
  t.regex(down.stderr, /^hint: start one with `edgectl serve`/m);
  const downEnv = await edgectl(["nodes", "--json"], { EDGE_API: `http://127.0.0.1:${port}` });
  t.is(downEnv.code, 5);
  t.is(downEnv.stdout, "");
});

test.serial("edgectl: previews lists preview deployments (none without pull requests)", async (t) => {
  const previews = await edgectl(["previews", "--project", "acme"]);
  t.is(previews.code, 0, show(previews));
  t.is(previews.stdout, "no active previews in project acme\n");
  const json = await edgectl(["previews", "--status", "all", "--json"]);
  t.is(json.code, 0, show(json));
  t.deepEqual((JSON.parse(json.stdout) as { previews: unknown[] }).previews, []);
  const badStatus = await edgectl(["previews", "--status", "someday"]);
  t.is(badStatus.code, 1, show(badStatus));
  t.regex(
    badStatus.stderr,
    /^edgectl: EDGE_ERR_API_BAD_REQUEST: status: expected active, closed, expired or all/m,
  );
});

test.serial(
  "edgectl: rollback pins the previous version, prints the git revert, and --unpin lifts the pin",
  async (t) => {
    // echo v2 from a new commit, so there is a version to roll back to.
    const wat = path.join(ctx.repo.work, "echo", "module.wat");
    const sha2 = await ctx.repo.commit(
      { "echo/module.wat": `${await readFile(wat, "utf8")}\n;; v2\n` },
      "echo v2",
    );
    const reconciled = await edgectl(["reconcile", "acme", "--wait"]);
    t.is(reconciled.code, 0, show(reconciled));
    t.regex(reconciled.stdout, /^update\s+echo\s+v1 → v2\s+source changed$/m);

    const r = await edgectl(["rollback", "echo", "--project", "acme"]);
    t.is(r.code, 0, show(r));
    t.regex(r.stdout, /^acme\/echo pinned to v1 \(was v2\)$/m);
    t.regex(r.stdout, new RegExp(`^ {2}git revert ${sha2}$`, "m"));
    const audit = JSON.parse(
      (await edgectl(["audit", "--function", "echo", "--limit", "1", "--json"])).stdout,
    ) as {
      audit: { action: string; trigger: string }[];
    };
    t.like(audit.audit[0], { action: "pin", trigger: "rollback" });

    const tooFar = await edgectl(["rollback", "echo", "--project", "acme", "--to", "9"]);
    t.not(tooFar.code, 0, show(tooFar));
    t.regex(tooFar.stderr, /^edgectl: EDGE_ERR_API_\w+: /m);
    const otherProject = await edgectl(["rollback", "echo", "--project", "nosuch"]);
    t.is(otherProject.code, 4, show(otherProject));

    const unpin = await edgectl(["rollback", "echo", "--project", "acme", "--unpin"]);
    t.is(unpin.code, 0, show(unpin));
    t.regex(unpin.stdout, /^acme\/echo unpinned \(was pinned to v1\)\necho serves v2 again/m);
    const again = await edgectl(["rollback", "echo", "--project", "acme", "--unpin", "--json"]);
    t.is(again.code, 4, show(again));
    t.regex(again.stderr, /is not pinned/);
  },
);

test("edgectl progress: on a terminal redraws the phase line in place and keeps a ✓ line per finished phase", async (t) => {
  const chunks: string[] = [];
  const stream = { isTTY: true, write: (s: string) => chunks.push(s) } as unknown as NodeJS.WriteStream;
  const progress = new Progress(stream, true);
  progress.phase("building hello");
  await new Promise((r) => setTimeout(r, 250));
  progress.phase("building hello"); // the same phase again is no change
  progress.phase("deploying generation 2");
  progress.stop("✗");
  // Every redraw starts with carriage return + erase line; split on it to read each frame.
  const out = chunks.join("");
  t.true(out.startsWith("\r\x1b[2K"));
  const frames = out.split("\r\x1b[2K").slice(1);
  t.regex(frames[0]!, /^⠋ building hello (\d+ms|\d+\.\ds)$/);
  t.true(
    frames.filter((f) => /^. building hello (\d+ms|\d+\.\ds)$/.test(f)).length >= 2,
    "redrawn while waiting",
  );
  t.true(
    frames.some((f) => /^✓ building hello (\d+ms|\d+\.\ds)\n$/.test(f)),
    out,
  );
  t.regex(frames.at(-1)!, /^✗ deploying generation 2 (\d+ms|\d+\.\ds)\n$/);

  const plain: string[] = [];
  const pipe = new Progress({ write: (s: string) => plain.push(s) } as unknown as NodeJS.WriteStream, false);
  pipe.phase("queued");
  pipe.phase("queued");
  pipe.phase("reconciling");
  pipe.stop();
  t.deepEqual(plain, ["queued\n", "reconciling\n"]);
});
