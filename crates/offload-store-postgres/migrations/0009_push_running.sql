-- Push claims count the running push jobs of each destination they consider, in their transaction (serialised
-- across servers by an advisory lock), to keep the per-destination cap exact: this index makes that count a
-- seek over the destination's running push jobs (at most about its cap), whatever else runs. The SQLite
-- store's version 9 in PostgreSQL's dialect.
CREATE INDEX jobs_push_running ON jobs (destination) WHERE state = 'running' AND target IS NOT NULL;
