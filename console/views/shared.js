// Pieces several views share.

import { badge, h, sha, table, time } from "../dom.js";

/** Keeps rows of the project picked in the top bar (all rows when none is picked). */
export const inProject = (ctx) => (row) => !ctx.project || row.project === ctx.project;

export const changeCount = (r) => (r.plan?.changes ? r.plan.changes.length : null);

/** The reconciliations table used by the overview and the reconciliations page. */
export function reconciliationTable(rows, { empty, compact = false } = {}) {
  return table(
    [
      { label: "Status", cell: (r) => badge(r.status) },
      { label: "Project", cell: (r) => r.project },
      {
        label: "Commit",
        cell: (r) =>
          h("span.commit", sha(r.commit_sha), r.trigger ? h("span.muted", ` · ${r.trigger}`) : null),
      },
      { label: "Changes", class: "num", cell: (r) => changeSummary(r) },
      !compact && { label: "Actor", cell: (r) => h("span.muted", r.actor) },
      !compact && { label: "Duration", class: "num", cell: (r) => durationCell(r) },
      { label: "Queued", cell: (r) => time(r.created_at) },
    ].filter(Boolean),
    rows,
    { empty, href: (r) => `#/reconciliations/${r.id}`, testid: "reconciliations" },
  );
}

function changeSummary(r) {
  const n = changeCount(r);
  if (n === null) return h("span.muted", "—");
  if (n === 0) return h("span.muted", "no changes");
  return `${n} change${n === 1 ? "" : "s"}`;
}

function durationCell(r) {
  if (r.duration_ms === null || r.duration_ms === undefined) return h("span.muted", "—");
  return r.duration_ms < 1000 ? `${r.duration_ms} ms` : `${(r.duration_ms / 1000).toFixed(1)} s`;
}

/** "3 POPs" chips for where a function version runs, from inventory rows. */
export function placementChips(rows) {
  if (!rows || rows.length === 0) return h("span.muted", "not placed yet");
  const byPop = new Map();
  for (const r of rows) {
    const list = byPop.get(r.pop) ?? [];
    list.push(r);
    byPop.set(r.pop, list);
  }
  return h(
    "span.chips",
    [...byPop].map(([pop, list]) => {
      const bad = list.filter((r) => r.status !== "OK");
      return h(
        `span.chip.${bad.length ? "chip-bad" : "chip-ok"}`,
        {
          title: list.map((r) => `${r.node_id}: ${r.status}${r.message ? ` (${r.message})` : ""}`).join("\n"),
        },
        `${pop} · ${list.length - bad.length}/${list.length}`,
      );
    }),
  );
}
