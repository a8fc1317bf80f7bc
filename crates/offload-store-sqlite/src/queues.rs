//! Queues: their counts per state, paused flag and the age of their oldest available job.
//!
//! Invariant: nothing here counts jobs. Counts come from `queue_counts` (kept exact by triggers on `jobs`);
//! the oldest available job is one probe of the `jobs_available_since` index per queue; throughput comes
//! from `queue_throughput` (one row per queue and minute).

use std::collections::BTreeMap;

use offload_core::api::QueueInfo;
use offload_core::{JobState, Timestamp};
use offload_store::{
    QueueSetPausedParams, QueueThroughputParams, Result, StoreError, ThroughputBucket,
};
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{self, get, micros};
use crate::counts::MICROS_PER_MINUTE;
use crate::error::db;

/// Known queues (with jobs, or paused/resumed once), optionally just `?1`, in one consistent statement.
pub(crate) const QUEUES_SQL: &str = "\
WITH names (name) AS (
    SELECT queue FROM queue_counts WHERE n > 0
    UNION
    SELECT name FROM queues)
SELECT names.name AS name, coalesce(q.paused, 0) AS paused,
    (SELECT json_group_object(c.state, c.n) FROM queue_counts c WHERE c.queue = names.name) AS counts,
    (SELECT MIN(run_at) FROM jobs WHERE jobs.queue = names.name AND state = 'available') AS oldest
FROM names LEFT JOIN queues q ON q.name = names.name
WHERE ?1 IS NULL OR names.name = ?1
ORDER BY names.name";

/// Every known queue, sorted by name; or the one named.
pub(crate) async fn list(
    conn: &mut SqliteConnection,
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

fn info(row: &SqliteRow, now: Timestamp) -> Result<QueueInfo> {
    let mut counts: BTreeMap<JobState, u64> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
    if let Some(json) = get::<Option<&str>>(row, "counts")? {
        let stored: BTreeMap<String, i64> =
            serde_json::from_str(json).map_err(|e| StoreError::corrupt(format!("counts: {e}")))?;
        for (state, n) in stored {
            let n = u64::try_from(n)
                .map_err(|_| StoreError::corrupt(format!("negative count {n} for {state}")))?;
            counts.insert(codec::state(&state)?, n);
        }
    }
    let oldest = get::<Option<i64>>(row, "oldest")?;
    let oldest_available_age_ms =
        oldest.map(|run_at| u64::try_from((micros(now) - run_at) / 1000).unwrap_or(0));
    Ok(QueueInfo {
        name: get(row, "name")?,
        paused: get::<i64>(row, "paused")? != 0,
        counts,
        oldest_available_age_ms,
        limits: Default::default(), // FLOW-STUB
        usage: None,
    })
}

/// Ended attempts per queue and minute since `p.since`'s minute: a range scan of `queue_throughput`, which
/// holds at most one row per queue and minute.
pub(crate) async fn throughput(
    conn: &mut SqliteConnection,
    p: QueueThroughputParams,
) -> Result<Vec<ThroughputBucket>> {
    let first = micros(p.since).div_euclid(MICROS_PER_MINUTE);
    let rows = sqlx::query(
        "SELECT queue, minute, succeeded, failed FROM queue_throughput WHERE minute >= ?1 \
         ORDER BY queue, minute",
    )
    .bind(first)
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
                minute: codec::timestamp(minute.saturating_mul(MICROS_PER_MINUTE))?,
                succeeded: count("succeeded")?,
                failed: count("failed")?,
            })
        })
        .collect()
}

/// Pauses or resumes a queue, creating it if unknown.
pub(crate) async fn set_paused(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: QueueSetPausedParams,
) -> Result<QueueInfo> {
    sqlx::query(
        "INSERT INTO queues (name, paused, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
    )
    .bind(&p.queue)
    .bind(p.paused)
    .bind(micros(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    list(conn, now, Some(&p.queue))
        .await?
        .pop()
        .ok_or_else(|| StoreError::Internal(format!("queue {} vanished", p.queue)))
}
