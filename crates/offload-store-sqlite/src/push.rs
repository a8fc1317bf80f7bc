//! Push claims: handing available push jobs to the dispatcher under a per-destination cap.
//!
//! Invariant: like a worker's claim, a push claim runs in the single writer's transaction, so no job is handed
//! out twice; it only ever takes jobs with a target, of unpaused queues, and never more jobs of one
//! destination than the cap minus what the caller already holds. Destinations already at the cap are left out
//! in SQL; the others are budgeted in order over a window of candidates, so a destination with a large
//! backlog cannot fill a claim meant for several.

use std::collections::HashMap;

use offload_core::{JobState, Timestamp};
use offload_store::{JobClaimPushParams, PushJob, Result};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, micros};
use crate::counts::Counts;
use crate::error::{corrupt, db};
use crate::leases::{ClaimedRow, TAKE_SQL, claimed};

/// Candidate push jobs in claim order: `[seq, destination, queue]`, skipping destinations at their cap (`?1`,
/// a JSON array) and paused queues.
pub(crate) const PICK_PUSH_SQL: &str = "\
SELECT json_group_array(json_array(seq, destination, queue) ORDER BY priority DESC, run_at, seq) FROM (
    SELECT seq, destination, queue, priority, run_at FROM jobs
    WHERE state = 'available' AND target IS NOT NULL
      AND destination NOT IN (SELECT value FROM json_each(?1))
      AND NOT EXISTS (SELECT 1 FROM queues WHERE name = jobs.queue AND paused)
    ORDER BY priority DESC, run_at, seq
    LIMIT ?2)";

/// The claimed push jobs: the worker claim's columns, then the target and its destination.
const READ_PUSH_SQL: &str = "\
SELECT json_group_array(json_array(
    json_array(seq, hex(id), queue, name, payload, attempt, max_attempts, hex(lease_token), lease_expires_at,
               timeout_ms, tags, created_at),
    target, destination))
FROM jobs WHERE seq IN (SELECT value FROM json_each(?1))";

/// Candidates read per job asked for, so that jobs of other destinations are found behind a backlog of one.
const WINDOW: u32 = 4;

/// Claims push jobs; returned highest priority first, then oldest due.
pub(crate) async fn claim(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: JobClaimPushParams,
    counts: &mut Counts,
) -> Result<Vec<PushJob>> {
    if p.max_jobs == 0 || p.per_destination == 0 {
        return Ok(Vec::new());
    }
    let mut held: HashMap<String, u32> = p.busy.into_iter().collect();
    let full: Vec<&str> = held
        .iter()
        .filter(|(_, n)| **n >= p.per_destination)
        .map(|(d, _)| d.as_str())
        .collect();
    let full = serde_json::to_string(&full).map_err(|e| corrupt(format!("push claim: {e}")))?;
    let window = i64::from(p.max_jobs.saturating_mul(WINDOW));
    let candidates: String = sqlx::query_scalar(PICK_PUSH_SQL)
        .bind(full)
        .bind(window)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let candidates: Vec<(i64, String, String)> =
        serde_json::from_str(&candidates).map_err(|e| corrupt(format!("push claim: {e}")))?;
    let mut order = Vec::new();
    let mut per_queue: HashMap<String, i64> = HashMap::new();
    for (seq, destination, queue) in candidates {
        if order.len() >= p.max_jobs as usize {
            break;
        }
        let n = held.entry(destination).or_default();
        if *n >= p.per_destination {
            continue;
        }
        *n += 1;
        order.push(seq);
        *per_queue.entry(queue).or_default() += 1;
    }
    if order.is_empty() {
        return Ok(Vec::new());
    }
    let picked = serde_json::to_string(&order).map_err(|e| corrupt(format!("push claim: {e}")))?;
    sqlx::query(TAKE_SQL)
        .bind(micros(now))
        .bind(p.worker_id)
        .bind(picked.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let json: String = sqlx::query_scalar(READ_PUSH_SQL)
        .bind(picked)
        .fetch_one(conn)
        .await
        .map_err(db)?;
    let rows: Vec<(ClaimedRow, String, String)> =
        serde_json::from_str(&json).map_err(|e| corrupt(format!("claimed push jobs: {e}")))?;
    let position: HashMap<i64, usize> =
        order.iter().enumerate().map(|(i, seq)| (*seq, i)).collect();
    let mut jobs = rows
        .into_iter()
        .map(|(row, target, destination)| {
            let (seq, job) = claimed(row)?;
            let target =
                codec::target(Some(&target))?.ok_or_else(|| corrupt("push job without target"))?;
            Ok((
                seq,
                PushJob {
                    job,
                    target,
                    destination,
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|(seq, _)| position.get(seq).copied().unwrap_or(usize::MAX));
    for (queue, n) in per_queue {
        counts.moved(&queue, JobState::Available, JobState::Running, n);
    }
    Ok(jobs.into_iter().map(|(_, job)| job).collect())
}
