-- Flow control: a job's group and debounce key, queue limits, and per-group usage kept by row triggers.
--
-- Invariant: queue_groups.available and .running equal the number of pull jobs (target IS NULL) of that queue
-- and group in each state, at every commit. The triggers below fire only for grouped rows, so jobs without a
-- group cost nothing extra; they are the one place that makes every way a running job ends (complete, fail,
-- snooze, cancel, rescue, delete, prune) give its group's slot back. A job's group and target never change.

ALTER TABLE jobs ADD COLUMN grp TEXT;
ALTER TABLE jobs ADD COLUMN debounce_key TEXT;

-- Per-group heads: a group's next available jobs in claim order (rowid breaks ties).
CREATE INDEX jobs_group_claim ON jobs (queue, grp, priority DESC, run_at)
    WHERE state = 'available' AND grp IS NOT NULL;
-- One waiting job per debounce key and queue.
CREATE UNIQUE INDEX jobs_debounce ON jobs (queue, debounce_key)
    WHERE debounce_key IS NOT NULL AND state IN ('scheduled', 'available');
-- Lists filtered by group, newest first.
CREATE INDEX jobs_group ON jobs (grp, id) WHERE grp IS NOT NULL;

-- Limits (JSON of `QueueLimits`, NULL: none, the fast claim path), the queue throttle's TAT, the fair-order place
-- of the jobs without a group, the last `served_at` handed out (fair order stays strict within one instant), and
-- the queue's available grouped pull jobs (kept by the triggers below while the row exists, recounted whenever
-- limits are set; claims compare it with the queue's available count to skip looking for jobs without a group
-- when there are none).
ALTER TABLE queues ADD COLUMN limits TEXT;
ALTER TABLE queues ADD COLUMN throttle_tat INTEGER;
ALTER TABLE queues ADD COLUMN ungrouped_served_at INTEGER;
ALTER TABLE queues ADD COLUMN last_served_at INTEGER;
ALTER TABLE queues ADD COLUMN grouped_available INTEGER NOT NULL DEFAULT 0;

-- Usage per group. `tat`: the group's throttle TAT (grp '' holds the shared bucket of jobs without a group);
-- `served_at`: when a claim last started one of its jobs (fair order: least recently served first).
CREATE TABLE queue_groups (
    queue     TEXT    NOT NULL,
    grp       TEXT    NOT NULL,
    available INTEGER NOT NULL DEFAULT 0,
    running   INTEGER NOT NULL DEFAULT 0,
    tat       INTEGER,
    served_at INTEGER,
    PRIMARY KEY (queue, grp)
) STRICT, WITHOUT ROWID;

-- Candidate groups of a claim: those with waiting jobs, least recently served first (NULLs first).
CREATE INDEX queue_groups_turn ON queue_groups (queue, served_at, grp) WHERE available > 0;

CREATE TRIGGER jobs_group_insert AFTER INSERT ON jobs
WHEN new.grp IS NOT NULL AND new.target IS NULL AND new.state IN ('available', 'running') BEGIN
    INSERT INTO queue_groups (queue, grp, available, running)
        VALUES (new.queue, new.grp, new.state = 'available', new.state = 'running')
        ON CONFLICT (queue, grp) DO UPDATE SET available = available + excluded.available,
            running = running + excluded.running;
    UPDATE queues SET grouped_available = grouped_available + 1 WHERE name = new.queue AND new.state = 'available';
END;

CREATE TRIGGER jobs_group_update AFTER UPDATE OF state ON jobs
WHEN new.grp IS NOT NULL AND new.target IS NULL AND old.state <> new.state
    AND (old.state IN ('available', 'running') OR new.state IN ('available', 'running')) BEGIN
    INSERT INTO queue_groups (queue, grp, available, running)
        VALUES (new.queue, new.grp,
            (new.state = 'available') - (old.state = 'available'),
            (new.state = 'running') - (old.state = 'running'))
        ON CONFLICT (queue, grp) DO UPDATE SET available = available + excluded.available,
            running = running + excluded.running;
    UPDATE queues SET grouped_available = grouped_available + (new.state = 'available') - (old.state = 'available')
    WHERE name = new.queue AND (new.state = 'available') <> (old.state = 'available');
END;

CREATE TRIGGER jobs_group_delete AFTER DELETE ON jobs
WHEN old.grp IS NOT NULL AND old.target IS NULL AND old.state IN ('available', 'running') BEGIN
    UPDATE queue_groups SET available = available - (old.state = 'available'),
        running = running - (old.state = 'running')
    WHERE queue = old.queue AND grp = old.grp;
    UPDATE queues SET grouped_available = grouped_available - 1 WHERE name = old.queue AND old.state = 'available';
END;
