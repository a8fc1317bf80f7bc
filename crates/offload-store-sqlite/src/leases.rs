//! Claims and heartbeats: handing jobs to workers under a lease, and extending it.
//!
//! Invariant: a claim runs in the single writer's transaction (pick the next jobs through the claim index,
//! start their attempts with one UPDATE, read them back as one JSON row), so no job is ever handed to two
//! callers. Each claimed attempt gets a fresh random 16-byte fencing
//! token (`randomblob`, drawn per row) and the lease `now + timeout`, which is
//! [`offload_core::state::lease_deadline`] computed in SQL (timeouts are validated to at most a day, so the
//! sum cannot overflow); heartbeats extend it the same way, and only with the current token.

use offload_core::api::HeartbeatResponse;
use std::collections::HashMap;

use offload_core::{ClaimedJob, DurationSpec, JobId, JobState, LeaseToken, Timestamp};
use offload_store::{ClaimOutcome, JobClaimParams, JobHeartbeatParams, Result, StoreError};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get, hex_uuid, micros};
use crate::counts::Counts;
use crate::error::db;

/// The jobs to claim, in claim order (the claim index's: priority, due time, then insertion), as a JSON array of
/// `seq`. Paused queues hand out nothing; push jobs (with a target) are the dispatcher's, never a worker's.
/// Queues with limits hand out nothing here either: their claims take the limited path. The queue check is the
/// LIMIT (evaluated once, before the index walk), not a WHERE term (checked on every row walked, which would read
/// a paused or limited queue's whole backlog only to return nothing).
pub(crate) const PICK_SQL: &str = "\
SELECT json_group_array(seq ORDER BY priority DESC, run_at, seq) FROM (
    SELECT seq, priority, run_at FROM jobs
    WHERE queue = ?1 AND state = 'available' AND target IS NULL
    ORDER BY priority DESC, run_at, seq
    LIMIT (SELECT CASE WHEN EXISTS (SELECT 1 FROM queues WHERE name = ?1 AND (paused OR limits IS NOT NULL))
                  THEN 0 ELSE ?2 END))";

/// Starts an attempt on each picked job.
pub(crate) const TAKE_SQL: &str = "\
UPDATE jobs SET state = 'running', attempt = attempt + 1, attempted_at = ?1, lease_token = randomblob(16),
    lease_expires_at = ?1 + timeout_ms * 1000, worker_id = ?2, progress = NULL, progress_message = NULL
WHERE seq IN (SELECT value FROM json_each(?3))";

/// The claimed jobs as one JSON array (one row crosses from SQLite to us, not one per job); the payload is a
/// JSON string holding the stored text exactly.
const READ_SQL: &str = "\
SELECT json_group_array(json_array(seq, hex(id), queue, name, payload, attempt, max_attempts, hex(lease_token),
    lease_expires_at, timeout_ms, tags, created_at, run_at))
FROM jobs WHERE seq IN (SELECT value FROM json_each(?1))";

/// One element of [`READ_SQL`].
pub(crate) type ClaimedRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    String,
    i64,
    i64,
    Option<String>,
    i64,
    i64,
);

/// Claims up to `max_jobs` jobs; returned highest priority first, then oldest due. A queue without limits
/// claims with one statement (the fast path); only when that found nothing does the claim look at the queue's
/// row, and a queue with limits (and not paused) claims on the limited path.
pub(crate) async fn claim(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: JobClaimParams,
    counts: &mut Counts,
) -> Result<ClaimOutcome> {
    if p.max_jobs == 0 {
        return Ok(ClaimOutcome::default());
    }
    let picked: String = sqlx::query_scalar(PICK_SQL)
        .bind(p.queue.as_str())
        .bind(i64::from(p.max_jobs))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let order: Vec<i64> =
        serde_json::from_str(&picked).map_err(|e| StoreError::corrupt(format!("claim: {e}")))?;
    if !order.is_empty() {
        let jobs = take(conn, now, &p.queue, &p.worker_id, &order, counts).await?;
        return Ok(ClaimOutcome {
            jobs,
            retry_at: None,
        });
    }
    match crate::flow::queue_flow(conn, &p.queue).await? {
        Some(flow) if !flow.paused && !flow.limits.is_unlimited() => {
            crate::claim_limited::claim(conn, now, &p, flow, counts).await
        }
        _ => Ok(ClaimOutcome::default()),
    }
}

