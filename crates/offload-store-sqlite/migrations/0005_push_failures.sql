-- Offload's SQLite schema, version 5: recent push failures per destination, for the dashboard's push page.
-- Applied migrations are never edited: change the schema in a new file.

-- The destination of a failed push attempt, copied from its job when the attempt is recorded; NULL for every
-- other attempt (pull jobs, successes, expired leases, snoozes, cancellations). Only failed push attempts are
-- in the index below, so finding a destination's recent failures never reads jobs or other attempts.
ALTER TABLE job_attempts ADD COLUMN destination TEXT;

-- Kept by the database itself, for every way an attempt is recorded (finishes and rescues alike). A pull job's
-- failure costs one lookup of its job by key and writes nothing.
CREATE TRIGGER job_attempts_push_failure AFTER INSERT ON job_attempts WHEN new.outcome = 'failed' BEGIN
    UPDATE job_attempts SET destination = (SELECT destination FROM jobs WHERE seq = new.job_seq)
    WHERE rowid = new.rowid
      AND EXISTS (SELECT 1 FROM jobs WHERE seq = new.job_seq AND destination IS NOT NULL);
END;

-- Failed push attempts of one destination, newest first (queries repeat `destination IS NOT NULL`).
CREATE INDEX job_attempts_push_failed ON job_attempts (destination, finished_at DESC)
    WHERE destination IS NOT NULL;

-- Failed push attempts recorded before this version.
UPDATE job_attempts SET destination = (SELECT destination FROM jobs WHERE seq = job_attempts.job_seq)
WHERE outcome = 'failed' AND job_seq IN (SELECT seq FROM jobs WHERE destination IS NOT NULL);
