// Reconciliations: every reconcile, newest first.

import { api } from "../api.js";
import { empty, h, section } from "../dom.js";
import { inProject, reconciliationTable } from "./shared.js";

export default {
  title: "Reconciliations",
  events: ["reconciliation"],
  async load(ctx) {
    const q = ctx.project ? `?project=${encodeURIComponent(ctx.project)}` : "";
    return (await api(`/reconciliations${q}`)).reconciliations;
  },
  render(rows, ctx) {
    rows = rows.filter(inProject(ctx));
    return h(
      "div.view",
      section(
        `Latest ${rows.length} reconciliation${rows.length === 1 ? "" : "s"}`,
        reconciliationTable(rows, {
          empty: empty(
            "No reconciliations yet",
            "A push to a registered repository (or edgectl reconcile <project>) starts one.",
            "↻",
          ),
        }),
      ),
    );
  },
};
