//! Writing what happens to a run: step records, failed attempts, the next call, parking and ending, inside the
//! caller's transaction.
//!
//! Invariant: every function here is called with the run's row locked (`FOR UPDATE`) by the caller's
//! transaction, so with several servers one decision at a time applies to a run. Rows are locked in one order
//! everywhere: call jobs, then runs (in id order), then waits, so servers never wait for each other in a cycle.
//! What to write is decided elsewhere (`offload_core::function::record`, `offload_store::calls`); this module
//! only writes it.
//!
//! Calls to enqueue and count changes are gathered in a [`Pending`] and written once the transaction's work is
//! done: all its calls by one insert, all its count changes by one statement, so a transaction adds to
//! `queue_counts` once, in (queue, state) order, and two transactions never lock count rows in a cycle.

use std::collections::{BTreeMap, BTreeSet};

use offload_core::function::definition::Function;
use offload_core::function::protocol::{Json, StepError, StepResult};
use offload_core::function::record::{
    self, Decision, FailedAttempt, InvokeOutcome, NewStepRecord, Next, RecordLimits, StepKind,
    WaitMatch,
};
use offload_core::function::run::{RunId, RunState};
use offload_core::{JobId, JobState, NewJob, Timestamp};
use offload_store::calls::{self, CallSpec};
use offload_store::fanout::wait_columns;
use offload_store::{Result, RunChange, StepCounts, StoreError};
use serde_json::Value;
use sqlx::postgres::PgConnection;

use crate::codec::{self, RawJson, Ts, get, ts_opt};
use crate::counts::Counts;
use crate::error::db;
use crate::runs_read::{result_text, run_state, step_result};

/// A run's row, as read (and locked) for a decision.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub(crate) id: RunId,
    pub(crate) function_id: String,
    /// The stored state.
    pub(crate) state: RunState,
    /// The run's event as the code sees it.
    pub(crate) event: Json,
    pub(crate) parent: Option<(RunId, String)>,
}

impl RunRow {
    /// The run's event as a JSON value (for matches).
    pub(crate) fn event_value(&self) -> Value {
        serde_json::from_str(self.event.get()).unwrap_or(Value::Null)
    }
}

