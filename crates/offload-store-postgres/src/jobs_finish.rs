//! Ending attempts: completions, failures, snoozes and cancellations reported by workers, and expired leases
//! ended by the rescuer.
//!
//! Invariant: an attempt ends at most once and only with its current lease token. All jobs of a group are read
//! and locked (`FOR UPDATE`, in id order so concurrent groups never deadlock) in one statement, decided in order
//! in memory (so a second report for the same attempt sees the first one's effect and is refused), and written
//! with one statement that updates the jobs, appends the attempts to the history and counts the moves. What each
//! end decides is [`offload_store::ending::end_attempt`]'s, the same in every store. The same statement adds the
//! ended attempts to `queue_throughput`. A push job that ends succeeded or dead gets its callback job inserted in
//! the same transaction, so a callback is never lost nor sent for an end that was rolled back. The end of a call
//! of a run applies the call's answer to the run in the same transaction too (`run_flow`): the runs are locked
//! after their call jobs, a completion that breaks the protocol becomes a failed attempt, and a call that dies
//! fails its run (one cancelled by its worker cancels it). The rescuer locks with `SKIP LOCKED`: a job whose worker
//! is reporting right now is left to that report.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use offload_core::function::event::DEFAULT_MAX_EVENT_BYTES;
use offload_core::function::protocol::{Answer, ProtocolError};
use offload_core::function::record::{self, CallFacts, RecordLimits, RunFacts};
use offload_core::function::run::RunId;
use offload_core::state::Failure;
use offload_core::{AttemptOutcome, Backoff, JobId, JobState, LeaseToken, NewJob, Timestamp};
use offload_store::calls::{self, CallJobEnd};
use offload_store::ending::{RunningJob, end_attempt, truncate_error};
use offload_store::{
    Finish, FinishItem, FinishOutcome, Finished, JobRescueParams, RescueReport, Result, StepCounts,
    StoreError,
};
use serde_json::value::RawValue;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgRow};

use crate::codec::{self, Ts, get, ts_opt};
use crate::counts::{self, Counts};
use crate::error::db;
use crate::run_flow::{self, RunEnd};

/// What the decision needs to know about a job, as read (and locked) in the transaction.
struct Facts {
    id: JobId,
    queue: String,
    state: JobState,
    lease_token: Option<LeaseToken>,
    attempt: u32,
    max_attempts: u32,
    backoff: Backoff,
    cancel_requested: bool,
    attempted_at: Option<Timestamp>,
    worker_id: Option<String>,
    name: Option<String>,
    /// The target's JSON (push jobs only).
    target: Option<String>,
    /// For a call of a run: the run.
    run_id: Option<uuid::Uuid>,
    /// For a call made for a planned parallel step: the step.
    run_step: Option<String>,
    /// The job's group, if any.
    grp: Option<String>,
}

/// The columns [`facts`] reads.
pub(crate) const FACTS: &str = "id, queue, state, lease_token, attempt, max_attempts, backoff_base_ms, backoff_cap_ms, \
                     backoff_jitter, cancel_requested, attempted_at, worker_id, name, target::text AS target, run_id, run_step, grp";

fn facts(row: &PgRow) -> Result<Facts> {
    Ok(Facts {
        id: JobId(get(row, "id")?),
        queue: get(row, "queue")?,
        state: codec::state(get::<&str>(row, "state")?)?,
        lease_token: get::<Option<uuid::Uuid>>(row, "lease_token")?.map(LeaseToken),
        attempt: codec::u32_of(get(row, "attempt")?, "attempt")?,
        max_attempts: codec::u32_of(get(row, "max_attempts")?, "max_attempts")?,
        backoff: codec::backoff(
            get(row, "backoff_base_ms")?,
            get(row, "backoff_cap_ms")?,
            get(row, "backoff_jitter")?,
        )?,
        cancel_requested: get(row, "cancel_requested")?,
        attempted_at: ts_opt(row, "attempted_at")?,
        worker_id: get(row, "worker_id")?,
        name: get(row, "name")?,
        target: get(row, "target")?,
        run_id: get(row, "run_id")?,
        run_step: get(row, "run_step")?,
        grp: get(row, "grp")?,
    })
}

