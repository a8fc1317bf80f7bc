//! Runs as users see and manage them: reads (with the state derived from their calls), cancel, retry, steps
//! recorded within a call's lease, wake-ups of parked steps and pruning.
//!
//! Invariant: a run's visible state is [`offload_store::calls::visible_state`] of its stored state and its calls;
//! every write here checks the run's state in the writer's transaction before changing anything.

use std::collections::BTreeMap;

use jiff::Timestamp;
use offload_core::function::protocol::{Answer, Json, RanOutcome, StepError};
use offload_core::function::record::{CallFacts, Next, RunFacts, StepKind, decide};
use offload_core::function::run::{RunId, RunState};
use offload_core::state::add;
use offload_store::calls::{CallSpec, RecordedStep, call_request, retry_removes, visible_state};
use offload_store::{
    Result, RunListParams, RunPruneParams, RunRecord, RunRecordStepsParams, RunWakeParams,
    RunWakeReport, StepAttempt, StepRecord, StoreError,
};
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::run_calls::{self, RunEnd};
use crate::run_rows::{self, result_of, run_state, uuid_of};

/// Ended runs past their retention (only an ended run has `ended_at`; a retry clears it).
pub(crate) const PRUNE_RUNS_SQL: &str = "DELETE FROM runs WHERE seq IN \
    (SELECT seq FROM runs WHERE ended_at IS NOT NULL AND ended_at <= ?1 LIMIT ?2)";

/// Events past their retention.
pub(crate) const PRUNE_EVENTS_SQL: &str =
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE received_at <= ?1 LIMIT ?2)";

/// The columns of a run read, with its calls' states.
const READ: &str = "SELECT r.seq AS seq_, r.id, r.function_id, r.state, r.event_id, r.event, r.output, r.error_name, \
    r.error_message, r.parent_id, r.parent_step, r.steps, r.created_at, r.ended_at, r.updated_at, r.wake_at, \
    coalesce(r.started_at, (SELECT min(j.attempted_at) FROM jobs j WHERE j.run_id = r.id)) AS started, \
    EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.state = 'running') AS call_running, \
    EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.state = 'available') AS call_available \
    FROM runs r";

fn opt_time(v: Option<i64>) -> Result<Option<Timestamp>> {
    v.map(codec::timestamp).transpose()
}

fn record_of(row: &SqliteRow) -> Result<RunRecord> {
    let stored = run_state(get::<&str>(row, "state")?)?;
    let state = visible_state(
        stored,
        get::<bool>(row, "call_running")?,
        get::<bool>(row, "call_available")?,
    );
    let json = |text: String| {
        Json::from_text(text).map_err(|e| StoreError::corrupt(format!("run JSON: {e}")))
    };
    let error_name: Option<String> = get(row, "error_name")?;
    let error_message: Option<String> = get(row, "error_message")?;
    let parent_id: Option<Vec<u8>> = get(row, "parent_id")?;
    let parent_step: Option<String> = get(row, "parent_step")?;
    let steps: i64 = get(row, "steps")?;
    Ok(RunRecord {
        id: RunId(uuid_of(get::<&[u8]>(row, "id")?)?),
        function_id: get(row, "function_id")?,
        state,
        event_id: offload_core::function::event::EventId(uuid_of(get::<&[u8]>(row, "event_id")?)?),
        event: json(get(row, "event")?)?,
        output: get::<Option<String>>(row, "output")?
            .map(json)
            .transpose()?,
        error: error_name.map(|name| StepError {
            name,
            message: error_message.unwrap_or_default(),
        }),
        parent: match (parent_id, parent_step) {
            (Some(id), Some(step)) => Some((RunId(uuid_of(&id)?), step)),
            _ => None,
        },
        steps: codec::u32_of(steps, "steps")?,
        created_at: codec::timestamp(get(row, "created_at")?)?,
        started_at: opt_time(get(row, "started")?)?,
        ended_at: opt_time(get(row, "ended_at")?)?,
        updated_at: codec::timestamp(get(row, "updated_at")?)?,
        wake_at: match state {
            RunState::Sleeping | RunState::Waiting => opt_time(get(row, "wake_at")?)?,
            _ => None,
        },
    })
}

