-- What the dashboard reads: the SQLite store's version 4 in PostgreSQL's dialect.

-- Attempts ended per (queue, minute), kept by the statements that end attempts, in the same transaction, so the
-- dashboard's last-hour chart reads at most 60 rows per queue and shard and never counts jobs. `minute` is whole
-- minutes since the Unix epoch. Sharded like queue_counts, so servers finishing jobs of one queue at once rarely
-- wait for each other's row. Rows older than a day are pruned.
CREATE TABLE queue_throughput (
    queue     text     NOT NULL,
    minute    bigint   NOT NULL,
    shard     smallint NOT NULL,
    succeeded bigint   NOT NULL,
    failed    bigint   NOT NULL,
    PRIMARY KEY (queue, minute, shard)
) WITH (fillfactor = 50);

-- The pruner drops old minutes across queues.
CREATE INDEX queue_throughput_minute ON queue_throughput (minute);

-- Dashboard lists filtered by job name: newest first among one queue's jobs of one name, however rare the name.
CREATE INDEX jobs_name ON jobs (name, queue, id) WHERE name IS NOT NULL;

-- Lists filtered by tag: the jobs carrying a tag (`tags @> '{"key": "value"}'`), whatever their number.
CREATE INDEX jobs_tags ON jobs USING gin (tags jsonb_path_ops) WHERE tags IS NOT NULL;
