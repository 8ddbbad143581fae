// The route table: compiled once per desired state, then only looked up per request
// (CONVENTIONS.md "Plan, then apply"). Routes are bucketed by exact host and by wildcard suffix,
// so a lookup reads the few routes that can match its host instead of every route.
//
// Which route wins (seed Property 11, Requirement 12.2): the highest `priority`; among equal
// priorities the most specific one — exact host over wildcard (a longer wildcard suffix over a
// shorter one), then exact path over `:param` path over prefix path (more literal segments
// first, a longer prefix over a shorter one), then a route naming methods over one taking any;
// the remaining ties go to the route listed first.

import type { RouteSpec } from "../proto/index.ts";

export interface RouteMatch {
  functionId: string;
  /** `:name` segments of the path pattern; a prefix route also gives the rest as `"*"`. */
  params: Record<string, string>;
}

export interface RouteTable {
  lookup(host: string, path: string, method: string): RouteMatch | null;
  /** How many routes the table holds. */
  readonly size: number;
}

type Segment = { literal: string } | { param: string };

interface CompiledRoute {
  functionId: string;
  /** Lower-cased wildcard suffix with its leading dot (".example.com"), or null for an exact host. */
  wildcardSuffix: string | null;
  segments: Segment[];
  prefix: boolean;
  /** Upper-cased methods, or null for any method. */
  methods: ReadonlySet<string> | null;
  /** Higher is better; compared element by element. See the header comment for the order. */
  rank: number[];
}

const PATH_EXACT = 3;
const PATH_PARAMS = 2;
const PATH_PREFIX = 1;

/** Lower-cases a Host header and strips its port and any trailing dot (RFC 9110 §7.2). */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    // IPv6 literal: "[::1]:8080" → "[::1]"
    const end = h.indexOf("]");
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(":");
  if (colon >= 0) h = h.slice(0, colon);
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

function splitPath(path: string): string[] {
  // "/a//b/" and "/a/b" differ only in empty segments, which never carry meaning in a route.
  return path.split("/").filter((s) => s !== "");
}

function compileRoute(spec: RouteSpec, index: number, total: number): CompiledRoute {
  const host = normalizeHost(spec.host);
  const wildcardSuffix = host.startsWith("*.") ? host.slice(1) : null;

  let pattern = spec.path === "" || spec.path === "*" ? "/*" : spec.path;
  const prefix = pattern === "/*" || pattern.endsWith("/*");
  if (prefix) pattern = pattern.slice(0, -2);
  const segments: Segment[] = splitPath(pattern).map((s) =>
    s.startsWith(":") && s.length > 1 ? { param: s.slice(1) } : { literal: s },
  );
  const literals = segments.filter((s) => "literal" in s).length;
  const pathClass = prefix ? PATH_PREFIX : literals === segments.length ? PATH_EXACT : PATH_PARAMS;

  const methods = spec.methods.length === 0 ? null : new Set(spec.methods.map((m) => m.toUpperCase()));

  const rank = [
    spec.priority,
    wildcardSuffix === null ? 1 : 0,
    wildcardSuffix === null ? 0 : wildcardSuffix.length,
    pathClass,
    literals,
    segments.length,
    methods === null ? 0 : 1,
    total - index, // listed first wins the last tie, so lookups are deterministic
  ];
  return { functionId: spec.function_id, wildcardSuffix, segments, prefix, methods, rank };
}

function compareRank(a: CompiledRoute, b: CompiledRoute): number {
  for (let i = 0; i < a.rank.length; i++) {
    const d = b.rank[i]! - a.rank[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

function matchPath(route: CompiledRoute, parts: string[]): Record<string, string> | null {
  const { segments } = route;
  if (route.prefix ? parts.length < segments.length : parts.length !== segments.length) return null;
  let params: Record<string, string> | null = null;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const part = parts[i]!;
    if ("literal" in seg) {
      if (seg.literal !== part) return null;
    } else {
      params ??= {};
      params[seg.param] = safeDecode(part);
    }
  }
  if (route.prefix && parts.length > segments.length) {
    params ??= {};
    params["*"] = parts.slice(segments.length).join("/");
  }
  return params ?? {};
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The best match within one bucket: buckets are sorted best-first, so the first hit wins. */
function firstMatch(
  bucket: CompiledRoute[] | undefined,
  parts: string[],
  method: string,
): { route: CompiledRoute; params: Record<string, string> } | null {
  if (bucket === undefined) return null;
  for (const route of bucket) {
    if (route.methods !== null && !route.methods.has(method)) continue;
    const params = matchPath(route, parts);
    if (params !== null) return { route, params };
  }
  return null;
}

/** Compiles routes into a table; call once per desired state, never per request. */
export function compileRoutes(routes: readonly RouteSpec[]): RouteTable {
  const exact = new Map<string, CompiledRoute[]>();
  const wildcard = new Map<string, CompiledRoute[]>();
  routes.forEach((spec, i) => {
    const route = compileRoute(spec, i, routes.length);
    const map = route.wildcardSuffix === null ? exact : wildcard;
    const key = route.wildcardSuffix ?? normalizeHost(spec.host);
    const bucket = map.get(key);
    if (bucket) bucket.push(route);
    else map.set(key, [route]);
  });
  for (const bucket of exact.values()) bucket.sort(compareRank);
  for (const bucket of wildcard.values()) bucket.sort(compareRank);

  return {
    size: routes.length,
    lookup(rawHost, path, method) {
      const host = normalizeHost(rawHost);
      const parts = splitPath(path);
      const m = method.toUpperCase();
      let best = firstMatch(exact.get(host), parts, m);
      if (wildcard.size > 0) {
        // "*.example.com" matches one or more labels in front, so try every proper suffix
        // of the host: "a.b.example.com" → ".b.example.com", ".example.com", ".com".
        for (let dot = host.indexOf("."); dot >= 0; dot = host.indexOf(".", dot + 1)) {
          if (dot === 0) continue;
          const hit = firstMatch(wildcard.get(host.slice(dot)), parts, m);
          if (hit && (best === null || compareRank(hit.route, best.route) < 0)) best = hit;
        }
      }
      return best === null ? null : { functionId: best.route.functionId, params: best.params };
    },
  };
}
