-- Offload's SQLite schema, version 4: per-minute throughput for the dashboard. (Versions 2, 3 and 5 belong to
-- other features; migrations apply in version order.)

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
