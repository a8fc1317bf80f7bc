//! What users and the engine do to runs: cancel, retry, mid-lease step records, wait timeouts, pruning.
//!
//! Invariant: each operation is one transaction that locks what it changes in the store's one order (call jobs,
//! then runs, then waits) and re-reads the run's state under the lock before deciding, so with several servers
//! a run is cancelled, retried or woken once.

use offload_core::function::protocol::{Answer, RanOutcome};
use offload_core::function::record::{
    self, CallFacts, InvokeOutcome, Next, RecordLimits, RunFacts, WaitOutcome,
};
use offload_core::function::run::{RunId, RunState};
use offload_core::{JobState, LeaseToken, SignedDuration, Timestamp};
use offload_store::calls::{self, RecordedStep};
use offload_store::{
    Result, RunPruneParams, RunRecord, RunRecordStepsParams, RunWakeParams, RunWakeReport,
    StoreError,
};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::codec::{self, Ts, get};
use crate::error::db;
use crate::run_flow::{self, NextCall, RunEnd, load_records, load_run};
use crate::runs_read::existing_run;

/// Cancels a run that has not ended.
pub(crate) async fn cancel(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    id: RunId,
) -> Result<(RunRecord, Vec<String>)> {
    let mut tx = conn.begin().await.map_err(db)?;
    let out = cancel_in(&mut tx, now, limits, id).await;
    crate::run_flow::settle(tx, out).await
}

/// [`cancel`] inside its transaction.
async fn cancel_in(
    tx: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    id: RunId,
) -> Result<(RunRecord, Vec<String>)> {
    let before = existing_run(&mut *tx, id).await?;
    if !before.state.is_cancellable() {
        return Err(StoreError::RunState {
            from: before.state,
            action: "cancel",
        });
    }
    let (n, announce) = run_flow::cancel_runs(&mut *tx, now, limits, &[id]).await?;
    let after = existing_run(&mut *tx, id).await?;
    if n.is_empty() {
        return Err(StoreError::RunState {
            from: after.state,
            action: "cancel",
        });
    }
    Ok((after, announce))
}

/// Resumes a failed or cancelled run: the uncaught step error that failed it is removed, every other record
/// stays, and a call is enqueued now.
pub(crate) async fn retry(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    id: RunId,
) -> Result<(RunRecord, Vec<String>)> {
    let mut tx = conn.begin().await.map_err(db)?;
    let out = retry_in(&mut tx, now, limits, id).await;
    crate::run_flow::settle(tx, out).await
}

/// [`retry`] inside its transaction.
async fn retry_in(
    tx: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    id: RunId,
) -> Result<(RunRecord, Vec<String>)> {
    let run = load_run(&mut *tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
    if !run.state.is_retryable() {
        // The state as readers see it (a queued run whose call is held is running).
        return Err(StoreError::RunState {
            from: existing_run(&mut *tx, id).await?.state,
            action: "retry",
        });
    }
    // A cancelled run whose call was asked to stop runs until that call ends: one call at a time.
    let stopping: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE run_id = $1 AND state = 'running')",
    )
    .bind(id.0)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    if stopping {
        return Err(StoreError::RunState {
            from: RunState::Running,
            action: "retry",
        });
    }
    let records = load_records(&mut *tx, id).await?;
    let order: Vec<RecordedStep<'_>> = records
        .order
        .iter()
        .map(|(step, is_error)| RecordedStep {
            id: step,
            is_error: *is_error,
        })
        .collect();
    if let Some(step) = calls::retry_removes(run.state, &order) {
        sqlx::query(
            "WITH a AS (DELETE FROM run_step_attempts WHERE run_id = $1 AND step_id = $2)
             DELETE FROM run_steps WHERE run_id = $1 AND step_id = $2",
        )
        .bind(id.0)
        .bind(step)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    sqlx::query(
        "WITH p AS (UPDATE run_steps SET parallel = false WHERE run_id = $1 AND result IS NULL)
         UPDATE runs SET state = 'queued', ended_at = NULL, output = NULL, error_name = NULL,
             error_message = NULL, wake_at = NULL, singleton_key = NULL, updated_at = $2 WHERE id = $1",
    )
    .bind(id.0)
    .bind(Ts(now))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let function = run_flow::function_of(&mut *tx, &run).await?;
    // Live again: the events that cancel it find it anew.
    let event = run.event_value();
    crate::events::insert_cancel_keys(&mut *tx, &[(id, &function, &event)]).await?;
    let announce = run_flow::enqueue_calls(
        &mut *tx,
        now,
        limits,
        &run,
        &function,
        &[NextCall {
            at: now,
            run_step: None,
            attempt: 1,
        }],
    )
    .await?;
    let after = existing_run(&mut *tx, id).await?;
    Ok((after, announce))
}

