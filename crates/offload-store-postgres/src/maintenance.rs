//! The periodic work of the leader: staging due jobs, pruning old finished ones and idle group usage rows.
//!
//! Invariant: both walk partial indexes in due-time (or finish-time) order, stop at their limit and skip rows
//! another transaction holds (`SKIP LOCKED`), so one call does bounded work however large the table is, and
//! two servers running them at once (a leader change) only share the work.

use std::sync::LazyLock;

use offload_core::{JobState, SignedDuration, Timestamp};
use offload_store::{JobPruneParams, JobStageParams, Result, StageReport};
use sqlx::postgres::PgConnection;

use crate::codec::{Ts, get};
use crate::counts;
use crate::error::db;

/// Makes due waiting jobs available and counts the moves; answers the jobs staged per queue.
pub(crate) static STAGE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH due AS (
    SELECT ctid, queue, state FROM jobs WHERE state IN ('scheduled', 'retrying') AND run_at <= $1
    ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED
), upd AS (
    -- By physical address: the rows are locked for the rest of the statement.
    UPDATE jobs SET state = 'available' FROM due WHERE jobs.ctid = due.ctid RETURNING due.queue, due.state
), {}
SELECT queue, count(*) AS n FROM upd GROUP BY queue ORDER BY queue",
        counts::cte(
            "SELECT queue, state, -1 FROM upd UNION ALL SELECT queue, 'available', 1 FROM upd",
            "$3"
        )
    )
});

/// Makes due `scheduled` and `retrying` jobs available. The `run_at <= now` condition is
/// [`offload_core::state::due_state`]'s rule, applied in SQL to the `jobs_due` index.
pub(crate) async fn stage(
    conn: &mut PgConnection,
    now: Timestamp,
    p: JobStageParams,
) -> Result<StageReport> {
    let rows = sqlx::query(STAGE_SQL.as_str())
        .bind(Ts(now))
        .bind(i64::from(p.limit))
        .bind(counts::shard())
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let staged = rows
        .iter()
        .map(|r| {
            let n: i64 = get(r, "n")?;
            Ok((get::<String>(r, "queue")?, u64::try_from(n).unwrap_or(0)))
        })
        .collect::<Result<Vec<_>>>()?;
    // A statement of its own: the one above cannot see its own changes.
    let next: Option<Ts> =
        sqlx::query_scalar("SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying')")
            .fetch_one(conn)
            .await
            .map_err(db)?;
    Ok(StageReport {
        staged,
        next_due_at: next.map(|t| t.0),
    })
}

/// Deletes one state's finished jobs (with their history) and counts them.
pub(crate) static PRUNE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH old AS (
    SELECT id FROM jobs WHERE state IN ('succeeded', 'dead', 'cancelled') AND state = $1 AND finished_at <= $2
    ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED
), history AS (
    DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM old)
), gone AS (
    DELETE FROM jobs WHERE id IN (SELECT id FROM old) RETURNING queue
), {}
SELECT count(*) FROM gone",
        counts::cte("SELECT queue, $1, -1 FROM gone", "$4")
    )
});

/// Deletes finished jobs whose state's retention has passed, oldest first, at most `limit` in all.
pub(crate) async fn prune(
    conn: &mut PgConnection,
    now: Timestamp,
    p: JobPruneParams,
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
        let gone: i64 = sqlx::query_scalar(PRUNE_SQL.as_str())
            .bind(state.as_str())
            .bind(Ts(cutoff))
            .bind(i64::try_from(remaining).unwrap_or(i64::MAX))
            .bind(counts::shard())
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        deleted += u64::try_from(gone).unwrap_or(0);
    }
    // Throughput minutes older than a day: the dashboard shows the last hour.
    sqlx::query("DELETE FROM queue_throughput WHERE minute < $1")
        .bind(crate::queues::minute_of(now) - THROUGHPUT_KEPT_MINUTES)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    // Group usage rows of groups with nothing waiting or running, whose throttle is at rest and which were not
    // served for an hour (a row is created again by the next job of the group; a group back after a long quiet
    // spell takes its turn as a new one).
    sqlx::query(
        "DELETE FROM queue_groups WHERE ctid IN ( \
             SELECT ctid FROM queue_groups \
             WHERE available = 0 AND running = 0 AND (tat IS NULL OR tat <= $1) \
               AND (served_at IS NULL OR served_at <= $2) \
             LIMIT $3 FOR UPDATE SKIP LOCKED)",
    )
    .bind(Ts(now))
    .bind(Ts(now
        .checked_sub(SignedDuration::from_hours(1))
        .unwrap_or(now)))
    .bind(i64::from(p.limit))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(deleted)
}

/// Minutes of throughput kept by the pruner: a day.
const THROUGHPUT_KEPT_MINUTES: i64 = 24 * 60;
