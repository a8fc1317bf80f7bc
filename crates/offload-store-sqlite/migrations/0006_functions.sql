-- Offload's SQLite schema, version 6: durable functions (functions, events, runs, their steps and waits).
--
-- Conventions as before: times are INTEGER unix microseconds; ids are 16-byte BLOBs; JSON is kept as the text
-- it arrived as. A call of a run is an ordinary job: `jobs.run_id` names its run, `jobs.run_step` the planned
-- parallel step it was made for.

ALTER TABLE jobs ADD COLUMN run_id BLOB;
ALTER TABLE jobs ADD COLUMN run_step TEXT;
-- A run's calls (cancel, state on read, payload rewrites).
CREATE INDEX jobs_run ON jobs (run_id) WHERE run_id IS NOT NULL;

-- Registered functions. `spec` is the definition as registered, validated again on read. A removed function
-- keeps its row (`deleted_at`) so that its runs keep their definition.
CREATE TABLE functions (
    id         TEXT    PRIMARY KEY,
    spec       TEXT    NOT NULL,
    app        TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX functions_app ON functions (app, id) WHERE app IS NOT NULL;

-- Event names each function listens to: `trigger` (starts runs) or `cancel` (cancel_on), so that fan-out reads
-- only the functions an event concerns. Rewritten with the function.
CREATE TABLE function_events (
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    function_id TEXT NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    PRIMARY KEY (name, kind, function_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX function_events_function ON function_events (function_id);

-- Stored events. `user_id` is the sender's de-duplication id, unique among stored events; pruning frees it.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    id          BLOB    NOT NULL,
    name        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    user_id     TEXT,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX events_id ON events (id);
CREATE UNIQUE INDEX events_user_id ON events (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_name ON events (name, id);
CREATE INDEX events_received ON events (received_at);

-- Runs. `state` is the stored state (queued, sleeping, waiting, or an end); `running` is read from the run's
-- calls. Exactly one run per (function, event): the unique index is the fan-out's guarantee.
CREATE TABLE runs (
    seq           INTEGER PRIMARY KEY,
    id            BLOB    NOT NULL,
    function_id   TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    event_id      BLOB    NOT NULL,
    event         TEXT    NOT NULL,
    output        TEXT,
    error_name    TEXT,
    error_message TEXT,
    parent_id     BLOB,
    parent_step   TEXT,
    steps         INTEGER NOT NULL DEFAULT 0,
    state_bytes   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    ended_at      INTEGER,
    updated_at    INTEGER NOT NULL,
    wake_at       INTEGER
) STRICT;

CREATE UNIQUE INDEX runs_id ON runs (id);
CREATE UNIQUE INDEX runs_function_event ON runs (function_id, event_id);
CREATE INDEX runs_function ON runs (function_id, id);
CREATE INDEX runs_state ON runs (state, id);
CREATE INDEX runs_event ON runs (event_id);
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;

-- A run's steps in the order first seen (rowid). `result_kind` NULL: pending (a sleep, wait or invoke not yet
-- resolved, a failing `run` step, a planned parallel step: `planned` = 1); `data` or `error` once recorded.
CREATE TABLE run_steps (
    run_seq       INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    step_id       TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    result_kind   TEXT,
    data          TEXT,
    error_name    TEXT,
    error_message TEXT,
    attempts      INTEGER NOT NULL DEFAULT 1,
    planned       INTEGER NOT NULL DEFAULT 0,
    started_at    INTEGER NOT NULL,
    recorded_at   INTEGER,
    until         INTEGER,
    PRIMARY KEY (run_seq, step_id)
) STRICT;

-- Failed attempts of a step (retried), oldest first.
CREATE TABLE run_step_attempts (
    run_seq       INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    step_id       TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    error_name    TEXT    NOT NULL,
    error_message TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (run_seq, step_id, attempt)
) STRICT;

-- Parked steps: a wait for an event (`event_name`, match columns as `offload_store::fanout::wait_columns`) or
-- an invoke waiting for `child_id`. Deleting the row is the claim on resolving the step.
CREATE TABLE run_waits (
    run_seq    INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    step_id    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    event_name TEXT,
    match_path TEXT,
    match_key  TEXT,
    child_id   BLOB,
    until      INTEGER NOT NULL,
    PRIMARY KEY (run_seq, step_id)
) STRICT;

CREATE INDEX run_waits_event ON run_waits (event_name, match_path, match_key) WHERE event_name IS NOT NULL;
CREATE INDEX run_waits_until ON run_waits (until);
CREATE INDEX run_waits_child ON run_waits (child_id) WHERE child_id IS NOT NULL;

-- How a live run is found by the events that cancel it (`offload_store::fanout::cancel_keys`): one row per
-- `cancel_on` rule of its function, `''` for "any" in path and key. Dropped when the run ends.
CREATE TABLE run_cancel_keys (
    event_name TEXT    NOT NULL,
    match_path TEXT    NOT NULL,
    match_key  TEXT    NOT NULL,
    run_seq    INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE
) STRICT;

CREATE INDEX run_cancel_keys_match ON run_cancel_keys (event_name, match_path, match_key);
CREATE INDEX run_cancel_keys_run ON run_cancel_keys (run_seq);
