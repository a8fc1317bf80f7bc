-- Push claims count the running push jobs of each destination they consider, in their transaction, to keep the
-- per-destination cap exact across servers: this index makes that count a seek over the destination's running
-- push jobs (at most about its cap), whatever else runs.
CREATE INDEX jobs_push_running ON jobs (destination) WHERE state = 'running' AND target IS NOT NULL;
