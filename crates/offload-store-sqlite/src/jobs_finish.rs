//! Ending attempts: completions, failures, snoozes and cancellations reported by workers, and expired leases
//! ended by the rescuer.
//!
//! Invariant: an attempt ends at most once and only with its current lease token. All items of a group are
//! read in one statement, decided in order in memory (so a second report for the same attempt sees the first
//! one's effect and is refused), and written with one multi-row UPDATE plus one multi-row INSERT into the
//! attempt history. What follows a failure is decided by [`offload_core::state::after_failure`], a snooze by
//! [`offload_core::state::after_snooze`], a worker's cancellation by [`offload_core::state::after_worker_cancel`].
//! A push job that ends succeeded or dead gets its callback job ([`offload_core::push::callback_job`]) inserted
//! in the same transaction, so a callback is never lost nor sent for an end that was rolled back.

use std::collections::HashMap;

use offload_core::api::MAX_ERROR_LEN;
use offload_core::push::callback::{Ended, callback_job};
use offload_core::state::{Failure, RetryFacts, after_failure, after_snooze, after_worker_cancel};
use offload_core::{AttemptOutcome, Backoff, JobId, JobState, LeaseToken, NewJob, Timestamp};
use offload_store::{
    Finish, FinishItem, FinishOutcome, Finished, JobRescueParams, RescueReport, Result, StoreError,
};
use serde_json::value::RawValue;
use sqlx::Row;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};

use crate::batch::{self, add as bind};
use crate::codec::{self, hex_uuid, micros};
use crate::counts::Counts;
use crate::error::{corrupt, db};

/// What the decision needs to know about a job, as read in the writer's transaction.
struct Facts {
    seq: i64,
    id: JobId,
    queue: String,
    state: JobState,
    lease_token: Option<LeaseToken>,
    attempt: u32,
    max_attempts: u32,
    backoff: Backoff,
    cancel_requested: bool,
    attempted_at: Option<i64>,
    worker_id: Option<String>,
    name: Option<String>,
    /// The target's JSON (push jobs only); read only when the job ends for good.
    target: Option<String>,
}

/// The facts of every selected job as ONE JSON array (one row crosses from SQLite to us, not one per job).
pub(crate) const FACTS_JSON: &str = "SELECT json_group_array(json_array(seq, hex(id), queue, state, hex(lease_token), attempt, \
     max_attempts, backoff_base_ms, backoff_cap_ms, backoff_jitter, cancel_requested, attempted_at, worker_id, name, \
     target))";

/// One element of [`FACTS_JSON`].
type FactsRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    f64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Runs a [`FACTS_JSON`] query and parses its answer.
async fn facts(
    query: sqlx::query::Query<'_, Sqlite, SqliteArguments>,
    conn: &mut SqliteConnection,
) -> Result<Vec<Facts>> {
    let json: String = query
        .fetch_one(conn)
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    let rows: Vec<FactsRow> =
        serde_json::from_str(&json).map_err(|e| corrupt(format!("job facts: {e}")))?;
    rows.into_iter()
        .map(
            |(
                seq,
                id,
                queue,
                state,
                token,
                attempt,
                max_attempts,
                base,
                cap,
                jitter,
                cancel,
                attempted_at,
                worker_id,
                name,
                target,
            )| {
                Ok(Facts {
                    seq,
                    id: JobId(hex_uuid(&id)?),
                    queue,
                    state: codec::state(&state)?,
                    lease_token: if token.is_empty() {
                        None
                    } else {
                        Some(LeaseToken(hex_uuid(&token)?))
                    },
                    attempt: codec::u32_of(attempt, "attempt")?,
                    max_attempts: codec::u32_of(max_attempts, "max_attempts")?,
                    backoff: codec::backoff(base, cap, jitter)?,
                    cancel_requested: cancel != 0,
                    attempted_at,
                    worker_id,
                    name,
                    target,
                })
            },
        )
        .collect()
}

/// One decided end of an attempt, to be written.
struct End<'a> {
    seq: i64,
    attempt: u32,
    started_at: i64,
    worker_id: Option<String>,
    state: JobState,
    /// New due time (retries, snoozes); `None` keeps it.
    run_at: Option<i64>,
    /// New attempt allowance (snoozes); `None` keeps it.
    max_attempts: Option<u32>,
    result: Option<&'a str>,
    error: Option<&'a str>,
    outcome: AttemptOutcome,
    /// The callback job to insert with this end.
    callback: Option<NewJob>,
}

/// Applies the items of several `job_finish` commands. The outer error means the statements failed (the caller
/// rolls back); each item is answered on its own.
pub(crate) async fn finish(
    conn: &mut SqliteConnection,
    now: Timestamp,
    commands: &[Vec<FinishItem>],
    counts: &mut Counts,
) -> Result<Vec<Vec<FinishOutcome>>> {
    let mut known = load(conn, commands).await?;
    let mut ends = Vec::new();
    let answers = commands
        .iter()
        .map(|items| {
            items
                .iter()
                .map(|item| decide(item, &mut known, now, &mut ends))
                .collect()
        })
        .collect::<Vec<Vec<FinishOutcome>>>();
    write(conn, now, &ends, counts).await?;
    for done in answers.iter().flatten().flatten() {
        counts.moved(&done.queue, JobState::Running, done.state, 1);
    }
    Ok(answers)
}

