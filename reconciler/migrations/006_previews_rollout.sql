-- Pull-request previews, version pins (rollback), progressive rollouts.

-- A preview: one function of one pull request, built from the PR head and served on preview
-- hosts by the runners of the POPs that match both the Project's preview.pops and the
-- function's placement. Preview versions are ordinary immutable rows of `functions` (they take
-- the next version number, which is never reused) but never get a deployment or a route row:
-- production does not see them. status: active → closed (PR closed or merged) | expired (TTL).
CREATE TABLE previews (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects(id),
  pr integer NOT NULL,
  head_sha text NOT NULL,
  head_repo text,
  fork boolean NOT NULL DEFAULT false,
  function_name text NOT NULL,
  function_id uuid NOT NULL REFERENCES functions(id),
  version integer NOT NULL,
  domain text NOT NULL,                     -- the Project's preview.domain
  preview_selector text NOT NULL DEFAULT '', -- the Project's preview.pops
  pop_selector text NOT NULL DEFAULT '',     -- the function's placement.pops
  pops jsonb NOT NULL DEFAULT '[]',          -- POPs that matched when it was deployed
  status text NOT NULL CHECK (status IN ('active', 'closed', 'expired')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX previews_one_active ON previews (project_id, pr, function_name) WHERE status = 'active';

-- The one plan comment per pull request, edited in place on every push.
CREATE TABLE pr_comments (
  project_id uuid NOT NULL REFERENCES projects(id),
  pr integer NOT NULL,
  comment_id bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, pr)
);

-- A pin: the runners serve `function_id` (an older immutable version) instead of the active
-- deployment, which stays what Git says. A push that changes the function lifts it.
CREATE TABLE pins (
  project_id uuid NOT NULL REFERENCES projects(id),
  function_name text NOT NULL,
  function_id uuid NOT NULL REFERENCES functions(id),
  version integer NOT NULL,
  from_function_id uuid NOT NULL REFERENCES functions(id),
  from_version integer NOT NULL,
  actor text NOT NULL,
  reason text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, function_name)
);

-- A progressive rollout of one function from one version to the next, wave by wave. While it
-- runs, nodes matching the selectors of waves 0..wave serve to_function_id, the others keep
-- from_function_id. A breach pins from_function_id (status rolled_back).
CREATE TABLE rollouts (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects(id),
  reconciliation_id uuid,
  commit_sha text,
  function_name text NOT NULL,
  from_function_id uuid NOT NULL REFERENCES functions(id),
  from_version integer NOT NULL,
  to_function_id uuid NOT NULL REFERENCES functions(id),
  to_version integer NOT NULL,
  policy jsonb NOT NULL,                    -- { waves: [{ pops, bakeMs }], maxErrorRate, maxP99Ms }
  wave integer NOT NULL DEFAULT 0,
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'rolled_back', 'superseded', 'abandoned')),
  reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX rollouts_one_running ON rollouts (project_id, function_name) WHERE status = 'running';

-- p99 latency per function version in each heartbeat (gates rollouts next to the error rate).
ALTER TABLE node_function_stats ADD COLUMN p99_ms double precision;

-- PR comments are deliveries too.
ALTER TABLE status_deliveries DROP CONSTRAINT status_deliveries_kind_check;
ALTER TABLE status_deliveries ADD CONSTRAINT status_deliveries_kind_check
  CHECK (kind IN ('commit_status', 'notification', 'pr_comment'));
