-- Push delivery, version 3. Applied migrations are never edited: change the schema in a new file.

-- A push job's target as JSON (offload_core::push::Target); NULL for pull jobs, which workers claim.
ALTER TABLE jobs ADD COLUMN target TEXT;
-- The target's `scheme://host:port`, which the dispatcher's per-destination concurrency cap counts by.
ALTER TABLE jobs ADD COLUMN destination TEXT;

-- The push dispatcher's claims: the destinations and queues that have available push jobs (walked one
-- (destination, queue) pair per seek, so a large backlog of one destination is never scanned), and each pair's
-- jobs, highest priority first, then oldest due.
CREATE INDEX jobs_push_claim ON jobs (destination, queue, priority DESC, run_at)
    WHERE state = 'available' AND target IS NOT NULL;

-- Server settings that must survive restarts and be the same on every node (the generated signing secret).
CREATE TABLE settings (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