/// Records `run` steps a pull worker ran within its call's lease; the call stays in flight with its payload
/// rewritten to hold every record.
pub(crate) async fn record_steps(
    conn: &mut PgConnection,
    now: Timestamp,
    p: RunRecordStepsParams,
) -> Result<RunRecord> {
    let mut tx = conn.begin().await.map_err(db)?;
    let out = record_steps_in(&mut tx, now, p).await;
    crate::run_flow::settle(tx, out).await
}

/// [`record_steps`] inside its transaction.
async fn record_steps_in(
    tx: &mut PgConnection,
    now: Timestamp,
    p: RunRecordStepsParams,
) -> Result<RunRecord> {
    let job = sqlx::query(
        "SELECT state, lease_token, run_id, run_step, (payload::jsonb ->> 'attempt')::int4 AS call_attempt
         FROM jobs WHERE id = $1 FOR UPDATE",
    )
    .bind(p.job_id.0)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?
    .ok_or_else(|| StoreError::NotFound(format!("job {}", p.job_id)))?;
    let state = codec::state(get::<&str>(&job, "state")?)?;
    let token = get::<Option<uuid::Uuid>>(&job, "lease_token")?.map(LeaseToken);
    if state != JobState::Running || token != Some(p.lease_token) {
        return Err(StoreError::LeaseMismatch);
    }
    if get::<Option<uuid::Uuid>>(&job, "run_id")? != Some(p.run_id.0) {
        return Err(StoreError::NotFound(format!(
            "call {} of run {}",
            p.job_id, p.run_id
        )));
    }
    if let Some(i) = p.steps.iter().position(|s| {
        matches!(
            s.outcome,
            RanOutcome::Error {
                retryable: true,
                ..
            }
        )
    }) {
        return Err(StoreError::Internal(format!(
            "invalid step report: steps[{i}]: a retryable error ends the call; complete the call with it"
        )));
    }
    let run_step: Option<String> = get(&job, "run_step")?;
    let attempt = get::<Option<i32>>(&job, "call_attempt")?
        .and_then(|a| u32::try_from(a).ok())
        .unwrap_or(1);
    let run = load_run(&mut *tx, p.run_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {}", p.run_id)))?;
    if !run.state.is_final() {
        let function = run_flow::function_of(&mut *tx, &run).await?;
        let records = load_records(&mut *tx, run.id).await?;
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
            run_step: None,
            now,
            jitter: 0.0,
        };
        let answer = Answer::Steps {
            ran: p.steps,
            then: None,
        };
        // Only already recorded steps: nothing to write.
        if let Ok(decision) = record::decide(&facts, &call, answer, &p.limits) {
            run_flow::insert_records(&mut *tx, now, run.id, &decision.records).await?;
            if let Next::Fail(error) = decision.next {
                run_flow::end_run(
                    &mut *tx,
                    now,
                    &p.limits,
                    &run,
                    RunEnd::Failed(error),
                    Some(p.job_id),
                )
                .await?;
            } else {
                run_flow::rewrite_payload(
                    &mut *tx,
                    &p.limits,
                    &run,
                    &function,
                    p.job_id,
                    &NextCall {
                        at: now,
                        run_step: run_step.as_deref(),
                        attempt,
                    },
                )
                .await?;
            }
        }
    }
    let after = existing_run(&mut *tx, p.run_id).await?;
    Ok(after)
}

