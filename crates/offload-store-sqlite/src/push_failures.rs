//! Recent push failures per destination, for the dashboard: [`offload_store::Store::push_failures`].
//!
//! Invariant: reads only the `job_attempts_push_failed` index (failed push attempts by destination, newest
//! first; migration 0005 keeps it) and, for the destinations returned, their latest failure's rows. One walk
//! visits each destination with a stored failure once (one seek each, at most
//! [`PUSH_FAILURE_DESTINATIONS`]); each destination returned then costs one bounded count and one read of its
//! latest failure. All reads share one snapshot, so a count never misses the failure shown beside it.

use offload_store::{
    PUSH_FAILURE_DESTINATIONS, PUSH_FAILURE_ERROR_CHARS, PushFailure, PushFailuresParams, Result,
};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, micros};
use crate::error::db;

/// The first destination after `?1` with a stored failure, and when its latest failure ended.
pub(crate) const NEXT_DESTINATION_SQL: &str = "\
SELECT destination, finished_at FROM job_attempts
WHERE destination IS NOT NULL AND destination > ?1
ORDER BY destination, finished_at DESC LIMIT 1";

/// Failures of destination `?1` that ended at or after `?2`, counted up to `?3`.
pub(crate) const COUNT_SQL: &str = "\
SELECT count(*) FROM (
    SELECT 1 FROM job_attempts
    WHERE destination IS NOT NULL AND destination = ?1 AND finished_at >= ?2
    LIMIT ?3)";

/// The latest failure of destination `?1`, which ended at `?2` (ties: greater job id, then attempt): job id,
/// attempt, and the error's first `?3` characters.
pub(crate) const LATEST_SQL: &str = "\
SELECT j.id, a.attempt, substr(a.error, 1, ?3)
FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq
WHERE a.destination IS NOT NULL AND a.destination = ?1 AND a.finished_at = ?2
ORDER BY j.id DESC, a.attempt DESC LIMIT 1";

/// The destinations with failures since `p.since`, latest failure first.
pub(crate) async fn list(
    conn: &mut SqliteConnection,
    p: PushFailuresParams,
) -> Result<Vec<PushFailure>> {
    if p.limit == 0 {
        return Ok(Vec::new());
    }
    let since = micros(p.since);
    let mut tx = conn.begin().await.map_err(db)?;

    // Each destination's latest failure, one seek per destination.
    let mut recent: Vec<(String, i64)> = Vec::new();
    let mut after = String::new();
    for _ in 0..PUSH_FAILURE_DESTINATIONS {
        let next: Option<(String, i64)> = sqlx::query_as(NEXT_DESTINATION_SQL)
            .bind(after.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some((destination, latest)) = next else {
            break;
        };
        if latest >= since {
            recent.push((destination.clone(), latest));
        }
        after = destination;
    }
    recent.sort_by(|(da, a), (db, b)| b.cmp(a).then_with(|| da.cmp(db)));
    recent.truncate(p.limit as usize);

    let mut out = Vec::with_capacity(recent.len());
    for (destination, latest) in recent {
        let failures: i64 = sqlx::query_scalar(COUNT_SQL)
            .bind(destination.as_str())
            .bind(since)
            .bind(i64::from(p.count_limit))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let (id, attempt, error): (Vec<u8>, i64, Option<String>) = sqlx::query_as(LATEST_SQL)
            .bind(destination.as_str())
            .bind(latest)
            .bind(i64::from(PUSH_FAILURE_ERROR_CHARS))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        out.push(PushFailure {
            destination,
            failures: u64::try_from(failures).unwrap_or(0),
            last_failed_at: codec::timestamp(latest)?,
            job_id: codec::job_id(&id)?,
            attempt: codec::u32_of(attempt, "attempt")?,
            error,
        });
    }
    tx.commit().await.map_err(db)?;
    Ok(out)
}
