//! A run's calls and records: creating runs, enqueuing calls, applying a call's answer, resolving parked steps and
//! ending runs. Everything here runs on the write connection inside the caller's transaction.
//!
//! Invariant: the rules are `offload_core::function::record` and `offload_store::calls`; this module reads the
//! facts they need and writes what they decide. A step result is written once: its row's result columns are
//! only filled while empty. A run that has ended changes no more (every path checks the stored state first),
//! and ending a run cancels its waiting calls, asks a running one to stop, drops its parked steps and resolves
//! a parent waiting on it.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use offload_core::JobState;
use offload_core::function::definition::Function;
use offload_core::function::event::{DEFAULT_MAX_EVENT_BYTES, EventId, NewEvent};
use offload_core::function::protocol::{Answer, Json, ProtocolError, StepError, StepResult};
use offload_core::function::record::{
    CallFacts, Decision, InvokeOutcome, NewStepRecord, Next, RecordLimits, RunFacts, StepKind,
    decide, resolve_invoke, result_bytes,
};
use offload_core::function::run::{RunId, RunState};
use offload_store::calls::{
    CallJobEnd, CallSpec, call_attempt, call_job, call_job_end, child_outcome, invoked_data,
    protocol_failure,
};
use offload_store::fanout::wait_columns;
use offload_store::{Finish, Result, StoreError};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{get, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::{events, functions};

/// A run's calls that have not ended.
pub(crate) const RUN_CALLS_SQL: &str = "SELECT seq, queue, state FROM jobs WHERE run_id = ?1 \
         AND state IN ('available', 'scheduled', 'retrying', 'running')";

/// Parked steps whose timeout passed, earliest first.
pub(crate) const WAKE_DUE_SQL: &str =
    "SELECT run_seq, step_id, kind FROM run_waits WHERE until <= ?1 ORDER BY until LIMIT ?2";

/// A run's row, as the write path needs it.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) seq: i64,
    pub(crate) id: RunId,
    pub(crate) function_id: String,
    /// The stored state (`running` is never stored).
    pub(crate) state: RunState,
    /// Its event as the code sees it.
    pub(crate) event: String,
    pub(crate) parent: Option<(RunId, String)>,
    pub(crate) state_bytes: i64,
    /// True for a run created in this transaction, before anything was recorded.
    pub(crate) steps_known_empty: bool,
}

const RUN_COLUMNS: &str = "seq, id, function_id, state, event, parent_id, parent_step, state_bytes";

pub(crate) fn uuid_of(bytes: &[u8]) -> Result<uuid::Uuid> {
    uuid::Uuid::from_slice(bytes).map_err(|_| StoreError::corrupt("an id is not 16 bytes"))
}

pub(crate) fn run_state(text: &str) -> Result<RunState> {
    text.parse().map_err(StoreError::corrupt)
}

fn run_of(row: &SqliteRow) -> Result<Run> {
    let parent_id: Option<Vec<u8>> = get(row, "parent_id")?;
    let parent_step: Option<String> = get(row, "parent_step")?;
    let parent = match (parent_id, parent_step) {
        (Some(id), Some(step)) => Some((RunId(uuid_of(&id)?), step)),
        _ => None,
    };
    Ok(Run {
        seq: get(row, "seq")?,
        id: RunId(uuid_of(get::<&[u8]>(row, "id")?)?),
        function_id: get(row, "function_id")?,
        state: run_state(get::<&str>(row, "state")?)?,
        event: get(row, "event")?,
        parent,
        state_bytes: get(row, "state_bytes")?,
        steps_known_empty: false,
    })
}

/// The run with this id.
pub(crate) async fn load_run(conn: &mut SqliteConnection, id: RunId) -> Result<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.0.as_bytes().as_slice())
        .fetch_optional(conn)
        .await
        .map_err(db)?
        .as_ref()
        .map(run_of)
        .transpose()
}