/// One run.
pub(crate) async fn get_one(conn: &mut SqliteConnection, id: RunId) -> Result<Option<RunRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!("{READ} WHERE r.id = ?1")))
        .bind(id.0.as_bytes().as_slice())
        .fetch_optional(conn)
        .await
        .map_err(db)?
        .as_ref()
        .map(record_of)
        .transpose()
}

async fn must_get(conn: &mut SqliteConnection, id: RunId) -> Result<RunRecord> {
    get_one(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))
}

/// A page of runs, newest first. The state filter applies to the visible state.
pub(crate) async fn list(conn: &mut SqliteConnection, p: &RunListParams) -> Result<Vec<RunRecord>> {
    let mut out = Vec::new();
    let mut before: Option<i64> = match p.before {
        Some(b) => Some(
            sqlx::query_scalar("SELECT seq FROM runs WHERE id = ?1")
                .bind(b.0.as_bytes().as_slice())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?
                .unwrap_or(-1),
        ),
        None => None,
    };
    let limit = usize::try_from(p.limit).unwrap_or(usize::MAX);
    // The visible state can differ from the stored one (queued/sleeping vs running), so the state filter is
    // applied after reading, page by page.
    loop {
        let sql = format!(
            "{READ} WHERE (?1 IS NULL OR r.function_id = ?1) AND (?2 IS NULL OR r.event_id = ?2) \
             AND (?3 IS NULL OR r.seq < ?3) AND (?4 IS NULL OR r.state = ?4 OR (?4 IN ('running', 'queued') \
             AND r.state IN ('queued', 'sleeping'))) ORDER BY r.seq DESC LIMIT ?5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(p.function_id.as_deref())
            .bind(p.event_id.map(|e| e.0.as_bytes().to_vec()))
            .bind(before)
            .bind(p.state.map(|s| s.as_str()))
            .bind(i64::from(p.limit.max(1)))
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        let fetched = rows.len();
        for row in &rows {
            let r = record_of(row)?;
            if p.state.is_none_or(|s| s == r.state) && out.len() < limit {
                out.push(r);
            }
        }
        if fetched < p.limit.max(1) as usize || out.len() >= limit {
            return Ok(out);
        }
        let last = rows.last().map(|r| get::<i64>(r, "seq_")).transpose();
        match last {
            Ok(Some(seq)) => before = Some(seq),
            _ => return Ok(out),
        }
    }
}

/// A run's steps in the order first seen.
pub(crate) async fn steps(conn: &mut SqliteConnection, id: RunId) -> Result<Vec<StepRecord>> {
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM runs WHERE id = ?1")
        .bind(id.0.as_bytes().as_slice())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
    let attempts = sqlx::query(
        "SELECT step_id, attempt, error_name, error_message, at FROM run_step_attempts WHERE run_seq = ?1 \
         ORDER BY step_id, attempt",
    )
    .bind(seq)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut by_step: BTreeMap<String, Vec<StepAttempt>> = BTreeMap::new();
    for row in &attempts {
        by_step
            .entry(get(row, "step_id")?)
            .or_default()
            .push(StepAttempt {
                attempt: codec::u32_of(get(row, "attempt")?, "attempt")?,
                error: StepError {
                    name: get(row, "error_name")?,
                    message: get(row, "error_message")?,
                },
                at: codec::timestamp(get(row, "at")?)?,
            });
    }
    let rows = sqlx::query(
        "SELECT step_id, kind, result_kind, data, error_name, error_message, started_at, recorded_at, until \
         FROM run_steps WHERE run_seq = ?1 ORDER BY rowid",
    )
    .bind(seq)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let id: String = get(row, "step_id")?;
            let failed_attempts = by_step.remove(&id).unwrap_or_default();
            let started_at = codec::timestamp(get(row, "started_at")?)?;
            Ok(StepRecord {
                kind: step_kind(get::<&str>(row, "kind")?)?,
                result: result_of(row)?,
                failed_attempts,
                started_at,
                recorded_at: opt_time(get(row, "recorded_at")?)?,
                until: opt_time(get(row, "until")?)?,
                id,
            })
        })
        .collect()
}

fn step_kind(text: &str) -> Result<StepKind> {
    [
        StepKind::Run,
        StepKind::Sleep,
        StepKind::WaitForEvent,
        StepKind::SendEvent,
        StepKind::Invoke,
    ]
    .into_iter()
    .find(|k| k.as_str() == text)
    .ok_or_else(|| StoreError::corrupt(format!("step kind {text}")))
}

