// What a reconcile does when a function's toolchain is not installed: by default the commit
// fails with a clear error and nothing applies; a project that opts in (edgectl serve does)
// skips that function, applies the rest, and records the skip.

import { cp, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import test from "ava";
import { createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { tempDir } from "../helpers/tmp.ts";

const MANIFEST = `apiVersion: edgeplane.dev/v1
kind: Project
metadata: { name: tools }
spec: { domains: [tools.test] }
---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: hello }
spec:
  source: { path: ./hello, language: assemblyscript }
  routes: [{ host: hello.tools.test, path: /* }]
---
apiVersion: edgeplane.dev/v1
kind: Function
metadata: { name: rusty }
spec:
  source: { path: ./rusty, language: rust }
  routes: [{ host: rusty.tools.test, path: /* }]
`;

for (const policy of ["fail", "skip"] as const) {
  test(`reconcile: a missing toolchain with missingToolchain ${policy}`, async (t) => {
    const tmp = await tempDir();
    const { schema, drop } = await freshSchema();
    const repo = path.join(tmp.dir, "repo");
    await cp("example-repo/hello", path.join(repo, "hello"), { recursive: true });
    await mkdir(path.join(repo, "rusty"), { recursive: true });
    await writeFile(path.join(repo, "rusty", "lib.rs"), "#![no_std]\n");
    await writeFile(path.join(repo, "edge.yaml"), MANIFEST);
    const plane = await createControlPlane({
      dataDir: path.join(tmp.dir, "cp"),
      databaseUrl: DATABASE_URL,
      databaseSchema: schema,
      httpPort: 0,
      grpcPort: 0,
      pollInterval: "0",
      builder: { toolchains: { rustc: path.join(tmp.dir, "no-such-rustc") } },
      projects: [{ name: "tools", repo, source: "directory", missingToolchain: policy }],
    });
    await plane.start();
    t.teardown(async () => {
      await plane.stop();
      await drop();
      await tmp.remove();
    });
    const row = await plane.reconciler.wait(
      await plane.reconciler.enqueue("tools", { commit: null, trigger: "api", actor: "test" }),
    );
    const functions = (
      await plane.db.query<{ name: string }>("SELECT name FROM functions ORDER BY name")
    ).map((f) => f.name);
    if (policy === "fail") {
      t.is(row.status, "failed");
      t.is(row.error?.code, "EDGE_ERR_BUILD_TOOLCHAIN_MISSING");
      t.regex(row.error!.message, /function "rusty": toolchain rustc/);
      t.deepEqual(functions, []);
    } else {
      t.is(row.status, "succeeded");
      t.deepEqual(functions, ["hello"]);
      const skipped = (row.result as { skipped: { function: string; code: string }[] }).skipped;
      t.deepEqual(
        skipped.map((s) => [s.function, s.code]),
        [["rusty", "EDGE_ERR_BUILD_TOOLCHAIN_MISSING"]],
      );
      t.deepEqual(
        (row.plan as { changes: { name: string }[] }).changes.map((c) => c.name),
        ["hello"],
      );
    }
  });
}
