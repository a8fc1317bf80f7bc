//! A run's calls: creating runs, enqueuing calls, resolving parked steps and ending runs (a call's answer is
//! `run_answer`'s, a run's rows `run_rows`'). Everything here runs on the write connection inside the caller's
//! transaction.
//!
//! Invariant: the rules are `offload_core::function::record` and `offload_store::calls`; this module reads the
//! facts they need and writes what they decide. A run that has ended changes no more (every path checks the
//! stored state first), and ending a run cancels its waiting calls, asks a running one to stop, drops its
//! parked steps and cancel keys and resolves a parent waiting on it. Calls gathered in a [`Calls`] are inserted
//! together, by one insert and one statement naming their runs (per chunk of rows), before anything reads a
//! run's calls.

use jiff::Timestamp;
use offload_core::function::definition::Function;
use offload_core::function::event::EventId;
use offload_core::function::protocol::{Json, StepError};
use offload_core::function::record::{InvokeOutcome, NewStepRecord, RecordLimits, resolve_invoke};
use offload_core::function::run::{RunId, RunState};
use offload_core::{JobState, NewJob};
use offload_store::calls::{CallSpec, call_job, child_outcome};
use offload_store::{Result, StoreError};
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use crate::batch;
use crate::codec::{get, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::functions;
use crate::run_rows::{Run, Steps, load_run_seq, record, set_state, steps_of, write_cancel_keys};

/// A run's calls that have not ended.
pub(crate) const RUN_CALLS_SQL: &str = "SELECT seq, queue, state FROM jobs WHERE run_id = ?1 \
         AND state IN ('available', 'scheduled', 'retrying', 'running')";

/// Parked steps whose timeout passed, earliest first.
pub(crate) const WAKE_DUE_SQL: &str =
    "SELECT run_seq, step_id, kind FROM run_waits WHERE until <= ?1 ORDER BY until LIMIT ?2";

/// Calls of runs gathered in a transaction, not inserted yet: [`Calls::insert`] writes them all with one insert
/// and one statement naming each job's run and planned step, instead of two statements per call.
#[derive(Default)]
pub(crate) struct Calls {
    jobs: Vec<NewJob>,
    /// Each job's run and planned step, in the order of `jobs`.
    runs: Vec<(RunId, Option<String>)>,
}

/// Values bound per row of the statement naming the calls' runs.
const RUN_OF_PER_ROW: usize = 3;

/// Names the runs (and planned steps) of `rows` call jobs.
fn run_of_sql(rows: usize) -> String {
    format!(
        "UPDATE jobs SET run_id = v.column2, run_step = v.column3 FROM (VALUES {}) AS v \
         WHERE jobs.id = v.column1",
        batch::values(rows, RUN_OF_PER_ROW)
    )
}

impl Calls {
    /// Inserts the gathered calls, counting them into `counts`; reports the queues of those available at once in
    /// `woken`.
    pub(crate) async fn insert(
        &mut self,
        conn: &mut SqliteConnection,
        now: Timestamp,
        counts: &mut Counts,
        woken: &mut Vec<String>,
    ) -> Result<()> {
        if self.jobs.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::take(&mut self.jobs);
        let runs = std::mem::take(&mut self.runs);
        let mut answers =
            crate::jobs_insert::insert(conn, now, std::slice::from_ref(&jobs), counts).await?;
        let inserted = answers
            .pop()
            .ok_or_else(|| StoreError::Internal("call jobs were not inserted".into()))??;
        if inserted.len() != jobs.len() {
            return Err(StoreError::Internal(
                "a call job was not inserted".to_owned(),
            ));
        }
        let rows: Vec<(&NewJob, &(RunId, Option<String>))> = jobs.iter().zip(&runs).collect();
        batch::execute(conn, &rows, RUN_OF_PER_ROW, &run_of_sql, &|args,
                                                                   (
            job,
            (run, step),
        )| {
            batch::add(args, job.id.as_bytes().as_slice())?;
            batch::add(args, run.0.as_bytes().as_slice())?;
            batch::add(args, step.as_deref())
        })
        .await?;
        for (job, done) in jobs.iter().zip(&inserted) {
            if done.state == JobState::Available && !woken.contains(&job.queue) {
                woken.push(job.queue.clone());
            }
        }
        Ok(())
    }
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
    let mut calls = Calls::default();
    enqueue_into(conn, run, function, (attempt, run_step, at), &mut calls).await?;
    calls.insert(conn, now, counts, woken).await
}

/// Gathers the next call of `run` (its attempt, planned step and due time) into `calls`, every recorded step
/// in its payload.
pub(crate) async fn enqueue_into(
    conn: &mut SqliteConnection,
    run: &Run,
    function: &Function,
    (attempt, run_step, at): (u32, Option<&str>, Timestamp),
    calls: &mut Calls,
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
    calls.jobs.push(job);
    calls.runs.push((run.id, run_step.map(str::to_owned)));
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
    let mut calls = Calls::default();
    let id = create_run_into(conn, now, function, (event_id, event, parent), &mut calls).await?;
    calls.insert(conn, now, counts, woken).await?;
    Ok(id)
}

/// Creates a queued run of `function` for an event (its id and JSON, and the parent's step that invoked it),
/// its first call gathered into `calls`.
pub(crate) async fn create_run_into(
    conn: &mut SqliteConnection,
    now: Timestamp,
    function: &Function,
    (event_id, event, parent): (EventId, &str, Option<(RunId, &str)>),
    calls: &mut Calls,
) -> Result<RunId> {
    let id = RunId::new();
    // Only runs an event starts are singletons (fan-out made room for this one); invoked runs are not.
    let singleton_key = match parent {
        None => serde_json::from_str::<serde_json::Value>(event)
            .ok()
            .and_then(|e| function.flow.singleton_key(&e)),
        Some(_) => None,
    };
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO runs (id, function_id, state, event_id, event, parent_id, parent_step, created_at, updated_at, \
           singleton_key) \
         VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?7, ?8) RETURNING seq",
    )
    .bind(id.0.as_bytes().as_slice())
    .bind(&function.id)
    .bind(event_id.0.as_bytes().as_slice())
    .bind(event)
    .bind(parent.map(|(p, _)| p.0.as_bytes().to_vec()))
    .bind(parent.map(|(_, s)| s))
    .bind(micros(now))
    .bind(singleton_key)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    write_cancel_keys(conn, seq, function, event).await?;
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
    enqueue_into(conn, &run, function, (1, None, now), calls).await?;
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
    let mut calls = Calls::default();
    continue_into(conn, now, run_seq, resolution, &mut calls).await?;
    calls.insert(conn, now, counts, woken).await
}

/// [`continue_with`], the next call gathered into `calls`.
pub(crate) async fn continue_into(
    conn: &mut SqliteConnection,
    now: Timestamp,
    run_seq: i64,
    resolution: &NewStepRecord,
    calls: &mut Calls,
) -> Result<()> {
    let Some(run) = load_run_seq(conn, run_seq).await? else {
        return Ok(());
    };
    if run.state.is_final() {
        return Ok(());
    }
    record(conn, now, run.seq, resolution).await?;
    let function = function_of(conn, &run.function_id).await?;
    enqueue_into(conn, &run, &function, (1, None, now), calls).await?;
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
    for sql in [
        "DELETE FROM run_waits WHERE run_seq = ?1",
        "DELETE FROM run_cancel_keys WHERE run_seq = ?1",
    ] {
        sqlx::query(sql)
            .bind(run.seq)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
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
    let mut calls = Calls::default();
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
        continue_into(conn, now, run_seq, &resolution, &mut calls).await?;
        n += 1;
    }
    calls.insert(conn, now, counts, woken).await?;
    Ok(n)
}
