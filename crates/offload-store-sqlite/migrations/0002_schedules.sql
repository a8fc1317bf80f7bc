-- Cron schedules, their ticks, and the link from a job to the tick that created it. Conventions as in 0001.

-- One row per schedule. `job` is the validated job template as JSON, so job fields added later (a push
-- target) need no migration. `next_fire_at` is the next fire time not yet handled (NULL: never fires again);
-- `revision` grows with every change of definition or pause state, so the enqueuer only fires against the
-- version it planned with.
CREATE TABLE schedules (
    name               TEXT    PRIMARY KEY,
    cron               TEXT    NOT NULL,
    timezone           TEXT    NOT NULL,
    job                TEXT    NOT NULL,
    overlap            TEXT    NOT NULL,
    catch_up           TEXT    NOT NULL,
    catch_up_window_ms INTEGER NOT NULL,
    jitter_ms          INTEGER NOT NULL,
    paused             INTEGER NOT NULL,
    source             TEXT    NOT NULL,
    next_fire_at       INTEGER,
    revision           INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The enqueuer: unpaused schedules by next fire time.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0 AND next_fire_at IS NOT NULL;

-- What became of each tick: `fired` (with its job), `skipped` (overlap policy) or `missed` (catch-up policy;
-- one row stands for `count` consecutive ticks from `fire_at` to `last_fire_at`). `manual` rows are runs
-- triggered by hand at `fire_at`.
CREATE TABLE schedule_ticks (
    seq          INTEGER PRIMARY KEY,
    schedule     TEXT    NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    fire_at      INTEGER NOT NULL,
    outcome      TEXT    NOT NULL,
    job_id       BLOB,
    count        INTEGER NOT NULL DEFAULT 1,
    last_fire_at INTEGER,
    manual       INTEGER NOT NULL DEFAULT 0,
    recorded_at  INTEGER NOT NULL
) STRICT;

-- A tick happens once: a second row for the same (schedule, fire time) is impossible, whatever races.
CREATE UNIQUE INDEX schedule_ticks_once ON schedule_ticks (schedule, fire_at) WHERE manual = 0;
-- Recent ticks of a schedule, newest first; pruning the oldest.
CREATE INDEX schedule_ticks_recent ON schedule_ticks (schedule, seq);

-- The schedule and tick that created a job (NULL for jobs enqueued directly).
ALTER TABLE jobs ADD COLUMN schedule_name TEXT;
ALTER TABLE jobs ADD COLUMN schedule_fire_at INTEGER;

-- The overlap policy: a schedule's unfinished jobs by state.
CREATE INDEX jobs_schedule_active ON jobs (schedule_name, state)
    WHERE schedule_name IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retrying');
