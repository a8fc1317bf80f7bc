//! Claims and heartbeats: handing jobs to workers under a lease, and extending it.
//!
//! Invariant: a claim is one statement that picks the next available jobs with `FOR UPDATE SKIP LOCKED`, starts
//! their attempts and counts the move, so no job is ever handed to two callers, whichever server they ask, and
//! concurrent claimers skip each other's rows instead of waiting. Each attempt gets a fresh random fencing
//! token (`gen_random_uuid()`) and the lease `now + timeout`, which is
//! [`offload_core::state::lease_deadline`] computed in SQL (timeouts are whole milliseconds, so the interval
//! arithmetic is exact); heartbeats extend it the same way, and only with the current token.

use std::cmp::Reverse;
use std::sync::LazyLock;

use offload_core::api::HeartbeatResponse;
use offload_core::{ClaimedJob, DurationSpec, JobId, LeaseToken, Timestamp};
use offload_store::{JobClaimParams, JobHeartbeatParams, Result, StoreError};
use sqlx::postgres::{PgConnection, PgRow};

use crate::codec::{self, RawJson, Ts, get, ts};
use crate::counts;
use crate::error::db;

/// Picks, starts and counts. Paused queues hand out nothing, and neither do queues with limits (those are
/// claimed by `flow_claim`, under their queue row's lock); push jobs (with a target) are the dispatcher's,
/// never a worker's. The rows come back unordered; the caller sorts.
/// The picked rows are updated by their physical address (`ctid`, a direct heap access instead of a primary key
/// lookup), which cannot change under us: the rows are locked for the rest of the statement.
pub(crate) static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH picked AS (
    SELECT ctid FROM jobs
    WHERE queue = $1 AND state = 'available' AND target IS NULL
      AND NOT EXISTS (SELECT 1 FROM queues WHERE name = $1 AND (paused OR limits IS NOT NULL))
    ORDER BY priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE jobs SET state = 'running', attempt = jobs.attempt + 1, attempted_at = $3,
        lease_token = gen_random_uuid(), lease_expires_at = $3::timestamptz + jobs.timeout_ms * interval '1 millisecond',
        worker_id = $4, progress = NULL, progress_message = NULL
    FROM picked WHERE jobs.ctid = picked.ctid
    RETURNING jobs.id, jobs.queue, jobs.name, jobs.payload, jobs.attempt, jobs.max_attempts, jobs.lease_token,
        jobs.lease_expires_at, jobs.timeout_ms, jobs.tags, jobs.created_at, jobs.priority, jobs.run_at
), {}
SELECT * FROM taken",
        counts::cte(
            "SELECT queue, 'available', -1 FROM taken UNION ALL SELECT queue, 'running', 1 FROM taken",
            "$5"
        )
    )
});

/// Claims up to `max_jobs` jobs; returned highest priority first, then oldest due.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    now: Timestamp,
    p: JobClaimParams,
) -> Result<Vec<ClaimedJob>> {
    if p.max_jobs == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(CLAIM_SQL.as_str())
        .bind(&p.queue)
        .bind(i64::from(p.max_jobs))
        .bind(Ts(now))
        .bind(&p.worker_id)
        .bind(counts::shard())
        .fetch_all(conn)
        .await
        .map_err(db)?;
    let mut claimed = rows
        .iter()
        .map(|r| {
            let order = (Reverse(get::<i32>(r, "priority")?), ts(r, "run_at")?);
            Ok((order, claimed(r)?))
        })
        .collect::<Result<Vec<_>>>()?;
    claimed.sort_by(|(a, ja), (b, jb)| a.cmp(b).then(ja.id.cmp(&jb.id)));
    Ok(claimed.into_iter().map(|(_, job)| job).collect())
}

/// A claimed job from the row a claim returned.
pub(crate) fn claimed(row: &PgRow) -> Result<ClaimedJob> {
    Ok(ClaimedJob {
        id: JobId(get(row, "id")?),
        queue: get(row, "queue")?,
        name: get(row, "name")?,
        payload: get::<RawJson>(row, "payload")?.0,
        attempt: codec::u32_of(get(row, "attempt")?, "attempt")?,
        max_attempts: codec::u32_of(get(row, "max_attempts")?, "max_attempts")?,
        lease_token: LeaseToken(get(row, "lease_token")?),
        lease_expires_at: ts(row, "lease_expires_at")?,
        timeout: DurationSpec(offload_store::codec::duration(get(row, "timeout_ms")?)?),
        tags: codec::tags(get(row, "tags")?),
        created_at: ts(row, "created_at")?,
        run_at: ts(row, "run_at")?,
    })
}

pub(crate) const HEARTBEAT_SQL: &str = "\
UPDATE jobs SET lease_expires_at = $1::timestamptz + timeout_ms * interval '1 millisecond',
    progress = CASE WHEN $4 THEN $5 ELSE progress END,
    progress_message = CASE WHEN $4 THEN $6 ELSE progress_message END
WHERE id = $2 AND state = 'running' AND lease_token = $3
RETURNING lease_expires_at, cancel_requested";

/// Extends a lease and records progress; refuses a stale token.
pub(crate) async fn heartbeat(
    conn: &mut PgConnection,
    now: Timestamp,
    p: JobHeartbeatParams,
) -> Result<HeartbeatResponse> {
    let (percent, message) = match p.progress {
        Some(progress) => (
            Some(i16::from(progress.percent)),
            progress.message.map(|m| codec::text(&m).into_owned()),
        ),
        None => (None, None),
    };
    let row = sqlx::query(HEARTBEAT_SQL)
        .bind(Ts(now))
        .bind(p.id.0)
        .bind(p.lease_token.0)
        .bind(percent.is_some())
        .bind(percent)
        .bind(message)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    match row {
        Some(row) => Ok(HeartbeatResponse {
            lease_expires_at: ts(&row, "lease_expires_at")?,
            cancel_requested: get(&row, "cancel_requested")?,
        }),
        None => {
            let exists = sqlx::query("SELECT 1 FROM jobs WHERE id = $1")
                .bind(p.id.0)
                .fetch_optional(conn)
                .await
                .map_err(db)?;
            Err(match exists {
                Some(_) => StoreError::LeaseMismatch,
                None => StoreError::NotFound(format!("job {}", p.id)),
            })
        }
    }
}
