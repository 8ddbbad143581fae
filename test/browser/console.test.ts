// The web console in a real browser (Debian's Chromium driven by playwright-core) against a
// real control plane: PostgreSQL in a fresh schema, a real git repository pushed to through
// signed webhooks, and a runner over gRPC. Plus the static serving contract (types, caching).

import { existsSync } from "node:fs";
import path from "node:path";
import test from "ava";
import { chromium } from "playwright-core";
import { createRunner } from "../../edge-runner/index.ts";
import { createToken, revokeToken } from "../../reconciler/auth.ts";
import { createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { createTestRepo } from "../helpers/git.ts";
import { request } from "../helpers/http.ts";
import { quietLogger } from "../helpers/runner.ts";
import { tempDir } from "../helpers/tmp.ts";
import { pushCommit } from "../helpers/webhook.ts";

const CHROMIUM = process.env.EDGE_TEST_CHROMIUM ?? "/usr/bin/chromium";
const SECRET = "console-webhook-secret";

const projectDoc = `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: acme }
spec:
  domains: [acme.test]
`;
const functionDoc = `---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: hello }
spec:
  source: { path: ./hello, language: assemblyscript }
  routes:
    - { host: hello.acme.test, path: /* }
`;

async function startStack(t: import("ava").ExecutionContext) {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  const repo = await createTestRepo(tmp.dir);
  const cp = await createControlPlane(
    {
      dataDir: path.join(tmp.dir, "cp"),
      databaseUrl: DATABASE_URL,
      databaseSchema: schema,
      httpPort: 0,
      grpcPort: 0,
      projects: [{ name: "acme", repo: repo.origin, fullName: "acme/site", webhookSecret: SECRET }],
    },
    quietLogger,
  );
  await cp.start();
  const runner = createRunner({
    nodeId: "console-1",
    pop: "test-1",
    labels: { region: "test" },
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir: path.join(tmp.dir, "runner-cache"),
    control: { address: `127.0.0.1:${cp.grpcPort}`, insecure: true },
    reconnectMinDelay: "50ms",
    heartbeatInterval: "1s",
    logger: quietLogger,
  });
  await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await cp.stop();
    await drop();
    await tmp.remove();
  });
  return { cp, repo };
}

