-- Flow controls of functions: rate limits, singletons, and the functions an event skipped.
--
-- Invariant: a function's rate limit bucket for a key value is one row here (its GCRA TAT), read and written in
-- the transaction that fans the event out; at most one live run (not succeeded, failed or cancelled) per
-- function and singleton key, which the unique index guarantees.

-- The functions an event triggered but started no run of: JSON `[{"function_id", "reason"}]`, NULL when none.
ALTER TABLE events ADD COLUMN skipped TEXT;

-- Rate limit buckets: `key` is the value of the function's `rate_limit.key` in the event ('' without a key).
CREATE TABLE function_rates (
    function_id TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    tat         INTEGER,
    PRIMARY KEY (function_id, key)
) STRICT, WITHOUT ROWID;

-- A run's singleton key (the value of `singleton.key` in its event, '' without a key); NULL: not a singleton.
ALTER TABLE runs ADD COLUMN singleton_key TEXT;
CREATE UNIQUE INDEX runs_singleton ON runs (function_id, singleton_key)
    WHERE singleton_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled');
