// One reconcile: its commit, plan, builds (the build log), per-POP results and audit rows.

import { api, optional } from "../api.js";
import { badge, bytes, duration, empty, facts, h, json, section, sha, table, time } from "../dom.js";

export default {
  title: "Reconciliation",
  events: ["reconciliation", "audit"],
  async load(ctx) {
    const r = await api(`/reconciliations/${encodeURIComponent(ctx.params[0])}`);
    const audit = r.commit_sha
      ? await optional(
          `/audit?project=${encodeURIComponent(r.project)}&commit=${encodeURIComponent(r.commit_sha)}&limit=500`,
          { audit: [] },
        )
      : { audit: [] };
    // Rows of this reconcile; older rows written before reconciliation ids existed match by commit.
    const rows = audit.audit.filter(
      (a) => a.reconciliation_id === r.id || (!a.reconciliation_id && a.commit_sha === r.commit_sha),
    );
    return { r, audit: rows };
  },
  render({ r, audit }) {
    document.querySelector(".page-title").textContent = `Reconciliation ${r.id.slice(0, 8)}`;
    const result = r.result ?? {};
    return h(
      "div.view",
      h("div.crumbs", h("a", { href: "#/reconciliations" }, "Reconciliations"), " / ", h("code", r.id)),
      h(
        "section.card.hero",
        h("div.hero-status", badge(r.status), h("span.hero-title", r.project), sha(r.commit_sha, 12)),
        facts([
          ["Trigger", r.trigger],
          ["Actor", r.actor],
          ["Queued", time(r.created_at)],
          ["Started", time(r.started_at)],
          ["Finished", time(r.finished_at)],
          ["Duration", duration(r.duration_ms)],
          ["Generation", result.generation ?? h("span.muted", "none (no changes applied)")],
          ["Replica", r.runner ?? h("span.muted", "—")],
          result.superseded_by && [
            "Superseded by",
            h("a", { href: `#/reconciliations/${result.superseded_by}` }, result.superseded_by.slice(0, 8)),
          ],
        ]),
        result.timings ? timings(result.timings) : null,
      ),
      r.error ? errorCard(r.error) : null,
      section("Plan", plan(r)),
      section("Build log", builds(r)),
      section("Per-POP results", pops(r)),
      section(
        `Audit rows (${audit.length})`,
        table(
          [
            { label: "When", cell: (a) => time(a.at) },
            {
              label: "Object",
              cell: (a) => h("span", h("span.muted", `${a.object_kind}/`), h("strong", a.object_id)),
            },
            { label: "Action", cell: (a) => badge(a.action) },
            { label: "Actor", cell: (a) => a.actor },
            {
              label: "Change",
              cell: (a) =>
                h(
                  "details",
                  { "data-key": `a-${a.id}` },
                  h("summary", "before / after"),
                  h("div.diff", json(a.before), json(a.after)),
                ),
            },
          ],
          audit,
          {
            testid: "audit-rows",
            empty: empty(
              r.status === "succeeded" || r.status === "failed"
                ? "This reconcile changed nothing"
                : "No audit rows yet",
              r.status === "failed"
                ? "A failed reconcile applies nothing, so it writes no audit rows."
                : null,
            ),
          },
        ),
        r.commit_sha
          ? h(
              "a.section-link",
              { href: `#/audit?project=${encodeURIComponent(r.project)}&commit=${r.commit_sha}` },
              "Open in the audit log →",
            )
          : null,
      ),
    );
  },
};

function timings(t) {
  const total = Object.values(t).reduce((a, b) => a + b, 0) || 1;
  // Stored as jsonb, which reorders keys: show the phases in the order they ran.
  const order = ["checkout", "manifests", "plan", "build"];
  const rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
  return h(
    "div.timings",
    Object.entries(t)
      .sort((a, b) => rank(a[0]) - rank(b[0]))
      .map(([phase, ms]) =>
        h(
          "div.timing",
          { title: `${phase}: ${ms} ms` },
          h("span.timing-label", phase),
          h("span.timing-ms", duration(ms)),
          h("meter", { min: 0, max: total, value: ms }),
        ),
      ),
  );
}

