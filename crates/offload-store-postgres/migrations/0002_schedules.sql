-- Cron schedules, their ticks, and the link from a job to the tick that created it: the SQLite store's version 2
-- in PostgreSQL's dialect (conventions as in 0001).

-- One row per schedule. `job` is the validated job template as JSON, so job fields added later need no
-- migration. `next_fire_at` is the next fire time not yet handled (NULL: never fires again); `revision` grows
-- with every change of definition or pause state, so the enqueuer only fires against the version it planned
-- with.
CREATE TABLE schedules (
    name               text        PRIMARY KEY,
    cron               text        NOT NULL,
    timezone           text        NOT NULL,
    job                json        NOT NULL,
    overlap            text        NOT NULL,
    catch_up           text        NOT NULL,
    catch_up_window_ms bigint      NOT NULL,
    jitter_ms          bigint      NOT NULL,
    paused             boolean     NOT NULL,
    source             text        NOT NULL,
    next_fire_at       timestamptz,
    revision           bigint      NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);

-- The enqueuer: unpaused schedules by next fire time.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused AND next_fire_at IS NOT NULL;

-- What became of each tick: `fired` (with its job), `skipped` (overlap policy) or `missed` (catch-up policy; one
-- row stands for `count` consecutive ticks from `fire_at` to `last_fire_at`). `manual` rows are runs triggered by
-- hand at `fire_at`.
CREATE TABLE schedule_ticks (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule     text        NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    fire_at      timestamptz NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('fired', 'skipped', 'missed')),
    job_id       uuid,
    count        bigint      NOT NULL DEFAULT 1,
    last_fire_at timestamptz,
    manual       boolean     NOT NULL DEFAULT false,
    recorded_at  timestamptz NOT NULL
);

-- A tick happens once: a second row for the same (schedule, fire time) is impossible, whatever races between
-- servers.
CREATE UNIQUE INDEX schedule_ticks_once ON schedule_ticks (schedule, fire_at) WHERE NOT manual;
-- Recent ticks of a schedule, newest first; pruning the oldest.
CREATE INDEX schedule_ticks_recent ON schedule_ticks (schedule, seq);

-- The schedule and tick that created a job (NULL for jobs enqueued directly).
ALTER TABLE jobs ADD COLUMN schedule_name text;
ALTER TABLE jobs ADD COLUMN schedule_fire_at timestamptz;

-- The overlap policy: a schedule's unfinished jobs by state.
CREATE INDEX jobs_schedule_active ON jobs (schedule_name, state)
    WHERE schedule_name IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retrying');
