//! Recent push failures per destination, for the dashboard: [`offload_store::Store::push_failures`].
//!
//! Invariant: reads only the `job_attempts_push_failed` index (failed push attempts by destination, newest first;
//! the statement that records an attempt fills its destination, migration 0005 the older ones) and, for the
//! destinations returned, their latest failure's row. One statement: a skip scan visits each destination with a
//! stored failure once (one seek each, at most [`PUSH_FAILURE_DESTINATIONS`]); each destination returned then
//! costs one bounded count and one read of its latest failure, all in one snapshot.

use offload_core::JobId;
use offload_store::{
    PUSH_FAILURE_DESTINATIONS, PUSH_FAILURE_ERROR_CHARS, PushFailure, PushFailuresParams, Result,
};
use sqlx::postgres::PgConnection;

use crate::codec::{self, Ts, get, ts};
use crate::error::db;

/// `$1` since, `$2` most destinations, `$3` the count limit, `$4` most destinations examined, `$5` error
/// characters. The latest failure's ties go to the greater job id, then the greater attempt.
pub(crate) const PUSH_FAILURES_SQL: &str = "\
WITH RECURSIVE latest AS (
    (SELECT destination, finished_at FROM job_attempts
     WHERE destination IS NOT NULL ORDER BY destination, finished_at DESC LIMIT 1)
    UNION ALL
    SELECT n.destination, n.finished_at FROM latest l CROSS JOIN LATERAL (
        SELECT destination, finished_at FROM job_attempts
        WHERE destination IS NOT NULL AND destination > l.destination
        ORDER BY destination, finished_at DESC LIMIT 1) n
), recent AS (
    SELECT destination, finished_at FROM (SELECT * FROM latest LIMIT $4) d
    WHERE finished_at >= $1
    ORDER BY finished_at DESC, destination
    LIMIT $2
)
SELECT r.destination, r.finished_at,
    (SELECT count(*) FROM (
        SELECT 1 FROM job_attempts a
        WHERE a.destination IS NOT NULL AND a.destination = r.destination AND a.finished_at >= $1
        LIMIT $3) c) AS failures,
    f.job_id, f.attempt, left(f.error, $5) AS error
FROM recent r CROSS JOIN LATERAL (
    SELECT job_id, attempt, error FROM job_attempts a
    WHERE a.destination IS NOT NULL AND a.destination = r.destination AND a.finished_at = r.finished_at
    ORDER BY job_id DESC, attempt DESC LIMIT 1) f
ORDER BY r.finished_at DESC, r.destination";

/// The destinations with failures since `p.since`, latest failure first.
pub(crate) async fn list(
    conn: &mut PgConnection,
    p: PushFailuresParams,
) -> Result<Vec<PushFailure>> {
    if p.limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(PUSH_FAILURES_SQL)
        .bind(Ts(p.since))
        .bind(i64::from(p.limit))
        .bind(i64::from(p.count_limit))
        .bind(i64::from(PUSH_FAILURE_DESTINATIONS))
        .bind(i32::try_from(PUSH_FAILURE_ERROR_CHARS).unwrap_or(i32::MAX))
        .fetch_all(conn)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(PushFailure {
                destination: get(r, "destination")?,
                failures: u64::try_from(get::<i64>(r, "failures")?).unwrap_or(0),
                last_failed_at: ts(r, "finished_at")?,
                job_id: JobId(get(r, "job_id")?),
                attempt: codec::u32_of(get(r, "attempt")?, "attempt")?,
                error: get(r, "error")?,
            })
        })
        .collect()
}