function errorCard(e) {
  return h(
    "section.card.card-error",
    h("header.card-head", h("h2", "Error"), h("code", e.code)),
    h("p.error-message", e.message),
    e.details?.length
      ? h(
          "ol.diagnostics",
          e.details.map((d) => h("li", d.where ? h("code.where", d.where) : null, h("span", d.message))),
        )
      : null,
  );
}

function plan(r) {
  if (!r.plan) {
    return empty(
      r.status === "queued" || r.status === "running" ? "Planning…" : "No plan",
      r.status === "failed" ? "The commit failed before a plan was made." : null,
    );
  }
  return table(
    [
      { label: "Action", cell: (c) => badge(c.action) },
      { label: "Function", cell: (c) => h("strong", c.name) },
      { label: "Why", cell: (c) => c.reason },
      {
        label: "Version",
        cell: (c) =>
          c.fromVersion ? `v${c.fromVersion} → new` : c.version ? `v${c.version}` : h("span.muted", "new"),
      },
    ],
    r.plan.changes,
    { empty: empty("No changes", "The commit matches what is deployed.", "✓"), testid: "plan" },
  );
}

function builds(r) {
  const list = r.result?.builds ?? [];
  const skipped = r.result?.skipped ?? [];
  const manifests = r.result?.manifests ?? [];
  const parts = [];
  if (list.length) {
    parts.push(
      table(
        [
          { label: "Function", cell: (b) => h("strong", b.function) },
          { label: "Version", cell: (b) => h("span.version", `v${b.version}`) },
          { label: "Toolchain", cell: (b) => b.toolchain ?? "—" },
          { label: "Cache", cell: (b) => (b.cacheHit ? badge("ok", "hit") : h("span.muted", "miss")) },
          { label: "Optimized", cell: (b) => (b.optimized ? "yes" : "no") },
          { label: "Sandbox", cell: (b) => b.sandbox ?? "—" },
          { label: "Time", class: "num", cell: (b) => duration(b.ms) },
          { label: "Size", class: "num", cell: (b) => bytes(b.bytes) },
          { label: "sha256", cell: (b) => h("code.small", (b.sha256 ?? "").slice(0, 16)) },
        ],
        list,
        { testid: "builds" },
      ),
    );
  }
  if (skipped.length) {
    parts.push(
      h(
        "ul.skipped",
        skipped.map((s) =>
          h("li", badge("skipped"), h("strong", s.function), h("span.muted", ` ${s.code}: ${s.message}`)),
        ),
      ),
    );
  }
  if (manifests.length) {
    parts.push(
      h(
        "p.muted.small",
        "Manifests read: ",
        manifests
          .map((m) => h("code", typeof m === "string" ? m : JSON.stringify(m)))
          .flatMap((c, i) => (i ? [", ", c] : [c])),
      ),
    );
  }
  if (r.error?.details?.length && !list.length) {
    parts.push(h("p.muted.small", "Build and validation output is listed under Error above."));
  }
  return parts.length
    ? h("div", parts)
    : empty(
        r.status === "failed" ? "Nothing was built" : "Nothing to build",
        r.plan ? "No function's source or settings changed." : null,
      );
}

function pops(r) {
  const o = r.outcome;
  if (!o) {
    if (r.status === "succeeded" && r.result?.generation)
      return empty("Waiting for runners to acknowledge…", null, "…");
    return empty(
      "Nothing was rolled out",
      r.status === "succeeded" ? "This reconcile made no change runners needed." : null,
    );
  }
  if (!o.pops?.length) return empty("No runner was online to receive this generation");
  return h(
    "div",
    h("p.muted.small", `Generation ${o.generation}: the last ack came after ${duration(o.propagationMs)}.`),
    h(
      "div.pop-results",
      o.pops.map((p) =>
        h(
          "div.pop-result",
          h("div.pop-result-head", h("strong", p.pop), badge(p.state)),
          h("div.muted.small", p.description),
          h(
            "ul.pop-nodes",
            p.nodes.map((n) =>
              h(
                "li",
                h("span", n.node),
                n.acked ? badge("ok", "acked") : badge("pending", "no ack"),
                n.failures?.map((f) => h("div.text-bad.small", `${f.status}: ${f.message}`)),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}
