-- Log lines of jobs and runs (the SQLite store's version 12 in PostgreSQL's dialect). `seq` numbers an owner's
-- lines from 1 in append order; each owner keeps its newest lines (older ones are deleted by the append that
-- passes the bound). Appends lock the owner's row, so numbering is exact across servers. Lines go with their
-- job or run through the cascades; `attempt` is set for lines sent with a lease token.
CREATE TABLE job_logs (
    job_id  uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     bigint      NOT NULL,
    at      timestamptz NOT NULL,
    level   text        NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message text        NOT NULL,
    attempt integer,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE run_logs (
    run_id  uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     bigint      NOT NULL,
    at      timestamptz NOT NULL,
    level   text        NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message text        NOT NULL,
    attempt integer,
    PRIMARY KEY (run_id, seq)
);
