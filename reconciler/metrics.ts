// The control plane's Prometheus metrics (names from DESIGN.md), in a registry of its own so
// that several control planes in one process (tests) do not share counters. Served at /metrics.

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Db } from "./db.ts";

export interface ControlPlaneMetrics {
  registry: Registry;
  reconcileTotal: Counter<"result">;
  reconcileDuration: Histogram;
  buildDuration: Histogram;
  propagation: Histogram;
  webhookDeliveries: Counter<"event" | "result">;
}

export function createMetrics(db: Db): ControlPlaneMetrics {
  const registry = new Registry();
  const seconds = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
  const metrics: ControlPlaneMetrics = {
    registry,
    reconcileTotal: new Counter({
      name: "edgeplane_reconcile_total",
      help: "Reconciles finished, by result (succeeded, failed, superseded).",
      labelNames: ["result"],
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: "edgeplane_reconcile_duration_seconds",
      help: "Time from claiming a reconcile to its commit or failure.",
      buckets: seconds,
      registers: [registry],
    }),
    buildDuration: new Histogram({
      name: "edgeplane_build_duration_seconds",
      help: "Time to build and validate one function.",
      buckets: seconds,
      registers: [registry],
    }),
    propagation: new Histogram({
      name: "edgeplane_deploy_propagation_seconds",
      help: "Time from the commit being received (webhook, poll or API) to every target runner acking it.",
      buckets: seconds,
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: "edgeplane_webhook_deliveries_total",
      help: "Webhook deliveries received, by event and what came of them.",
      labelNames: ["event", "result"],
      registers: [registry],
    }),
  };
  new Gauge({
    name: "edgeplane_nodes",
    help: "Runners known to the control plane, by status.",
    labelNames: ["status"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const status of ["online", "degraded", "offline"]) this.set({ status }, 0);
      const rows = await db.query<{ status: string; n: number }>(
        "SELECT status, count(*)::int AS n FROM nodes GROUP BY status",
      );
      for (const r of rows) this.set({ status: r.status }, r.n);
    },
  });
  return metrics;
}