/// One decided end of an attempt, to be written.
struct End<'a> {
    id: JobId,
    queue: String,
    /// The job's group: ends are written in (queue, group) order.
    grp: Option<String>,
    attempt: u32,
    started_at: Timestamp,
    worker_id: Option<String>,
    state: JobState,
    /// New due time (retries, snoozes); `None` keeps it.
    run_at: Option<Timestamp>,
    /// New attempt allowance (snoozes); `None` keeps it.
    max_attempts: Option<u32>,
    result: Option<&'a str>,
    error: Option<Cow<'a, str>>,
    outcome: AttemptOutcome,
    /// The callback job to insert with this end.
    callback: Option<NewJob>,
}

/// What a group of finishes did: each command's per-item answers, and what to announce once committed: the
/// queues with jobs due again at once, and what the callbacks' insert announces.
pub(crate) struct Outcome {
    pub(crate) answers: Vec<Vec<FinishOutcome>>,
    pub(crate) announce: Vec<String>,
}

/// Applies the items of several `job_finish` commands in one transaction. The outer error means nothing was
/// written; each item is answered on its own. The end of a call job applies its answer to its run in the same
/// transaction (the runs are locked after their call jobs, in id order).
pub(crate) async fn finish(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    commands: &[Vec<FinishItem>],
) -> Result<Outcome> {
    let mut ids: Vec<uuid::Uuid> = commands.iter().flatten().map(|i| i.id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = conn.begin().await.map_err(db)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {FACTS} FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    )))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut known: HashMap<JobId, Facts> = rows
        .iter()
        .map(|r| facts(r).map(|f| (f.id, f)))
        .collect::<Result<_>>()?;
    let runs: Vec<uuid::Uuid> = known.values().filter_map(|f| f.run_id).collect();
    run_flow::lock_runs(&mut tx, &runs).await?;
    let mut ends = Vec::new();
    let mut runs_announce = Vec::new();
    let mut answers: Vec<Vec<FinishOutcome>> = Vec::with_capacity(commands.len());
    for items in commands {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let (answer, queues) =
                decide(&mut tx, item, &mut known, now, limits, &mut ends).await?;
            runs_announce.extend(queues);
            out.push(answer);
        }
        answers.push(out);
    }
    let mut announce = available(answers.iter().flatten().flatten());
    announce.extend(runs_announce);
    announce.extend(write(&mut tx, now, &ends).await?);
    tx.commit().await.map_err(db)?;
    Ok(Outcome { answers, announce })
}

/// Queues named by `done` whose job became available again at once, each once.
fn available<'a>(done: impl Iterator<Item = &'a Finished>) -> Vec<String> {
    let mut queues: Vec<String> = done
        .filter(|f| f.state == JobState::Available)
        .map(|f| f.queue.clone())
        .collect();
    queues.sort_unstable();
    queues.dedup();
    queues
}