/// Ends up to `limit` attempts whose lease ran out (`lease_expires_at <= now`), oldest deadline first, as
/// failures with [`Failure::lease_expired`].
pub(crate) async fn rescue(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: JobRescueParams,
    counts: &mut Counts,
) -> Result<RescueReport> {
    let sql = format!(
        "{FACTS_JSON} FROM (SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at <= ?1 \
         ORDER BY lease_expires_at LIMIT ?2)"
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(micros(now))
        .bind(i64::from(p.limit));
    let expired = facts(query, conn).await?;
    let failure = Failure::lease_expired();
    let mut ends = Vec::with_capacity(expired.len());
    let mut rescued = Vec::with_capacity(expired.len());
    for mut f in expired {
        let end = failed(&mut f, &failure, now);
        rescued.push(Finished {
            id: f.id,
            queue: f.queue,
            state: end.state,
            started_at: codec::timestamp(end.started_at)?,
        });
        ends.push(end);
    }
    write(conn, now, &ends, counts).await?;
    for done in &rescued {
        counts.moved(&done.queue, JobState::Running, done.state, 1);
    }
    Ok(RescueReport { rescued })
}

async fn load(
    conn: &mut SqliteConnection,
    commands: &[Vec<FinishItem>],
) -> Result<HashMap<JobId, Facts>> {
    let ids: Vec<String> = commands
        .iter()
        .flatten()
        .map(|i| i.id.0.simple().to_string())
        .collect();
    let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Internal(e.to_string()))?;
    let sql =
        format!("{FACTS_JSON} FROM jobs WHERE id IN (SELECT unhex(value) FROM json_each(?1))");
    let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids);
    Ok(facts(query, conn)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect())
}

fn decide<'a>(
    item: &'a FinishItem,
    known: &mut HashMap<JobId, Facts>,
    now: Timestamp,
    ends: &mut Vec<End<'a>>,
) -> FinishOutcome {
    let Some(f) = known.get_mut(&item.id) else {
        return Err(StoreError::NotFound(format!("job {}", item.id)));
    };
    if f.state != JobState::Running || f.lease_token != Some(item.lease_token) {
        return Err(StoreError::LeaseMismatch);
    }
    let end = match &item.finish {
        // A completion is applied even when a cancel was requested: the work was done.
        Finish::Complete { result } => {
            let callback = callback(f, JobState::Succeeded, result.as_deref(), None, now);
            let end = End {
                seq: f.seq,
                attempt: f.attempt,
                started_at: f.attempted_at.unwrap_or(micros(now)),
                worker_id: f.worker_id.clone(),
                state: JobState::Succeeded,
                run_at: None,
                max_attempts: None,
                result: result.as_deref().map(|r| r.get()),
                error: None,
                outcome: AttemptOutcome::Succeeded,
                callback,
            };
            f.state = end.state;
            f.lease_token = None;
            end
        }
        Finish::Fail(failure) => failed(f, failure, now),
        Finish::Snooze { delay } => snoozed(f, *delay, now),
        Finish::Cancel { reason } => {
            let decision = after_worker_cancel(now);
            f.state = decision.state;
            f.lease_token = None;
            End {
                seq: f.seq,
                attempt: f.attempt,
                started_at: f.attempted_at.unwrap_or(micros(now)),
                worker_id: f.worker_id.clone(),
                state: decision.state,
                run_at: None,
                max_attempts: None,
                result: None,
                error: Some(truncate(reason)),
                outcome: decision.outcome,
                // Callbacks follow only a push job's success or death.
                callback: None,
            }
        }
    };
    let finished = Finished {
        id: f.id,
        queue: f.queue.clone(),
        state: end.state,
        started_at: codec::timestamp(end.started_at)?,
    };
    ends.push(end);
    Ok(finished)
}

/// A failed attempt's end, per the retry policy; updates `f` to the decided state.
fn failed<'a>(f: &mut Facts, failure: &'a Failure, now: Timestamp) -> End<'a> {
    let retry = RetryFacts {
        attempt: f.attempt,
        max_attempts: f.max_attempts,
        backoff: f.backoff,
        cancel_requested: f.cancel_requested,
    };
    let decision = after_failure(&retry, failure, now, fastrand::f64());
    let error = truncate(&failure.error);
    let callback = callback(f, decision.state, None, Some(error), now);
    f.state = decision.state;
    f.lease_token = None;
    End {
        seq: f.seq,
        attempt: f.attempt,
        started_at: f.attempted_at.unwrap_or(micros(now)),
        worker_id: f.worker_id.clone(),
        state: decision.state,
        run_at: (!decision.state.is_finished()).then(|| micros(decision.run_at)),
        max_attempts: None,
        result: None,
        error: Some(error),
        outcome: decision.outcome,
        callback,
    }
}

