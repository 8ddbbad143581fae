// The node registry and what each node must serve. A node's desired state is computed from
// the database on demand (level-triggered): every active deployment whose placement matches
// the node's labels, with its routes, tagged with the newest outbox id as the generation.

import type { DesiredState, FunctionSpec, RouteSpec } from "../proto/index.ts";
import type { Db } from "./db.ts";
import { inWave, type RolloutPolicy } from "./progressive.ts";
import { matchesSelector } from "./selector.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface NodeHello {
  nodeId: string;
  pop: string;
  labels: Record<string, string>;
  ip: string;
  httpAddress: string;
}

export async function upsertNode(db: Db, n: NodeHello): Promise<void> {
  await db.query(
    `INSERT INTO nodes (id, pop_id, ip, http_address, last_heartbeat, status, metadata)
     VALUES ($1, $2, $3, $4, now(), 'online', $5)
     ON CONFLICT (id) DO UPDATE SET pop_id = $2, ip = $3, http_address = $4, last_heartbeat = now(), status = 'online',
       metadata = $5, updated_at = now()`,
    [n.nodeId, n.pop, n.ip, n.httpAddress, JSON.stringify({ labels: n.labels })],
  );
}

/** Seed Property 14: a node whose last heartbeat is at least offlineAfterMs old is offline. */
export function isOffline(lastHeartbeatMs: number, nowMs: number, offlineAfterMs: number): boolean {
  return nowMs - lastHeartbeatMs >= offlineAfterMs;
}

export async function markNode(db: Db, nodeId: string, status: "online" | "offline"): Promise<void> {
  await db.query("UPDATE nodes SET status = $2, updated_at = now() WHERE id = $1", [nodeId, status]);
}

/** Records a heartbeat: its time, the inventory and load the runner reported (Property 6), and
 * its per-function request and error counts since the previous heartbeat (added to the totals). */
export async function recordHeartbeat(
  db: Db,
  nodeId: string,
  inventory: { function_id: string; version: string; sha256: string }[],
  inFlight: number,
  counters: {
    function_id: string;
    version: string;
    requests: string | number;
    errors: string | number;
    p99_ms?: number;
  }[] = [],
): Promise<void> {
  const known = counters.filter((c) => UUID.test(c.function_id));
  await db.query(
    `UPDATE nodes SET last_heartbeat = now(), status = 'online', inventory = $2, in_flight = $3, function_counters = $4,
            updated_at = now()
      WHERE id = $1`,
    [
      nodeId,
      JSON.stringify(inventory.map(({ function_id, version, sha256 }) => ({ function_id, version, sha256 }))),
      inFlight,
      JSON.stringify(
        known.map((c) => ({
          function_id: c.function_id,
          version: c.version,
          requests: Number(c.requests),
          errors: Number(c.errors),
          ...(c.p99_ms ? { p99_ms: c.p99_ms } : {}),
        })),
      ),
    ],
  );
  if (known.length === 0) return;
  await db.query(
    `INSERT INTO node_function_stats (node_id, function_id, version, requests, errors, p99_ms)
     SELECT $1, f, v, r, e, l FROM unnest($2::uuid[], $3::text[], $4::bigint[], $5::bigint[], $6::float8[]) AS c(f, v, r, e, l)
     ON CONFLICT (node_id, function_id) DO UPDATE SET version = EXCLUDED.version,
       requests = node_function_stats.requests + EXCLUDED.requests,
       errors = node_function_stats.errors + EXCLUDED.errors,
       p99_ms = coalesce(EXCLUDED.p99_ms, node_function_stats.p99_ms), updated_at = now()`,
    [
      nodeId,
      known.map((c) => c.function_id),
      known.map((c) => c.version),
      known.map((c) => String(c.requests)),
      known.map((c) => String(c.errors)),
      known.map((c) => (c.p99_ms ? c.p99_ms : null)),
    ],
  );
}

export interface AckResult {
  function_id: string;
  version: string;
  status: string;
  message: string;
}

/**
 * Records a node's ack: its generation, its per-function results, and the deployments they
 * settle. `resultsChanged: false` (the results equal the node's previous ack) writes only the
 * generation: a route-only change acked by a thousand runners is then a thousand one-row
 * updates, not a thousand inventory rewrites. Each write is one statement over arrays.
 */
