// Nodes: every runner with its POP, labels, status and last heartbeat, grouped by POP.

import { api, optional } from "../api.js";
import { badge, empty, h, section, table, time } from "../dom.js";

export default {
  title: "Nodes",
  events: ["node"],
  async load() {
    const [nodes, inventory] = await Promise.all([api("/nodes"), optional("/inventory", { inventory: [] })]);
    return { nodes: nodes.nodes, inventory: inventory.inventory };
  },
  render(d) {
    const nodes = [...d.nodes].sort((a, b) => a.pop_id.localeCompare(b.pop_id) || a.id.localeCompare(b.id));
    const pops = new Map();
    for (const n of nodes) {
      const p = pops.get(n.pop_id) ?? { online: 0, total: 0 };
      p.total++;
      if (n.status === "online") p.online++;
      pops.set(n.pop_id, p);
    }
    const held = (n) => d.inventory.filter((i) => i.node_id === n.id);
    return h(
      "div.view",
      nodes.length
        ? h(
            "div.pops",
            [...pops].map(([pop, p]) =>
              h(
                `div.pop${p.online < p.total ? ".pop-warn" : ""}${p.online === 0 ? ".pop-bad" : ""}`,
                h("div.pop-name", pop),
                h("div.pop-count", `${p.online}/${p.total} online`),
              ),
            ),
          )
        : null,
      section(
        `Runners (${nodes.length})`,
        table(
          [
            {
              label: "Node",
              cell: (n) =>
                h("div.stack", h("strong", n.id), h("span.muted.small", n.http_address || n.ip || "")),
            },
            { label: "POP", cell: (n) => h("span.chip.chip-pop", n.pop_id) },
            { label: "Labels", cell: (n) => labels(n.metadata?.labels) },
            { label: "Status", cell: (n) => badge(n.status) },
            { label: "Last heartbeat", cell: (n) => heartbeat(n) },
            { label: "Generation", class: "num", cell: (n) => String(n.acked_generation ?? 0) },
            {
              label: "Functions",
              class: "num",
              cell: (n) => {
                const rows = held(n);
                const bad = rows.filter((r) => r.status !== "OK").length;
                return h(
                  "span",
                  {
                    title: rows
                      .map((r) => `${r.project}/${r.function_name} v${r.version}: ${r.status}`)
                      .join("\n"),
                  },
                  String(rows.length),
                  bad ? h("span.text-bad", ` (${bad} failed)`) : null,
                );
              },
            },
          ],
          nodes,
          {
            empty: empty(
              "No runners registered",
              "Start one with edgectl runner --control <host:port> --pop <pop>; it appears here when it connects.",
              "▣",
            ),
            rowClass: (n) => (n.status === "offline" ? "row-dim" : ""),
            testid: "nodes",
          },
        ),
      ),
    );
  },
};

function labels(l) {
  const entries = Object.entries(l ?? {});
  if (entries.length === 0) return h("span.muted", "none");
  return h(
    "span.chips",
    entries.map(([k, v]) => h("span.chip.chip-label", h("span.muted", `${k}=`), v)),
  );
}

function heartbeat(n) {
  if (!n.last_heartbeat) return h("span.muted", "never");
  const age = Date.now() - Date.parse(n.last_heartbeat);
  // Runners beat every 30 s; a node is marked offline after 2 minutes of silence.
  return h(
    "span.inline",
    time(n.last_heartbeat),
    age > 65_000 && n.status !== "offline" ? h("span.text-warn", "late") : null,
  );
}
