// The audit log: every change of stored state, newest first, filtered by project (the top
// bar), function, commit and time range. The filters live in the URL, so a view can be shared.

import { api } from "../api.js";
import { badge, empty, h, json, section, sha, table, time } from "../dom.js";

const FILTERS = ["function", "commit", "since", "until"];

export default {
  title: "Audit log",
  events: ["audit"],
  toolbar(ctx) {
    const q = ctx.query;
    const input = (name, attrs) => h("input", { name, value: q[name] ?? "", ...attrs });
    const local = (iso) => {
      if (!iso) return "";
      const d = new Date(iso);
      if (Number.isNaN(d.getTime())) return "";
      const pad = (n) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    };
    const form = h(
      "form.filters",
      {
        onsubmit: (e) => {
          e.preventDefault();
          const f = new FormData(form);
          const params = new URLSearchParams();
          if (ctx.query.project) params.set("project", ctx.query.project);
          for (const name of FILTERS) {
            let v = String(f.get(name) ?? "").trim();
            if (!v) continue;
            if (name === "since" || name === "until") v = new Date(v).toISOString();
            params.set(name, v);
          }
          ctx.navigate(`#/audit${params.size ? `?${params}` : ""}`);
        },
      },
      h("label.filter", h("span", "Function"), input("function", { placeholder: "name or node id" })),
      h("label.filter", h("span", "Commit"), input("commit", { placeholder: "full sha", class: "mono" })),
      h(
        "label.filter",
        h("span", "Since"),
        h("input", { name: "since", type: "datetime-local", value: local(q.since) }),
      ),
      h(
        "label.filter",
        h("span", "Until"),
        h("input", { name: "until", type: "datetime-local", value: local(q.until) }),
      ),
      h("button.primary", { type: "submit" }, "Filter"),
      FILTERS.some((n) => q[n]) ? h("a.button", { href: "#/audit" }, "Clear") : null,
    );
    return form;
  },
  async load(ctx) {
    const params = new URLSearchParams({ limit: "200" });
    if (ctx.project) params.set("project", ctx.project);
    for (const name of FILTERS) if (ctx.query[name]) params.set(name, ctx.query[name]);
    return (await api(`/audit?${params}`)).audit;
  },
  render(rows, ctx) {
    const filtered = FILTERS.filter((n) => ctx.query[n]);
    return h(
      "div.view",
      section(
        filtered.length
          ? `${rows.length} matching row${rows.length === 1 ? "" : "s"}`
          : `Latest ${rows.length} rows`,
        table(
          [
            { label: "When", cell: (a) => time(a.at) },
            { label: "Project", cell: (a) => a.project ?? h("span.muted", "—") },
            {
              label: "Object",
              cell: (a) => h("span", h("span.muted", `${a.object_kind}/`), h("strong", a.object_id)),
            },
            { label: "Action", cell: (a) => badge(a.action) },
            { label: "Actor", cell: (a) => a.actor },
            { label: "Trigger", cell: (a) => h("span.chip", a.trigger) },
            {
              label: "Commit",
              cell: (a) =>
                a.commit_sha
                  ? h(
                      "a",
                      { href: `#/audit?commit=${a.commit_sha}`, title: "Only this commit" },
                      sha(a.commit_sha),
                    )
                  : sha(null),
            },
            {
              label: "Reconcile",
              cell: (a) =>
                a.reconciliation_id
                  ? h(
                      "a",
                      { href: `#/reconciliations/${a.reconciliation_id}` },
                      a.reconciliation_id.slice(0, 8),
                    )
                  : h("span.muted", "—"),
            },
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
          rows,
          {
            testid: "audit",
            empty: filtered.length
              ? empty("No rows match these filters", "Widen the time range or clear a filter.", "≡")
              : empty("The audit log is empty", "Every change of stored state is recorded here.", "≡"),
          },
        ),
      ),
    );
  },
};