/// Locks the runs `ids` in id order.
pub(crate) async fn lock_runs(conn: &mut PgConnection, ids: &[uuid::Uuid]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    sqlx::query("SELECT id FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// A run's row, locked.
pub(crate) async fn load_run(conn: &mut PgConnection, id: RunId) -> Result<Option<RunRow>> {
    let row = sqlx::query(
        "SELECT id, function_id, state, event, parent_run_id, parent_step FROM runs WHERE id = $1 FOR UPDATE",
    )
    .bind(id.0)
    .fetch_optional(conn)
    .await
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let parent = match (
        get::<Option<uuid::Uuid>>(&row, "parent_run_id")?,
        get::<Option<String>>(&row, "parent_step")?,
    ) {
        (Some(p), Some(s)) => Some((RunId(p), s)),
        _ => None,
    };
    Ok(Some(RunRow {
        id,
        function_id: get(&row, "function_id")?,
        state: run_state(get::<&str>(&row, "state")?)?,
        event: Json(get::<RawJson>(&row, "event")?.0),
        parent,
    }))
}

/// What a run has recorded so far.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Recorded results by step id.
    pub(crate) recorded: BTreeMap<String, StepResult>,
    /// Their ids.
    pub(crate) ids: BTreeSet<String>,
    /// Bytes of the recorded results, as the limits count them.
    pub(crate) bytes: usize,
    /// Planned parallel steps not yet recorded.
    pub(crate) pending_parallel: BTreeSet<String>,
    /// Failed attempts of steps not yet recorded.
    pub(crate) failures: BTreeMap<String, u32>,
    /// Recorded steps in the order they were recorded, with whether each is an error.
    pub(crate) order: Vec<(String, bool)>,
}

/// Reads a run's records.
pub(crate) async fn load_records(conn: &mut PgConnection, run: RunId) -> Result<Records> {
    let rows = sqlx::query(
        "SELECT step_id, result, parallel, \
         (SELECT count(*) FROM run_step_attempts a WHERE a.run_id = s.run_id AND a.step_id = s.step_id) AS failed \
         FROM run_steps s WHERE run_id = $1 ORDER BY recorded_at NULLS LAST, seq",
    )
    .bind(run.0)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let mut out = Records::default();
    for r in &rows {
        let id: String = get(r, "step_id")?;
        match get::<Option<RawJson>>(r, "result")? {
            Some(raw) => {
                let result = step_result(&raw)?;
                out.bytes += record::result_bytes(&result);
                out.order
                    .push((id.clone(), matches!(result, StepResult::Error(_))));
                out.ids.insert(id.clone());
                out.recorded.insert(id, result);
            }
            None => {
                if get::<bool>(r, "parallel")? {
                    out.pending_parallel.insert(id.clone());
                }
                let failed: i64 = get(r, "failed")?;
                if failed > 0 {
                    out.failures
                        .insert(id, u32::try_from(failed).unwrap_or(u32::MAX));
                }
            }
        }
    }
    Ok(out)
}

/// Inserts step records; a step already recorded keeps its first record.
pub(crate) async fn insert_records(
    conn: &mut PgConnection,
    now: Timestamp,
    run: RunId,
    records: &[NewStepRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(records.len());
    let mut kinds = Vec::with_capacity(records.len());
    let mut results = Vec::with_capacity(records.len());
    let mut attempts = Vec::with_capacity(records.len());
    for r in records {
        ids.push(codec::text(&r.id).into_owned());
        kinds.push(r.kind.as_str());
        results.push(result_text(&r.result)?);
        attempts.push(i32::try_from(r.attempts).unwrap_or(i32::MAX));
    }
    sqlx::query(
        "INSERT INTO run_steps AS s (run_id, step_id, kind, result, attempts, started_at, recorded_at)
         SELECT $1, u.id, u.kind, u.result::json, u.attempts, $2, $2
         FROM unnest($3::text[], $4::text[], $5::text[], $6::int4[]) AS u (id, kind, result, attempts)
         ON CONFLICT (run_id, step_id) DO UPDATE SET kind = excluded.kind, result = excluded.result,
             attempts = excluded.attempts, recorded_at = excluded.recorded_at
         WHERE s.result IS NULL",
    )
    .bind(run.0)
    .bind(Ts(now))
    .bind(ids)
    .bind(kinds)
    .bind(results)
    .bind(attempts)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Adds failed attempts to their steps' histories.
async fn insert_failed(
    conn: &mut PgConnection,
    now: Timestamp,
    run: RunId,
    failed: &[FailedAttempt],
) -> Result<()> {
    for f in failed {
        let attempt = i32::try_from(f.attempt).unwrap_or(i32::MAX);
        sqlx::query(
            "WITH step AS (
                INSERT INTO run_steps AS s (run_id, step_id, kind, attempts, started_at)
                VALUES ($1, $2, 'run', $3, $4)
                ON CONFLICT (run_id, step_id) DO UPDATE SET attempts = excluded.attempts WHERE s.result IS NULL
             )
             INSERT INTO run_step_attempts (run_id, step_id, attempt, error_name, error_message, at)
             VALUES ($1, $2, $3, $5, $6, $4) ON CONFLICT DO NOTHING",
        )
        .bind(run.0)
        .bind(codec::text(&f.id).as_ref())
        .bind(attempt)
        .bind(Ts(now))
        .bind(codec::text(&f.error.name).as_ref())
        .bind(codec::text(&f.error.message).as_ref())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// A step seen but not recorded yet (a wait, an invoke, a planned parallel step).
async fn insert_pending(
    conn: &mut PgConnection,
    now: Timestamp,
    run: RunId,
    step: &str,
    kind: StepKind,
    until: Option<Timestamp>,
    parallel: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO run_steps AS s (run_id, step_id, kind, parallel, started_at, until)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (run_id, step_id) DO UPDATE SET kind = excluded.kind, parallel = s.parallel OR excluded.parallel,
             until = excluded.until
         WHERE s.result IS NULL",
    )
    .bind(run.0)
    .bind(codec::text(step).as_ref())
    .bind(kind.as_str())
    .bind(parallel)
    .bind(Ts(now))
    .bind(until.map(Ts))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Sets the stored state of a run that goes on.
async fn set_state(
    conn: &mut PgConnection,
    now: Timestamp,
    run: RunId,
    state: RunState,
    wake_at: Option<Timestamp>,
) -> Result<()> {
    sqlx::query("UPDATE runs SET state = $2, wake_at = $3, updated_at = $4 WHERE id = $1")
        .bind(run.0)
        .bind(state.as_str())
        .bind(wake_at.map(Ts))
        .bind(Ts(now))
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// The definition of a run's function (removed functions too: their runs go on).
pub(crate) async fn function_of(conn: &mut PgConnection, run: &RunRow) -> Result<Function> {
    crate::functions::definition(conn, &run.function_id)
        .await?
        .ok_or_else(|| {
            StoreError::corrupt(format!(
                "run {} of unknown function {}",
                run.id, run.function_id
            ))
        })
}

/// A call of a run to enqueue.
pub(crate) struct NextCall<'a> {
    pub(crate) at: Timestamp,
    pub(crate) run_step: Option<&'a str>,
    pub(crate) attempt: u32,
}

/// What a transaction decided to write into the jobs table as it went: the call jobs to enqueue and the count
/// changes of jobs it moved. Nothing is written until [`Pending::write`] (or [`Pending::take`] for a caller
/// that writes the counts in a statement of its own); [`Pending::insert`] inserts the calls gathered so far
/// early when the transaction must see them, their counts still held back.
#[derive(Default)]
pub(crate) struct Pending {
    calls: Vec<NewJob>,
    counts: Counts,
    /// Whether `counts` holds any change (only those are written).
    counted: bool,
    /// Queues to announce for calls already inserted.
    announce: Vec<String>,
}

impl Pending {
    /// One job of `queue` moved from `from` to `to`.
    fn moved(&mut self, queue: &str, from: JobState, to: JobState) {
        if from != to {
            self.counts.moved(queue, from, to);
            self.counted = true;
        }
    }

    /// Inserts the calls gathered so far (one statement), holding their counts back; a later [`Self::write`] or
    /// [`Self::take`] writes them.
    pub(crate) async fn insert(&mut self, conn: &mut PgConnection, now: Timestamp) -> Result<()> {
        if self.calls.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::take(&mut self.calls);
        let out = crate::jobs_insert::insert_calls_held(conn, now, jobs, &mut self.counts).await?;
        self.counted = true;
        self.finish(out)
    }

    /// Inserts the calls and writes every count change, one statement each at most; returns the queues to
    /// announce.
    pub(crate) async fn write(
        mut self,
        conn: &mut PgConnection,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        if self.counted {
            self.insert(conn, now).await?;
            self.counts.flush(conn).await?;
        } else if !self.calls.is_empty() {
            // Only calls: their insert counts them in the same statement.
            let jobs = std::mem::take(&mut self.calls);
            let out = crate::jobs_insert::insert_calls(conn, now, jobs).await?;
            self.finish(out)?;
        }
        Ok(self.announce)
    }

    /// Inserts the calls and hands over every count change, for the caller's own count statement (the
    /// transaction's only one); returns the queues to announce and the counts.
    pub(crate) async fn take(
        mut self,
        conn: &mut PgConnection,
        now: Timestamp,
    ) -> Result<(Vec<String>, Counts)> {
        self.insert(conn, now).await?;
        Ok((self.announce, self.counts))
    }

    /// Keeps an insert's announcements; a refused call is an error (calls carry no idempotency key, so none is).
    fn finish(&mut self, out: crate::jobs_insert::Outcome) -> Result<()> {
        for answer in out.answers {
            answer?;
        }
        self.announce.extend(out.announce);
        Ok(())
    }
}

/// Inserts the calls of a run, each carrying every step recorded so far; returns the queues to announce.
pub(crate) async fn enqueue_calls(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    run: &RunRow,
    function: &Function,
    next: &[NextCall<'_>],
) -> Result<Vec<String>> {
    let mut pending = Pending::default();
    enqueue_calls_in(conn, now, limits, (run, function), next, &mut pending).await?;
    pending.write(conn, now).await
}

/// Gathers the calls of a run into `pending`, each carrying every step recorded so far.
async fn enqueue_calls_in(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    (run, function): (&RunRow, &Function),
    next: &[NextCall<'_>],
    pending: &mut Pending,
) -> Result<()> {
    if next.is_empty() {
        return Ok(());
    }
    let records = load_records(conn, run.id).await?;
    for c in next {
        pending.calls.push(calls::call_job(&CallSpec {
            function,
            run_id: run.id,
            event: &run.event,
            steps: &records.recorded,
            attempt: c.attempt,
            run_step: c.run_step,
            at: codec::stored_precision(c.at.max(now)),
            max_state_bytes: limits.max_state_bytes,
        })?);
    }
    Ok(())
}

/// A call job's payload rewritten with every step recorded so far (a call in flight after mid-lease records).
pub(crate) async fn rewrite_payload(
    conn: &mut PgConnection,
    limits: &RecordLimits,
    run: &RunRow,
    function: &Function,
    job: JobId,
    call: &NextCall<'_>,
) -> Result<()> {
    let records = load_records(conn, run.id).await?;
    let job_spec = calls::call_job(&CallSpec {
        function,
        run_id: run.id,
        event: &run.event,
        steps: &records.recorded,
        attempt: call.attempt,
        run_step: call.run_step,
        at: call.at,
        max_state_bytes: limits.max_state_bytes,
    })?;
    sqlx::query("UPDATE jobs SET payload = $2::json WHERE id = $1")
        .bind(job.0)
        .bind(job_spec.payload.get())
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// How a run ends.
pub(crate) enum RunEnd {
    Succeeded(Json),
    Failed(StepError),
    Cancelled,
}

/// Ends a run: its state, output or error; its waits deleted; its other pending calls cancelled (a running one
/// asked to stop); a parent waiting on it through `invoke` resolved and called. Returns the queues to announce.
pub(crate) async fn end_run(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    run: &RunRow,
    end: RunEnd,
    except: Option<JobId>,
) -> Result<Vec<String>> {
    let mut pending = Pending::default();
    end_run_in(conn, now, limits, run, (end, except), &mut pending).await?;
    pending.write(conn, now).await
}

/// [`end_run`], its calls and count changes gathered into `pending`.
pub(crate) async fn end_run_in(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    run: &RunRow,
    (end, except): (RunEnd, Option<JobId>),
    pending: &mut Pending,
) -> Result<()> {
    let (state, output, error) = match &end {
        RunEnd::Succeeded(output) => (RunState::Succeeded, Some(output.get()), None),
        RunEnd::Failed(error) => (RunState::Failed, None, Some(error.clone())),
        RunEnd::Cancelled => (RunState::Cancelled, None, Some(calls::cancelled_error())),
    };
    sqlx::query(
        "UPDATE runs SET state = $2, output = $3::json, error_name = $4, error_message = $5, ended_at = $6,
             updated_at = $6, wake_at = NULL WHERE id = $1",
    )
    .bind(run.id.0)
    .bind(state.as_str())
    .bind(output)
    .bind(error.as_ref().map(|e| codec::text(&e.name).into_owned()))
    .bind(error.as_ref().map(|e| codec::text(&e.message).into_owned()))
    .bind(Ts(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query(
        "WITH k AS (DELETE FROM run_cancel_keys WHERE run_id = $1) DELETE FROM run_waits WHERE run_id = $1",
    )
    .bind(run.id.0)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    // Calls gathered for this run earlier in the transaction are stopped with the others.
    pending.insert(conn, now).await?;
    stop_calls(conn, now, run.id, except, pending).await?;
    let Some((parent, _)) = &run.parent else {
        return Ok(());
    };
    let output = match &end {
        RunEnd::Succeeded(output) => Some(output),
        _ => None,
    };
    let Some(outcome) = calls::child_outcome(state, output, error.as_ref()) else {
        return Ok(());
    };
    // Deleting the parent's wait is the claim on resolving its step (the timeout may have taken it first).
    let claimed: Option<String> = sqlx::query_scalar(
        "DELETE FROM run_waits WHERE run_id = $1 AND child_run_id = $2 RETURNING step_id",
    )
    .bind(parent.0)
    .bind(run.id.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    match claimed {
        Some(step) => {
            let step = record::resolve_invoke(&step, outcome);
            resolve_in(conn, now, limits, (*parent, step), pending).await
        }
        None => Ok(()),
    }
}

/// Cancels a run's pending calls (their moves gathered into `pending`) and asks a running one to stop (all but
/// `except`).
async fn stop_calls(
    conn: &mut PgConnection,
    now: Timestamp,
    run: RunId,
    except: Option<JobId>,
    pending: &mut Pending,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT id, queue, state FROM jobs WHERE run_id = $1 AND id IS DISTINCT FROM $2
         AND state IN ('scheduled', 'available', 'retrying', 'running') ORDER BY id FOR UPDATE",
    )
    .bind(run.0)
    .bind(except.map(|j| j.0))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut now_cancelled = Vec::new();
    let mut requested = Vec::new();
    for r in &rows {
        let id: uuid::Uuid = get(r, "id")?;
        let state = codec::state(get::<&str>(r, "state")?)?;
        if state == JobState::Running {
            requested.push(id);
        } else {
            pending.moved(&get::<String>(r, "queue")?, state, JobState::Cancelled);
            now_cancelled.push(id);
        }
    }
    if !now_cancelled.is_empty() {
        sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = $2 WHERE id = ANY($1)")
            .bind(&now_cancelled)
            .bind(Ts(now))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    if !requested.is_empty() {
        sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = ANY($1)")
            .bind(&requested)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Records a parked step's resolution (a wait's event or timeout, an invoke's end or timeout) and enqueues the
/// run's next call now. The caller claimed the step by deleting its wait row.
pub(crate) async fn resolve(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    run_id: RunId,
    step: NewStepRecord,
) -> Result<Vec<String>> {
    let mut pending = Pending::default();
    resolve_in(conn, now, limits, (run_id, step), &mut pending).await?;
    pending.write(conn, now).await
}

/// [`resolve`], the next call gathered into `pending`.
pub(crate) async fn resolve_in(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    (run_id, step): (RunId, NewStepRecord),
    pending: &mut Pending,
) -> Result<()> {
    let Some(run) = load_run(conn, run_id).await? else {
        return Ok(());
    };
    if run.state.is_final() {
        return Ok(());
    }
    insert_records(conn, now, run.id, std::slice::from_ref(&step)).await?;
    let function = function_of(conn, &run).await?;
    set_state(conn, now, run.id, RunState::Queued, None).await?;
    let next = NextCall {
        at: now,
        run_step: None,
        attempt: 1,
    };
    enqueue_calls_in(conn, now, limits, (&run, &function), &[next], pending).await
}

/// Writes a decision for a run (with its function) whose call ended: records, failed attempts, sent events,
/// and what comes next; the next calls and count changes are gathered into `pending`. Returns the queues to
/// announce for what it wrote itself.
#[allow(clippy::too_many_arguments)] // the run, the decision and where its writes go
pub(crate) async fn apply(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    (run, function): (&RunRow, &Function),
    failures: &BTreeMap<String, u32>,
    decision: Decision,
    call: Option<JobId>,
    pending: &mut Pending,
) -> Result<Vec<String>> {
    let mut announce = Vec::new();
    insert_records(conn, now, run.id, &decision.records).await?;
    insert_failed(conn, now, run.id, &decision.failed_attempts).await?;
    if !decision.events.is_empty() {
        let sent = crate::events::store_sent(conn, now, limits, decision.events).await?;
        announce.extend(sent);
    }
    let mut failures = failures.clone();
    for f in &decision.failed_attempts {
        let n = failures.entry(f.id.clone()).or_insert(0);
        *n = (*n).max(f.attempt);
    }
    match decision.next {
        Next::Call {
            at,
            run_step,
            retrying,
            state,
        } => {
            let sleeping = state == RunState::Sleeping;
            if sleeping
                && let Some(sleep) = decision.records.iter().find(|r| r.kind == StepKind::Sleep)
            {
                sqlx::query("UPDATE run_steps SET until = $3 WHERE run_id = $1 AND step_id = $2")
                    .bind(run.id.0)
                    .bind(codec::text(&sleep.id).as_ref())
                    .bind(Ts(codec::stored_precision(at)))
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
            }
            set_state(
                conn,
                now,
                run.id,
                state,
                sleeping.then_some(codec::stored_precision(at)),
            )
            .await?;
            let attempt = calls::call_attempt(retrying.as_deref(), &failures);
            let next = NextCall {
                at,
                run_step: run_step.as_deref(),
                attempt,
            };
            enqueue_calls_in(conn, now, limits, (run, function), &[next], pending).await?;
        }
        Next::Parallel(ids) => {
            for id in &ids {
                insert_pending(conn, now, run.id, id, StepKind::Run, None, true).await?;
            }
            set_state(conn, now, run.id, RunState::Queued, None).await?;
            let next: Vec<NextCall<'_>> = ids
                .iter()
                .map(|id| NextCall {
                    at: now,
                    run_step: Some(id),
                    attempt: 1,
                })
                .collect();
            enqueue_calls_in(conn, now, limits, (run, function), &next, pending).await?;
        }
        Next::Wait {
            step,
            event,
            matching,
            until,
        } => {
            let until = codec::stored_precision(until);
            insert_pending(
                conn,
                now,
                run.id,
                &step,
                StepKind::WaitForEvent,
                Some(until),
                false,
            )
            .await?;
            let (path, key) = wait_columns(&matching);
            sqlx::query(
                "INSERT INTO run_waits (run_id, step_id, kind, event, match_path, match_key, until)
                 VALUES ($1, $2, 'event', $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(run.id.0)
            .bind(codec::text(&step).as_ref())
            .bind(&event)
            .bind(path)
            .bind(key.map(|k| codec::text(&k).into_owned()))
            .bind(Ts(until))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            if let WaitMatch::Field { path, .. } = &matching {
                sqlx::query(
                    "INSERT INTO run_wait_paths (event, match_path) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(&event)
                .bind(path.as_str())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            }
            set_state(conn, now, run.id, RunState::Waiting, Some(until)).await?;
        }
        Next::Invoke {
            step,
            function_id,
            data,
            until,
        } => {
            let until = codec::stored_precision(until);
            let child_function = crate::functions::get_one(conn, &function_id).await?;
            let Some(child_function) = child_function else {
                let record =
                    record::resolve_invoke(&step, InvokeOutcome::UnknownFunction(function_id));
                resolve_in(conn, now, limits, (run.id, record), pending).await?;
                return Ok(announce);
            };
            insert_pending(
                conn,
                now,
                run.id,
                &step,
                StepKind::Invoke,
                Some(until),
                false,
            )
            .await?;
            let child = RunId::new();
            sqlx::query(
                "INSERT INTO run_waits (run_id, step_id, kind, child_run_id, until)
                 VALUES ($1, $2, 'invoke', $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(run.id.0)
            .bind(codec::text(&step).as_ref())
            .bind(child.0)
            .bind(Ts(until))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            set_state(conn, now, run.id, RunState::Waiting, Some(until)).await?;
            let data = calls::invoked_data(data.as_ref());
            announce.extend(
                crate::events::start_invoked(
                    conn,
                    now,
                    limits,
                    &child_function.function,
                    child,
                    data,
                    (run.id, step.as_str()),
                )
                .await?,
            );
        }
        Next::Idle => {
            sqlx::query("UPDATE runs SET updated_at = $2 WHERE id = $1")
                .bind(run.id.0)
                .bind(Ts(now))
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        Next::Succeed(output) => {
            let end = (RunEnd::Succeeded(output), call);
            end_run_in(conn, now, limits, run, end, pending).await?;
        }
        Next::Fail(error) => {
            let end = (RunEnd::Failed(error), call);
            end_run_in(conn, now, limits, run, end, pending).await?;
        }
    }
    Ok(announce)
}

/// A run's stored state, if the run exists (read before a call's end is applied, for [`change`]).
pub(crate) async fn state_of(conn: &mut PgConnection, run: RunId) -> Result<Option<RunState>> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM runs WHERE id = $1")
        .bind(run.0)
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    state.as_deref().map(run_state).transpose()
}

/// What a call's end did to its run, read back after it was applied ([`calls::run_change`]); `before` is the
/// run's state before (`None`: there was no run).
pub(crate) async fn change(
    conn: &mut PgConnection,
    run: RunId,
    before: Option<RunState>,
    steps: StepCounts,
) -> Result<Option<RunChange>> {
    let Some(before) = before else {
        return Ok(None);
    };
    let row =
        sqlx::query("SELECT function_id, state, created_at, ended_at FROM runs WHERE id = $1")
            .bind(run.0)
            .fetch_optional(conn)
            .await
            .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let sides = calls::RunSides {
        run_id: run,
        function_id: get(&row, "function_id")?,
        before,
        after: run_state(get::<&str>(&row, "state")?)?,
        created_at: get::<Ts>(&row, "created_at")?.0,
        ended_at: ts_opt(&row, "ended_at")?,
    };
    Ok(calls::run_change(sides, steps))
}

/// Marks a run started (its first call began at `at`).
pub(crate) async fn mark_started(
    conn: &mut PgConnection,
    run: RunId,
    at: Option<Timestamp>,
) -> Result<()> {
    if let Some(at) = at {
        sqlx::query("UPDATE runs SET started_at = coalesce(started_at, $2) WHERE id = $1")
            .bind(run.0)
            .bind(Ts(at))
            .execute(conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// The earliest pending wait timeout, if any.
pub(crate) async fn next_wait(conn: &mut PgConnection) -> Result<Option<Timestamp>> {
    let row = sqlx::query("SELECT min(until) AS until FROM run_waits")
        .fetch_one(conn)
        .await
        .map_err(db)?;
    ts_opt(&row, "until")
}

/// Cancels the runs `ids` that have not ended (their call jobs locked first, then the runs, in id order);
/// returns the runs it cancelled and the queues to announce.
pub(crate) async fn cancel_runs(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    ids: &[RunId],
) -> Result<(BTreeSet<RunId>, Vec<String>)> {
    let mut cancelled = BTreeSet::new();
    if ids.is_empty() {
        return Ok((cancelled, Vec::new()));
    }
    let mut raw: Vec<uuid::Uuid> = ids.iter().map(|r| r.0).collect();
    raw.sort_unstable();
    raw.dedup();
    sqlx::query(
        "SELECT id FROM jobs WHERE run_id = ANY($1) AND state IN ('scheduled', 'available', 'retrying', 'running')
         ORDER BY id FOR UPDATE",
    )
    .bind(&raw)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    lock_runs(conn, &raw).await?;
    let mut pending = Pending::default();
    for id in raw {
        let Some(run) = load_run(conn, RunId(id)).await? else {
            continue;
        };
        if !run.state.is_cancellable() {
            continue;
        }
        end_run_in(
            conn,
            now,
            limits,
            &run,
            (RunEnd::Cancelled, None),
            &mut pending,
        )
        .await?;
        cancelled.insert(run.id);
    }
    Ok((cancelled, pending.write(conn, now).await?))
}

/// Ends a transaction with its work's outcome: committed when the work succeeded, rolled back at once when it
/// failed, so its row locks are released before the failure is answered (a dropped transaction is rolled back
/// only when its connection is next used).
pub(crate) async fn settle<T>(
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    out: Result<T>,
) -> Result<T> {
    match out {
        Ok(v) => {
            tx.commit().await.map_err(db)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(r) = tx.rollback().await {
                tracing::debug!(error = %r, "rollback after a failed operation");
            }
            Err(e)
        }
    }
}