export async function recordAck(
  db: Db,
  nodeId: string,
  generation: number,
  results: AckResult[],
  resultsChanged = true,
): Promise<void> {
  if (!resultsChanged) {
    await db.query(
      "UPDATE nodes SET acked_generation = GREATEST(acked_generation, $2), updated_at = now() WHERE id = $1",
      [nodeId, generation],
    );
    return;
  }
  // Function ids are uuids; a runner reporting anything else gets those entries ignored.
  results = results.filter((r) => UUID.test(r.function_id));
  const ok = results.filter((r) => r.status === "OK").map((r) => r.function_id);
  const failed = results.filter((r) => r.status !== "OK").map((r) => r.function_id);
  await db.transaction(async (tx) => {
    await tx.query(
      "UPDATE nodes SET acked_generation = GREATEST(acked_generation, $2), updated_at = now() WHERE id = $1",
      [nodeId, generation],
    );
    await tx.query("DELETE FROM node_inventory WHERE node_id = $1", [nodeId]);
    if (results.length > 0) {
      await tx.query(
        `INSERT INTO node_inventory (node_id, function_id, version, status, message)
         SELECT $1, f, v, s, m FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) AS r(f, v, s, m)`,
        [
          nodeId,
          results.map((r) => r.function_id),
          results.map((r) => r.version),
          results.map((r) => r.status),
          results.map((r) => r.message),
        ],
      );
    }
    for (const [ids, status] of [
      [ok, "completed"],
      [failed, "failed"],
    ] as const) {
      if (ids.length === 0) continue;
      await tx.query(
        `UPDATE deployments SET status = $2, updated_at = now()
          WHERE function_id = ANY($1::uuid[]) AND active AND status IN ('pending', 'in_progress')`,
        [ids, status],
      );
    }
  });
}

export async function currentGeneration(db: Db): Promise<number> {
  const [row] = await db.query<{ g: number | null }>("SELECT max(id) AS g FROM outbox");
  return Number(row?.g ?? 0);
}

interface ActiveRow {
  function_id: string;
  name: string;
  version: number;
  project: string;
  artifact_key: string;
  sha256: string;
  abi: "edge-v1" | "wagi";
  memory_pages: number;
  max_execution_ms: number;
  max_request_bytes: number;
  max_instances: number;
  env: Record<string, string>;
  capabilities: Record<string, boolean>;
  pop_selector: string;
}

interface RouteRow {
  host: string;
  path: string;
  methods: string;
  priority: number;
  function_id: string;
}

interface PreviewRow extends ActiveRow {
  pr: number;
  domain: string;
  preview_selector: string;
}

/** Everything active, read once: the input from which each node's desired state is cut. */
export interface ActiveState {
  generation: string;
  rows: ActiveRow[];
  routes: RouteRow[];
  /** Versions some nodes serve instead of the active one (pinned, or the previous one mid-rollout), by id. */
  others?: Map<string, ActiveRow>;
  /** "project/function" → the pinned function id. */
  pins?: Map<string, string>;
  /** "project/function" → the running rollout. */
  rollouts?: Map<string, { to: string; from: string; selectors: string[] }>;
  /** Active pull-request previews. */
  previews?: PreviewRow[];
}

/** The preview hosts of a function of a pull request: one for a POP, and one routed on every preview POP. */
export function previewHost(fn: string, pr: number, domain: string, pop?: string): string {
  return pop ? `${fn}--pr-${pr}.${pop}.${domain}` : `${fn}--pr-${pr}.${domain}`;
}

/** Reads the active functions, routes and generation in one snapshot, so they agree. */
export async function loadActiveState(db: Db): Promise<ActiveState> {
  return db.transaction(async (tx) => {
    await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    const [g] = await tx.query<{ g: number | null }>("SELECT max(id) AS g FROM outbox");
    const rows = await tx.query<ActiveRow>(
      `SELECT f.id AS function_id, f.name, f.version, p.name AS project, f.artifact_key, f.sha256, f.abi, f.memory_pages,
              f.max_execution_ms, f.max_request_bytes, f.max_instances, f.env, f.capabilities, f.pop_selector
         FROM deployments d JOIN functions f ON f.id = d.function_id JOIN projects p ON p.id = d.project_id
        WHERE d.active ORDER BY p.name, f.name`,
    );
    const routes = await tx.query<RouteRow>(
      "SELECT host, path, methods, priority, function_id FROM routes ORDER BY host, path, priority",
    );
    const pins = await tx.query<{ project: string; name: string; function_id: string }>(
      "SELECT p.name AS project, x.function_name AS name, x.function_id FROM pins x JOIN projects p ON p.id = x.project_id",
    );
    const rollouts = await tx.query<{
      project: string;
      name: string;
      to_function_id: string;
      from_function_id: string;
      policy: RolloutPolicy;
      wave: number;
    }>(
      `SELECT p.name AS project, r.function_name AS name, r.to_function_id, r.from_function_id, r.policy, r.wave
         FROM rollouts r JOIN projects p ON p.id = r.project_id WHERE r.status = 'running'`,
    );
    const ids = [...pins.map((x) => x.function_id), ...rollouts.map((r) => r.from_function_id)];
    const others = ids.length
      ? await tx.query<ActiveRow>(
          `${FUNCTION_COLUMNS} FROM functions f JOIN projects p ON p.id = f.project_id
          WHERE f.id = ANY($1::uuid[])`,
          [ids],
        )
      : [];
    const previews = await tx.query<PreviewRow>(
      `${FUNCTION_COLUMNS}, v.pr, v.domain, v.preview_selector
         FROM previews v JOIN functions f ON f.id = v.function_id JOIN projects p ON p.id = v.project_id
        WHERE v.status = 'active' ORDER BY p.name, v.pr, f.name`,
    );
    return {
      generation: String(Number(g?.g ?? 0)),
      rows,
      routes,
      others: new Map(others.map((r) => [r.function_id, r])),
      pins: new Map(pins.map((x) => [`${x.project}/${x.name}`, x.function_id])),
      rollouts: new Map(
        rollouts.map((r) => [
          `${r.project}/${r.name}`,
          {
            to: r.to_function_id,
            from: r.from_function_id,
            selectors: r.policy.waves.slice(0, r.wave + 1).map((w) => w.pops),
          },
        ]),
      ),
      previews,
    };
  });
}

