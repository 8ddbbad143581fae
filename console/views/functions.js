// Functions: every active function version, its routes, and the POPs whose runners hold it.

import { api, optional } from "../api.js";
import { badge, bytes, empty, h, section, table, time } from "../dom.js";
import { inProject, placementChips } from "./shared.js";

export default {
  title: "Functions",
  events: ["deployment", "reconciliation", "node"],
  async load() {
    const [functions, routes, inventory] = await Promise.all([
      api("/functions"),
      api("/routes"),
      optional("/inventory", { inventory: [] }),
    ]);
    return { functions: functions.functions, routes: routes.routes, inventory: inventory.inventory };
  },
  render(d, ctx) {
    const fns = d.functions.filter(inProject(ctx));
    const routesOf = (f) => d.routes.filter((r) => r.function_id === f.id);
    const heldBy = (f) => d.inventory.filter((i) => i.function_id === f.id);
    return h(
      "div.view",
      section(
        `Active functions (${fns.length})`,
        table(
          [
            {
              label: "Function",
              cell: (f) =>
                h(
                  "div.stack",
                  h("a.strong", { href: `#/functions/${f.id}` }, f.name),
                  h("span.muted.small", f.project),
                ),
            },
            { label: "Version", cell: (f) => h("span.version", `v${f.version}`) },
            {
              label: "Runtime",
              cell: (f) => h("span.chips", h("span.chip", f.language), h("span.chip", f.abi)),
            },
            { label: "Routes", cell: (f) => routeList(routesOf(f)) },
            { label: "Runs on", cell: (f) => placementChips(heldBy(f)) },
            { label: "Deployment", cell: (f) => badge(f.deployment_status) },
            { label: "Size", class: "num", cell: (f) => bytes(f.size_bytes) },
            { label: "Built", cell: (f) => time(f.created_at) },
          ],
          fns,
          {
            empty: empty(
              "No functions deployed",
              ctx.project
                ? `Project ${ctx.project} has no active functions. Add a Function to its edge.yaml and push.`
                : "Add a Function document to a project's edge.yaml and push: it appears here as soon as it is applied.",
              "λ",
            ),
            href: (f) => `#/functions/${f.id}`,
            testid: "functions",
          },
        ),
      ),
    );
  },
};

export function routeList(routes, max = 3) {
  if (routes.length === 0) return h("span.muted", "no routes");
  return h(
    "div.routes",
    routes
      .slice(0, max)
      .map((r) =>
        h(
          "div.route",
          h("span.host", r.host),
          h("span.path", r.path),
          r.methods ? h("span.methods", r.methods.replaceAll(",", " ")) : null,
        ),
      ),
    routes.length > max ? h("div.muted.small", `+${routes.length - max} more`) : null,
  );
}
