-- Log lines of jobs and runs (`offload_core::log`). `seq` numbers an owner's lines from 1 in append order; each
-- owner keeps its newest lines (older ones are deleted by the append that passes the bound). Lines go with their
-- job or run through the cascades. `at` is unix microseconds; `attempt` is set for lines sent with a lease token.
CREATE TABLE job_logs (
    job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    level   TEXT    NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message TEXT    NOT NULL,
    attempt INTEGER,
    PRIMARY KEY (job_seq, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE run_logs (
    run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    level   TEXT    NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message TEXT    NOT NULL,
    attempt INTEGER,
    PRIMARY KEY (run_seq, seq)
) STRICT, WITHOUT ROWID;
