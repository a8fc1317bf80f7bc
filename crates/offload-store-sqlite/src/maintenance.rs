//! The periodic work of the leader: staging due jobs and pruning old finished ones.
//!
//! Invariant: both walk partial indexes in due-time (or finish-time) order and stop at their limit, so one
//! call does bounded work however large the table is.

use std::collections::BTreeMap;

use offload_core::{JobState, SignedDuration, Timestamp};
use offload_store::{JobPruneParams, JobStageParams, Result, StageReport, StoreError};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::counts::MICROS_PER_MINUTE;
use crate::error::db;

/// Minutes of throughput kept by the pruner: a day.
const THROUGHPUT_KEPT_MINUTES: i64 = 24 * 60;

/// Makes due `scheduled` and `retrying` jobs available. The `run_at <= now` condition is
/// [`offload_core::state::due_state`]'s rule, applied in SQL to the `jobs_due` index.
pub(crate) async fn stage(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: JobStageParams,
    counts: &mut Counts,
) -> Result<StageReport> {
    let now = micros(now);
    // Read first: the counts need each job's state before the move.
    let due = sqlx::query(
        "SELECT seq, queue, state FROM jobs WHERE state IN ('scheduled', 'retrying') AND run_at <= ?1 \
         ORDER BY run_at LIMIT ?2",
    )
    .bind(now)
    .bind(i64::from(p.limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut staged: BTreeMap<String, u64> = BTreeMap::new();
    if !due.is_empty() {
        let mut seqs = Vec::with_capacity(due.len());
        for row in &due {
            let queue: String = get(row, "queue")?;
            counts.moved(
                &queue,
                codec::state(get::<&str>(row, "state")?)?,
                JobState::Available,
                1,
            );
            *staged.entry(queue).or_default() += 1;
            seqs.push(get::<i64>(row, "seq")?);
        }
        let seqs = serde_json::to_string(&seqs).map_err(|e| StoreError::Internal(e.to_string()))?;
        sqlx::query(
            "UPDATE jobs SET state = 'available' WHERE seq IN (SELECT value FROM json_each(?1))",
        )
        .bind(seqs)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    let next: Option<i64> =
        sqlx::query_scalar("SELECT MIN(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying')")
            .fetch_one(conn)
            .await
            .map_err(db)?;
    Ok(StageReport {
        staged: staged.into_iter().collect(),
        next_due_at: next.map(codec::timestamp).transpose()?,
    })
}

/// Deletes finished jobs whose state's retention has passed, oldest first, at most `limit` in all.
pub(crate) async fn prune(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: JobPruneParams,
    counts: &mut Counts,
) -> Result<u64> {
    let mut deleted = 0;
    for (state, keep) in [
        (JobState::Succeeded, p.succeeded),
        (JobState::Dead, p.dead),
        (JobState::Cancelled, p.cancelled),
    ] {
        let remaining = u64::from(p.limit).saturating_sub(deleted);
        if remaining == 0 {
            break;
        }
        // A retention too long to subtract from now keeps everything.
        let Some(cutoff) = SignedDuration::try_from(keep)
            .ok()
            .and_then(|d| now.checked_sub(d).ok())
        else {
            continue;
        };
        // The IN list repeats the partial index's condition so that `jobs_finished` applies.
        let gone = sqlx::query(
            "DELETE FROM jobs WHERE seq IN ( \
               SELECT seq FROM jobs WHERE state IN ('succeeded', 'dead', 'cancelled') AND state = ?1 \
                 AND finished_at <= ?2 ORDER BY finished_at LIMIT ?3) \
             RETURNING queue",
        )
        .bind(state.as_str())
        .bind(micros(cutoff))
        .bind(i64::try_from(remaining).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        for row in &gone {
            counts.add(get::<&str>(row, "queue")?, state, -1);
        }
        deleted += gone.len() as u64;
    }
    // Throughput minutes older than a day: the dashboard shows the last hour.
    sqlx::query("DELETE FROM queue_throughput WHERE minute < ?1")
        .bind(micros(now).div_euclid(MICROS_PER_MINUTE) - THROUGHPUT_KEPT_MINUTES)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(deleted)
}
