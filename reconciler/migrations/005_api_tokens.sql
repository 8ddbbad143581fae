-- API bearer tokens. Only a SHA-256 of each token is stored; the token itself is shown once,
-- when it is created. A token is either admin (every project) or scoped to one project.
CREATE TABLE api_tokens (
  id uuid PRIMARY KEY,
  name text NOT NULL DEFAULT '',
  project_id uuid REFERENCES projects(id),
  admin boolean NOT NULL DEFAULT false,
  hash char(64) NOT NULL UNIQUE,
  prefix text NOT NULL,                   -- the first characters, to recognise a token in lists
  created_by text NOT NULL DEFAULT 'system',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  CHECK (admin OR project_id IS NOT NULL)
);

-- Projects whose source is the API (imperative endpoints) keep the hosts they may route here;
-- Git projects take theirs from the Project manifest.
ALTER TABLE projects ADD COLUMN domains jsonb NOT NULL DEFAULT '[]';