/// Ends up to `limit` attempts whose lease ran out (`lease_expires_at <= now`), oldest deadline first, as
/// failures with [`Failure::lease_expired`].
pub(crate) async fn rescue(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    p: JobRescueParams,
) -> Result<(RescueReport, Vec<String>)> {
    let mut tx = conn.begin().await.map_err(db)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {FACTS} FROM jobs WHERE state = 'running' AND lease_expires_at <= $1 \
         ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(Ts(now))
    .bind(i64::from(p.limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let lease_expired = Finish::Fail(Failure::lease_expired());
    let mut ends = Vec::with_capacity(rows.len());
    let mut rescued = Vec::with_capacity(rows.len());
    let mut dead_calls = Vec::new();
    for row in &rows {
        let mut f = facts(row)?;
        let end = end_of(&mut f, &lease_expired, now);
        if let Some(run) = f.run_id {
            dead_calls.push((
                f.id,
                RunId(run),
                end.state,
                end.error.as_deref().map(str::to_owned),
            ));
        }
        rescued.push(Finished {
            id: f.id,
            queue: f.queue,
            state: end.state,
            started_at: end.started_at,
            run: None,
        });
        ends.push(end);
    }
    let mut queues = available(rescued.iter());
    let runs: Vec<uuid::Uuid> = dead_calls.iter().map(|c| c.1.0).collect();
    run_flow::lock_runs(&mut tx, &runs).await?;
    for (job, run, state, error) in dead_calls {
        let before = run_flow::state_of(&mut tx, run).await?;
        queues.extend(call_ended(&mut tx, now, limits, job, run, state, error.as_deref()).await?);
        let change = run_flow::change(&mut tx, run, before, StepCounts::default()).await?;
        if let Some(done) = rescued.iter_mut().find(|d| d.id == job) {
            done.run = change;
        }
    }
    queues.extend(write(&mut tx, now, &ends).await?);
    tx.commit().await.map_err(db)?;
    Ok((RescueReport { rescued }, queues))
}

/// One item's answer, and for an accepted end of a call job the queues its run's next calls went to. The outer
/// error fails the whole group.
async fn decide<'a>(
    conn: &mut PgConnection,
    item: &'a FinishItem,
    known: &mut HashMap<JobId, Facts>,
    now: Timestamp,
    limits: &RecordLimits,
    ends: &mut Vec<End<'a>>,
) -> Result<(FinishOutcome, Vec<String>)> {
    let Some(f) = known.get_mut(&item.id) else {
        return Ok((
            Err(StoreError::NotFound(format!("job {}", item.id))),
            Vec::new(),
        ));
    };
    if f.state != JobState::Running || f.lease_token != Some(item.lease_token) {
        return Ok((Err(StoreError::LeaseMismatch), Vec::new()));
    }
    let mut queues = Vec::new();
    let before = match f.run_id {
        Some(run) => run_flow::state_of(conn, RunId(run)).await?,
        None => None,
    };
    let mut steps = StepCounts::default();
    // A call's answer is applied to its run with the completion; one that breaks the protocol turns the
    // completion into a failed attempt.
    let mut substitute = None;
    if let (Some(run), Finish::Complete { result }) = (f.run_id, &item.finish) {
        let text = result.as_deref().map_or("null", RawValue::get);
        let applied = match Answer::parse(text, now) {
            Ok(answer) => answered(conn, now, limits, f, RunId(run), answer).await?,
            Err(e) => Err(e),
        };
        match applied {
            Ok((q, counted)) => {
                queues.extend(q);
                steps = counted;
            }
            Err(e) => substitute = Some(Finish::Fail(calls::protocol_failure(&e))),
        }
    }
    let end = match &substitute {
        Some(finish) => detach(end_of(f, finish, now)),
        None => end_of(f, &item.finish, now),
    };
    if let Some(run) = f.run_id {
        let error = end.error.as_deref().map(str::to_owned);
        queues.extend(
            call_ended(
                conn,
                now,
                limits,
                f.id,
                RunId(run),
                end.state,
                error.as_deref(),
            )
            .await?,
        );
    }
    let run = match f.run_id {
        Some(run) => run_flow::change(conn, RunId(run), before, steps).await?,
        None => None,
    };
    let finished = Finished {
        id: f.id,
        queue: f.queue.clone(),
        state: end.state,
        started_at: end.started_at,
        run,
    };
    ends.push(end);
    Ok((Ok(finished), queues))
}

/// Applies a call's answer to its run (locked): the step record decision, then its writes; answers the queues
/// to announce and the steps recorded. A [`ProtocolError`] means the answer contradicts the run; nothing was
/// written for it.
async fn answered(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    f: &Facts,
    run_id: RunId,
    answer: Answer,
) -> Result<std::result::Result<(Vec<String>, StepCounts), ProtocolError>> {
    let Some(run) = run_flow::load_run(conn, run_id).await? else {
        return Ok(Ok((Vec::new(), StepCounts::default())));
    };
    run_flow::mark_started(conn, run_id, f.attempted_at).await?;
    let function = run_flow::function_of(conn, &run).await?;
    let records = run_flow::load_records(conn, run_id).await?;
    let event = run.event_value();
    let facts = RunFacts {
        state: run.state,
        recorded: &records.ids,
        recorded_bytes: records.bytes,
        pending_parallel: &records.pending_parallel,
        failures: &records.failures,
        retries: function.retries,
        backoff: &function.backoff,
        event: &event,
    };
    let call = CallFacts {
        run_step: f.run_step.as_deref(),
        now,
        jitter: fastrand::f64(),
    };
    let decision = match record::decide(&facts, &call, answer, limits) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    // Events a `send_event` step sends are refused as the API refuses them (reserved names, size).
    for (i, (_, request)) in decision.events.iter().enumerate() {
        if let Err(e) = request.clone().validate(now, DEFAULT_MAX_EVENT_BYTES) {
            return Ok(Err(ProtocolError {
                field: format!("steps.events[{i}].{}", e.field),
                message: e.message,
            }));
        }
    }
    let steps = calls::step_counts(&decision);
    let queues = run_flow::apply(
        conn,
        now,
        limits,
        (&run, &function),
        &records.failures,
        decision,
        Some(f.id),
    )
    .await?;
    Ok(Ok((queues, steps)))
}

/// What a call job's end does to its run beyond its answer: a dead call fails the run, a cancelled one cancels
/// it ([`calls::call_job_end`]). The run is locked by the caller.
async fn call_ended(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    job: JobId,
    run_id: RunId,
    state: JobState,
    error: Option<&str>,
) -> Result<Vec<String>> {
    let end = match calls::call_job_end(state, error) {
        CallJobEnd::Nothing => return Ok(Vec::new()),
        CallJobEnd::FailRun(error) => RunEnd::Failed(error),
        CallJobEnd::CancelRun => RunEnd::Cancelled,
    };
    let Some(run) = run_flow::load_run(conn, run_id).await? else {
        return Ok(Vec::new());
    };
    if run.state.is_final() {
        return Ok(Vec::new());
    }
    run_flow::end_run(conn, now, limits, &run, end, Some(job)).await
}

/// An end decided from a substituted finish, owning what it borrowed (a substituted finish is a failure: it
/// has no result).
fn detach<'a>(e: End<'_>) -> End<'a> {
    End {
        id: e.id,
        queue: e.queue,
        grp: e.grp,
        attempt: e.attempt,
        started_at: e.started_at,
        worker_id: e.worker_id,
        state: e.state,
        run_at: e.run_at,
        max_attempts: e.max_attempts,
        result: None,
        error: e.error.map(|c| Cow::Owned(c.into_owned())),
        outcome: e.outcome,
        callback: e.callback,
    }
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
        id: f.id,
        queue: f.queue.clone(),
        grp: f.grp.clone(),
        attempt: f.attempt,
        started_at: f.attempted_at.unwrap_or(now),
        worker_id: f.worker_id.clone(),
        state: decided.state,
        run_at: decided.run_at.map(codec::stored_precision),
        max_attempts: decided.max_attempts,
        result: decided.result.map(RawValue::get),
        error: decided.error.map(clean_error),
        outcome: decided.outcome,
        callback: decided.callback,
    }
}

