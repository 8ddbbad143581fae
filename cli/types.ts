// The shapes of the API responses the CLI reads (what reconciler/api.ts sends as JSON).

import type { ErrorDetail } from "../lib/errors.ts";

export interface PlanChange {
  action: "create" | "update" | "routes" | "delete";
  name: string;
  reason: string;
  fromVersion?: number;
  version?: number;
}

export interface PopOutcome {
  pop: string;
  state: "success" | "failure";
  description: string;
  nodes: {
    node: string;
    acked: boolean;
    failures: { function_id: string; status: string; message: string }[];
  }[];
}

export interface Reconciliation {
  id: string;
  project: string;
  commit_sha: string | null;
  trigger: string;
  actor: string;
  status: "queued" | "running" | "succeeded" | "failed" | "superseded";
  plan: { changes: PlanChange[] } | null;
  result: {
    generation?: number | null;
    superseded_by?: string;
    builds?: {
      function: string;
      version: number;
      bytes: number;
      sha256: string;
      ms: number;
      cacheHit?: boolean;
    }[];
    skipped?: { function: string; message: string }[];
  } | null;
  error: { code: string; message: string; details?: ErrorDetail[] } | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  outcome: { generation: number; pops: PopOutcome[]; propagationMs: number } | null;
}

export interface Project {
  name: string;
  repo_url: string;
  branch: string;
  source: string;
  last_commit: string | null;
}

export interface FunctionRow {
  id: string;
  project: string;
  name: string;
  version: number;
  runtime: string;
  abi: string;
  language: string;
  sha256: string;
  size_bytes: number;
  memory_pages: number;
  max_execution_ms: number;
  commit_sha: string | null;
  created_at: string;
  deployment_status: string;
  source_hash?: string;
  config_hash?: string;
}

export interface RouteRow {
  host: string;
  path: string;
  methods: string;
  priority: number;
  function_name: string;
  function_id: string;
  project: string;
}
