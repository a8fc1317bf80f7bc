-- Flow controls of functions: rate limits, singletons, and the functions an event skipped.
--
-- Invariant: a function's rate limit bucket for a key value is one row here (its GCRA TAT), locked, read and
-- written in the transaction that fans the event out, so concurrent events on several servers are counted
-- exactly; at most one live run (not succeeded, failed or cancelled) per function and singleton key, which the
-- unique index guarantees (an insert that conflicts is a skip).

-- The functions an event triggered but started no run of: `[{"function_id", "reason"}]`, NULL when none.
ALTER TABLE events ADD COLUMN skipped text;

-- Rate limit buckets: `key` is the value of the function's `rate_limit.key` in the event ('' without a key).
-- `tat` is NULL for a bucket created but never used.
CREATE TABLE function_rates (
    function_id text        NOT NULL,
    key         text        NOT NULL,
    tat         timestamptz,
    PRIMARY KEY (function_id, key)
);

-- A run's singleton key (the value of `singleton.key` in its event, '' without a key); NULL: not a singleton.
ALTER TABLE runs ADD COLUMN singleton_key text;
CREATE UNIQUE INDEX runs_singleton ON runs (function_id, singleton_key)
    WHERE singleton_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled');
