//! Queues: their counts per state, paused flag, limits, the age of their oldest available job, and (for one
//! queue) the live usage of its limits.
//!
//! Invariant: nothing here counts jobs. Counts come from `queue_counts` (kept exact by the writer); usage per
//! group from `queue_groups` (kept exact by triggers on `jobs`);
//! the oldest available job is one probe of the `jobs_available_since` index per queue; throughput comes
//! from `queue_throughput` (one row per queue and minute).

use std::collections::BTreeMap;

use offload_core::api::{GroupUsage, QueueInfo, QueueUsage};
use offload_core::flow::gcra::Gcra;
use offload_core::flow::limits::{QueueLimits, QueueLimitsPatch};
use offload_core::{JobState, Timestamp};
use offload_store::{
    QueueSetLimitsParams, QueueSetPausedParams, QueueThroughputParams, Result, StoreError,
    ThroughputBucket,
};
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{self, get, micros};
use crate::counts::MICROS_PER_MINUTE;
use crate::error::db;
use crate::flow;

/// Known queues (with jobs, or paused/resumed once), optionally just `?1`, in one consistent statement.
pub(crate) const QUEUES_SQL: &str = "\
WITH names (name) AS (
    SELECT queue FROM queue_counts WHERE n > 0
    UNION
    SELECT name FROM queues)
SELECT names.name AS name, coalesce(q.paused, 0) AS paused, q.limits AS limits,
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
        limits: offload_store::codec::limits(get::<Option<&str>>(row, "limits")?)?,
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

/// One queue with its live usage; `None` when the store knows no such queue.
pub(crate) async fn get_one(
    conn: &mut SqliteConnection,
    now: Timestamp,
    name: &str,
) -> Result<Option<QueueInfo>> {
    let Some(mut info) = list(conn, now, Some(name)).await?.pop() else {
        return Ok(None);
    };
    let throttle_tat = flow::queue_flow(conn, name)
        .await?
        .and_then(|f| f.throttle_tat);
    let throttle_next_at = match info.limits.throttle {
        Some(t) if !t.per_group => Gcra::new(t.limit, t.period.0, t.burst)
            .check(throttle_tat, now)
            .err(),
        _ => None,
    };
    let groups_running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM queue_groups WHERE queue = ?1 AND grp <> '' AND running > 0",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let top: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT grp, available, running FROM queue_groups \
         WHERE queue = ?1 AND grp <> '' AND (available > 0 OR running > 0) \
         ORDER BY available DESC, running DESC, grp LIMIT 10",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    info.usage = Some(QueueUsage {
        running: info.counts.get(&JobState::Running).copied().unwrap_or(0),
        groups_running: count(groups_running),
        throttle_next_at,
        top_groups: top
            .into_iter()
            .map(|(group, available, running)| GroupUsage {
                group,
                available: count(available),
                running: count(running),
            })
            .collect(),
    });
    Ok(Some(info))
}

/// Applies a patch to a queue's limits (creating the queue if unknown) and answers the queue with its usage.
pub(crate) async fn set_limits(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: QueueSetLimitsParams,
) -> Result<QueueInfo> {
    apply_limits(conn, now, &p.queue, p.patch).await?;
    get_one(conn, now, &p.queue)
        .await?
        .ok_or_else(|| StoreError::Internal(format!("queue {} vanished", p.queue)))
}

/// Applies a patch to a queue's limits (creating the queue if unknown), in the caller's transaction; returns the
/// limits now in force. Clearing every limit stores none, which puts the queue back on the fast claim path.
/// Whenever limits are set, the queue's count of available grouped jobs is recounted from `queue_groups`.
pub(crate) async fn apply_limits(
    conn: &mut SqliteConnection,
    now: Timestamp,
    queue: &str,
    patch: QueueLimitsPatch,
) -> Result<QueueLimits> {
    let current = flow::queue_flow(conn, queue)
        .await?
        .map(|f| f.limits)
        .unwrap_or_default();
    let limits = current
        .patched(patch)
        .map_err(|e| StoreError::Internal(format!("queue limits: {e}")))?;
    sqlx::query(
        "INSERT INTO queues (name, paused, created_at, limits) VALUES (?1, 0, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET limits = excluded.limits",
    )
    .bind(queue)
    .bind(micros(now))
    .bind(offload_store::codec::limits_to_db(&limits)?)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query(
        "UPDATE queues SET grouped_available = \
           (SELECT coalesce(sum(available), 0) FROM queue_groups WHERE queue = ?1) WHERE name = ?1",
    )
    .bind(queue)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(limits)
}
