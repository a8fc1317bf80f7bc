//! A call's answer applied with the end of its call job: decided before the job's end is written (so a refused
//! answer becomes the job's failure), applied right after it (records, failed attempts, events, the next call,
//! a wait, a child run, or the run's end).
//!
//! Invariant: the decision is `offload_store::calls::decide_answer`'s, made on facts read in the same
//! transaction; an answer for a run that has ended changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use offload_core::JobState;
use offload_core::function::definition::Function;
use offload_core::function::event::{EventId, NewEvent};
use offload_core::function::record::{
    CallFacts, Decision, InvokeOutcome, Next, RecordLimits, RunFacts, StepKind, resolve_invoke,
};
use offload_core::function::run::{RunId, RunState};
use offload_store::calls::{
    CallJobEnd, Decided, RunSides, call_attempt, call_job_end, decide_answer, invoked_data,
    run_change, step_counts,
};
use offload_store::fanout::wait_columns;
use offload_store::{Finish, Result, RunChange, StepCounts, StoreError};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{micros, timestamp};
use crate::counts::Counts;
use crate::error::db;
use crate::run_calls::{RunEnd, create_run, end_run, enqueue, function_of};
use crate::run_rows::{
    Run, load_run, pending, record, run_state, set_state, steps_of, write_records,
};
use crate::{events, functions};

/// What a call job's report means for its run, decided before the job's end is written.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// Not a completion: the job's end alone decides (a dead or cancelled call ends the run).
    NotAnAnswer,
    /// The run has ended (or is gone): the answer changes nothing.
    Ignored,
    /// The answer breaks the protocol: the completion becomes this failure.
    Refused(Finish),
    /// The answer's decision, to apply once the job has ended.
    Apply(Box<Applied>),
}

/// A decision with the facts it was made from.
#[derive(Debug)]
pub(crate) struct Applied {
    run: Run,
    function: Function,
    decision: Decision,
    events: Vec<(EventId, NewEvent)>,
    failures: BTreeMap<String, u32>,
}

/// Reads the run of a call job's report and decides what its answer does.
pub(crate) async fn prepare(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run_id: RunId,
    run_step: Option<&str>,
    finish: &Finish,
    limits: &RecordLimits,
) -> Result<Prepared> {
    let Finish::Complete { result } = finish else {
        return Ok(Prepared::NotAnAnswer);
    };
    let Some(run) = load_run(conn, run_id).await? else {
        return Ok(Prepared::Ignored);
    };
    if run.state.is_final() {
        return Ok(Prepared::Ignored);
    }
    let function = function_of(conn, &run.function_id).await?;
    let steps = steps_of(conn, run.seq).await?;
    let event: serde_json::Value = serde_json::from_str(&run.event)
        .map_err(|e| StoreError::corrupt(format!("run event: {e}")))?;
    let recorded: BTreeSet<String> = steps.recorded.keys().cloned().collect();
    let facts = RunFacts {
        state: run.state,
        recorded: &recorded,
        recorded_bytes: usize::try_from(run.state_bytes).unwrap_or(0),
        pending_parallel: &steps.pending_parallel,
        failures: &steps.failures,
        retries: function.retries,
        backoff: &function.backoff,
        event: &event,
    };
    let call = CallFacts {
        run_step,
        now,
        jitter: fastrand::f64(),
    };
    let response = result.as_ref().map(|r| r.get());
    let Decided { decision, events } = match decide_answer(response, &facts, &call, limits) {
        Ok(d) => d,
        Err(failure) => return Ok(Prepared::Refused(Finish::Fail(failure))),
    };
    Ok(Prepared::Apply(Box::new(Applied {
        run,
        function,
        decision,
        events,
        failures: steps.failures,
    })))
}

/// After a call job's end is written: applies the answer's decision, or what the job's end means for the run.
/// Also notes when the run started (its first call's claim). Returns what the end did to the run, unless the
/// run had already ended.
#[allow(clippy::too_many_arguments)] // the ended job's facts
pub(crate) async fn after_end(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run_id: RunId,
    prepared: Prepared,
    job_state: JobState,
    job_error: Option<&str>,
    attempted_at: Option<i64>,
    counts: &mut Counts,
) -> Result<Option<RunChange>> {
    sqlx::query("UPDATE runs SET started_at = coalesce(started_at, ?2) WHERE id = ?1")
        .bind(run_id.0.as_bytes().as_slice())
        .bind(attempted_at)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let mut woken = Vec::new();
    if let Prepared::Apply(applied) = prepared
        && job_state == JobState::Succeeded
    {
        let (before, steps) = (applied.run.state, step_counts(&applied.decision));
        apply(conn, now, *applied, counts, &mut woken).await?;
        return change(conn, run_id, before, steps).await;
    }
    let Some(run) = load_run(conn, run_id).await? else {
        return Ok(None);
    };
    if run.state.is_final() {
        return Ok(None);
    }
    match call_job_end(job_state, job_error) {
        CallJobEnd::FailRun(error) => {
            end_run(conn, now, &run, RunEnd::Failed(&error), counts, &mut woken).await?
        }
        CallJobEnd::CancelRun => {
            end_run(conn, now, &run, RunEnd::Cancelled, counts, &mut woken).await?
        }
        CallJobEnd::Nothing => {}
    }
    change(conn, run_id, run.state, StepCounts::default()).await
}

