// POST /api/v1/nodes/:id/heartbeat: the seed's heartbeat for runners that cannot hold a gRPC
// stream. The runner reports what it holds (and the results of applying its last
// instructions); the answer carries its pending instructions — the full desired state when the
// runner is behind the current generation, nothing when it is in step (level-triggered, like
// the stream). Runners authenticate with the control plane's runnerToken.

import { timingSafeEqual } from "node:crypto";
import type { Context } from "koa";
import { type ErrorDetail, edgeError } from "../lib/errors.ts";
import { readBody } from "./body.ts";
import type { Db } from "./db.ts";
import { desiredFromActive, loadActiveState, recordAck, recordHeartbeat, upsertNode } from "./nodes.ts";

export interface HttpHeartbeatDeps {
  db: Db;
  runnerToken: string | null;
  artifactUrl: (key: string) => Promise<string>;
}

interface HeartbeatBody {
  pop: string;
  labels: Record<string, string>;
  generation: number;
  inventory: { function_id: string; version: string; sha256: string }[];
  in_flight: number;
  results: { function_id: string; version: string; status: string; message: string }[];
  counters: { function_id: string; version: string; requests: number; errors: number }[];
  http_address: string;
}

const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/;
const RESULT_STATUS = new Set(["OK", "SHA256_MISMATCH", "DOWNLOAD_FAILED", "INVALID_MODULE"]);

function parse(raw: Buffer): HeartbeatBody {
  let b: Record<string, unknown>;
  try {
    b = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", "body is not JSON");
  }
  const problems: ErrorDetail[] = [];
  const str = (v: unknown) => typeof v === "string";
  if (typeof b !== "object" || b === null)
    throw edgeError("EDGE_ERR_API_BAD_REQUEST", "body must be a JSON object");
  if (!str(b.pop) || !(b.pop as string))
    problems.push({ where: "body.pop", message: "required: the runner's POP" });
  const labels = b.labels ?? {};
  if (typeof labels !== "object" || Array.isArray(labels) || !Object.values(labels as object).every(str)) {
    problems.push({ where: "body.labels", message: "expected an object of string values" });
  }
  const generation = Number(b.generation ?? 0);
  if (!Number.isSafeInteger(generation) || generation < 0) {
    problems.push({ where: "body.generation", message: "expected a non-negative integer" });
  }
  const inventory = b.inventory ?? [];
  if (
    !Array.isArray(inventory) ||
    !inventory.every((i) => i && str(i.function_id) && str(i.version) && str(i.sha256))
  ) {
    problems.push({ where: "body.inventory", message: "expected [{ function_id, version, sha256 }]" });
  }
  const inFlight = Number(b.in_flight ?? 0);
  if (!Number.isSafeInteger(inFlight) || inFlight < 0)
    problems.push({ where: "body.in_flight", message: "expected a non-negative integer" });
  const results = b.results ?? [];
  if (
    !Array.isArray(results) ||
    !results.every((r) => r && str(r.function_id) && str(r.version) && RESULT_STATUS.has(r.status))
  ) {
    problems.push({
      where: "body.results",
      message: `expected [{ function_id, version, status: ${[...RESULT_STATUS].join("|")}, message }]`,
    });
  }
  const counters = b.counters ?? [];
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (
    !Array.isArray(counters) ||
    !counters.every((c) => c && str(c.function_id) && str(c.version) && count(c.requests) && count(c.errors))
  ) {
    problems.push({
      where: "body.counters",
      message: "expected [{ function_id, version, requests, errors }] with non-negative integers",
    });
  }
  if (problems.length)
    throw edgeError(
      "EDGE_ERR_API_BAD_REQUEST",
      `invalid heartbeat: ${problems[0]!.where}: ${problems[0]!.message}`,
      problems,
    );
  return {
    pop: b.pop as string,
    labels: labels as Record<string, string>,
    generation,
    inventory: inventory as HeartbeatBody["inventory"],
    in_flight: inFlight,
    results: (results as HeartbeatBody["results"]).map((r) => ({ ...r, message: String(r.message ?? "") })),
    counters: counters as HeartbeatBody["counters"],
    http_address: str(b.http_address) ? (b.http_address as string) : "",
  };
}

function authorized(header: string, token: string): boolean {
  const given = Buffer.from(header.replace(/^Bearer\s+/i, ""));
  const want = Buffer.from(token);
  return /^Bearer\s+/i.test(header) && given.length === want.length && timingSafeEqual(given, want);
}

export function createHttpHeartbeat(deps: HttpHeartbeatDeps) {
  return async (ctx: Context & { params: Record<string, string> }): Promise<void> => {
    if (!deps.runnerToken) {
      throw edgeError(
        "EDGE_ERR_API_FORBIDDEN",
        "HTTP heartbeats are disabled: configure runnerToken on the control plane",
      );
    }
    if (!authorized(ctx.get("authorization"), deps.runnerToken)) {
      throw edgeError(
        "EDGE_ERR_API_UNAUTHORIZED",
        "a runner heartbeat needs Authorization: Bearer <runnerToken>",
      );
    }
    const nodeId = ctx.params.id ?? "";
    if (!NODE_ID.test(nodeId))
      throw edgeError(
        "EDGE_ERR_API_BAD_REQUEST",
        `node id "${nodeId}": use [A-Za-z0-9._-], at most 128 characters`,
      );
    const hb = parse(await readBody(ctx.req, 1024 * 1024, "EDGE_ERR_API_TOO_LARGE"));
    await upsertNode(deps.db, {
      nodeId,
      pop: hb.pop,
      labels: hb.labels,
      ip: ctx.ip,
      httpAddress: hb.http_address,
    });
    await recordHeartbeat(deps.db, nodeId, hb.inventory, hb.in_flight, hb.counters);
    if (hb.results.length > 0) await recordAck(deps.db, nodeId, hb.generation, hb.results);
    const active = await loadActiveState(deps.db);
    const behind = hb.generation < Number(active.generation);
    ctx.body = {
      node: nodeId,
      generation: active.generation,
      instructions: behind
        ? [
            {
              type: "desired_state",
              desired: await desiredFromActive(active, { ...hb.labels, pop: hb.pop }, deps.artifactUrl),
            },
          ]
        : [],
    };
  };
}
