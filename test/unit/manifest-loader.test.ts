import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import { EdgeError } from "../../lib/errors.ts";
import { hostAllowed, loadManifests, manifestLimits } from "../../schema/index.ts";
import { tempDir } from "../helpers/tmp.ts";

const PROJECT = `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec: { domains: [acme.test] }
`;
const fnDoc = (name: string, extra = "", host = `${name}.acme.test`, srcPath = "./src") => `---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: ${name} }
spec:
  source: { path: ${srcPath}, language: assemblyscript }
  routes:
    - { host: ${host}, path: /* }
${extra}`;

async function repo(files: Record<string, string>): Promise<{ dir: string; remove: () => Promise<void> }> {
  const tmp = await tempDir("edgeplane-manifests-");
  await mkdir(path.join(tmp.dir, "src"));
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(tmp.dir, rel)), { recursive: true });
    await writeFile(path.join(tmp.dir, rel), content);
  }
  return tmp;
}

async function problems(files: Record<string, string>): Promise<{ code: string; list: string[] }> {
  const r = await repo(files);
  try {
    await loadManifests(r.dir);
    return { code: "ok", list: [] };
  } catch (err) {
    if (!(err instanceof EdgeError)) throw err;
    return { code: err.code, list: (err.details ?? []).map((d) => `${d.where}: ${d.message}`) };
  } finally {
    await r.remove();
  }
}

test("manifest: a valid repository loads with defaults applied and functions sorted by name", async (t) => {
  const r = await repo({
    "edge.yaml": PROJECT + fnDoc("zeta"),
    "more/a.edge.yaml": fnDoc("alpha", "", "alpha.acme.test", "../src"),
  });
  t.teardown(r.remove);
  const set = await loadManifests(r.dir);
  t.deepEqual(set.files, ["edge.yaml", "more/a.edge.yaml"]);
  t.deepEqual(
    set.functions.map((f) => [f.manifest.metadata.name, f.sourceDir]),
    [
      ["alpha", "src"],
      ["zeta", "src"],
    ],
  );
  t.deepEqual(set.functions[1]!.manifest.spec.limits, {
    memoryPages: 16,
    maxExecutionMs: 50,
    maxRequestBytes: 1048576,
    maxInstances: 32,
  });
  t.is(set.functions[1]!.manifest.spec.abi, "edge-v1");
  t.is(set.functions[1]!.manifest.spec.routes[0]!.priority, 0);
});

test("manifest: reports every schema problem with file:line:col, not just the first", async (t) => {
  const p = await problems({
    "edge.yaml": `${PROJECT}${fnDoc("a", "  limits: { memoryPages: 0, colour: red }\n  runtime: jit\n")}`,
  });
  t.is(p.code, "EDGE_ERR_MANIFEST_SCHEMA");
  // Lines 13-14 of the file: "  limits: { memoryPages: 0, colour: red }" and "  runtime: jit".
  t.deepEqual(p.list.sort(), [
    "edge.yaml:13:26: spec.limits.memoryPages: must be >= 1",
    'edge.yaml:13:29: spec.limits: unknown field "colour"',
    'edge.yaml:14:12: spec.runtime: must be one of "wasm", "wasm-aot"',
  ]);
});

test("manifest: a YAML syntax error names its line", async (t) => {
  const p = await problems({ "edge.yaml": `${PROJECT}---\nkind: [Function\n` });
  t.is(p.code, "EDGE_ERR_MANIFEST_SYNTAX");
  t.regex(p.list[0]!, /^edge\.yaml:\d+:\d+: /);
});

test("manifest: a repository without manifests is an error", async (t) => {
  const p = await problems({ "README.md": "nothing here" });
  t.is(p.code, "EDGE_ERR_MANIFEST_NOT_FOUND");
});

test("manifest: rejects duplicate function names, naming where the first one is", async (t) => {
  const p = await problems({ "edge.yaml": PROJECT + fnDoc("a") + fnDoc("a", "", "b.acme.test") });
  t.is(p.code, "EDGE_ERR_MANIFEST_INVALID");
  t.deepEqual(p.list, ['edge.yaml:16:19: duplicate function name "a"; first defined at edge.yaml:6:1']);
});

test("manifest: rejects a second Project document", async (t) => {
  const p = await problems({ "edge.yaml": `${PROJECT}---\n${PROJECT}` });
  t.regex(p.list[0]!, /edge\.yaml:6:1: a second Project document; the first is at edge\.yaml:1:1/);
});

test("manifest: rejects source paths that leave the repository", async (t) => {
  const p = await problems({
    "edge.yaml":
      PROJECT + fnDoc("up", "", "up.acme.test", "../outside") + fnDoc("abs", "", "abs.acme.test", "/etc"),
  });
  t.is(p.list.length, 2);
  t.regex(p.list.join("\n"), /"\.\.\/outside" points outside the repository/);
  t.regex(p.list.join("\n"), /"\/etc" must be relative/);
});

test("manifest: rejects a source path that leaves the repository through a symlink", async (t) => {
  const r = await repo({ "edge.yaml": PROJECT + fnDoc("link", "", "link.acme.test", "./escape") });
  t.teardown(r.remove);
  await symlink("/etc", path.join(r.dir, "escape"));
  const err = await t.throwsAsync(loadManifests(r.dir), { instanceOf: EdgeError });
  t.regex(err!.details![0]!.message, /outside the repository through a symlink/);
});

test("manifest: rejects hosts outside the project's domains", async (t) => {
  const p = await problems({ "edge.yaml": PROJECT + fnDoc("a", "", "evil.example.org") });
  t.deepEqual(p.list, [
    'edge.yaml:12:15: spec.routes.0.host: "evil.example.org" is outside the project\'s domains (acme.test)',
  ]);
});

test("manifest: rejects two functions claiming the same route", async (t) => {
  const p = await problems({
    "edge.yaml": PROJECT + fnDoc("a", "", "x.acme.test") + fnDoc("b", "", "x.acme.test"),
  });
  t.is(p.list.length, 1);
  t.regex(p.list[0]!, /route x\.acme\.test\/\* \(priority 0\) of "b" conflicts with the same route of "a"/);
});

test("manifest: bounds YAML alias expansion (billion laughs)", async (t) => {
  const lol = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    const cur = String.fromCharCode(97 + i);
    lol.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(", ")}]`);
  }
  const p = await problems({ "edge.yaml": `${PROJECT}---\n${lol.join("\n")}\n` });
  t.is(p.code, "EDGE_ERR_MANIFEST_SYNTAX");
  t.regex(p.list[0]!, /alias/i);
});

test("manifest: refuses an oversize file without parsing it", async (t) => {
  const big = `${PROJECT}# ${"x".repeat(manifestLimits.MAX_MANIFEST_BYTES)}\n`;
  const p = await problems({ "edge.yaml": big });
  t.regex(p.list[0]!, /edge\.yaml:1:1: file is \d+ bytes; the limit is 1048576/);
});

test("manifest: hostAllowed accepts the domain, its subdomains and wildcards under it, nothing else", (t) => {
  t.true(hostAllowed("acme.test", ["acme.test"]));
  t.true(hostAllowed("a.b.acme.test", ["acme.test"]));
  t.true(hostAllowed("*.acme.test", ["acme.test"]));
  t.false(hostAllowed("evilacme.test", ["acme.test"]));
  t.false(hostAllowed("acme.test.evil", ["acme.test"]));
});
