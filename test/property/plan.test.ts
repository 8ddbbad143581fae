// Properties of the pure plan(desired, stored) (issue: reconciler). Not one of the seed's 15
// properties; they guard the diff that every reconcile relies on.

import test from "ava";
import fc from "fast-check";
import { type DesiredFunction, normalizeRoutes, plan, type StoredFunction } from "../../reconciler/plan.ts";

const hash = fc.constantFrom("a", "b", "c").map((c) => c.repeat(64));
const route = fc.record({
  host: fc.constantFrom("a.test", "b.test"),
  path: fc.constantFrom("/", "/api/*", "/users/:id"),
  methods: fc.constantFrom("", "GET", "GET,POST"),
  priority: fc.integer({ min: -2, max: 2 }),
});
const desiredSet = fc.uniqueArray(
  fc.record({
    name: fc.constantFrom("alpha", "beta", "gamma", "delta", "eps"),
    sourceHash: hash,
    configHash: hash,
    routes: fc.uniqueArray(route, {
      maxLength: 3,
      selector: (r) => `${r.host}${r.path}${r.methods}${r.priority}`,
    }),
  }),
  { maxLength: 5, selector: (d) => d.name },
);
const storedSet = desiredSet.map((ds) =>
  ds.map((d, i): StoredFunction => ({ ...d, functionId: `id-${d.name}`, version: i + 1 })),
);

/** The pure model of what applying a plan does to stored state (state.ts does it in SQL). */
function applyModel(desired: DesiredFunction[], stored: StoredFunction[]): StoredFunction[] {
  const byName = new Map(stored.map((s) => [s.name, s]));
  const want = new Map(desired.map((d) => [d.name, d]));
  for (const c of plan(desired, stored).changes) {
    const d = want.get(c.name);
    if (c.action === "delete") byName.delete(c.name);
    else if (c.action === "routes") byName.set(c.name, { ...byName.get(c.name)!, routes: d!.routes });
    else
      byName.set(c.name, {
        ...d!,
        functionId: `new-${c.name}`,
        version: (byName.get(c.name)?.version ?? 0) + 1,
      });
  }
  return [...byName.values()];
}

const comparable = (fns: DesiredFunction[]) =>
  fns
    .map((f) => ({
      name: f.name,
      sourceHash: f.sourceHash,
      configHash: f.configHash,
      routes: normalizeRoutes(f.routes),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));

test("plan: plan(d, d) is empty for any desired state", (t) => {
  fc.assert(
    fc.property(storedSet, (stored) => {
      t.deepEqual(plan(stored, stored).changes, []);
    }),
    { numRuns: 200 },
  );
});

test("plan: applying plan(d, s) to s gives d, so a second plan is empty", (t) => {
  fc.assert(
    fc.property(desiredSet, storedSet, (desired, stored) => {
      const after = applyModel(desired, stored);
      t.deepEqual(comparable(after), comparable(desired));
      t.deepEqual(plan(desired, after).changes, []);
    }),
    { numRuns: 200 },
  );
});

test("plan: the result does not depend on the order of manifests or of their routes", (t) => {
  fc.assert(
    fc.property(desiredSet, storedSet, fc.integer(), (desired, stored, seed) => {
      const shuffled = [...desired]
        .map((d) => ({ ...d, routes: [...d.routes].reverse() }))
        .sort((a, b) => ((a.name.charCodeAt(0) * seed) % 7) - ((b.name.charCodeAt(0) * seed) % 7));
      t.deepEqual(plan(shuffled, [...stored].reverse()), plan(desired, stored));
    }),
    { numRuns: 200 },
  );
});

test("plan: a function whose source and config are unchanged is never rebuilt", (t) => {
  fc.assert(
    fc.property(storedSet, (stored) => {
      const desired = stored.map((s) => ({ ...s, routes: [] }));
      for (const c of plan(desired, stored).changes) t.true(c.action === "routes");
    }),
    { numRuns: 100 },
  );
});
