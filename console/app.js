// The console's shell: login, navigation (hash routes, so any URL works with no server-side
// routing), the project filter, and live updates — each server-sent event that concerns the
// page on screen refetches it, debounced so a burst of changes is one refresh.

import { AuthError, api, clearToken, connectEvents, getToken, setToken } from "./api.js";
import { empty, h, tickTimes } from "./dom.js";
import audit from "./views/audit.js";
import functionDetail from "./views/function.js";
import functions from "./views/functions.js";
import nodes from "./views/nodes.js";
import overview from "./views/overview.js";
import previews from "./views/previews.js";
import reconciliation from "./views/reconciliation.js";
import reconciliations from "./views/reconciliations.js";

const ROUTES = [
  [/^\/?$/, overview],
  [/^\/functions$/, functions],
  [/^\/functions\/([^/]+)$/, functionDetail],
  [/^\/nodes$/, nodes],
  [/^\/reconciliations$/, reconciliations],
  [/^\/reconciliations\/([^/]+)$/, reconciliation],
  [/^\/previews$/, previews],
  [/^\/audit$/, audit],
];

const NAV = [
  ["/", "Overview", "◎"],
  ["/functions", "Functions", "λ"],
  ["/nodes", "Nodes", "▣"],
  ["/reconciliations", "Reconciliations", "↻"],
  ["/previews", "Previews", "⎇"],
  ["/audit", "Audit log", "≡"],
];

const PROJECT_KEY = "edgeplane.project";
const root = document.getElementById("app");

const state = {
  projects: [],
  project: localStorage.getItem(PROJECT_KEY) ?? "",
  live: "connecting",
  view: null,
  ctx: null,
  loading: null,
  disconnect: null,
  shell: null,
};

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(qs)) };
}

// ---- login ---------------------------------------------------------------------------------

function showLogin(message) {
  state.disconnect?.();
  state.disconnect = null;
  state.shell = null;
  const input = h("input", {
    id: "token",
    type: "password",
    name: "token",
    placeholder: "edp_…",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    autofocus: true,
  });
  const remember = h("input", { type: "checkbox", name: "remember" });
  const error = h("p.login-error", { role: "alert" }, message ?? "");
  const button = h("button.primary", { type: "submit" }, "Sign in");
  const form = h(
    "form.login-card",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        const token = input.value.trim();
        button.disabled = true;
        error.textContent = "";
        try {
          await api("/projects", { token });
          setToken(token, remember.checked);
          await start();
        } catch (err) {
          error.textContent =
            err instanceof AuthError
              ? "That token is unknown or has been revoked."
              : `Could not sign in: ${err.message}`;
          button.disabled = false;
          input.select();
        }
      },
    },
    h("div.brand.brand-large", h("span.logo"), "edgeplane"),
    h("h1", "Sign in to the console"),
    h(
      "p.muted",
      "Paste an API token. A project token shows that project; an admin token shows every project.",
    ),
    h("label.field", h("span", "API token"), input),
    h("label.check", remember, h("span", "Remember on this device")),
    error,
    button,
    h(
      "p.login-hint",
      "No token? Run ",
      h("code", "edgectl tokens create --project <name>"),
      ", or use the admin token the control plane wrote when it first started.",
    ),
  );
  root.className = "login";
  root.replaceChildren(form);
  input.focus();
}

// ---- shell ---------------------------------------------------------------------------------

function buildShell() {
  const nav = h(
    "nav.nav",
    NAV.map(([path, label, icon]) =>
      h("a.nav-item", { href: `#${path}`, "data-path": path }, h("span.nav-icon", icon), h("span", label)),
    ),
  );
  const live = h(
    "span.live",
    { title: "Live updates" },
    h("span.live-dot"),
    h("span.live-text", "Connecting"),
  );
  const picker = h("select.project-picker", {
    "aria-label": "Project",
    onchange: (e) => {
      state.project = e.target.value;
      localStorage.setItem(PROJECT_KEY, state.project);
      void renderRoute();
    },
  });
  const token = getToken() ?? "";
  const title = h("h1.page-title");
  const toolbar = h("div.page-toolbar");
  const main = h("main.content", { "aria-live": "polite" });
  const shell = h(
    "div.shell",
    h(
      "aside.sidebar",
      h("a.brand", { href: "#/" }, h("span.logo"), "edgeplane"),
      nav,
      h(
        "div.sidebar-foot",
        h("div.token", h("span.muted", "Signed in with"), h("code", `${token.slice(0, 10)}…`)),
        h(
          "button.link-button",
          {
            onclick: () => {
              clearToken();
              showLogin("Signed out.");
            },
          },
          "Sign out",
        ),
      ),
    ),
    h("div.main", h("header.topbar", title, h("div.topbar-right", live, picker)), toolbar, main),
  );
  state.shell = { nav, live, picker, title, toolbar, main };
  root.className = "";
  root.replaceChildren(shell);
}

function setLive(s) {
  state.live = s;
  if (!state.shell) return;
  const { live } = state.shell;
  live.dataset.state = s;
  live.querySelector(".live-text").textContent = {
    live: "Live",
    connecting: "Connecting",
    offline: "Offline",
  }[s];
  live.title =
    s === "live"
      ? "Live: changes appear as they happen"
      : "Not receiving live updates; pages refresh every 30 s and the stream reconnects by itself";
}