/// An error as PostgreSQL can store it: without NUL characters (see [`codec::text`]), at most
/// [`offload_core::api::MAX_ERROR_LEN`] bytes.
fn clean_error(error: &str) -> Cow<'_, str> {
    match codec::text(error) {
        Cow::Borrowed(s) => Cow::Borrowed(s),
        Cow::Owned(s) => Cow::Owned(truncate_error(&s).to_owned()),
    }
}

/// Updates the jobs, appends their ended attempts, counts the moves and the ended attempts per minute, in one
/// statement; a failed push attempt carries its job's destination (the dashboard's push failures). `$1` is now; the arrays hold one element per ended attempt. A NULL `run_at` (`max_attempts`) keeps
/// the job's; `finished_at` is set only for
/// finished states; a NULL error keeps the last one. A successful attempt is the job's last and is fully told by
/// the job row (`attempt`, `attempted_at`, `finished_at`, `worker_id`), so it gets no history row: the most
/// common end of an attempt then costs one row write, not two (`jobs_read` shows it from the job row).
pub(crate) static WRITE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH v AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::int4[],
                         $8::timestamptz[], $9::text[], $10::text[], $15::int4[], $16::text[])
        AS v (id, state, run_at, result, error, attempt, started_at, worker_id, outcome, max_attempts, queue)
), upd AS (
    UPDATE jobs SET state = v.state, run_at = coalesce(v.run_at, jobs.run_at),
        finished_at = CASE WHEN v.state IN ('succeeded', 'dead', 'cancelled') THEN $1::timestamptz END,
        result = v.result::json, last_error = coalesce(v.error, jobs.last_error),
        max_attempts = coalesce(v.max_attempts, jobs.max_attempts),
        lease_token = NULL, lease_expires_at = NULL
    FROM v WHERE jobs.id = v.id
), history AS (
    INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, worker_id, outcome, error, destination)
    SELECT id, attempt, started_at, $1::timestamptz, worker_id, outcome, error,
        CASE WHEN outcome = 'failed' THEN (SELECT destination FROM jobs WHERE jobs.id = v.id) END
    FROM v WHERE outcome <> 'succeeded'
), thru AS (
    INSERT INTO queue_throughput AS t (queue, minute, shard, succeeded, failed)
    SELECT queue, floor(extract(epoch FROM $1::timestamptz) / 60)::bigint, $14::int2,
        count(*) FILTER (WHERE outcome = 'succeeded'),
        count(*) FILTER (WHERE outcome IN ('failed', 'lease_expired'))
    FROM v WHERE outcome IN ('succeeded', 'failed', 'lease_expired')
    GROUP BY queue ORDER BY queue
    ON CONFLICT (queue, minute, shard)
        DO UPDATE SET succeeded = t.succeeded + excluded.succeeded, failed = t.failed + excluded.failed
), {}
SELECT 1",
        counts::bound_cte("$11", "$12", "$13", "$14")
    )
});