async fn load_run_seq(conn: &mut SqliteConnection, seq: i64) -> Result<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE seq = ?1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(seq)
        .fetch_optional(conn)
        .await
        .map_err(db)?
        .as_ref()
        .map(run_of)
        .transpose()
}

/// What the decision needs of a run's steps.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    pub(crate) recorded: BTreeMap<String, StepResult>,
    pub(crate) pending_parallel: BTreeSet<String>,
    pub(crate) failures: BTreeMap<String, u32>,
}

/// A recorded result from its columns (`None`: pending).
pub(crate) fn result_of(row: &SqliteRow) -> Result<Option<StepResult>> {
    let kind: Option<String> = get(row, "result_kind")?;
    Ok(match kind.as_deref() {
        None => None,
        Some("data") => {
            let text: String = get(row, "data")?;
            Some(StepResult::Data(Json::from_text(text).map_err(|e| {
                StoreError::corrupt(format!("step data: {e}"))
            })?))
        }
        Some(_) => Some(StepResult::Error(StepError {
            name: get(row, "error_name")?,
            message: get(row, "error_message")?,
        })),
    })
}

pub(crate) async fn steps_of(conn: &mut SqliteConnection, run_seq: i64) -> Result<Steps> {
    let rows = sqlx::query(
        "SELECT step_id, result_kind, data, error_name, error_message, planned FROM run_steps WHERE run_seq = ?1",
    )
    .bind(run_seq)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut steps = Steps::default();
    for row in &rows {
        let id: String = get(row, "step_id")?;
        match result_of(row)? {
            Some(result) => {
                steps.recorded.insert(id, result);
            }
            None if get::<i64>(row, "planned")? != 0 => {
                steps.pending_parallel.insert(id);
            }
            None => {}
        }
    }
    let rows = sqlx::query(
        "SELECT a.step_id, count(*) AS n FROM run_step_attempts a JOIN run_steps s \
           ON s.run_seq = a.run_seq AND s.step_id = a.step_id \
         WHERE a.run_seq = ?1 AND s.result_kind IS NULL GROUP BY a.step_id",
    )
    .bind(run_seq)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    for row in &rows {
        let n: i64 = get(row, "n")?;
        steps
            .failures
            .insert(get(row, "step_id")?, u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok(steps)
}

/// Writes a step's result unless it is recorded already; true when written.
pub(crate) async fn record(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run_seq: i64,
    r: &NewStepRecord,
) -> Result<bool> {
    let (kind, data, name, message) = match &r.result {
        StepResult::Data(d) => ("data", Some(d.get()), None, None),
        StepResult::Error(e) => (
            "error",
            None,
            Some(e.name.as_str()),
            Some(e.message.as_str()),
        ),
    };
    let done = sqlx::query(
        "INSERT INTO run_steps (run_seq, step_id, kind, result_kind, data, error_name, error_message, attempts, \
           started_at, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) \
         ON CONFLICT (run_seq, step_id) DO UPDATE SET kind = excluded.kind, result_kind = excluded.result_kind, \
           data = excluded.data, error_name = excluded.error_name, error_message = excluded.error_message, \
           attempts = excluded.attempts, recorded_at = excluded.recorded_at, planned = 0 \
         WHERE run_steps.result_kind IS NULL",
    )
    .bind(run_seq)
    .bind(&r.id)
    .bind(r.kind.as_str())
    .bind(kind)
    .bind(data)
    .bind(name)
    .bind(message)
    .bind(i64::from(r.attempts))
    .bind(micros(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let bytes = i64::try_from(result_bytes(&r.result)).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE runs SET steps = steps + 1, state_bytes = state_bytes + ?2, updated_at = ?3 WHERE seq = ?1",
    )
    .bind(run_seq)
    .bind(bytes)
    .bind(micros(now))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(true)
}

/// Notes a step that is not recorded yet (a parked step, a failing step, a planned parallel step).
async fn pending(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run_seq: i64,
    step: &str,
    kind: StepKind,
    planned: bool,
    until: Option<Timestamp>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO run_steps (run_seq, step_id, kind, planned, started_at, until) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (run_seq, step_id) DO UPDATE SET kind = excluded.kind, planned = excluded.planned, \
           until = excluded.until WHERE run_steps.result_kind IS NULL",
    )
    .bind(run_seq)
    .bind(step)
    .bind(kind.as_str())
    .bind(i64::from(planned))
    .bind(micros(now))
    .bind(until.map(micros))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Inserts the next call of `run`: every recorded step in its payload, due at `at`. Reports its queue in
/// `woken` when it is available at once.
#[allow(clippy::too_many_arguments)] // the call's facts, each one a column of the job
pub(crate) async fn enqueue(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run: &Run,
    function: &Function,
    attempt: u32,
    run_step: Option<&str>,
    at: Timestamp,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<()> {
    // A run created just now has recorded nothing: no need to read its steps.
    let steps = if run.steps_known_empty {
        Steps::default()
    } else {
        steps_of(conn, run.seq).await?
    };
    let event = Json::from_text(run.event.clone())
        .map_err(|e| StoreError::corrupt(format!("run event: {e}")))?;
    let job = call_job(&CallSpec {
        function,
        run_id: run.id,
        event: &event,
        steps: &steps.recorded,
        attempt,
        run_step,
        at,
        max_state_bytes: RecordLimits::default().max_state_bytes,
    })?;
    let id = job.id;
    let queue = job.queue.clone();
    let mut answers = crate::jobs_insert::insert(conn, now, &[vec![job]], counts).await?;
    let inserted = answers
        .pop()
        .ok_or_else(|| StoreError::Internal("a call job was not inserted".into()))??;
    sqlx::query("UPDATE jobs SET run_id = ?1, run_step = ?2 WHERE id = ?3")
        .bind(run.id.0.as_bytes().as_slice())
        .bind(run_step)
        .bind(id.as_bytes().as_slice())
        .execute(conn)
        .await
        .map_err(db)?;
    if inserted
        .first()
        .is_some_and(|i| i.state == JobState::Available)
        && !woken.contains(&queue)
    {
        woken.push(queue);
    }
    Ok(())
}

async fn set_state(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run_seq: i64,
    state: RunState,
    wake_at: Option<Timestamp>,
) -> Result<()> {
    sqlx::query("UPDATE runs SET state = ?2, wake_at = ?3, updated_at = ?4 WHERE seq = ?1")
        .bind(run_seq)
        .bind(state.as_str())
        .bind(wake_at.map(micros))
        .bind(micros(now))
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// The definition a run's calls use (a removed function's too).
pub(crate) async fn function_of(conn: &mut SqliteConnection, id: &str) -> Result<Function> {
    functions::load(conn, id, true)
        .await?
        .map(|r| r.function)
        .ok_or_else(|| StoreError::corrupt(format!("function {id} of a run is missing")))
}

/// Creates a queued run of `function` for an event, with its first call.
#[allow(clippy::too_many_arguments)] // the run's columns
pub(crate) async fn create_run(
    conn: &mut SqliteConnection,
    now: Timestamp,
    function: &Function,
    event_id: EventId,
    event: &str,
    parent: Option<(RunId, &str)>,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<RunId> {
    let id = RunId::new();
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO runs (id, function_id, state, event_id, event, parent_id, parent_step, created_at, updated_at) \
         VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?7) RETURNING seq",
    )
    .bind(id.0.as_bytes().as_slice())
    .bind(&function.id)
    .bind(event_id.0.as_bytes().as_slice())
    .bind(event)
    .bind(parent.map(|(p, _)| p.0.as_bytes().to_vec()))
    .bind(parent.map(|(_, s)| s))
    .bind(micros(now))
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let run = Run {
        seq,
        id,
        function_id: function.id.clone(),
        state: RunState::Queued,
        event: event.to_owned(),
        parent: parent.map(|(p, s)| (p, s.to_owned())),
        state_bytes: 0,
        steps_known_empty: true,
    };
    enqueue(conn, now, &run, function, 1, None, now, counts, woken).await?;
    Ok(id)
}

/// Records a parked step's resolution and enqueues the run's next call now (nothing if the run has ended).
pub(crate) async fn continue_with(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run_seq: i64,
    resolution: &NewStepRecord,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<()> {
    let Some(run) = load_run_seq(conn, run_seq).await? else {
        return Ok(());
    };
    if run.state.is_final() {
        return Ok(());
    }
    record(conn, now, run.seq, resolution).await?;
    let function = function_of(conn, &run.function_id).await?;
    enqueue(conn, now, &run, &function, 1, None, now, counts, woken).await?;
    set_state(conn, now, run.seq, RunState::Queued, None).await
}

/// Cancels the run's calls that wait, and asks a running one to stop.
async fn cancel_calls(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run: RunId,
    counts: &mut Counts,
) -> Result<()> {
    let rows = sqlx::query(RUN_CALLS_SQL)
        .bind(run.0.as_bytes().as_slice())
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    for row in &rows {
        let seq: i64 = get(row, "seq")?;
        let state = crate::codec::state(get::<&str>(row, "state")?)?;
        if state == JobState::Running {
            sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE seq = ?1")
                .bind(seq)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        } else {
            counts.moved(get::<&str>(row, "queue")?, state, JobState::Cancelled, 1);
            sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE seq = ?1")
                .bind(seq)
                .bind(micros(now))
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
    }
    Ok(())
}

/// How a run ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RunEnd<'a> {
    /// With its output.
    Succeeded(&'a Json),
    /// With its error.
    Failed(&'a StepError),
    /// Cancelled.
    Cancelled,
}

/// Ends a run that has not ended (see the module doc).
pub(crate) async fn end_run(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run: &Run,
    end: RunEnd<'_>,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<()> {
    let (state, output, error) = match end {
        RunEnd::Succeeded(output) => (RunState::Succeeded, Some(output), None),
        RunEnd::Failed(error) => (RunState::Failed, None, Some(error)),
        RunEnd::Cancelled => (RunState::Cancelled, None, None),
    };
    sqlx::query(
        "UPDATE runs SET state = ?2, output = ?3, error_name = ?4, error_message = ?5, ended_at = ?6, \
           wake_at = NULL, updated_at = ?6 WHERE seq = ?1",
    )
    .bind(run.seq)
    .bind(state.as_str())
    .bind(output.map(Json::get))
    .bind(error.map(|e| e.name.as_str()))
    .bind(error.map(|e| e.message.as_str()))
    .bind(micros(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    cancel_calls(conn, now, run.id, counts).await?;
    sqlx::query("DELETE FROM run_waits WHERE run_seq = ?1")
        .bind(run.seq)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if run.parent.is_none() {
        return Ok(());
    }
    // The parent's wait on this run: deleting it is the claim on resolving its step.
    let claimed = sqlx::query(
        "DELETE FROM run_waits WHERE child_id = ?1 AND kind = 'invoke' RETURNING run_seq, step_id",
    )
    .bind(run.id.0.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    if let Some(row) = claimed {
        let outcome = child_outcome(state, output, error).unwrap_or(InvokeOutcome::Failed(
            offload_store::calls::cancelled_error(),
        ));
        let step: String = row.try_get("step_id").map_err(db)?;
        let parent_seq: i64 = row.try_get("run_seq").map_err(db)?;
        let resolution = resolve_invoke(&step, outcome);
        continue_with(conn, now, parent_seq, &resolution, counts, woken).await?;
    }
    Ok(())
}

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
    let refuse = |e: &ProtocolError| Ok(Prepared::Refused(Finish::Fail(protocol_failure(e))));
    let text = result.as_ref().map_or("null", |r| r.get());
    let answer = match Answer::parse(text, now) {
        Ok(a) => a,
        Err(e) => return refuse(&e),
    };
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
    let decision = match decide(&facts, &call, answer, &RecordLimits::default()) {
        Ok(d) => d,
        Err(e) => return refuse(&e),
    };
    let mut events = Vec::with_capacity(decision.events.len());
    for (i, (id, request)) in decision.events.iter().enumerate() {
        match request.clone().validate(now, DEFAULT_MAX_EVENT_BYTES) {
            Ok(e) => events.push((*id, e)),
            Err(e) => {
                return refuse(&ProtocolError {
                    field: format!("steps.events[{i}].{}", e.field),
                    message: e.message,
                });
            }
        }
    }
    Ok(Prepared::Apply(Box::new(Applied {
        run,
        function,
        decision,
        events,
        failures: steps.failures,
    })))
}

/// After a call job's end is written: applies the answer's decision, or what the job's end means for the run.
/// Also notes when the run started (its first call's claim).
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
) -> Result<()> {
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
        return apply(conn, now, *applied, counts, &mut woken).await;
    }
    let Some(run) = load_run(conn, run_id).await? else {
        return Ok(());
    };
    if run.state.is_final() {
        return Ok(());
    }
    match call_job_end(job_state, job_error) {
        CallJobEnd::FailRun(error) => {
            end_run(conn, now, &run, RunEnd::Failed(&error), counts, &mut woken).await
        }
        CallJobEnd::CancelRun => {
            end_run(conn, now, &run, RunEnd::Cancelled, counts, &mut woken).await
        }
        CallJobEnd::Nothing => Ok(()),
    }
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

/// The call jobs among `seqs`: their run and planned parallel step, by job seq.
pub(crate) async fn calls_of(
    conn: &mut SqliteConnection,
    seqs: &[i64],
) -> Result<std::collections::HashMap<i64, (RunId, Option<String>)>> {
    if seqs.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let list = serde_json::to_string(seqs).map_err(|e| StoreError::Internal(e.to_string()))?;
    let rows = sqlx::query(
        "SELECT seq, run_id, run_step FROM jobs WHERE seq IN (SELECT value FROM json_each(?1)) \
         AND run_id IS NOT NULL",
    )
    .bind(list)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok((
                get::<i64>(r, "seq")?,
                (
                    RunId(uuid_of(get::<&[u8]>(r, "run_id")?)?),
                    get(r, "run_step")?,
                ),
            ))
        })
        .collect()
}

/// Writes step records (each once).
pub(crate) async fn write_records(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run_seq: i64,
    records: &[NewStepRecord],
) -> Result<()> {
    for r in records {
        record(conn, now, run_seq, r).await?;
    }
    Ok(())
}

/// Ends a run that has not ended as cancelled (a user's cancel, a `cancel_on` event).
pub(crate) async fn cancel_run(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run: &Run,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<()> {
    end_run(conn, now, run, RunEnd::Cancelled, counts, woken).await
}

/// Resolves parked steps whose timeout passed, up to `limit`; returns how many.
pub(crate) async fn wake_due(
    conn: &mut SqliteConnection,
    now: Timestamp,
    limit: u32,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<u64> {
    let rows = sqlx::query(WAKE_DUE_SQL)
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut n = 0;
    for row in &rows {
        let run_seq: i64 = get(row, "run_seq")?;
        let step: String = get(row, "step_id")?;
        let kind: String = get(row, "kind")?;
        let claimed = sqlx::query("DELETE FROM run_waits WHERE run_seq = ?1 AND step_id = ?2")
            .bind(run_seq)
            .bind(&step)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        if claimed.rows_affected() == 0 {
            continue;
        }
        let resolution = if kind == "invoke" {
            resolve_invoke(&step, InvokeOutcome::TimedOut)
        } else {
            offload_core::function::record::resolve_wait(
                &step,
                offload_core::function::record::WaitOutcome::TimedOut,
            )
        };
        continue_with(conn, now, run_seq, &resolution, counts, woken).await?;
        n += 1;
    }
    Ok(n)
}