/// Resolves waits and invokes whose timeout passed; each run's next call is enqueued now.
pub(crate) async fn wake_due(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    p: RunWakeParams,
) -> Result<RunWakeReport> {
    let mut tx = conn.begin().await.map_err(db)?;
    let out = wake_due_in(&mut tx, now, limits, p).await;
    crate::run_flow::settle(tx, out).await
}

/// [`wake_due`] inside its transaction.
async fn wake_due_in(
    tx: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    p: RunWakeParams,
) -> Result<RunWakeReport> {
    let due = sqlx::query(
        "SELECT run_id, step_id FROM run_waits WHERE until <= $1 ORDER BY until LIMIT $2",
    )
    .bind(Ts(now))
    .bind(i64::from(p.limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let due: Vec<(uuid::Uuid, String)> = due
        .iter()
        .map(|r| Ok((get(r, "run_id")?, get(r, "step_id")?)))
        .collect::<Result<_>>()?;
    // Runs another server is changing right now are left to a later call (they may be waking them too).
    let mut runs: Vec<uuid::Uuid> = due.iter().map(|(r, _)| *r).collect();
    runs.sort_unstable();
    runs.dedup();
    let locked: std::collections::BTreeSet<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED",
    )
    .bind(&runs)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?
    .into_iter()
    .collect();
    let mut report = RunWakeReport::default();
    for (run, step) in due.into_iter().filter(|(r, _)| locked.contains(r)) {
        // Deleting the row is the claim: an event or the child's end may have resolved it meanwhile.
        let kind: Option<String> = sqlx::query_scalar(
            "DELETE FROM run_waits WHERE run_id = $1 AND step_id = $2 AND until <= $3 RETURNING kind",
        )
        .bind(run)
        .bind(&step)
        .bind(Ts(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let record = match kind.as_deref() {
            Some("event") => record::resolve_wait(&step, WaitOutcome::TimedOut),
            Some(_) => record::resolve_invoke(&step, InvokeOutcome::TimedOut),
            None => continue,
        };
        report
            .queues
            .extend(run_flow::resolve(&mut *tx, now, limits, RunId(run), record).await?);
        report.woken += 1;
    }
    report.next_due_at = run_flow::next_wait(&mut *tx).await?;
    report.queues = crate::events::dedup(report.queues);
    Ok(report)
}

/// Deletes ended runs (with their steps) and events past their retention, at most `limit` of each.
pub(crate) async fn prune(
    conn: &mut PgConnection,
    now: Timestamp,
    p: RunPruneParams,
) -> Result<u64> {
    let cutoff = |keep: std::time::Duration| {
        SignedDuration::try_from(keep)
            .ok()
            .and_then(|d| now.checked_sub(d).ok())
    };
    let mut deleted = 0u64;
    if let Some(cut) = cutoff(p.runs) {
        let n: i64 = sqlx::query_scalar(
            "WITH old AS (
                SELECT id FROM runs WHERE ended_at <= $1 ORDER BY ended_at LIMIT $2 FOR UPDATE SKIP LOCKED
             ), s AS (DELETE FROM run_steps WHERE run_id IN (SELECT id FROM old)),
             a AS (DELETE FROM run_step_attempts WHERE run_id IN (SELECT id FROM old)),
             w AS (DELETE FROM run_waits WHERE run_id IN (SELECT id FROM old)),
             c AS (DELETE FROM run_cancel_keys WHERE run_id IN (SELECT id FROM old)),
             gone AS (DELETE FROM runs WHERE id IN (SELECT id FROM old) RETURNING 1)
             SELECT count(*) FROM gone",
        )
        .bind(Ts(cut))
        .bind(i64::from(p.limit))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        deleted += u64::try_from(n).unwrap_or(0);
    }
    if let Some(cut) = cutoff(p.events) {
        let n: i64 = sqlx::query_scalar(
            "WITH old AS (
                SELECT id FROM events WHERE received_at <= $1 ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED
             ), gone AS (DELETE FROM events WHERE id IN (SELECT id FROM old) RETURNING 1)
             SELECT count(*) FROM gone",
        )
        .bind(Ts(cut))
        .bind(i64::from(p.limit))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        deleted += u64::try_from(n).unwrap_or(0);
    }
    Ok(deleted)
}