const FUNCTION_COLUMNS = `SELECT f.id AS function_id, f.name, f.version, p.name AS project, f.artifact_key, f.sha256, f.abi,
  f.memory_pages, f.max_execution_ms, f.max_request_bytes, f.max_instances, f.env, f.capabilities, f.pop_selector`;

/**
 * The version of an active function a node serves: a pinned version wins (a rollback); during a
 * progressive rollout a node outside the waves reached so far keeps the previous version;
 * otherwise the active one.
 */
function servedOn(active: ActiveState, r: ActiveRow, labels: Record<string, string>): ActiveRow {
  const key = `${r.project}/${r.name}`;
  const pinned = active.pins?.get(key);
  if (pinned) return active.others?.get(pinned) ?? r;
  const rollout = active.rollouts?.get(key);
  if (rollout && rollout.to === r.function_id && !rollout.selectors.some((s) => inWave(s, labels))) {
    return active.others?.get(rollout.from) ?? r;
  }
  return r;
}

/** The desired state of a node with these labels (its POP included as label "pop"). */
export async function desiredFromActive(
  active: ActiveState,
  labels: Record<string, string>,
  artifactUrl: (key: string) => Promise<string>,
): Promise<DesiredState> {
  // Routes name the active version; on this node they dispatch to the version it serves.
  const servedId = new Map<string, string>();
  const placed: ActiveRow[] = [];
  for (const r of active.rows) {
    const served = servedOn(active, r, labels);
    if (!matchesSelector(served.pop_selector, labels)) continue;
    servedId.set(r.function_id, served.function_id);
    placed.push(served);
  }
  // Previews: on nodes matching both the Project's preview.pops and the function's placement.
  const previewRoutes: RouteSpec[] = [];
  for (const v of active.previews ?? []) {
    if (!matchesSelector(v.preview_selector, labels) || !matchesSelector(v.pop_selector, labels)) continue;
    if (!placed.some((p) => p.function_id === v.function_id)) placed.push(v);
    const hosts = [
      previewHost(v.name, v.pr, v.domain),
      ...(labels.pop ? [previewHost(v.name, v.pr, v.domain, labels.pop)] : []),
    ];
    for (const host of hosts) {
      previewRoutes.push({ host, path: "/*", methods: [], priority: 0, function_id: v.function_id });
    }
  }
  const functions: FunctionSpec[] = await Promise.all(
    placed.map(async (r) => ({
      function_id: r.function_id,
      name: r.name,
      version: String(r.version),
      project: r.project,
      artifact_url: await artifactUrl(r.artifact_key),
      sha256: r.sha256.trim(),
      abi: r.abi,
      memory_pages: r.memory_pages,
      max_execution_ms: r.max_execution_ms,
      max_request_bytes: r.max_request_bytes,
      max_instances: r.max_instances,
      env: r.env,
      capabilities: r.capabilities,
    })),
  );
  const routes: RouteSpec[] = active.routes
    .filter((r) => servedId.has(r.function_id))
    .map((r) => ({
      host: r.host,
      path: r.path,
      methods: r.methods ? r.methods.split(",") : [],
      priority: r.priority,
      function_id: servedId.get(r.function_id)!,
    }));
  routes.push(...previewRoutes);
  return { generation: active.generation, functions, routes };
}

/** The full desired state of a node with these labels. */
export async function desiredStateFor(
  db: Db,
  labels: Record<string, string>,
  artifactUrl: (key: string) => Promise<string>,
): Promise<DesiredState> {
  return desiredFromActive(await loadActiveState(db), labels, artifactUrl);
}

/** Marks nodes offline whose last heartbeat (in database time) is older than offlineAfterMs. */
export async function sweepOfflineNodes(db: Db, offlineAfterMs: number): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `UPDATE nodes SET status = 'offline', updated_at = now()
      WHERE status <> 'offline' AND last_heartbeat < now() - $1 * interval '1 millisecond' RETURNING id`,
    [offlineAfterMs],
  );
  return rows.map((r) => r.id);
}
