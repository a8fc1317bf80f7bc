-- Recent push failures per destination, for the dashboard's push page: the SQLite store's version 5 in
-- PostgreSQL's dialect. Applied migrations are never edited: change the schema in a new file.

-- The destination of a failed push attempt, written with the attempt by the statement that records it (see the
-- store's `jobs_finish`); NULL for every other attempt (pull jobs, expired leases, snoozes, cancellations).
-- Only failed push attempts are in the index below, so finding a destination's recent failures never reads jobs
-- or other attempts.
ALTER TABLE job_attempts ADD COLUMN destination text;

-- Failed push attempts of one destination, newest first (queries repeat `destination IS NOT NULL`).
CREATE INDEX job_attempts_push_failed ON job_attempts (destination, finished_at DESC)
    WHERE destination IS NOT NULL;

-- Failed push attempts recorded before this version.
UPDATE job_attempts a SET destination = j.destination
FROM jobs j
WHERE a.job_id = j.id AND a.outcome = 'failed' AND j.destination IS NOT NULL;
