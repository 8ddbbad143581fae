// One function: the version on screen, every version of it, its routes, and where it runs.

import { api, optional } from "../api.js";
import { badge, bytes, empty, facts, h, json, section, sha, table, time } from "../dom.js";
import { routeList } from "./functions.js";

export default {
  title: "Function",
  events: ["deployment", "reconciliation", "node", "audit"],
  async load(ctx) {
    const id = ctx.params[0];
    const fn = await api(`/functions/${encodeURIComponent(id)}`);
    const [versions, routes, inventory, nodes, audit] = await Promise.all([
      optional(`/functions/${encodeURIComponent(id)}/versions`, { versions: [] }),
      api("/routes"),
      optional("/inventory", { inventory: [] }),
      api("/nodes"),
      optional(
        `/audit?project=${encodeURIComponent(fn.project)}&function=${encodeURIComponent(fn.name)}&limit=20`,
        { audit: [] },
      ),
    ]);
    return {
      fn,
      versions: versions.versions,
      routes: routes.routes.filter((r) => r.project === fn.project && r.function_name === fn.name),
      inventory: inventory.inventory.filter((i) => i.project === fn.project && i.function_name === fn.name),
      nodes: nodes.nodes,
      audit: audit.audit,
    };
  },
  render(d) {
    const { fn } = d;
    document.querySelector(".page-title").textContent = `${fn.name}`;
    const active = d.versions.find((v) => v.active);
    return h(
      "div.view",
      h(
        "div.crumbs",
        h("a", { href: "#/functions" }, "Functions"),
        " / ",
        h("span", fn.project),
        " / ",
        h("strong", fn.name),
      ),
      section(
        `Version ${fn.version}`,
        facts([
          ["Project", fn.project],
          ["Status", fn.active ? badge("active") : badge(active ? "superseded" : "inactive", "not active")],
          ["Language", `${fn.language} · ${fn.abi} · ${fn.runtime}`],
          ["Commit", sha(fn.commit_sha, 12)],
          ["sha256", h("code.small", fn.sha256)],
          ["Size", bytes(fn.size_bytes)],
          ["Limits", limits(fn)],
          ["Placement", fn.pop_selector ? h("code", fn.pop_selector) : "every POP"],
          ["Built", time(fn.created_at)],
        ]),
      ),
      h(
        "div.grid-2",
        section(
          "Routes",
          d.routes.length
            ? routeList(d.routes, 50)
            : empty("No routes", "Routes come from the function's manifest."),
        ),
        section("Where it runs", placement(d)),
      ),
      section(
        "Versions",
        table(
          [
            {
              label: "Version",
              cell: (v) =>
                h(
                  "span.inline",
                  h("span.version", `v${v.version}`),
                  v.id === fn.id ? h("span.muted.small", "(shown)") : null,
                ),
            },
            {
              label: "State",
              cell: (v) =>
                v.active
                  ? badge("active")
                  : v.preview
                    ? badge("preview", "preview")
                    : badge(v.deployment_status ?? "superseded"),
            },
            { label: "Commit", cell: (v) => sha(v.commit_sha) },
            { label: "sha256", cell: (v) => h("code.small", v.sha256.slice(0, 16)) },
            { label: "Size", class: "num", cell: (v) => bytes(v.size_bytes) },
            { label: "Built", cell: (v) => time(v.created_at) },
          ],
          d.versions,
          {
            href: (v) => `#/functions/${v.id}`,
            testid: "versions",
            empty: empty("No version history available"),
          },
        ),
      ),
      section(
        "Audit trail",
        table(
          [
            { label: "When", cell: (a) => time(a.at) },
            { label: "Action", cell: (a) => badge(a.action) },
            { label: "Actor", cell: (a) => a.actor },
            { label: "Commit", cell: (a) => sha(a.commit_sha) },
            {
              label: "Change",
              cell: (a) =>
                h(
                  "details",
                  { "data-key": `audit-${a.id}` },
                  h("summary", "before / after"),
                  h("div.diff", json(a.before), json(a.after)),
                ),
            },
          ],
          d.audit,
          { empty: empty("No audit rows for this function") },
        ),
        h(
          "a.section-link",
          {
            href: `#/audit?project=${encodeURIComponent(fn.project)}&function=${encodeURIComponent(fn.name)}`,
          },
          "Open in the audit log →",
        ),
      ),
    );
  },
};

function limits(fn) {
  return h(
    "span.chips",
    h("span.chip", `${fn.memory_pages} pages (${fn.memory_pages * 64} KiB)`),
    h("span.chip", `${fn.max_execution_ms} ms`),
    fn.max_request_bytes ? h("span.chip", `${bytes(fn.max_request_bytes)} body`) : null,
    fn.max_instances ? h("span.chip", `${fn.max_instances} instances`) : null,
  );
}

function placement(d) {
  if (d.inventory.length === 0) {
    return empty(
      "No runner holds this function yet",
      d.nodes.length
        ? "Runners report what they hold when they ack a new generation."
        : "No runners are registered.",
      "▣",
    );
  }
  const node = (id) => d.nodes.find((n) => n.id === id);
  return table(
    [
      { label: "POP", cell: (i) => h("strong", i.pop) },
      {
        label: "Node",
        cell: (i) => h("span.inline", i.node_id, badge(node(i.node_id)?.status ?? i.node_status)),
      },
      { label: "Version", cell: (i) => h("span.version", `v${i.version}`) },
      {
        label: "Loaded",
        cell: (i) =>
          h(
            "span.inline",
            badge(i.status === "OK" ? "ok" : i.status, i.status),
            i.message ? h("span.muted.small", i.message) : null,
          ),
      },
      { label: "Reported", cell: (i) => time(i.updated_at) },
    ],
    d.inventory,
    { testid: "placement" },
  );
}
