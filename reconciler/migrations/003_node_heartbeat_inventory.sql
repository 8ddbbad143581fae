-- What a runner reported in its last heartbeat: the artifacts in its cache and its load
-- (seed Property 6: the control plane keeps an accurate inventory per node).
ALTER TABLE nodes ADD COLUMN inventory jsonb NOT NULL DEFAULT '[]';
ALTER TABLE nodes ADD COLUMN in_flight integer NOT NULL DEFAULT 0;
