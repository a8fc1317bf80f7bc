//! What users do to one job: cancel, retry, delete.
//!
//! Invariant: each operation reads the job's state in the writer's transaction, asks
//! [`offload_core::state`] whether the transition is allowed, and only then writes; a refused transition
//! writes nothing.

use offload_core::state::{self, Cancel};
use offload_core::{Job, JobId, JobState, Timestamp};
use offload_store::{Result, StoreError};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::jobs_read::get_job;

/// The facts a user action needs.
struct Current {
    seq: i64,
    queue: String,
    state: JobState,
    attempt: u32,
    max_attempts: u32,
}

async fn current(conn: &mut SqliteConnection, id: JobId) -> Result<Current> {
    let row =
        sqlx::query("SELECT seq, queue, state, attempt, max_attempts FROM jobs WHERE id = ?1")
            .bind(id.as_bytes().as_slice())
            .fetch_optional(conn)
            .await
            .map_err(db)?
            .ok_or_else(|| not_found(id))?;
    Ok(Current {
        seq: get(&row, "seq")?,
        queue: get(&row, "queue")?,
        state: codec::state(get::<&str>(&row, "state")?)?,
        attempt: codec::u32_of(get(&row, "attempt")?, "attempt")?,
        max_attempts: codec::u32_of(get(&row, "max_attempts")?, "max_attempts")?,
    })
}

fn not_found(id: JobId) -> StoreError {
    StoreError::NotFound(format!("job {id}"))
}

async fn after(conn: &mut SqliteConnection, id: JobId) -> Result<Job> {
    get_job(conn, id).await?.ok_or_else(|| not_found(id))
}

/// Cancels at once when not running; flags a running job so its worker stops.
pub(crate) async fn cancel(
    conn: &mut SqliteConnection,
    now: Timestamp,
    id: JobId,
    counts: &mut Counts,
) -> Result<Job> {
    let job = current(conn, id).await?;
    let write = match state::cancel(job.state)? {
        Cancel::Now => {
            counts.moved(&job.queue, job.state, JobState::Cancelled, 1);
            sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = ?1 WHERE seq = ?2")
                .bind(micros(now))
        }
        Cancel::Request => sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE seq = ?1"),
        Cancel::Noop => return after(conn, id).await,
    };
    write.bind(job.seq).execute(&mut *conn).await.map_err(db)?;
    // A call of a run cancelled before it ran cancels its run.
    let calls = crate::run_rows::calls_of(conn, &[job.seq]).await?;
    if let Some((run, _)) = calls.get(&job.seq) {
        let prepared = crate::run_answer::Prepared::NotAnAnswer;
        let state = current(conn, id).await?.state;
        crate::run_answer::after_end(conn, now, *run, prepared, state, None, None, counts).await?;
    }
    after(conn, id).await
}

/// Puts a dead or cancelled job back to available, due now, with at least one more attempt allowed.
pub(crate) async fn retry(
    conn: &mut SqliteConnection,
    now: Timestamp,
    id: JobId,
    counts: &mut Counts,
) -> Result<Job> {
    let job = current(conn, id).await?;
    let max_attempts = state::manual_retry(job.state, job.attempt, job.max_attempts)?;
    counts.moved(&job.queue, job.state, JobState::Available, 1);
    sqlx::query(
        "UPDATE jobs SET state = 'available', max_attempts = ?1, run_at = ?2, finished_at = NULL, \
         cancel_requested = 0, result = NULL, debounce_key = NULL WHERE seq = ?3",
    )
    .bind(i64::from(max_attempts))
    .bind(micros(now))
    .bind(job.seq)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    after(conn, id).await
}

/// Deletes a job that is not running, with its history (`ON DELETE CASCADE`).
pub(crate) async fn delete(
    conn: &mut SqliteConnection,
    id: JobId,
    counts: &mut Counts,
) -> Result<()> {
    let job = current(conn, id).await?;
    state::delete(job.state)?;
    counts.add(&job.queue, job.state, -1);
    sqlx::query("DELETE FROM jobs WHERE seq = ?1")
        .bind(job.seq)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}