test("console: serves its files with content types, gzip, an ETag and hashed immutable asset paths", async (t) => {
  const { cp } = await startStack(t);
  const index = await fetch(`${cp.url}/`);
  t.is(index.status, 200);
  t.is(index.headers.get("content-type"), "text/html; charset=utf-8");
  t.is(index.headers.get("cache-control"), "no-cache");
  t.regex(index.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  const etag = index.headers.get("etag")!;
  t.truthy(etag);
  const html = await index.text();
  const script = /<script type="module" src="(\/console\/[0-9a-f]{12}\/app\.js)"><\/script>/.exec(html)?.[1];
  t.truthy(script, html);
  t.regex(html, /<link rel="modulepreload" href="\/console\/[0-9a-f]{12}\/views\/audit\.js">/);

  // Revalidation: the same ETag answers 304 with no body. (Not through fetch(), which adds
  // Cache-Control: no-cache to a conditional request, as the Fetch standard says.)
  const again = await request(cp.httpPort, "127.0.0.1", "/", { headers: { "if-none-match": etag } });
  t.is(again.status, 304);
  t.is(again.text, "");

  const js = await fetch(`${cp.url}${script}`);
  t.is(js.status, 200);
  t.is(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  t.is(js.headers.get("cache-control"), "public, max-age=31536000, immutable");
  t.is(js.headers.get("content-encoding"), "gzip"); // fetch asks for gzip and unzips
  t.regex(await js.text(), /connectEvents/);
  const css = await fetch(`${cp.url}${script!.replace("app.js", "style.css")}`);
  t.is(css.headers.get("content-type"), "text/css; charset=utf-8");
  // An unknown file is the API's ordinary 404.
  const missing = await fetch(`${cp.url}/console/nope.js`);
  t.is(missing.status, 404);
  t.is(((await missing.json()) as { error: { code: string } }).error.code, "EDGE_ERR_API_NOT_FOUND");
});

test("console: log in with a token, watch a pushed function appear live, follow its reconcile to the audit rows", async (t) => {
  if (!existsSync(CHROMIUM)) return t.fail(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  const { cp, repo } = await startStack(t);
  const admin = await createToken(cp.db, { admin: true, name: "console-test" });

  // A first commit with the Project only: the function list starts empty.
  const sha0 = await repo.commit({ "edge.yaml": projectDoc }, "project");
  t.is((await cp.reconciler.wait(await pushCommit(cp.url, sha0, "acme/site", SECRET))).status, "succeeded");

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));

  const started = Date.now();
  await page.goto(`${cp.url}/#/functions`);
  await page.locator("#token").waitFor();
  t.log(`login page ready in ${Date.now() - started} ms`);

  // A wrong token is refused on the login page.
  await page.fill("#token", `edp_${"x".repeat(43)}`);
  await page.click("button[type=submit]");
  await page.getByText("That token is unknown or has been revoked.").waitFor();
  t.is(await page.locator(".shell").count(), 0);

  // The right one opens the console where the URL pointed.
  await page.fill("#token", admin.token);
  await page.click("button[type=submit]");
  await page.locator(".page-title", { hasText: "Functions" }).waitFor();
  await page.getByText("No functions deployed").waitFor();
  await page.locator(".live[data-state=live]").waitFor();

  // Push a function. The page is not reloaded (a marker on window survives only if it is not),
  // and while the stream is live the console does not poll for 5 minutes: only the event can
  // bring the function onto the page within this test's time.
  await page.evaluate(() => {
    (window as unknown as { marker: number }).marker = 42;
  });
  await repo.copyIn(path.resolve("example-repo/hello"), "hello");
  const sha1 = await repo.commit({ "edge.yaml": projectDoc + functionDoc }, "add hello");
  const recId = await pushCommit(cp.url, sha1, "acme/site", SECRET);
  const row = page.locator("table[data-testid=functions] tbody tr", { hasText: "hello" });
  await row.waitFor({ timeout: 30_000 });
  t.regex((await row.textContent()) ?? "", /v1/);
  t.regex((await row.textContent()) ?? "", /hello\.acme\.test/);
  // Where it runs: the runner's ack arrives as a node event and the POP shows up.
  await row.getByText("test-1 · 1/1").waitFor({ timeout: 30_000 });
  t.is(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42);

  // Follow the reconcile: the list, its page (plan, build log, per-POP result), its audit rows.
  await page.click("a.nav-item[data-path='/reconciliations']");
  const recRow = page.locator("table[data-testid=reconciliations] tbody tr", { hasText: sha1.slice(0, 7) });
  await recRow.waitFor();
  t.regex((await recRow.textContent()) ?? "", /Succeeded/i);
  await recRow.click();
  await page.waitForURL(`**/#/reconciliations/${recId}`);
  await page.locator("table[data-testid=plan] tbody tr", { hasText: "hello" }).waitFor();
  await page.locator("table[data-testid=builds] tbody tr", { hasText: "assemblyscript" }).waitFor();
  await page.locator(".pop-result", { hasText: "test-1" }).waitFor({ timeout: 30_000 });
  const auditRow = page.locator("table[data-testid=audit-rows] tbody tr", { hasText: "hello" });
  await auditRow.waitFor();
  t.regex((await auditRow.textContent()) ?? "", /create/i);

  await page.getByText("Open in the audit log →").click();
  await page.waitForURL(`**/#/audit?project=acme&commit=${sha1}`);
  const logRows = page.locator("table[data-testid=audit] tbody tr");
  await logRows.first().waitFor();
  t.is(await logRows.count(), 1);
  t.regex((await logRows.first().textContent()) ?? "", /function\/hello[\s\S]*create[\s\S]*github:dev/i);
  t.is(await page.inputValue("input[name=commit]"), sha1);

  // A revoked token sends the operator back to the login page on the next request.
  await revokeToken(cp.db, admin.id);
  await page.click("a.nav-item[data-path='/nodes']");
  await page.getByText("Your session has ended").waitFor();
  t.is(await page.evaluate(() => sessionStorage.getItem("edgeplane.token")), null);

  t.deepEqual(errors, []);
});
