//! Ending attempts: completions, failures, snoozes and cancellations reported by workers, and expired leases
//! ended by the rescuer.
//!
//! Invariant: an attempt ends at most once and only with its current lease token. All items of a group are
//! read in one statement, decided in order in memory (so a second report for the same attempt sees the first
//! one's effect and is refused), and written with one multi-row UPDATE plus one multi-row INSERT into the
//! attempt history. What each end decides is [`offload_store::ending::end_attempt`]'s, the same in every store.
//! A push job that ends succeeded or dead gets its callback job inserted in the same transaction, so a callback
//! is never lost nor sent for an end that was rolled back.

use std::collections::HashMap;

use offload_core::state::Failure;
use offload_core::{AttemptOutcome, Backoff, JobId, JobState, LeaseToken, NewJob, Timestamp};
use offload_store::ending::{RunningJob, end_attempt};
use offload_store::{
    Finish, FinishItem, FinishOutcome, Finished, JobRescueParams, RescueReport, Result, StoreError,
};
use serde_json::value::RawValue;
use sqlx::Row;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};

use crate::batch::{self, add as bind};
use crate::codec::{self, hex_uuid, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::{run_answer, run_rows};
use offload_core::function::record::RecordLimits;
use offload_core::function::run::RunId;

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
        serde_json::from_str(&json).map_err(|e| StoreError::corrupt(format!("job facts: {e}")))?;
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

/// One `job_finish` command: its items, and the limits on what the answers of call jobs among them record.
pub(crate) type FinishCommand = (Vec<FinishItem>, RecordLimits);

/// Applies the items of several `job_finish` commands. The outer error means the statements failed (the caller
/// rolls back); each item is answered on its own.
pub(crate) async fn finish(
    conn: &mut SqliteConnection,
    now: Timestamp,
    commands: &[FinishCommand],
    counts: &mut Counts,
) -> Result<Vec<Vec<FinishOutcome>>> {
    let mut known = load(conn, commands).await?;
    let seqs: Vec<i64> = known.values().map(|f| f.seq).collect();
    let calls = run_rows::calls_of(conn, &seqs).await?;
    let mut ends = Vec::new();
    let mut answers = Vec::with_capacity(commands.len());
    for (items, limits) in commands {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let call = known.get(&item.id).and_then(|f| calls.get(&f.seq));
            out.push(match call {
                // A call of a run ends alone, with its answer applied to the run right after.
                Some((run, step)) => {
                    let call = (*run, step.as_deref());
                    finish_call(conn, now, &mut known, item, call, limits, counts).await?
                }
                None => decide(item, &mut known, now, &mut ends),
            });
        }
        answers.push(out);
    }
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
    let lease_expired = Finish::Fail(Failure::lease_expired());
    let mut ends = Vec::with_capacity(expired.len());
    let mut rescued = Vec::with_capacity(expired.len());
    for mut f in expired {
        let end = end_of(&mut f, &lease_expired, now);
        rescued.push(Finished {
            id: f.id,
            queue: f.queue,
            state: end.state,
            started_at: codec::timestamp(end.started_at)?,
            run: None,
        });
        ends.push(end);
    }
    write(conn, now, &ends, counts).await?;
    let seqs: Vec<i64> = ends.iter().map(|e| e.seq).collect();
    let calls = run_rows::calls_of(conn, &seqs).await?;
    for (end, done) in ends.iter().zip(&mut rescued) {
        if let Some((run, _)) = calls.get(&end.seq) {
            let prepared = run_answer::Prepared::NotAnAnswer;
            let started = Some(end.started_at);
            done.run = run_answer::after_end(
                conn, now, *run, prepared, end.state, end.error, started, counts,
            )
            .await?;
        }
    }
    for done in &rescued {
        counts.moved(&done.queue, JobState::Running, done.state, 1);
    }
    Ok(RescueReport { rescued })
}

async fn load(
    conn: &mut SqliteConnection,
    commands: &[FinishCommand],
) -> Result<HashMap<JobId, Facts>> {
    let ids: Vec<String> = commands
        .iter()
        .flat_map(|(items, _)| items)
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
    let end = end_of(f, &item.finish, now);
    let finished = Finished {
        id: f.id,
        queue: f.queue.clone(),
        state: end.state,
        started_at: codec::timestamp(end.started_at)?,
        run: None,
    };
    ends.push(end);
    Ok(finished)
}

/// Ends the attempt of a call job: its answer is decided first (a protocol error turns the completion into a
/// failure), the job's end is written, then the answer (or the job's death or cancel) is applied to the run.
async fn finish_call(
    conn: &mut SqliteConnection,
    now: Timestamp,
    known: &mut HashMap<JobId, Facts>,
    item: &FinishItem,
    (run, run_step): (RunId, Option<&str>),
    limits: &RecordLimits,
    counts: &mut Counts,
) -> Result<FinishOutcome> {
    let Some(f) = known.get_mut(&item.id) else {
        return Ok(Err(StoreError::NotFound(format!("job {}", item.id))));
    };
    if f.state != JobState::Running || f.lease_token != Some(item.lease_token) {
        return Ok(Err(StoreError::LeaseMismatch));
    }
    let prepared = run_answer::prepare(conn, now, run, run_step, &item.finish, limits).await?;
    let finish = match &prepared {
        run_answer::Prepared::Refused(failure) => failure,
        _ => &item.finish,
    };
    let end = end_of(f, finish, now);
    let mut finished = Finished {
        id: f.id,
        queue: f.queue.clone(),
        state: end.state,
        started_at: codec::timestamp(end.started_at)?,
        run: None,
    };
    let (state, error, started) = (end.state, end.error.map(str::to_owned), end.started_at);
    write(conn, now, std::slice::from_ref(&end), counts).await?;
    drop(end);
    finished.run = run_answer::after_end(
        conn,
        now,
        run,
        prepared,
        state,
        error.as_deref(),
        Some(started),
        counts,
    )
    .await?;
    Ok(Ok(finished))
}

/// The end `finish` decides for `f`'s attempt ([`end_attempt`]); updates `f` to the decided state.
fn end_of<'a>(f: &mut Facts, finish: &'a Finish, now: Timestamp) -> End<'a> {
    let target = match codec::target(f.target.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(job = %f.id, error = %e, "unreadable target; no callback");
            None
        }
    };
    let job = RunningJob {
        id: f.id,
        queue: &f.queue,
        name: f.name.as_deref(),
        target: target.as_ref(),
        attempt: f.attempt,
        max_attempts: f.max_attempts,
        backoff: f.backoff,
        cancel_requested: f.cancel_requested,
    };
    let decided = end_attempt(&job, finish, now, fastrand::f64());
    f.state = decided.state;
    f.lease_token = None;
    if let Some(more) = decided.max_attempts {
        f.max_attempts = more;
    }
    End {
        seq: f.seq,
        attempt: f.attempt,
        started_at: f.attempted_at.unwrap_or(micros(now)),
        worker_id: f.worker_id.clone(),
        state: decided.state,
        run_at: decided.run_at.map(micros),
        max_attempts: decided.max_attempts,
        result: decided.result.map(RawValue::get),
        error: decided.error,
        outcome: decided.outcome,
        callback: decided.callback,
    }
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
