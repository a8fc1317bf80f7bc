-- Push delivery: the SQLite store's version 3 in PostgreSQL's dialect. Applied migrations are never edited:
-- change the schema in a new file.

-- A push job's target as JSON (offload_core::push::Target); NULL for pull jobs, which workers claim.
ALTER TABLE jobs ADD COLUMN target json;
-- The target's `scheme://host:port`, which the dispatcher's per-destination concurrency cap counts by.
ALTER TABLE jobs ADD COLUMN destination text;

-- Pull claims never see push jobs: their index holds pull jobs only, so a backlog of push jobs in a queue costs
-- pull claimers nothing.
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id) WHERE state = 'available' AND target IS NULL;

-- The push dispatcher's claims: the (destination, queue) pairs that have available push jobs (walked one seek per
-- pair), and each pair's jobs, highest priority first, then oldest due.
CREATE INDEX jobs_push_claim ON jobs (destination, queue, priority DESC, run_at, id)
    WHERE state = 'available' AND target IS NOT NULL;

-- Server settings that must survive restarts and be the same on every node (the generated signing secret).
CREATE TABLE settings (
    name       text        PRIMARY KEY,
    value      text        NOT NULL,
    created_at timestamptz NOT NULL
);
