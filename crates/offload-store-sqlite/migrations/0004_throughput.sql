-- Offload's SQLite schema, version 4: what the dashboard reads (per-minute throughput, name and tag lookups).
-- (Versions 2, 3 and 5 belong to other features; migrations apply in version order.)

-- Attempts ended per (queue, minute), maintained by the single writer together with queue_counts (see the
-- store's `counts` module), so the dashboard's last-hour chart reads at most 60 rows per queue and never counts
-- jobs. `minute` is whole minutes since the Unix epoch. Rows older than a day are pruned.
CREATE TABLE queue_throughput (
    queue     TEXT    NOT NULL,
    minute    INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    failed    INTEGER NOT NULL,
    PRIMARY KEY (queue, minute)
) STRICT, WITHOUT ROWID;

-- The pruner drops old minutes across queues.
CREATE INDEX queue_throughput_minute ON queue_throughput (minute);

-- Dashboard lists filtered by job name: newest first among one queue's jobs of one name, however rare the name
-- (a list by name alone merges one walk per queue).
CREATE INDEX jobs_name ON jobs (name, queue, id) WHERE name IS NOT NULL;

-- The same index as before plus the job id, so a list of a queue's few available jobs reads only this index to
-- pick the newest (the oldest-available probe still uses its (queue, run_at) prefix).
DROP INDEX jobs_available_since;
CREATE INDEX jobs_available_since ON jobs (queue, run_at, id) WHERE state = 'available';

-- Every tag of every job, so a list filtered by tag walks the jobs carrying it (newest first), not every job.
-- Kept by a trigger on insert (tags never change afterwards) and by the cascade on delete.
CREATE TABLE job_tags (
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    job_id  BLOB    NOT NULL,
    job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    PRIMARY KEY (key, value, job_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX job_tags_job ON job_tags (job_seq);

CREATE TRIGGER jobs_tags_insert AFTER INSERT ON jobs WHEN new.tags IS NOT NULL BEGIN
    INSERT INTO job_tags (key, value, job_id, job_seq)
        SELECT key, value, new.id, new.seq FROM json_each(new.tags);
END;

INSERT INTO job_tags (key, value, job_id, job_seq)
    SELECT t.key, t.value, jobs.id, jobs.seq FROM jobs, json_each(jobs.tags) AS t WHERE jobs.tags IS NOT NULL;
