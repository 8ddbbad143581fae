// DOM helpers shared by the views: element construction (text is always set as text, never
// parsed as HTML), status badges, relative times, tables and empty states.

/**
 * h("a.link", { href: "#/x", onclick }, "text", child, [more]) → an element.
 * Attributes starting with "on" become listeners; null/false children and attributes are skipped.
 */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = [el.className, v].filter(Boolean).join(" ");
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

const TONES = {
  succeeded: "ok",
  completed: "ok",
  success: "ok",
  online: "ok",
  active: "ok",
  ok: "ok",
  create: "ok",
  running: "run",
  in_progress: "run",
  queued: "wait",
  pending: "wait",
  update: "info",
  routes: "info",
  resync: "info",
  degraded: "warn",
  superseded: "mute",
  removed: "mute",
  closed: "mute",
  expired: "mute",
  failed: "bad",
  failure: "bad",
  offline: "bad",
  delete: "bad",
};

/** A status pill; its colour comes from the status word (unknown words are neutral). */
export function badge(status, label = status) {
  const word = String(status ?? "unknown").toLowerCase();
  const tone = TONES[word] ?? (/error|fail|mismatch|invalid/.test(word) ? "bad" : "mute");
  return h(
    `span.badge.tone-${tone}`,
    { title: String(status ?? "") },
    String(label ?? "unknown").replaceAll("_", " "),
  );
}

export function chip(text, attrs) {
  return h("span.chip", attrs ?? null, text);
}

const UNITS = [
  ["year", 365 * 86400],
  ["month", 30 * 86400],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];
const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto", style: "short" });

export function relative(iso, now = Date.now()) {
  if (!iso) return "never";
  const s = Math.round((Date.parse(iso) - now) / 1000);
  if (Math.abs(s) < 10) return "just now";
  for (const [unit, size] of UNITS) if (Math.abs(s) >= size) return rtf.format(Math.round(s / size), unit);
  return rtf.format(s, "second");
}

const absolute = new Intl.DateTimeFormat("en-GB", {
  dateStyle: "medium",
  timeStyle: "medium",
});

/** A <time> that reads "3 min ago", shows the exact time on hover, and keeps itself current. */
export function time(iso) {
  if (!iso) return h("span.muted", "never");
  return h("time.rel", { datetime: iso, title: absolute.format(new Date(iso)) }, relative(iso));
}

/** Refreshes every relative time on the page (called on a timer by the app). */
export function tickTimes(root = document) {
  const now = Date.now();
  for (const t of root.querySelectorAll("time.rel")) t.textContent = relative(t.dateTime, now);
}

export function sha(commit, n = 7) {
  if (!commit) return h("span.muted", "—");
  return h("code.sha", { title: commit }, commit.slice(0, n));
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/**
 * A table. columns: [{ label, cell(row) → node|string, class? }]. onRow(row) makes rows links.
 * With no rows it renders the empty state instead.
 */
export function table(columns, rows, { empty: emptyState, href, rowClass, testid } = {}) {
  if (rows.length === 0) return emptyState ?? empty("Nothing here yet");
  return h(
    "div.table-wrap",
    h(
      "table",
      { "data-testid": testid ?? null },
      h(
        "thead",
        h(
          "tr",
          columns.map((c) => h("th", { class: c.class ?? null }, c.label)),
        ),
      ),
      h(
        "tbody",
        rows.map((row) => {
          const link = href?.(row);
          const tr = h(
            "tr",
            { class: [link ? "link" : "", rowClass?.(row) ?? ""].join(" ").trim() || null },
            columns.map((c) => h("td", { class: c.class ?? null }, c.cell(row))),
          );
          if (link) {
            tr.addEventListener("click", (e) => {
              if (e.target.closest("a, button, summary, input")) return;
              location.hash = link;
            });
          }
          return tr;
        }),
      ),
    ),
  );
}

export function empty(title, hint, icon = "○") {
  return h(
    "div.empty",
    h("div.empty-icon", icon),
    h("div.empty-title", title),
    hint ? h("div.empty-hint", hint) : null,
  );
}

/** A card with a heading; `actions` go on the right of the heading. */
export function section(title, body, actions = null) {
  return h(
    "section.card",
    h("header.card-head", h("h2", title), actions ? h("div.card-actions", actions) : null),
    body,
  );
}

/** A definition list: [[label, value], …]. */
export function facts(pairs) {
  return h(
    "dl.facts",
    pairs.filter(Boolean).map(([k, v]) => h("div", h("dt", k), h("dd", v ?? h("span.muted", "—")))),
  );
}

export function json(value) {
  return h("pre.json", JSON.stringify(value, null, 2));
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}
