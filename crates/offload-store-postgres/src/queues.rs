//! Queues: their counts per state, paused flag, limits and the age of their oldest available job.
//!
//! Invariant: nothing here counts jobs. Counts are the sums of `queue_counts`' shards (kept exact by every
//! writing statement); the oldest available job is one probe of the `jobs_available_since` index per queue;
//! throughput comes from `queue_throughput` (one row per queue, minute and shard).

use std::collections::BTreeMap;

use offload_core::api::QueueInfo;
use offload_core::{JobState, Timestamp};
use offload_store::{
    QueueSetPausedParams, QueueThroughputParams, Result, StoreError, ThroughputBucket,
};
use sqlx::postgres::{PgConnection, PgRow};

use crate::codec::{self, Ts, get};
use crate::error::db;

/// Known queues (with jobs, or paused/resumed once), optionally just `$1`, in one consistent statement.
pub(crate) const QUEUES_SQL: &str = "\
WITH totals AS (
    SELECT queue, state, sum(n)::int8 AS n FROM queue_counts
    WHERE $1::text IS NULL OR queue = $1 GROUP BY queue, state),
names (name) AS (
    SELECT queue FROM totals WHERE n > 0
    UNION
    SELECT name FROM queues WHERE $1::text IS NULL OR name = $1)
SELECT names.name AS name, coalesce(q.paused, false) AS paused, q.limits AS limits,
    (SELECT array_agg(t.state) FROM totals t WHERE t.queue = names.name) AS states,
    (SELECT array_agg(t.n) FROM totals t WHERE t.queue = names.name) AS counts,
    (SELECT run_at FROM jobs WHERE jobs.queue = names.name AND state = 'available' ORDER BY run_at LIMIT 1)
        AS oldest
FROM names LEFT JOIN queues q ON q.name = names.name
ORDER BY names.name";

/// Every known queue, sorted by name; or the one named.
pub(crate) async fn list(
    conn: &mut PgConnection,
    now: Timestamp,
    only: Option<&str>,
) -> Result<Vec<QueueInfo>> {
    let rows = sqlx::query(QUEUES_SQL)
        .bind(only)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    rows.iter().map(|r| info(r, now)).collect()
}

fn info(row: &PgRow, now: Timestamp) -> Result<QueueInfo> {
    let mut counts: BTreeMap<JobState, u64> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
    let states: Vec<String> = get::<Option<Vec<String>>>(row, "states")?.unwrap_or_default();
    let ns: Vec<i64> = get::<Option<Vec<i64>>>(row, "counts")?.unwrap_or_default();
    for (state, n) in states.iter().zip(ns) {
        let n = u64::try_from(n)
            .map_err(|_| StoreError::corrupt(format!("negative count {n} for {state}")))?;
        counts.insert(codec::state(state)?, n);
    }
    let oldest = get::<Option<Ts>>(row, "oldest")?;
    let oldest_available_age_ms = oldest.map(|Ts(run_at)| {
        let age = now.duration_since(run_at).as_millis();
        u64::try_from(age).unwrap_or(0)
    });
    Ok(QueueInfo {
        name: get(row, "name")?,
        paused: get(row, "paused")?,
        counts,
        oldest_available_age_ms,
        limits: offload_store::codec::limits(get::<Option<&str>>(row, "limits")?)?,
        usage: None,
    })
}

/// Pauses or resumes a queue, creating it if unknown.
pub(crate) async fn set_paused(
    conn: &mut PgConnection,
    now: Timestamp,
    p: QueueSetPausedParams,
) -> Result<QueueInfo> {
    sqlx::query(
        "INSERT INTO queues (name, paused, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
    )
    .bind(&p.queue)
    .bind(p.paused)
    .bind(Ts(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    list(conn, now, Some(&p.queue))
        .await?
        .pop()
        .ok_or_else(|| StoreError::Internal(format!("queue {} vanished", p.queue)))
}

/// Whole minutes since the Unix epoch of `t`: the `minute` of `queue_throughput` (the SQL that writes it
/// computes the same from the statement's `now`).
pub(crate) fn minute_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(60)
}

/// Ended attempts per queue and minute since `p.since`'s minute: a range scan of `queue_throughput`, summing
/// each minute's shards.
pub(crate) async fn throughput(
    conn: &mut PgConnection,
    p: QueueThroughputParams,
) -> Result<Vec<ThroughputBucket>> {
    let rows = sqlx::query(
        "SELECT queue, minute, sum(succeeded)::int8 AS succeeded, sum(failed)::int8 AS failed \
         FROM queue_throughput WHERE minute >= $1 GROUP BY queue, minute ORDER BY queue, minute",
    )
    .bind(minute_of(p.since))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let minute: i64 = get(row, "minute")?;
            let count = |column: &str| -> Result<u64> {
                let n: i64 = get(row, column)?;
                u64::try_from(n)
                    .map_err(|_| StoreError::corrupt(format!("negative throughput {n}")))
            };
            Ok(ThroughputBucket {
                queue: get(row, "queue")?,
                minute: Timestamp::from_second(minute.saturating_mul(60))
                    .map_err(|e| StoreError::corrupt(format!("throughput minute {minute}: {e}")))?,
                succeeded: count("succeeded")?,
                failed: count("failed")?,
            })
        })
        .collect()
}
