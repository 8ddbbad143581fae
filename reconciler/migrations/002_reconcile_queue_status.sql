-- Reconcile queue across replicas, per-POP outcomes, and status reporting.

-- A lease per project: at most one control-plane replica reconciles a project at a time.
-- A holder that dies loses the lease when it expires; a live holder renews it.
CREATE TABLE project_leases (
  project_id uuid PRIMARY KEY REFERENCES projects(id),
  holder text NOT NULL,
  expires_at timestamptz NOT NULL
);

-- What each POP made of a reconcile's generation (filled once the target runners acked or the
-- wait timed out), and the replica that ran it.
ALTER TABLE reconciliations ADD COLUMN outcome jsonb;
ALTER TABLE reconciliations ADD COLUMN runner text;

-- Outgoing status reports: GitHub commit statuses and signed notification webhooks. One row
-- per delivery; attempts are retried with exponential backoff up to max_attempts.
CREATE TABLE status_deliveries (
  id uuid PRIMARY KEY,
  project_id uuid REFERENCES projects(id),
  reconciliation_id uuid,
  kind text NOT NULL CHECK (kind IN ('commit_status', 'notification')),
  target text NOT NULL,
  event text NOT NULL,
  payload jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  response_status integer,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_deliveries_reconciliation ON status_deliveries (reconciliation_id);

-- The Project document of the last applied commit (notification targets survive a bad commit).
ALTER TABLE projects ADD COLUMN spec jsonb;