function fillPicker() {
  const { picker } = state.shell;
  const names = state.projects.map((p) => p.name);
  if (state.project && !names.includes(state.project)) state.project = "";
  picker.replaceChildren(
    ...(names.length === 1 ? [] : [h("option", { value: "" }, "All projects")]),
    ...names.map((n) => h("option", { value: n }, n)),
  );
  if (names.length === 1) state.project = names[0];
  picker.value = state.project;
  picker.disabled = names.length <= 1;
}

// ---- routing and refresh -------------------------------------------------------------------

async function renderRoute() {
  if (!state.shell) return;
  const { path, query } = parseHash();
  let view = null;
  let params = [];
  for (const [re, v] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      view = v;
      params = m.slice(1).map(decodeURIComponent);
      break;
    }
  }
  // A link may pick the project (#/functions?project=acme): the top-bar picker follows it.
  if (
    query.project &&
    query.project !== state.project &&
    state.projects.some((p) => p.name === query.project)
  ) {
    state.project = query.project;
    localStorage.setItem(PROJECT_KEY, state.project);
    state.shell.picker.value = state.project;
  }
  const { nav, title, toolbar, main } = state.shell;
  for (const a of nav.children) {
    const p = a.dataset.path;
    a.classList.toggle("active", p === "/" ? path === "/" || path === "" : path.startsWith(p));
  }
  if (!view) {
    title.textContent = "Not found";
    toolbar.replaceChildren();
    main.replaceChildren(empty("No such page", h("a", { href: "#/" }, "Back to the overview")));
    return;
  }
  const ctx = {
    params,
    query,
    project: state.project,
    projects: state.projects,
    navigate: (hash) => {
      location.hash = hash;
    },
  };
  state.view = view;
  state.ctx = ctx;
  title.textContent = typeof view.title === "function" ? view.title(ctx) : view.title;
  document.title = `${title.textContent} · edgeplane`;
  toolbar.replaceChildren(...(view.toolbar ? [view.toolbar(ctx)] : []));
  main.replaceChildren(h("div.loading", h("span.spinner"), "Loading…"));
  await refresh(true);
}

/** Loads the current view's data and swaps the page content in one step (no flicker). */
async function refresh(first = false) {
  const { view, ctx } = state;
  if (!view || !state.shell) return;
  const mine = Symbol("load");
  state.loading = mine;
  try {
    const data = await view.load(ctx);
    if (state.loading !== mine || state.view !== view || state.ctx !== ctx) return;
    const openDetails = [...state.shell.main.querySelectorAll("details[open][data-key]")].map(
      (d) => d.dataset.key,
    );
    const scroll = state.shell.main.parentElement.scrollTop;
    state.shell.main.replaceChildren(view.render(data, ctx));
    for (const key of openDetails)
      state.shell.main.querySelector(`details[data-key="${CSS.escape(key)}"]`)?.setAttribute("open", "");
    if (!first) state.shell.main.parentElement.scrollTop = scroll;
  } catch (err) {
    if (err instanceof AuthError) {
      clearToken();
      showLogin("Your session has ended: the token is no longer valid. Sign in again.");
      return;
    }
    if (state.loading !== mine) return;
    if (first || !state.shell.main.querySelector(".view")) {
      state.shell.main.replaceChildren(
        empty("Could not load this page", `${err.code ?? "Error"}: ${err.message}`, "!"),
      );
    }
  }
}

let pending = null;
let lastRefresh = 0;
/** Coalesces bursts of events into one refresh, at most one per second. */
function scheduleRefresh() {
  if (pending) return;
  const wait = Math.max(150, 1000 - (Date.now() - lastRefresh));
  pending = setTimeout(async () => {
    pending = null;
    lastRefresh = Date.now();
    await refresh();
  }, wait);
}

function onEvent(event) {
  if (event.type === "ready") {
    // Whatever happened while the stream was down is picked up now.
    scheduleRefresh();
    return;
  }
  const view = state.view;
  if (!view) return;
  if (!(view.events ?? []).includes(event.type)) return;
  if (event.project && state.project && event.project !== state.project) return;
  scheduleRefresh();
}

async function start() {
  if (!getToken()) return showLogin();
  try {
    state.projects = (await api("/projects")).projects ?? [];
  } catch (err) {
    if (err instanceof AuthError) {
      clearToken();
      return showLogin("Your session has ended: the token is no longer valid. Sign in again.");
    }
    state.projects = [];
  }
  buildShell();
  fillPicker();
  setLive("connecting");
  state.disconnect?.();
  state.disconnect = connectEvents(onEvent, setLive);
  await renderRoute();
}

window.addEventListener("hashchange", () => void renderRoute());
// Relative times stay current. Pages refresh by themselves every 30 s while the stream is down,
// and every 5 min while it is up (a safety net should the server's LISTEN have been lost).
setInterval(() => tickTimes(), 10_000);
let lastPoll = Date.now();
setInterval(() => {
  const every = state.live === "live" ? 300_000 : 30_000;
  if (!state.shell || document.visibilityState !== "visible" || Date.now() - lastPoll < every) return;
  lastPoll = Date.now();
  void refresh();
}, 5_000);

void start();
