-- Durable functions: functions, events, runs, their steps and waits (the SQLite store's version 6 in PostgreSQL's
-- dialect). Applied migrations are never edited: change the schema in a new file.
--
-- A call of a run is an ordinary job; `run_id` (and `run_step` for a parallel call) mark it, so ending, rescuing
-- and cancelling a job know it is a call without parsing its tags.
ALTER TABLE jobs ADD COLUMN run_id uuid, ADD COLUMN run_step text;
CREATE INDEX jobs_run ON jobs (run_id) WHERE run_id IS NOT NULL;

-- Registered functions. `spec` is the definition as registered (re-validated on read); `trigger_events` and
-- `cancel_events` are the event names its triggers and `cancel_on` rules name, so fan-out finds the functions an
-- event concerns through an index. Removed functions keep their row (`deleted_at`): their runs' calls still
-- need the definition.
CREATE TABLE functions (
    id             text        PRIMARY KEY,
    spec           json        NOT NULL,
    app            text,
    trigger_events text[]      NOT NULL,
    cancel_events  text[]      NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    deleted_at     timestamptz
);
CREATE INDEX functions_triggers ON functions USING gin (trigger_events) WHERE deleted_at IS NULL;
CREATE INDEX functions_cancels ON functions USING gin (cancel_events) WHERE deleted_at IS NULL;
CREATE INDEX functions_app ON functions (app, id) WHERE app IS NOT NULL;

-- Stored events. The sender's id (`user_id`) is unique among stored events: inserting a second one waits for the
-- first's transaction and then finds it (ON CONFLICT DO NOTHING), so with several servers a duplicate starts
-- nothing. Pruning an event frees its id.
CREATE TABLE events (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    data        json        NOT NULL,
    user_id     text,
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX events_user_id ON events (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_name ON events (name, id);
CREATE INDEX events_received ON events (received_at);

-- Runs. One run per (function, event): the unique index is the backstop of fan-out's exactness. `state` is the
-- stored state; `running` (a call claimed) is read from the run's call jobs. `error_*` hold why it failed.
CREATE TABLE runs (
    id            uuid        PRIMARY KEY,
    function_id   text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('queued', 'running', 'sleeping', 'waiting', 'succeeded',
                                  'failed', 'cancelled')),
    event_id      uuid        NOT NULL,
    event         json        NOT NULL,
    output        json,
    error_name    text,
    error_message text,
    parent_run_id uuid,
    parent_step   text,
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    ended_at      timestamptz,
    updated_at    timestamptz NOT NULL,
    wake_at       timestamptz
);
CREATE UNIQUE INDEX runs_function_event ON runs (function_id, event_id);
CREATE INDEX runs_event ON runs (event_id);
CREATE INDEX runs_function ON runs (function_id, id);
CREATE INDEX runs_state ON runs (state, id);
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;

-- A run's steps, one row per step id from when it is first seen (a failed attempt, a plan, or its record).
-- `result` is `{"data": ...}` or `{"error": {...}}` once recorded; `parallel` marks a planned parallel step.
CREATE TABLE run_steps (
    run_id      uuid        NOT NULL,
    step_id     text        NOT NULL,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    kind        text        NOT NULL,
    result      json,
    attempts    integer     NOT NULL DEFAULT 1,
    parallel    boolean     NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL,
    recorded_at timestamptz,
    until       timestamptz,
    PRIMARY KEY (run_id, step_id)
);

-- Failed attempts of steps that were retried.
CREATE TABLE run_step_attempts (
    run_id        uuid        NOT NULL,
    step_id       text        NOT NULL,
    attempt       integer     NOT NULL,
    error_name    text        NOT NULL,
    error_message text        NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (run_id, step_id, attempt)
);

-- Parked runs: a `wait_for_event` step (`kind` 'event': the awaited name, and its match as
-- `offload_store::fanout::wait_columns` keeps it: any event, a key at `match_path`, or none) or an `invoke` step (`kind` 'invoke': the child run). Deleting
-- the row is the claim: whoever deletes it (a matching event, the child's end, the timeout) resolves the step.
CREATE TABLE run_waits (
    run_id       uuid        NOT NULL,
    step_id      text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('event', 'invoke')),
    event        text,
    match_path   text,
    match_key    text,
    child_run_id uuid,
    until        timestamptz NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
-- A new event reads only the waits it may resolve: those of its name waiting for any event, and those whose key is
-- the event's value at their path.
CREATE INDEX run_waits_event ON run_waits (event, match_path, match_key) WHERE kind = 'event';
CREATE INDEX run_waits_child ON run_waits (child_run_id) WHERE child_run_id IS NOT NULL;
CREATE INDEX run_waits_until ON run_waits (until);

-- The paths waits of each event name compare (written with each wait, never removed: there are as many as the
-- code has distinct `wait_for_event` matches), so a new event computes its key at each of them and reads only
-- the waits with that key.
CREATE TABLE run_wait_paths (
    event      text NOT NULL,
    match_path text NOT NULL,
    PRIMARY KEY (event, match_path)
);

-- How a live run is found by the events that cancel it (`offload_store::fanout::cancel_keys`): one row per
-- `cancel_on` rule of its function, '' for "any" in path and key. Written with the run, deleted when it ends.
CREATE TABLE run_cancel_keys (
    event      text NOT NULL,
    match_path text NOT NULL,
    match_key  text NOT NULL,
    run_id     uuid NOT NULL
);
CREATE INDEX run_cancel_keys_match ON run_cancel_keys (event, match_path, match_key);
CREATE INDEX run_cancel_keys_run ON run_cancel_keys (run_id);
