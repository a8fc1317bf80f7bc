-- Offload's PostgreSQL schema, version 1: the SQLite store's version 1 in PostgreSQL's dialect. Applied migrations
-- are never edited: change the schema in a new file with the next number (the same number as SQLite's).
--
-- Every object is created unqualified: the migrator connects with `search_path` set to Offload's schema
-- (`offload` unless configured), so one database can hold several independent installations.
--
-- Conventions: times are timestamptz (microseconds, like SQLite's integers); durations are bigint milliseconds;
-- job ids and lease tokens are uuid; payloads and results are `json`, which keeps the text exactly as received;
-- tags are `jsonb` (an object of strings; NULL when the job has none); states are their API names.
--
-- Differences from SQLite, and why: jobs are keyed by `id` (no separate rowid), and the attempt history refers
-- to it without a foreign key (every statement that deletes jobs deletes their history in the same statement):
-- PostgreSQL checks a foreign key with a row trigger per inserted attempt; and a successful attempt is not copied
-- into the history, since the job row tells it whole. Queue counts are sharded, so that concurrent transactions on
-- one queue (several servers) rarely wait for each other's count row.

CREATE TABLE jobs (
    id                  uuid             PRIMARY KEY,
    queue               text             NOT NULL,
    name                text,
    state               text             NOT NULL CHECK (state IN ('scheduled', 'available', 'running',
                                             'retrying', 'succeeded', 'dead', 'cancelled')),
    payload             json             NOT NULL,
    priority            integer          NOT NULL,
    attempt             integer          NOT NULL DEFAULT 0,
    max_attempts        integer          NOT NULL,
    backoff_base_ms     bigint           NOT NULL,
    backoff_cap_ms      bigint           NOT NULL,
    backoff_jitter      double precision NOT NULL,
    timeout_ms          bigint           NOT NULL,
    run_at              timestamptz      NOT NULL,
    created_at          timestamptz      NOT NULL,
    attempted_at        timestamptz,
    finished_at         timestamptz,
    lease_token         uuid,
    lease_expires_at    timestamptz,
    worker_id           text,
    idempotency_key     text,
    request_fingerprint text,
    tags                jsonb,
    progress            smallint,
    progress_message    text,
    result              json,
    last_error          text,
    cancel_requested    boolean          NOT NULL DEFAULT false
);
-- Every job's row is rewritten a few times within seconds: vacuum early, so claims do not wade through dead
-- index entries (the defaults wait for a fifth of the table to be dead).
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05,
                      autovacuum_analyze_scale_factor = 0.05);

CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Claims: the next available jobs of a queue, highest priority first, then oldest due (the id breaks ties).
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id) WHERE state = 'available';
-- The oldest available job of a queue (queue_list's oldest_available_age_ms).
CREATE INDEX jobs_available_since ON jobs (queue, run_at) WHERE state = 'available';
-- The stager: waiting jobs by due time.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('scheduled', 'retrying');
-- The rescuer: running jobs by lease deadline.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';
-- The pruner: finished jobs by state and finish time (queries repeat the IN list so the index applies).
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE state IN ('succeeded', 'dead', 'cancelled');
-- Lists, newest first. A queue's jobs, in every state.
CREATE INDEX jobs_queue ON jobs (queue, id);
-- A queue's jobs in one state, for every state but the two every job passes through quickly (queries repeat the
-- NOT IN list so the index applies).
CREATE INDEX jobs_settled ON jobs (queue, state, id) WHERE state NOT IN ('available', 'running');

-- Ended attempts, except a successful one: it is the job's last, and like the running attempt it is read from the
-- job row (attempt, attempted_at, finished_at, worker_id).
CREATE TABLE job_attempts (
    job_id      uuid        NOT NULL,
    attempt     integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    worker_id   text,
    outcome     text        NOT NULL,
    error       text,
    PRIMARY KEY (job_id, attempt)
);

-- Queues that were paused or resumed at least once (queues with jobs exist through queue_counts alone).
CREATE TABLE queues (
    name       text        PRIMARY KEY,
    paused     boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);

