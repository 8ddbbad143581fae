// The Grafana dashboard in docs/ may only chart metrics the code exports, under the names in
// DESIGN.md: a renamed metric must not leave an empty panel behind.

import { readFile } from "node:fs/promises";
import test from "ava";
import { PgliteDb } from "../../reconciler/index.ts";
import { createMetrics } from "../../reconciler/metrics.ts";

test("dashboard: every metric the Grafana dashboard queries is exported by the control plane or the runner", async (t) => {
  const dashboard = JSON.parse(await readFile("docs/grafana-dashboard.json", "utf8")) as {
    panels: { targets: { expr: string }[] }[];
  };
  const queried = new Set<string>();
  for (const p of dashboard.panels) {
    for (const target of p.targets) {
      for (const m of target.expr.matchAll(/\b(edgeplane_|wasm_|edge_|artifact_)[a-z_]+/g)) {
        queried.add(m[0].replace(/_(bucket|count|sum)$/, ""));
      }
    }
  }
  const db = new PgliteDb();
  t.teardown(() => db.close());
  const exported = new Set(
    createMetrics(db)
      .registry.getMetricsAsArray()
      .map((m) => m.name),
  );
  const runnerSource = await readFile("edge-runner/metrics.ts", "utf8");
  for (const m of runnerSource.matchAll(/name: "([a-z_]+)"/g)) exported.add(m[1]!);
  t.true(queried.size >= 14);
  for (const name of queried) t.true(exported.has(name), `${name} is charted but not exported`);
});
