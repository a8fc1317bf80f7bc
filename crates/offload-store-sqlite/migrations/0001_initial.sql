-- Offload's SQLite schema, version 1. Applied migrations are never edited: change the schema in a new file.
--
-- Conventions: times are INTEGER unix microseconds; durations are INTEGER milliseconds; job ids and lease tokens
-- are 16-byte BLOBs; payloads and results are the JSON text exactly as received; states are their API names.

-- Every job. `seq` (the rowid) is the internal key other tables point at; `id` is the public UUIDv7.
CREATE TABLE jobs (
    seq                 INTEGER PRIMARY KEY,
    id                  BLOB    NOT NULL,
    queue               TEXT    NOT NULL,
    name                TEXT,
    state               TEXT    NOT NULL,
    payload             TEXT    NOT NULL,
    priority            INTEGER NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    backoff_base_ms     INTEGER NOT NULL,
    backoff_cap_ms      INTEGER NOT NULL,
    backoff_jitter      REAL    NOT NULL,
    timeout_ms          INTEGER NOT NULL,
    run_at              INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    attempted_at        INTEGER,
    finished_at         INTEGER,
    lease_token         BLOB,
    lease_expires_at    INTEGER,
    worker_id           TEXT,
    idempotency_key     TEXT,
    request_fingerprint TEXT,
    tags                TEXT,    -- JSON object; NULL when the job has none
    progress            INTEGER,
    progress_message    TEXT,
    result              TEXT,
    last_error          TEXT,
    cancel_requested    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE UNIQUE INDEX jobs_id ON jobs (id);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Claims: the next available jobs of a queue, highest priority first, then oldest due (rowid breaks ties).
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at) WHERE state = 'available';
-- The oldest available job of a queue (queue_list's oldest_available_age_ms).
CREATE INDEX jobs_available_since ON jobs (queue, run_at) WHERE state = 'available';
-- The stager: waiting jobs by due time.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('scheduled', 'retrying');
-- The rescuer: running jobs by lease deadline.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';
-- The pruner: finished jobs by state and finish time (queries repeat the IN list so the index applies).
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE state IN ('succeeded', 'dead', 'cancelled');
-- Lists, newest first. A queue's jobs, in every state: never changes after insert.
CREATE INDEX jobs_queue ON jobs (queue, id);
-- A queue's jobs in one state, for every state but the two every job passes through quickly; leaving them out
-- keeps claims and completions from updating this index twice per job (queries repeat the NOT IN list).
CREATE INDEX jobs_settled ON jobs (queue, state, id) WHERE state NOT IN ('available', 'running');

-- Ended attempts only; the running attempt is read from the job row.
CREATE TABLE job_attempts (
    job_seq     INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    worker_id   TEXT,
    outcome     TEXT    NOT NULL,
    error       TEXT
) STRICT;

CREATE UNIQUE INDEX job_attempts_job ON job_attempts (job_seq, attempt);

-- Queues that were paused or resumed at least once (queues with jobs exist through queue_counts alone).
CREATE TABLE queues (
    name       TEXT    PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Jobs per (queue, state), maintained by the single writer (see the store's `counts` module) so that no reader
-- ever counts the jobs table. Invariant: n is the number of jobs with this queue and state.
CREATE TABLE queue_counts (
    queue TEXT    NOT NULL,
    state TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) STRICT, WITHOUT ROWID;

-- Leases on singleton work. `term` only ever grows: it changes when the lease changes hands.
CREATE TABLE leaders (
    name       TEXT    PRIMARY KEY,
    node_id    TEXT    NOT NULL,
    term       INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