-- Jobs per (queue, state), kept by every statement that creates, moves or deletes jobs, in the same transaction.
-- Invariant: the sum of n over a (queue, state)'s shards is the number of jobs with that queue and state. Each
-- writing statement adds its changes to one shard picked at random, so concurrent writers rarely share a row.
CREATE TABLE queue_counts (
    queue text     NOT NULL,
    state text     NOT NULL,
    shard smallint NOT NULL,
    n     bigint   NOT NULL,
    PRIMARY KEY (queue, state, shard)
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- Leases on singleton work. `term` only ever grows: it changes when the lease changes hands.
CREATE TABLE leaders (
    name       text        PRIMARY KEY,
    node_id    text        NOT NULL,
    term       bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);

-- A time-ordered UUID (version 7) for `at`, as the server's job ids are: 48 bits of unix milliseconds, then
-- random bits.
CREATE FUNCTION uuid_v7(at timestamptz) RETURNS uuid
LANGUAGE sql VOLATILE
AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM at) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- Transactional enqueue. Call it inside the application's own transaction: the job exists if and only if that
-- transaction commits, and idle workers are woken when it does (NOTIFY is delivered on commit).
--
--   SELECT offload.enqueue('emails', '{"to": "ada@example.com"}');
--   SELECT offload.enqueue(queue => 'reports', payload => '{"id": 7}', name => 'weekly',
--                          delay => interval '10 minutes', max_attempts => 5, tags => '{"tenant": "acme"}');
--
-- The arguments are the HTTP API's, with its default limits (the server's configured limits do not apply here).
-- Times come from the database clock (`now()`: the transaction's start). Returns the job's id. Invalid
-- arguments raise `invalid_parameter_value` (SQLSTATE 22023) naming the argument, and nothing is stored.
CREATE FUNCTION enqueue(
    queue          text,
    payload        jsonb            DEFAULT 'null',
    name           text             DEFAULT NULL,
    run_at         timestamptz      DEFAULT NULL,
    delay          interval         DEFAULT NULL,
    priority       integer          DEFAULT 0,
    max_attempts   integer          DEFAULT 25,
    timeout        interval         DEFAULT interval '5 minutes',
    tags           jsonb            DEFAULT NULL,
    backoff_base   interval         DEFAULT interval '1 second',
    backoff_cap    interval         DEFAULT interval '1 hour',
    backoff_jitter double precision DEFAULT 0.2
) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
#variable_conflict use_variable
DECLARE
    now_        timestamptz := now();
    max_delay   CONSTANT interval := interval '365 days';
    due         timestamptz;
    state_      text;
    id_         uuid;
    timeout_ms_ bigint;
    base_ms     bigint;
    cap_ms      bigint;
    bad         text;
BEGIN
    IF queue IS NULL OR queue !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
        bad := 'queue: must be 1 to 128 ASCII letters, digits, ''-'', ''_'', ''.'' or '':''';
    ELSIF payload IS NULL THEN
        bad := 'payload: must not be SQL NULL (use ''null''::jsonb for a JSON null)';
    ELSIF octet_length(payload::text) > 1048576 THEN
        bad := 'payload: must be at most 1048576 bytes of JSON';
    ELSIF name IS NOT NULL AND (name = '' OR octet_length(name) > 256 OR name ~ '[[:cntrl:]]') THEN
        bad := 'name: must be 1 to 256 bytes without control characters';
    ELSIF run_at IS NOT NULL AND delay IS NOT NULL THEN
        bad := 'delay: give either run_at or delay, not both';
    ELSIF delay < interval '0' OR delay > max_delay THEN
        bad := 'delay: must be between 0 and 365 days';
    ELSIF run_at > now_ + max_delay THEN
        bad := 'run_at: must be at most 365 days in the future';
    ELSIF priority IS NULL THEN
        bad := 'priority: must not be NULL';
    ELSIF max_attempts IS NULL OR max_attempts < 1 OR max_attempts > 1000 THEN
        bad := 'max_attempts: must be between 1 and 1000';
    ELSIF timeout IS NULL OR timeout < interval '1 second' OR timeout > interval '24 hours' THEN
        bad := 'timeout: must be between 1 second and 24 hours';
    ELSIF backoff_base IS NULL OR backoff_cap IS NULL OR backoff_base < interval '0' OR backoff_base > backoff_cap
          OR backoff_cap > max_delay THEN
        bad := 'backoff_base: must be between 0 and backoff_cap, which must be at most 365 days';
    ELSIF backoff_jitter IS NULL OR backoff_jitter < 0 OR backoff_jitter > 1 THEN
        bad := 'backoff_jitter: must be between 0.0 and 1.0';
    ELSIF tags IS NOT NULL AND (jsonb_typeof(tags) <> 'object'
          OR (SELECT count(*) FROM jsonb_each(tags)) > 32
          OR EXISTS (SELECT 1 FROM jsonb_each(tags) AS t(k, v)
                     WHERE jsonb_typeof(v) <> 'string' OR k = '' OR octet_length(k) > 64 OR k ~ '[[:cntrl:]]'
                        OR octet_length(v #>> '{}') > 256)) THEN
        bad := 'tags: must be an object of at most 32 string values (keys 1 to 64 bytes, values at most 256)';
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'offload.enqueue: %', bad USING ERRCODE = 'invalid_parameter_value';
    END IF;

    due := greatest(coalesce(run_at, now_ + coalesce(delay, interval '0')), now_);
    state_ := CASE WHEN due <= now_ THEN 'available' ELSE 'scheduled' END;
    id_ := uuid_v7(clock_timestamp());
    timeout_ms_ := round(extract(epoch FROM timeout) * 1000);
    base_ms := round(extract(epoch FROM backoff_base) * 1000);
    cap_ms := round(extract(epoch FROM backoff_cap) * 1000);
    IF tags = '{}'::jsonb THEN
        tags := NULL;
    END IF;

    INSERT INTO jobs (id, queue, name, state, payload, priority, max_attempts, backoff_base_ms, backoff_cap_ms,
                      backoff_jitter, timeout_ms, run_at, created_at, tags)
    VALUES (id_, queue, name, state_, payload::json, priority, max_attempts, base_ms, cap_ms, backoff_jitter,
            timeout_ms_, due, now_, tags);
    INSERT INTO queue_counts AS c (queue, state, shard, n)
    VALUES (queue, state_, floor(random() * 16)::smallint, 1)
    ON CONFLICT ON CONSTRAINT queue_counts_pkey DO UPDATE SET n = c.n + 1;
    IF state_ = 'available' THEN
        PERFORM pg_notify(current_schema() || '.available', queue);
    END IF;
    RETURN id_;
END
$$;