/// Writes the ends and inserts their callback jobs; returns what the callbacks' insert announces.
async fn write(conn: &mut PgConnection, now: Timestamp, ends: &[End<'_>]) -> Result<Vec<String>> {
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    let n = ends.len();
    let mut ids = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut run_ats = Vec::with_capacity(n);
    let mut results = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut workers = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    let mut counts = Counts::default();
    // In (queue, group) order: the group counters' row triggers then lock their rows in that order, as every
    // other writer of grouped jobs does (after the count shards), so two transactions never wait for each
    // other's group rows in a cycle.
    let mut sorted: Vec<&End<'_>> = ends.iter().collect();
    sorted.sort_by(|a, b| (&a.queue, &a.grp).cmp(&(&b.queue, &b.grp)));
    for e in sorted {
        // Only running attempts end.
        counts.moved(&e.queue, JobState::Running, e.state);
        ids.push(e.id.0);
        states.push(e.state.as_str());
        run_ats.push(e.run_at.map(Ts));
        results.push(e.result);
        errors.push(e.error.as_deref());
        attempts.push(i32::try_from(e.attempt).unwrap_or(i32::MAX));
        started.push(Ts(e.started_at));
        workers.push(e.worker_id.as_deref());
        outcomes.push(e.outcome.as_str());
        max_attempts.push(e.max_attempts.map(|m| i32::try_from(m).unwrap_or(i32::MAX)));
        queues.push(e.queue.as_str());
    }
    let query = sqlx::query(WRITE_SQL.as_str())
        .bind(Ts(now))
        .bind(ids)
        .bind(states)
        .bind(run_ats)
        .bind(results)
        .bind(errors)
        .bind(attempts)
        .bind(started)
        .bind(workers)
        .bind(outcomes);
    let (count_queues, count_states, count_ns) = counts.arrays();
    query
        .bind(count_queues)
        .bind(count_states)
        .bind(count_ns)
        .bind(counts::shard())
        .bind(max_attempts)
        .bind(queues)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let callbacks: Vec<NewJob> = ends.iter().filter_map(|e| e.callback.clone()).collect();
    if callbacks.is_empty() {
        return Ok(Vec::new());
    }
    // No idempotency keys: the only possible answer is success.
    let inserted = crate::jobs_insert::insert(conn, now, &[callbacks]).await?;
    for answer in inserted.answers {
        answer?;
    }
    Ok(inserted.announce)
}
