-- Per-function request and error counts runners report with each heartbeat (what a rollout
-- gates on): the counters of the last heartbeat, and their running totals.
ALTER TABLE nodes ADD COLUMN function_counters jsonb NOT NULL DEFAULT '[]';
CREATE TABLE node_function_stats (
  node_id text NOT NULL REFERENCES nodes(id),
  function_id uuid NOT NULL,
  version text NOT NULL,
  requests bigint NOT NULL DEFAULT 0,
  errors bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, function_id)
);
