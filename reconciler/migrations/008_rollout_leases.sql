-- Progressive rollouts survive the replica that drives them. A rollout is driven by the replica
-- holding its lease (holder + expiry in database time, renewed while it bakes); a running rollout
-- whose lease is free or expired is picked up by any replica, at start and periodically. The bake
-- of the current wave is counted from bake_started_at (set once the wave's runners acked), with
-- the counters as they stood then in bake_baseline, so a replica that resumes it bakes only what
-- is left, judging the counters from the wave's start.
ALTER TABLE rollouts ADD COLUMN lease_holder text;
ALTER TABLE rollouts ADD COLUMN lease_expires_at timestamptz;
ALTER TABLE rollouts ADD COLUMN bake_started_at timestamptz;
ALTER TABLE rollouts ADD COLUMN bake_baseline jsonb;