/// What a call's end did to its run, read back after it was applied ([`run_change`]).
async fn change(
    conn: &mut SqliteConnection,
    run_id: RunId,
    before: RunState,
    steps: StepCounts,
) -> Result<Option<RunChange>> {
    let row: Option<(String, String, i64, Option<i64>)> =
        sqlx::query_as("SELECT function_id, state, created_at, ended_at FROM runs WHERE id = ?1")
            .bind(run_id.0.as_bytes().as_slice())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    let Some((function_id, state, created_at, ended_at)) = row else {
        return Ok(None);
    };
    let sides = RunSides {
        run_id,
        function_id,
        before,
        after: run_state(&state)?,
        created_at: timestamp(created_at)?,
        ended_at: ended_at.map(timestamp).transpose()?,
    };
    Ok(run_change(sides, steps))
}

/// Writes a decision: records, failed attempts, events, then what follows for the run.
async fn apply(
    conn: &mut SqliteConnection,
    now: Timestamp,
    a: Applied,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<()> {
    let Applied {
        run,
        function,
        decision,
        events,
        mut failures,
    } = a;
    write_records(conn, now, run.seq, &decision.records).await?;
    for f in &decision.failed_attempts {
        pending(conn, now, run.seq, &f.id, StepKind::Run, false, None).await?;
        sqlx::query(
            "INSERT OR IGNORE INTO run_step_attempts (run_seq, step_id, attempt, error_name, error_message, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(run.seq)
        .bind(&f.id)
        .bind(i64::from(f.attempt))
        .bind(&f.error.name)
        .bind(&f.error.message)
        .bind(micros(now))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        failures.insert(f.id.clone(), f.attempt);
    }
    if !events.is_empty() {
        events::store(conn, now, events, counts, woken).await?;
    }
    match decision.next {
        Next::Call {
            at,
            run_step,
            retrying,
            state,
        } => {
            for r in decision
                .records
                .iter()
                .filter(|r| r.kind == StepKind::Sleep)
            {
                sqlx::query("UPDATE run_steps SET until = ?3 WHERE run_seq = ?1 AND step_id = ?2")
                    .bind(run.seq)
                    .bind(&r.id)
                    .bind(micros(at))
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
            }
            let attempt = call_attempt(retrying.as_deref(), &failures);
            enqueue(
                conn,
                now,
                &run,
                &function,
                attempt,
                run_step.as_deref(),
                at,
                counts,
                woken,
            )
            .await?;
            set_state(conn, now, run.seq, state, (at > now).then_some(at)).await
        }
        Next::Parallel(ids) => {
            for id in &ids {
                pending(conn, now, run.seq, id, StepKind::Run, true, None).await?;
            }
            for id in &ids {
                enqueue(conn, now, &run, &function, 1, Some(id), now, counts, woken).await?;
            }
            set_state(conn, now, run.seq, RunState::Queued, None).await
        }
        Next::Wait {
            step,
            event,
            matching,
            until,
        } => {
            pending(
                conn,
                now,
                run.seq,
                &step,
                StepKind::WaitForEvent,
                false,
                Some(until),
            )
            .await?;
            let (path, key) = wait_columns(&matching);
            sqlx::query(
                "INSERT OR REPLACE INTO run_waits (run_seq, step_id, kind, event_name, match_path, match_key, until) \
                 VALUES (?1, ?2, 'event', ?3, ?4, ?5, ?6)",
            )
            .bind(run.seq)
            .bind(&step)
            .bind(&event)
            .bind(path)
            .bind(key)
            .bind(micros(until))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            set_state(conn, now, run.seq, RunState::Waiting, Some(until)).await
        }
        Next::Invoke {
            step,
            function_id,
            data,
            until,
        } => {
            let Some(child) = functions::load(conn, &function_id, false).await? else {
                let resolution = resolve_invoke(&step, InvokeOutcome::UnknownFunction(function_id));
                record(conn, now, run.seq, &resolution).await?;
                enqueue(conn, now, &run, &function, 1, None, now, counts, woken).await?;
                return set_state(conn, now, run.seq, RunState::Queued, None).await;
            };
            pending(
                conn,
                now,
                run.seq,
                &step,
                StepKind::Invoke,
                false,
                Some(until),
            )
            .await?;
            let (event_id, event) =
                events::store_invocation(conn, now, &invoked_data(data.as_ref())).await?;
            let child_id = create_run(
                conn,
                now,
                &child.function,
                event_id,
                &event,
                Some((run.id, &step)),
                counts,
                woken,
            )
            .await?;
            sqlx::query(
                "INSERT OR REPLACE INTO run_waits (run_seq, step_id, kind, child_id, until) \
                 VALUES (?1, ?2, 'invoke', ?3, ?4)",
            )
            .bind(run.seq)
            .bind(&step)
            .bind(child_id.0.as_bytes().as_slice())
            .bind(micros(until))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            set_state(conn, now, run.seq, RunState::Waiting, Some(until)).await
        }
        Next::Idle => Ok(()),
        Next::Succeed(output) => {
            end_run(conn, now, &run, RunEnd::Succeeded(&output), counts, woken).await
        }
        Next::Fail(error) => end_run(conn, now, &run, RunEnd::Failed(&error), counts, woken).await,
    }
}