/// Cancels a run that has not ended.
pub(crate) async fn cancel(
    conn: &mut SqliteConnection,
    now: Timestamp,
    id: RunId,
    counts: &mut Counts,
) -> Result<RunRecord> {
    let seen = must_get(conn, id).await?;
    if !seen.state.is_cancellable() {
        return Err(StoreError::RunState {
            from: seen.state,
            action: "cancel",
        });
    }
    let run = run_rows::load_run(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
    run_calls::cancel_run(conn, now, &run, counts, &mut Vec::new()).await?;
    must_get(conn, id).await
}

/// Resumes a failed or cancelled run from its failed step.
pub(crate) async fn retry(
    conn: &mut SqliteConnection,
    now: Timestamp,
    id: RunId,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<RunRecord> {
    let seen = must_get(conn, id).await?;
    if !seen.state.is_retryable() {
        return Err(StoreError::RunState {
            from: seen.state,
            action: "retry",
        });
    }
    let run = run_rows::load_run(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
    // A cancelled run whose call was asked to stop is still running until that call ends: one call at a time.
    let stopping: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE run_id = ?1 AND state = 'running')",
    )
    .bind(id.0.as_bytes().as_slice())
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    if stopping {
        return Err(StoreError::RunState {
            from: RunState::Running,
            action: "retry",
        });
    }
    let rows = sqlx::query(
        "SELECT step_id, result_kind FROM run_steps WHERE run_seq = ?1 AND result_kind IS NOT NULL \
         ORDER BY recorded_at, rowid",
    )
    .bind(run.seq)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let recorded: Vec<(String, bool)> = rows
        .iter()
        .map(|r| {
            Ok((
                get::<String>(r, "step_id")?,
                get::<&str>(r, "result_kind")? == "error",
            ))
        })
        .collect::<Result<_>>()?;
    let listed: Vec<RecordedStep<'_>> = recorded
        .iter()
        .map(|(id, is_error)| RecordedStep {
            id,
            is_error: *is_error,
        })
        .collect();
    if let Some(step) = retry_removes(run.state, &listed) {
        for sql in [
            "DELETE FROM run_steps WHERE run_seq = ?1 AND step_id = ?2",
            "DELETE FROM run_step_attempts WHERE run_seq = ?1 AND step_id = ?2",
        ] {
            sqlx::query(sql)
                .bind(run.seq)
                .bind(step)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
    }
    // Parked and planned steps are planned again by the next call.
    for sql in [
        "DELETE FROM run_steps WHERE run_seq = ?1 AND result_kind IS NULL AND kind <> 'run'",
        "UPDATE run_steps SET planned = 0 WHERE run_seq = ?1",
        "UPDATE runs SET state = 'queued', output = NULL, error_name = NULL, error_message = NULL, \
           ended_at = NULL, wake_at = NULL, singleton_key = NULL, \
           steps = (SELECT count(*) FROM run_steps WHERE run_seq = ?1 AND result_kind IS NOT NULL), \
           state_bytes = (SELECT coalesce(sum(CASE result_kind WHEN 'data' THEN length(CAST(data AS BLOB)) \
             ELSE length(CAST(error_name AS BLOB)) + length(CAST(error_message AS BLOB)) END), 0) \
             FROM run_steps WHERE run_seq = ?1 AND result_kind IS NOT NULL) \
         WHERE seq = ?1",
    ] {
        sqlx::query(sql)
            .bind(run.seq)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    sqlx::query("UPDATE runs SET updated_at = ?2 WHERE seq = ?1")
        .bind(run.seq)
        .bind(micros(now))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let function = run_calls::function_of(conn, &run.function_id).await?;
    run_rows::write_cancel_keys(conn, run.seq, &function, &run.event).await?;
    run_calls::enqueue(conn, now, &run, &function, 1, None, now, counts, woken).await?;
    must_get(conn, id).await
}

/// Records steps a worker ran within its call's lease, then rewrites the call's payload.
pub(crate) async fn record_steps(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: RunRecordStepsParams,
    counts: &mut Counts,
) -> Result<RunRecord> {
    let job = sqlx::query(
        "SELECT seq, state, lease_token, run_id, run_step, payload FROM jobs WHERE id = ?1",
    )
    .bind(p.job_id.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or_else(|| StoreError::NotFound(format!("job {}", p.job_id)))?;
    let token: Option<Vec<u8>> = get(&job, "lease_token")?;
    if get::<&str>(&job, "state")? != "running"
        || token.as_deref() != Some(p.lease_token.0.as_bytes().as_slice())
    {
        return Err(StoreError::LeaseMismatch);
    }
    let run_id: Option<Vec<u8>> = get(&job, "run_id")?;
    if run_id.as_deref() != Some(p.run_id.0.as_bytes().as_slice()) {
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
    let run = run_rows::load_run(conn, p.run_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {}", p.run_id)))?;
    let run_step: Option<String> = get(&job, "run_step")?;
    if !run.state.is_final() {
        let function = run_calls::function_of(conn, &run.function_id).await?;
        let steps = run_rows::steps_of(conn, run.seq).await?;
        let event: serde_json::Value = serde_json::from_str(&run.event)
            .map_err(|e| StoreError::corrupt(format!("run event: {e}")))?;
        let recorded = steps.recorded.keys().cloned().collect();
        let fresh: Vec<_> = p
            .steps
            .into_iter()
            .filter(|s| !steps.recorded.contains_key(&s.id))
            .collect();
        if !fresh.is_empty() {
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
                run_step: run_step.as_deref(),
                now,
                jitter: 0.0,
            };
            let answer = Answer::Steps {
                ran: fresh,
                then: None,
            };
            let decision = decide(&facts, &call, answer, &p.limits).map_err(|e| {
                StoreError::Internal(format!("invalid step report: {}: {}", e.field, e.message))
            })?;
            run_rows::write_records(conn, now, run.seq, &decision.records).await?;
            if let Next::Fail(error) = decision.next {
                run_calls::end_run(
                    conn,
                    now,
                    &run,
                    RunEnd::Failed(&error),
                    counts,
                    &mut Vec::new(),
                )
                .await?;
            }
        }
        // The call's payload now carries every record, so a retried call replays them.
        let payload: serde_json::Value = serde_json::from_str(get::<&str>(&job, "payload")?)
            .map_err(|e| StoreError::corrupt(format!("call payload: {e}")))?;
        let attempt = payload
            .get("attempt")
            .and_then(serde_json::Value::as_u64)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1);
        let steps = run_rows::steps_of(conn, run.seq).await?;
        let event = Json::from_text(run.event.clone())
            .map_err(|e| StoreError::corrupt(format!("run event: {e}")))?;
        let request = call_request(&CallSpec {
            function: &function,
            run_id: run.id,
            event: &event,
            steps: &steps.recorded,
            attempt,
            run_step: run_step.as_deref(),
            at: now,
            max_state_bytes: p.limits.max_state_bytes,
        });
        let text =
            serde_json::to_string(&request).map_err(|e| StoreError::Internal(e.to_string()))?;
        sqlx::query("UPDATE jobs SET payload = ?2 WHERE seq = ?1")
            .bind(get::<i64>(&job, "seq")?)
            .bind(text)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    must_get(conn, p.run_id).await
}

/// Resolves parked steps whose timeout passed.
pub(crate) async fn wake(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: RunWakeParams,
    counts: &mut Counts,
) -> Result<RunWakeReport> {
    let mut queues = Vec::new();
    let woken = run_calls::wake_due(conn, now, p.limit, counts, &mut queues).await?;
    let next: Option<i64> = sqlx::query_scalar("SELECT min(until) FROM run_waits")
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    Ok(RunWakeReport {
        woken,
        queues,
        next_due_at: opt_time(next)?,
    })
}

/// Deletes ended runs and events past their retention.
pub(crate) async fn prune(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: RunPruneParams,
) -> Result<u64> {
    let runs_before = micros(now) - micros(add(Timestamp::UNIX_EPOCH, p.runs));
    let events_before = micros(now) - micros(add(Timestamp::UNIX_EPOCH, p.events));
    let runs = sqlx::query(PRUNE_RUNS_SQL)
        .bind(runs_before)
        .bind(i64::from(p.limit))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let events = sqlx::query(PRUNE_EVENTS_SQL)
        .bind(events_before)
        .bind(i64::from(p.limit))
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(runs.rows_affected() + events.rows_affected())
}