/// A snoozed attempt's end: due again after `delay` with one more attempt allowed (or cancelled, when a cancel
/// was requested); updates `f` to the decided state.
fn snoozed<'a>(f: &mut Facts, delay: std::time::Duration, now: Timestamp) -> End<'a> {
    let retry = RetryFacts {
        attempt: f.attempt,
        max_attempts: f.max_attempts,
        backoff: f.backoff,
        cancel_requested: f.cancel_requested,
    };
    let decision = after_snooze(&retry, delay, now);
    f.state = decision.state;
    f.max_attempts = decision.max_attempts;
    f.lease_token = None;
    let back = !decision.state.is_finished();
    End {
        seq: f.seq,
        attempt: f.attempt,
        started_at: f.attempted_at.unwrap_or(micros(now)),
        worker_id: f.worker_id.clone(),
        state: decision.state,
        run_at: back.then(|| micros(decision.run_at)),
        max_attempts: back.then_some(decision.max_attempts),
        result: None,
        error: None,
        outcome: decision.outcome,
        // A snooze brings the job back (or cancels it): no end a callback reports.
        callback: None,
    }
}

/// The callback job of a push job ending in `state`, if it asked for one.
fn callback(
    f: &Facts,
    state: JobState,
    result: Option<&RawValue>,
    error: Option<&str>,
    now: Timestamp,
) -> Option<NewJob> {
    let text = f.target.as_deref()?;
    if !matches!(state, JobState::Succeeded | JobState::Dead) {
        return None;
    }
    let target = match codec::target(Some(text)) {
        Ok(Some(t)) => t,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(job = %f.id, error = %e, "unreadable target; no callback");
            return None;
        }
    };
    callback_job(&Ended {
        id: f.id,
        queue: &f.queue,
        name: f.name.as_deref(),
        target: &target,
        state,
        attempt: f.attempt,
        result,
        error,
        finished_at: now,
    })
}

/// `s` cut to at most [`MAX_ERROR_LEN`] bytes, at a character boundary.
fn truncate(s: &str) -> &str {
    if s.len() <= MAX_ERROR_LEN {
        return s;
    }
    let mut end = MAX_ERROR_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Values per row of the job UPDATE: seq, state, run_at, finished_at, result, error, max_attempts.
const UPDATE_PER_ROW: usize = 7;

fn update_sql(rows: usize) -> String {
    // column3 NULL keeps run_at, column7 NULL max_attempts; column4 is NULL unless the job reached a finished
    // state.
    format!(
        "UPDATE jobs SET state = v.column2, run_at = coalesce(v.column3, jobs.run_at), \
           finished_at = v.column4, result = v.column5, last_error = coalesce(v.column6, jobs.last_error), \
           max_attempts = coalesce(v.column7, jobs.max_attempts), lease_token = NULL, lease_expires_at = NULL \
         FROM (VALUES {}) AS v WHERE jobs.seq = v.column1",
        batch::values(rows, UPDATE_PER_ROW)
    )
}

/// Values per row of the history INSERT.
const ATTEMPT_PER_ROW: usize = 7;

fn attempt_sql(rows: usize) -> String {
    format!(
        "INSERT INTO job_attempts (finished_at, job_seq, attempt, started_at, worker_id, outcome, error) VALUES {}",
        batch::values(rows, ATTEMPT_PER_ROW)
    )
}

async fn write(
    conn: &mut SqliteConnection,
    now_ts: Timestamp,
    ends: &[End<'_>],
    counts: &mut Counts,
) -> Result<()> {
    if ends.is_empty() {
        return Ok(());
    }
    let now = micros(now_ts);
    let update = |args: &mut SqliteArguments, e: &End<'_>| {
        bind(args, e.seq)?;
        bind(args, e.state.as_str())?;
        bind(args, e.run_at)?;
        bind(args, e.state.is_finished().then_some(now))?;
        bind(args, e.result)?;
        bind(args, e.error)?;
        bind(args, e.max_attempts.map(i64::from))
    };
    batch::execute(conn, ends, UPDATE_PER_ROW, &update_sql, &update).await?;
    let attempt = |args: &mut SqliteArguments, e: &End<'_>| {
        bind(args, now)?;
        bind(args, e.seq)?;
        bind(args, i64::from(e.attempt))?;
        bind(args, e.started_at)?;
        bind(args, e.worker_id.as_deref())?;
        bind(args, e.outcome.as_str())?;
        bind(args, e.error)
    };
    batch::execute(conn, ends, ATTEMPT_PER_ROW, &attempt_sql, &attempt).await?;
    let callbacks: Vec<NewJob> = ends.iter().filter_map(|e| e.callback.clone()).collect();
    if !callbacks.is_empty() {
        // No idempotency keys: the only possible answer is success.
        for answer in crate::jobs_insert::insert(conn, now_ts, &[callbacks], counts).await? {
            answer?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_ERROR_LEN && cut.len() >= MAX_ERROR_LEN - 1);
        assert_eq!(truncate("short"), "short");
    }
}
