//! What users do to one job: cancel, retry, delete.
//!
//! Invariant: each operation locks the job's row (`FOR UPDATE`) in its transaction, asks
//! [`offload_core::state`] whether the transition is allowed, and only then writes; a refused transition
//! writes nothing. The job returned is read in the same transaction, after the change.

use offload_core::function::record::RecordLimits;
use offload_core::function::run::RunId;
use offload_core::state::{self, Cancel};
use offload_core::{Job, JobId, JobState, Timestamp};
use offload_store::{Result, StoreError};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::codec::{self, Ts, get};
use crate::counts::Counts;
use crate::error::db;
use crate::jobs_read::get_job;

/// The facts a user action needs.
struct Current {
    queue: String,
    state: JobState,
    attempt: u32,
    max_attempts: u32,
    /// For a call of a run: the run.
    run_id: Option<uuid::Uuid>,
}

async fn current(conn: &mut PgConnection, id: JobId) -> Result<Current> {
    let row = sqlx::query(
        "SELECT queue, state, attempt, max_attempts, run_id FROM jobs WHERE id = $1 FOR UPDATE",
    )
    .bind(id.0)
    .fetch_optional(conn)
    .await
    .map_err(db)?
    .ok_or_else(|| not_found(id))?;
    Ok(Current {
        queue: get(&row, "queue")?,
        state: codec::state(get::<&str>(&row, "state")?)?,
        attempt: codec::u32_of(get(&row, "attempt")?, "attempt")?,
        max_attempts: codec::u32_of(get(&row, "max_attempts")?, "max_attempts")?,
        run_id: get(&row, "run_id")?,
    })
}

fn not_found(id: JobId) -> StoreError {
    StoreError::NotFound(format!("job {id}"))
}

async fn after(conn: &mut PgConnection, id: JobId) -> Result<Job> {
    get_job(conn, id).await?.ok_or_else(|| not_found(id))
}

/// Cancels at once when not running; flags a running job so its worker stops. A call of a run cancelled at once
/// cancels its run in the same transaction (a running one does when its worker ends it as cancelled). Returns
/// the job and the queues to announce.
pub(crate) async fn cancel(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    id: JobId,
) -> Result<(Job, Vec<String>)> {
    let mut announce = Vec::new();
    let mut tx = conn.begin().await.map_err(db)?;
    let job = current(&mut tx, id).await?;
    match state::cancel(job.state)? {
        Cancel::Now => {
            sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2")
                .bind(Ts(now))
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let mut counts = Counts::default();
            counts.moved(&job.queue, job.state, JobState::Cancelled);
            counts.flush(&mut tx).await?;
            if let Some(run) = job.run_id
                && let Some(run) = crate::run_flow::load_run(&mut tx, RunId(run)).await?
                && !run.state.is_final()
            {
                let end = crate::run_flow::RunEnd::Cancelled;
                announce.extend(
                    crate::run_flow::end_run(&mut tx, now, limits, &run, end, Some(id)).await?,
                );
            }
        }
        Cancel::Request => {
            sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        Cancel::Noop => {}
    }
    let job = after(&mut tx, id).await?;
    tx.commit().await.map_err(db)?;
    Ok((job, announce))
}

/// Puts a dead or cancelled job back to available, due now, with at least one more attempt allowed.
pub(crate) async fn retry(conn: &mut PgConnection, now: Timestamp, id: JobId) -> Result<Job> {
    let mut tx = conn.begin().await.map_err(db)?;
    let job = current(&mut tx, id).await?;
    let max_attempts = state::manual_retry(job.state, job.attempt, job.max_attempts)?;
    sqlx::query(
        "UPDATE jobs SET state = 'available', max_attempts = $1, run_at = $2, finished_at = NULL, \
         cancel_requested = false, result = NULL, debounce_key = NULL WHERE id = $3",
    )
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .bind(Ts(now))
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let mut counts = Counts::default();
    counts.moved(&job.queue, job.state, JobState::Available);
    counts.flush(&mut tx).await?;
    let job = after(&mut tx, id).await?;
    tx.commit().await.map_err(db)?;
    Ok(job)
}

/// Deletes a job that is not running, with its history.
pub(crate) async fn delete(conn: &mut PgConnection, id: JobId) -> Result<()> {
    let mut tx = conn.begin().await.map_err(db)?;
    let job = current(&mut tx, id).await?;
    state::delete(job.state)?;
    sqlx::query("WITH history AS (DELETE FROM job_attempts WHERE job_id = $1) DELETE FROM jobs WHERE id = $1")
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let mut counts = Counts::default();
    counts.add(&job.queue, job.state, -1);
    counts.flush(&mut tx).await?;
    tx.commit().await.map_err(db)
}
