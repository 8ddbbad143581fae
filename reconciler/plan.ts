// plan(desired, stored): the pure diff at the heart of reconcile. No I/O, no clock, no ids:
// the same inputs always give the same plan, whatever order the manifests were read in.
// Applying the plan (state.ts) is a separate step inside one transaction.

/** A route as stored and compared: methods sorted and joined, '' = any method. */
export interface PlannedRoute {
  host: string;
  path: string;
  methods: string;
  priority: number;
}

/** What a function should be, computed from the manifests and its source tree. */
export interface DesiredFunction {
  name: string;
  /** sha256 over the function's source directory (builder.hashSourceTree). */
  sourceHash: string;
  /** sha256 over every setting that changes the built artifact or how it runs (not routes). */
  configHash: string;
  routes: PlannedRoute[];
}

/** What is active now for a function, read from the database. */
export interface StoredFunction {
  name: string;
  functionId: string;
  version: number;
  sourceHash: string;
  configHash: string;
  routes: PlannedRoute[];
}

export type Change =
  | { action: "create"; name: string; reason: string }
  | { action: "update"; name: string; fromVersion: number; fromFunctionId: string; reason: string }
  | { action: "routes"; name: string; functionId: string; version: number; reason: string }
  | { action: "delete"; name: string; functionId: string; version: number; reason: string };

export interface Plan {
  /** Sorted by function name; empty when desired and stored agree. */
  changes: Change[];
}

export function normalizeRoutes(routes: PlannedRoute[]): PlannedRoute[] {
  return routes
    .map((r) => ({ ...r, methods: r.methods.split(",").filter(Boolean).sort().join(",") }))
    .sort((a, b) => routeKey(a).localeCompare(routeKey(b)));
}

const routeKey = (r: PlannedRoute) => `${r.host}\u0000${r.path}\u0000${r.methods}\u0000${r.priority}`;

function sameRoutes(a: PlannedRoute[], b: PlannedRoute[]): boolean {
  const x = normalizeRoutes(a);
  const y = normalizeRoutes(b);
  return x.length === y.length && x.every((r, i) => routeKey(r) === routeKey(y[i]!));
}

export function plan(desired: DesiredFunction[], stored: StoredFunction[]): Plan {
  const storedByName = new Map(stored.map((s) => [s.name, s]));
  const desiredNames = new Set(desired.map((d) => d.name));
  const changes: Change[] = [];

  for (const d of desired) {
    const s = storedByName.get(d.name);
    if (!s) {
      changes.push({ action: "create", name: d.name, reason: "new function" });
      continue;
    }
    const sourceChanged = s.sourceHash !== d.sourceHash;
    const configChanged = s.configHash !== d.configHash;
    if (sourceChanged || configChanged) {
      const reason =
        sourceChanged && configChanged
          ? "source and config changed"
          : sourceChanged
            ? "source changed"
            : "config changed";
      changes.push({
        action: "update",
        name: d.name,
        fromVersion: s.version,
        fromFunctionId: s.functionId,
        reason,
      });
    } else if (!sameRoutes(s.routes, d.routes)) {
      changes.push({
        action: "routes",
        name: d.name,
        functionId: s.functionId,
        version: s.version,
        reason: "routes changed",
      });
    }
  }
  for (const s of stored) {
    if (!desiredNames.has(s.name)) {
      changes.push({
        action: "delete",
        name: s.name,
        functionId: s.functionId,
        version: s.version,
        reason: "removed from manifests",
      });
    }
  }
  changes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { changes };
}
