//! What users do to one job: cancel, retry, delete.
//!
//! Invariant: each operation locks the job's row (`FOR UPDATE`) in its transaction, asks
//! [`offload_core::state`] whether the transition is allowed, and only then writes; a refused transition
//! writes nothing. The job returned is read in the same transaction, after the change.

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
}

async fn current(conn: &mut PgConnection, id: JobId) -> Result<Current> {
    let row = sqlx::query(
        "SELECT queue, state, attempt, max_attempts FROM jobs WHERE id = $1 FOR UPDATE",
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
    })
}

fn not_found(id: JobId) -> StoreError {
    StoreError::NotFound(format!("job {id}"))
}

async fn after(conn: &mut PgConnection, id: JobId) -> Result<Job> {
    get_job(conn, id).await?.ok_or_else(|| not_found(id))
}

/// Cancels at once when not running; flags a running job so its worker stops.
pub(crate) async fn cancel(conn: &mut PgConnection, now: Timestamp, id: JobId) -> Result<Job> {
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
    Ok(job)
}

/// Puts a dead or cancelled job back to available, due now, with at least one more attempt allowed.
pub(crate) async fn retry(conn: &mut PgConnection, now: Timestamp, id: JobId) -> Result<Job> {
    let mut tx = conn.begin().await.map_err(db)?;
    let job = current(&mut tx, id).await?;
    let max_attempts = state::manual_retry(job.state, job.attempt, job.max_attempts)?;
    sqlx::query(
        "UPDATE jobs SET state = 'available', max_attempts = $1, run_at = $2, finished_at = NULL, \
         cancel_requested = false, result = NULL WHERE id = $3",
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
