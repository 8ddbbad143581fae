import test from "ava";
import fc from "fast-check";
import { compileRoutes, normalizeHost } from "../../edge-runner/index.ts";
import type { RouteSpec } from "../../proto/index.ts";

function route(host: string, path: string, functionId: string, extra: Partial<RouteSpec> = {}): RouteSpec {
  return { host, path, methods: [], priority: 0, function_id: functionId, ...extra };
}

const pick = (routes: RouteSpec[], host: string, path: string, method = "GET") =>
  compileRoutes(routes).lookup(host, path, method)?.functionId ?? null;

test("router: prefers the higher-priority route when two match", (t) => {
  const routes = [
    route("a.example.com", "/api/users", "exact-low", { priority: 1 }),
    route("*.example.com", "/*", "catch-all-high", { priority: 5 }),
  ];
  t.is(pick(routes, "a.example.com", "/api/users"), "catch-all-high");
});

test("router: prefers an exact host over a wildcard at equal priority", (t) => {
  const routes = [route("*.example.com", "/", "wild"), route("a.example.com", "/", "exact")];
  t.is(pick(routes, "a.example.com", "/"), "exact");
  t.is(pick(routes, "b.example.com", "/"), "wild");
});

test("router: prefers the longer wildcard suffix at equal priority", (t) => {
  const routes = [route("*.example.com", "/", "short"), route("*.eu.example.com", "/", "long")];
  t.is(pick(routes, "x.eu.example.com", "/"), "long");
  t.is(pick(routes, "x.us.example.com", "/"), "short");
});

test("router: prefers exact path over params over prefix at equal priority", (t) => {
  const routes = [
    route("h.test", "/users/*", "prefix"),
    route("h.test", "/users/:id", "param"),
    route("h.test", "/users/me", "exact"),
  ];
  t.is(pick(routes, "h.test", "/users/me"), "exact");
  t.is(pick(routes, "h.test", "/users/42"), "param");
  t.is(pick(routes, "h.test", "/users/42/posts"), "prefix");
});

test("router: prefers the longer prefix at equal priority", (t) => {
  const routes = [route("h.test", "/api/*", "short"), route("h.test", "/api/v2/*", "long")];
  t.is(pick(routes, "h.test", "/api/v2/things"), "long");
  t.is(pick(routes, "h.test", "/api/v1/things"), "short");
});

test("router: a wildcard host matches one or more labels in front but not the bare domain", (t) => {
  const routes = [route("*.example.com", "/*", "wild")];
  t.is(pick(routes, "a.example.com", "/"), "wild");
  t.is(pick(routes, "a.b.c.example.com", "/"), "wild");
  t.is(pick(routes, "example.com", "/"), null);
  t.is(pick(routes, "badexample.com", "/"), null);
});

test("router: hosts match case-insensitively with the port and a trailing dot stripped", (t) => {
  const routes = [route("Hello.Example.com", "/", "fn")];
  t.is(pick(routes, "hello.example.COM:8080", "/"), "fn");
  t.is(pick(routes, "hello.example.com.", "/"), "fn");
  t.is(normalizeHost("[::1]:8080"), "[::1]");
});

test("router: a prefix route matches the bare prefix and anything below it, not siblings", (t) => {
  const routes = [route("h.test", "/api/*", "api")];
  t.is(pick(routes, "h.test", "/api"), "api");
  t.is(pick(routes, "h.test", "/api/"), "api");
  t.is(pick(routes, "h.test", "/api/a/b/c"), "api");
  t.is(pick(routes, "h.test", "/apix"), null);
  t.is(pick(routes, "h.test", "/"), null);
  t.deepEqual(compileRoutes(routes).lookup("h.test", "/api/a/b", "GET")?.params, { "*": "a/b" });
});

test("router: param segments capture one decoded segment each", (t) => {
  const table = compileRoutes([route("h.test", "/users/:id/posts/:post", "fn")]);
  t.deepEqual(table.lookup("h.test", "/users/ann%20b/posts/7", "GET"), {
    functionId: "fn",
    params: { id: "ann b", post: "7" },
  });
  t.is(table.lookup("h.test", "/users/ann/posts", "GET"), null);
  t.is(table.lookup("h.test", "/users/ann/posts/7/x", "GET"), null);
});

test("router: an exact path matches only itself", (t) => {
  const routes = [route("h.test", "/health", "fn")];
  t.is(pick(routes, "h.test", "/health"), "fn");
  t.is(pick(routes, "h.test", "/health/x"), null);
  t.is(pick(routes, "h.test", "/"), null);
});

