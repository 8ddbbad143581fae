// Overview: the projects, the fleet at a glance, and the latest reconciles.

import { api } from "../api.js";
import { badge, empty, h, section, sha, table, time } from "../dom.js";
import { inProject, reconciliationTable } from "./shared.js";

export default {
  title: "Overview",
  events: ["reconciliation", "deployment", "node"],
  async load() {
    const [projects, reconciliations, functions, nodes] = await Promise.all([
      api("/projects"),
      api("/reconciliations"),
      api("/functions"),
      api("/nodes"),
    ]);
    return {
      projects: projects.projects,
      reconciliations: reconciliations.reconciliations,
      functions: functions.functions,
      nodes: nodes.nodes,
    };
  },
  render(d, ctx) {
    const mine = inProject(ctx);
    const projects = d.projects.filter((p) => !ctx.project || p.name === ctx.project);
    const recs = d.reconciliations.filter(mine);
    const fns = d.functions.filter(mine);
    const online = d.nodes.filter((n) => n.status === "online").length;
    const pops = new Set(d.nodes.map((n) => n.pop_id)).size;
    const day = Date.now() - 86_400_000;
    const recent = recs.filter((r) => Date.parse(r.created_at) >= day);
    const failed = recent.filter((r) => r.status === "failed").length;
    const last = (name) => d.reconciliations.find((r) => r.project === name);

    return h(
      "div.view",
      h(
        "div.stats",
        stat("Projects", projects.length, projects.map((p) => p.name).join(", ") || "none registered"),
        stat("Active functions", fns.length, `${new Set(fns.map((f) => f.project)).size} project(s)`),
        stat(
          "Nodes online",
          `${online} / ${d.nodes.length}`,
          `${pops} POP${pops === 1 ? "" : "s"}`,
          online < d.nodes.length ? "warn" : null,
        ),
        stat(
          "Reconciles, 24 h",
          recent.length,
          failed ? `${failed} failed` : "none failed",
          // Red only while a project's latest reconcile is failing; older failures are amber.
          projects.some((p) => last(p.name)?.status === "failed") ? "bad" : failed ? "warn" : null,
        ),
      ),
      section(
        "Projects",
        table(
          [
            {
              label: "Project",
              cell: (p) =>
                h("div.stack", h("strong", p.name), h("span.muted.small", p.full_name ?? p.repo_url)),
            },
            { label: "Source", cell: (p) => h("span.chip", p.source) },
            { label: "Branch", cell: (p) => h("code", p.branch) },
            { label: "Last applied commit", cell: (p) => sha(p.last_commit) },
            {
              label: "Last reconcile",
              cell: (p) => {
                const r = last(p.name);
                return r ? h("span.inline", badge(r.status), time(r.created_at)) : h("span.muted", "never");
              },
            },
            {
              label: "Functions",
              class: "num",
              cell: (p) => String(d.functions.filter((f) => f.project === p.name).length),
            },
          ],
          projects,
          {
            empty: empty(
              "No projects registered",
              "Projects come from the control plane's configuration file.",
            ),
            href: (p) => `#/functions?project=${encodeURIComponent(p.name)}`,
            testid: "projects",
          },
        ),
      ),
      section(
        "Recent reconciliations",
        reconciliationTable(recs.slice(0, 8), {
          compact: true,
          empty: empty(
            "No reconciliations yet",
            "Push to a registered repository, or run edgectl reconcile <project>.",
          ),
        }),
        h("a.section-link", { href: "#/reconciliations" }, "All reconciliations →"),
      ),
    );
  },
};

function stat(label, value, note, tone) {
  return h(
    `div.stat${tone ? `.stat-${tone}` : ""}`,
    h("div.stat-label", label),
    h("div.stat-value", String(value)),
    h("div.stat-note", note),
  );
}
