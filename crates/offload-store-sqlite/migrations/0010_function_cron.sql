-- Cron triggers of durable functions: one row per registered (not removed) function with a cron trigger.
--
-- Invariant: a row exists exactly while its function is registered with a cron trigger; it is written with the
-- function's row (registration, replacement, removal) in one transaction. `next_fire_at` only moves forward
-- through a firing, in the transaction that stores the tick's event and starts its run, so a tick never fires
-- twice. `cron` and `timezone` are the cadence the next fire time was computed for (a replaced function with the
-- same cadence keeps it). Times are INTEGER unix microseconds.
CREATE TABLE function_crons (
    function_id   TEXT    PRIMARY KEY REFERENCES functions (id) ON DELETE CASCADE,
    cron          TEXT    NOT NULL,
    timezone      TEXT    NOT NULL,
    next_fire_at  INTEGER,
    last_fired_at INTEGER
) STRICT, WITHOUT ROWID;

-- Due crons, earliest first.
CREATE INDEX function_crons_due ON function_crons (next_fire_at) WHERE next_fire_at IS NOT NULL;