test("router: methods restrict a route and an empty list takes any method", (t) => {
  const routes = [route("h.test", "/x", "post-only", { methods: ["post"] }), route("h.test", "/y", "any")];
  t.is(pick(routes, "h.test", "/x", "POST"), "post-only");
  t.is(pick(routes, "h.test", "/x", "GET"), null);
  t.is(pick(routes, "h.test", "/y", "DELETE"), "any");
});

test("router: falls through to a lower-priority route when the better one rejects the method", (t) => {
  const routes = [
    route("h.test", "/x", "get-high", { methods: ["GET"], priority: 9 }),
    route("*.test", "/*", "fallback", { priority: 1 }),
  ];
  t.is(pick(routes, "h.test", "/x", "PUT"), "fallback");
  t.is(pick(routes, "h.test", "/x", "GET"), "get-high");
});

test("router: returns null when nothing matches and for an empty table", (t) => {
  t.is(pick([route("h.test", "/*", "fn")], "other.test", "/"), null);
  t.is(pick([], "h.test", "/"), null);
  t.is(compileRoutes([]).size, 0);
});

test("router: breaks a complete tie in favour of the route listed first", (t) => {
  const routes = [route("h.test", "/*", "first"), route("h.test", "/*", "second")];
  t.is(pick(routes, "h.test", "/a"), "first");
});

// **Feature: wasmEdge-edge-functions, Property 11: route matching priority**
// **Validates: Requirements 12.2**
test("router: for any routes that all match a request, the chosen one has the maximum priority", (t) => {
  const label = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
  const segment = fc.stringMatching(/^[a-z0-9]{1,4}$/);
  const method = fc.constantFrom("GET", "POST", "PUT", "DELETE");

  // A request, then routes built from it so that each one matches it by construction.
  const scenario = fc
    .record({
      labels: fc.array(label, { minLength: 2, maxLength: 4 }),
      segments: fc.array(segment, { minLength: 0, maxLength: 4 }),
      method,
    })
    .chain((req) => {
      const host = req.labels.join(".");
      const n = req.segments.length;
      const matchingRoute = fc
        .record({
          wildcardFrom: fc.integer({ min: 0, max: req.labels.length - 1 }),
          pathKind: fc.constantFrom("exact", "param", "prefix"),
          prefixLen: fc.integer({ min: 0, max: n }),
          paramMask: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
          methods: fc.constantFrom([], [req.method], [req.method, "PATCH"]),
          priority: fc.integer({ min: -100, max: 100 }),
        })
        .map((r): Omit<RouteSpec, "function_id"> => {
          // wildcardFrom 0 = exact host; k > 0 = "*." + the last labels, leaving k labels in front.
          const routeHost = r.wildcardFrom === 0 ? host : `*.${req.labels.slice(r.wildcardFrom).join(".")}`;
          let path: string;
          if (r.pathKind === "prefix")
            path = `/${req.segments.slice(0, r.prefixLen).join("/")}/*`.replace("//*", "/*");
          else if (r.pathKind === "param") {
            path = `/${req.segments.map((s, i) => (r.paramMask[i] ? `:p${i}` : s)).join("/")}`;
          } else path = `/${req.segments.join("/")}`;
          return { host: routeHost, path, methods: [...r.methods], priority: r.priority };
        });
      // Routes for other hosts, all with a higher priority, must never be chosen.
      const decoy = fc.record({
        host: label.map((l) => `${l}.decoy.invalid`),
        path: fc.constant("/*"),
        methods: fc.constant([] as string[]),
        priority: fc.integer({ min: 101, max: 200 }),
      });
      return fc.record({
        req: fc.constant({ host, path: `/${req.segments.join("/")}`, method: req.method }),
        matching: fc.array(matchingRoute, { minLength: 1, maxLength: 8 }),
        decoys: fc.array(decoy, { maxLength: 3 }),
        shuffleSeed: fc.integer(),
      });
    });

  fc.assert(
    fc.property(scenario, ({ req, matching, decoys, shuffleSeed }) => {
      const specs: RouteSpec[] = [
        ...matching.map((r, i) => ({ ...r, function_id: `m${i}` })),
        ...decoys.map((r, i) => ({ ...r, function_id: `d${i}` })),
      ];
      // Order must not matter for priority: rotate the list by a random amount.
      const k = Math.abs(shuffleSeed) % specs.length;
      const rotated = [...specs.slice(k), ...specs.slice(0, k)];
      const chosen = compileRoutes(rotated).lookup(req.host, req.path, req.method);
      if (chosen === null) return false;
      const chosenSpec = specs.find((s) => s.function_id === chosen.functionId)!;
      const maxPriority = Math.max(...matching.map((r) => r.priority));
      return chosen.functionId.startsWith("m") && chosenSpec.priority === maxPriority;
    }),
    { numRuns: 200 },
  );
  t.pass();
});