/// Starts an attempt on each job of `order` (seqs of available jobs of `queue`) and returns them in that order.
pub(crate) async fn take(
    conn: &mut SqliteConnection,
    now: Timestamp,
    queue: &str,
    worker_id: &str,
    order: &[i64],
    counts: &mut Counts,
) -> Result<Vec<ClaimedJob>> {
    if order.is_empty() {
        return Ok(Vec::new());
    }
    let picked =
        serde_json::to_string(order).map_err(|e| StoreError::Internal(format!("claim: {e}")))?;
    sqlx::query(TAKE_SQL)
        .bind(micros(now))
        .bind(worker_id)
        .bind(picked.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let json: String = sqlx::query_scalar(READ_SQL)
        .bind(picked)
        .fetch_one(conn)
        .await
        .map_err(db)?;
    let rows: Vec<ClaimedRow> = serde_json::from_str(&json)
        .map_err(|e| StoreError::corrupt(format!("claimed jobs: {e}")))?;
    let position: HashMap<i64, usize> =
        order.iter().enumerate().map(|(i, seq)| (*seq, i)).collect();
    let mut claimed = rows.into_iter().map(claimed).collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|(seq, _)| position.get(seq).copied().unwrap_or(usize::MAX));
    counts.moved(
        queue,
        JobState::Available,
        JobState::Running,
        claimed.len() as i64,
    );
    Ok(claimed.into_iter().map(|(_, job)| job).collect())
}

/// A claimed job from its row; `seq` kept for ordering.
pub(crate) fn claimed(row: ClaimedRow) -> Result<(i64, ClaimedJob)> {
    let (
        seq,
        id,
        queue,
        name,
        payload,
        attempt,
        max_attempts,
        token,
        lease_expires_at,
        timeout_ms,
        tags,
        created_at,
        run_at,
    ) = row;
    let job = ClaimedJob {
        id: JobId(hex_uuid(&id)?),
        queue,
        name,
        payload: codec::raw_json(payload)?,
        attempt: codec::u32_of(attempt, "attempt")?,
        max_attempts: codec::u32_of(max_attempts, "max_attempts")?,
        lease_token: LeaseToken(hex_uuid(&token)?),
        lease_expires_at: codec::timestamp(lease_expires_at)?,
        timeout: DurationSpec(offload_store::codec::duration(timeout_ms)?),
        tags: codec::tags(tags.as_deref())?,
        created_at: codec::timestamp(created_at)?,
        run_at: codec::timestamp(run_at)?,
    };
    Ok((seq, job))
}

const HEARTBEAT_SQL: &str = "\
UPDATE jobs SET lease_expires_at = ?1 + timeout_ms * 1000,
    progress = CASE WHEN ?4 THEN ?5 ELSE progress END,
    progress_message = CASE WHEN ?4 THEN ?6 ELSE progress_message END
WHERE id = ?2 AND state = 'running' AND lease_token = ?3
RETURNING lease_expires_at, cancel_requested";

/// Extends a lease and records progress; refuses a stale token.
pub(crate) async fn heartbeat(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: JobHeartbeatParams,
) -> Result<HeartbeatResponse> {
    let (percent, message) = match p.progress {
        Some(progress) => (Some(i64::from(progress.percent)), progress.message),
        None => (None, None),
    };
    let row = sqlx::query(HEARTBEAT_SQL)
        .bind(micros(now))
        .bind(p.id.as_bytes().as_slice())
        .bind(p.lease_token.0.as_bytes().as_slice())
        .bind(percent.is_some())
        .bind(percent)
        .bind(message)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    match row {
        Some(row) => Ok(HeartbeatResponse {
            lease_expires_at: codec::timestamp(get(&row, "lease_expires_at")?)?,
            cancel_requested: get::<i64>(&row, "cancel_requested")? != 0,
        }),
        None => {
            let exists = sqlx::query("SELECT 1 FROM jobs WHERE id = ?1")
                .bind(p.id.as_bytes().as_slice())
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
