-- edgeplane schema, version 1. Plain SQL that runs unchanged on PostgreSQL and PGlite.
-- Tables follow the seed (functions, routes, nodes, deployments) plus what DESIGN.md adds.

CREATE TABLE projects (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  repo_url text NOT NULL,                 -- clone URL from the registration, never from a payload
  full_name text,                         -- "owner/name" as webhooks name the repository
  branch text NOT NULL DEFAULT 'main',
  source text NOT NULL DEFAULT 'git' CHECK (source IN ('git', 'directory', 'api')),
  last_commit text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per immutable function version: (project, name, version) never changes meaning.
CREATE TABLE functions (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects(id),
  name text NOT NULL,
  version integer NOT NULL,
  runtime text NOT NULL CHECK (runtime IN ('wasm', 'wasm-aot')),
  abi text NOT NULL CHECK (abi IN ('edge-v1', 'wagi')),
  language text NOT NULL,
  entrypoint text NOT NULL,
  artifact_key text NOT NULL,             -- the seed's artifact_url; URLs are made per download
  sha256 char(64) NOT NULL,
  size_bytes integer NOT NULL,
  memory_pages integer NOT NULL,
  max_execution_ms integer NOT NULL,
  max_request_bytes integer NOT NULL,
  max_instances integer NOT NULL,
  env jsonb NOT NULL DEFAULT '{}',
  capabilities jsonb NOT NULL DEFAULT '{}',
  labels jsonb NOT NULL DEFAULT '{}',
  pop_selector text NOT NULL DEFAULT '',
  source_path text NOT NULL,
  source_hash char(64) NOT NULL,
  config_hash char(64) NOT NULL,
  commit_sha text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name, version)
);

-- The current routing table: rows point at the function version they dispatch to.
CREATE TABLE routes (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects(id),
  function_name text NOT NULL,
  function_id uuid NOT NULL REFERENCES functions(id),
  host text NOT NULL,
  path text NOT NULL,
  methods text NOT NULL DEFAULT '',       -- comma-separated, '' = any method
  priority integer NOT NULL DEFAULT 0,
  pop_selector text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (host, path, methods, priority)
);
CREATE INDEX routes_function ON routes (project_id, function_name);

CREATE TABLE nodes (
  id text PRIMARY KEY,
  pop_id text NOT NULL,
  ip text NOT NULL DEFAULT '',
  http_address text NOT NULL DEFAULT '',
  last_heartbeat timestamptz,
  status text NOT NULL CHECK (status IN ('online', 'degraded', 'offline')),
  metadata jsonb NOT NULL DEFAULT '{}',   -- labels
  acked_generation bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- What each node reported for each function version in its last ack or heartbeat.
CREATE TABLE node_inventory (
  node_id text NOT NULL REFERENCES nodes(id),
  function_id uuid NOT NULL,
  version text NOT NULL,
  status text NOT NULL,
  message text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, function_id)
);

CREATE TABLE reconciliations (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects(id),
  commit_sha text,
  trigger text NOT NULL,                  -- push | api | local | poll
  actor text NOT NULL DEFAULT 'system',
  status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'superseded')),
  plan jsonb,
  result jsonb,
  error jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  duration_ms integer
);
CREATE INDEX reconciliations_project ON reconciliations (project_id, created_at DESC);

-- Which function version is desired where. Exactly one active row per (project, function).
CREATE TABLE deployments (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects(id),
  function_id uuid NOT NULL REFERENCES functions(id),
  function_name text NOT NULL,
  version integer NOT NULL,
  target_pop text NOT NULL DEFAULT '',    -- placement selector; '' = every POP
  status text NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'superseded', 'removed')),
  active boolean NOT NULL DEFAULT true,
  reconciliation_id uuid REFERENCES reconciliations(id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX deployments_one_active ON deployments (project_id, function_name) WHERE active;

-- Append-only: one row per change of stored state.
CREATE TABLE audit_logs (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  trigger text NOT NULL,
  commit_sha text,
  project_id uuid REFERENCES projects(id),
  object_kind text NOT NULL,
  object_id text NOT NULL,
  action text NOT NULL,
  before jsonb,
  after jsonb,
  reconciliation_id uuid
);
CREATE INDEX audit_logs_project ON audit_logs (project_id, at);

CREATE TABLE webhook_deliveries (
  delivery_id text PRIMARY KEY,
  event text NOT NULL,
  project_id uuid REFERENCES projects(id),
  reconciliation_id uuid,
  result text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox: a row per committed change of desired state. Its id is the
-- generation runners converge on, so an intent can never be lost between commit and send.
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  project_id uuid REFERENCES projects(id),
  kind text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
