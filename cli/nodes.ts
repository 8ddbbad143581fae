// edgectl nodes: the runners the control plane knows, with their POP, labels and health.

import { apiOptions, type Command, jsonOption } from "./args.ts";
import { ApiClient } from "./client.ts";
import { EXIT } from "./exit.ts";
import { ago, printJson, table } from "./table.ts";

interface NodeRow {
  id: string;
  pop_id: string;
  ip: string;
  http_address: string;
  status: string;
  last_heartbeat: string | null;
  metadata: { labels?: Record<string, string> } | null;
  acked_generation: number | string;
}

export const nodes: Command = {
  name: "nodes",
  summary: "list runners: POP, status, last heartbeat, acked generation, labels",
  usage: "[--pop POP] [--json]",
  maxPositionals: 0,
  options: {
    pop: { type: "string", arg: "POP", help: "only nodes of this POP" },
    ...jsonOption,
    ...apiOptions,
  },
  examples: ["edgectl nodes", "edgectl nodes --pop tokyo-1 --json"],
  async run(args) {
    const client = await ApiClient.from(args);
    let { nodes: rows } = await client.get<{ nodes: NodeRow[] }>("/api/v1/nodes");
    const pop = args.string("pop");
    if (pop) rows = rows.filter((n) => n.pop_id === pop);
    if (args.flag("json")) {
      printJson({ nodes: rows });
      return EXIT.ok;
    }
    if (rows.length === 0) {
      process.stdout.write("no nodes have connected\n");
      return EXIT.ok;
    }
    process.stdout.write(
      table(rows, [
        { header: "node", value: (n) => n.id },
        { header: "pop", value: (n) => n.pop_id },
        { header: "status", value: (n) => n.status },
        { header: "heartbeat", value: (n) => ago(n.last_heartbeat) },
        { header: "generation", value: (n) => n.acked_generation, align: "right" },
        { header: "address", value: (n) => n.http_address || n.ip },
        {
          header: "labels",
          value: (n) =>
            Object.entries(n.metadata?.labels ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join(","),
        },
      ]),
    );
    return EXIT.ok;
  },
};
