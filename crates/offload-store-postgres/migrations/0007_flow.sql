-- Flow control: a job's group and debounce key, queue limits, and the per-group usage counters that make limits
-- exact across servers (the SQLite store's version 7 in PostgreSQL's dialect).

-- The tenant, user or account a job belongs to (NULL: none), and the debounce key it was enqueued with.
ALTER TABLE jobs ADD COLUMN grp text, ADD COLUMN debounce_key text;

-- A queue's limits (JSON of `QueueLimits`; NULL: none, claims take the fast path), the queue throttle's TAT (with
-- a per-group throttle: the TAT of the jobs without a group), and when jobs without a group were last served
-- (their place in fair order). A queue row is created when limits are set.
ALTER TABLE queues ADD COLUMN limits text, ADD COLUMN throttle_tat timestamptz,
    ADD COLUMN ungrouped_served_at timestamptz;

-- Usage per (queue, group): available and running jobs, kept by the row triggers below in the transaction that
-- moves the job, the per-group throttle's TAT and when the group was last served (fair order).
-- Invariant: at every commit, `available` and `running` equal the number of the group's jobs in those states.
CREATE TABLE queue_groups (
    queue     text        NOT NULL,
    grp       text        NOT NULL,
    available integer     NOT NULL DEFAULT 0,
    running   integer     NOT NULL DEFAULT 0,
    tat       timestamptz,
    served_at timestamptz,
    PRIMARY KEY (queue, grp)
) WITH (fillfactor = 50);

-- Claims of limited queues: the groups with waiting jobs, least recently served first.
CREATE INDEX queue_groups_waiting ON queue_groups (queue, served_at NULLS FIRST, grp) WHERE available > 0;

-- A group's next available jobs, in claim order.
CREATE INDEX jobs_group_claim ON jobs (queue, grp, priority DESC, run_at, id)
    WHERE state = 'available' AND grp IS NOT NULL;
-- Lists filtered by group, newest first.
CREATE INDEX jobs_group ON jobs (grp, id) WHERE grp IS NOT NULL;
-- One waiting job per debounce key and queue.
CREATE UNIQUE INDEX jobs_debounce ON jobs (queue, debounce_key)
    WHERE debounce_key IS NOT NULL AND state IN ('scheduled', 'available');

-- Moves a grouped job's counts between `available` and `running` (and in or out of them): +1 for the new
-- row's state, -1 for the old one's. Counters saturate at zero (a counter never goes negative).
CREATE FUNCTION flow_group_count() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    q  text;
    g  text;
    da integer := 0;
    dr integer := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.grp IS NOT NULL THEN
        q := OLD.queue;
        g := OLD.grp;
        da := da - (OLD.state = 'available')::integer;
        dr := dr - (OLD.state = 'running')::integer;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.grp IS NOT NULL THEN
        IF g IS NOT NULL AND (g <> NEW.grp OR q <> NEW.queue) THEN
            -- The job moved to another queue or group: settle the old one first.
            UPDATE queue_groups SET available = greatest(available + da, 0), running = greatest(running + dr, 0)
            WHERE queue = q AND grp = g;
            da := 0;
            dr := 0;
        END IF;
        q := NEW.queue;
        g := NEW.grp;
        da := da + (NEW.state = 'available')::integer;
        dr := dr + (NEW.state = 'running')::integer;
    END IF;
    IF da = 0 AND dr = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO queue_groups AS c (queue, grp, available, running)
    VALUES (q, g, greatest(da, 0), greatest(dr, 0))
    ON CONFLICT (queue, grp) DO UPDATE
        SET available = greatest(c.available + da, 0), running = greatest(c.running + dr, 0);
    RETURN NULL;
END
$$;

-- Fire only for grouped rows that enter or leave `available` or `running`: jobs without a group cost nothing.
CREATE TRIGGER jobs_group_insert AFTER INSERT ON jobs FOR EACH ROW
    WHEN (NEW.grp IS NOT NULL AND NEW.state IN ('available', 'running'))
    EXECUTE FUNCTION flow_group_count();
CREATE TRIGGER jobs_group_update AFTER UPDATE OF state, queue, grp ON jobs FOR EACH ROW
    WHEN ((OLD.grp IS NOT NULL OR NEW.grp IS NOT NULL)
          AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.queue IS DISTINCT FROM NEW.queue
               OR OLD.grp IS DISTINCT FROM NEW.grp)
          AND (OLD.state IN ('available', 'running') OR NEW.state IN ('available', 'running')))
    EXECUTE FUNCTION flow_group_count();
CREATE TRIGGER jobs_group_delete AFTER DELETE ON jobs FOR EACH ROW
    WHEN (OLD.grp IS NOT NULL AND OLD.state IN ('available', 'running'))
    EXECUTE FUNCTION flow_group_count();
