//! Reading runs and their steps.
//!
//! Invariant: reads never write. A run's stored state is what the last decision wrote; `running` (a call of it
//! claimed) and a sleep that is over (its call available) are read from the run's call jobs, so a claim needs
//! no write to the run.

use std::collections::BTreeMap;

use offload_core::function::event::EventId;
use offload_core::function::protocol::{Json, StepError, StepResult};
use offload_core::function::record::StepKind;
use offload_core::function::run::{RunId, RunState};
use offload_store::calls;
use offload_store::{Result, RunListParams, RunRecord, StepAttempt, StepRecord, StoreError};
use sqlx::postgres::{PgConnection, PgRow};

use crate::codec::{RawJson, get, ts, ts_opt};
use crate::error::db;

/// A run's columns, with what its call jobs say about its state (see [`calls::visible_state`]) and its start.
pub(crate) const RUN_SELECT: &str = "SELECT r.id, r.function_id, r.state,
    EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.state = 'running') AS call_running,
    EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.state = 'available') AS call_available,
    r.event_id, r.event, r.output, r.error_name, r.error_message, r.parent_run_id, r.parent_step,
    (SELECT count(*) FROM run_steps s WHERE s.run_id = r.id AND s.result IS NOT NULL) AS steps,
    r.created_at,
    coalesce(r.started_at, (SELECT min(j.attempted_at) FROM jobs j WHERE j.run_id = r.id)) AS started_at,
    r.ended_at, r.updated_at, r.wake_at
FROM runs r";

/// A run state as stored.
pub(crate) fn run_state(text: &str) -> Result<RunState> {
    text.parse().map_err(StoreError::corrupt)
}

/// JSON text read from a `json` column.
fn json(raw: RawJson) -> Json {
    Json(raw.0)
}

/// A run from a [`RUN_SELECT`] row.
pub(crate) fn run(row: &PgRow) -> Result<RunRecord> {
    let error = match (
        get::<Option<String>>(row, "error_name")?,
        get::<Option<String>>(row, "error_message")?,
    ) {
        (Some(name), message) => Some(StepError {
            name,
            message: message.unwrap_or_default(),
        }),
        _ => None,
    };
    let parent = match (
        get::<Option<uuid::Uuid>>(row, "parent_run_id")?,
        get::<Option<String>>(row, "parent_step")?,
    ) {
        (Some(id), Some(step)) => Some((RunId(id), step)),
        _ => None,
    };
    Ok(RunRecord {
        id: RunId(get(row, "id")?),
        function_id: get(row, "function_id")?,
        state: calls::visible_state(
            run_state(get::<&str>(row, "state")?)?,
            get(row, "call_running")?,
            get(row, "call_available")?,
        ),
        event_id: EventId(get(row, "event_id")?),
        event: json(get(row, "event")?),
        output: get::<Option<RawJson>>(row, "output")?.map(json),
        error,
        parent,
        steps: u32::try_from(get::<i64>(row, "steps")?).unwrap_or(u32::MAX),
        created_at: ts(row, "created_at")?,
        started_at: ts_opt(row, "started_at")?,
        ended_at: ts_opt(row, "ended_at")?,
        updated_at: ts(row, "updated_at")?,
        wake_at: ts_opt(row, "wake_at")?,
    })
}

/// One run.
pub(crate) async fn get_run(conn: &mut PgConnection, id: RunId) -> Result<Option<RunRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{RUN_SELECT} WHERE r.id = $1")))
        .bind(id.0)
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    row.as_ref().map(run).transpose()
}

/// One run that must exist.
pub(crate) async fn existing_run(conn: &mut PgConnection, id: RunId) -> Result<RunRecord> {
    get_run(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))
}

/// A filtered page of runs, newest first. The state filter applies [`calls::visible_state`]'s rule in SQL, so
/// the page is filtered before its limit.
pub(crate) async fn list_runs(conn: &mut PgConnection, p: RunListParams) -> Result<Vec<RunRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM ({RUN_SELECT}
            WHERE ($1::text IS NULL OR r.function_id = $1) AND ($2::uuid IS NULL OR r.event_id = $2)
              AND ($3::uuid IS NULL OR r.id < $3) AND ($6::text[] IS NULL OR r.state = ANY($6))) AS x
         WHERE ($4::text IS NULL OR $4 = CASE
             WHEN x.state IN ('queued', 'sleeping') AND x.call_running THEN 'running'
             WHEN x.state = 'sleeping' AND x.call_available THEN 'queued'
             ELSE x.state END)
         ORDER BY x.id DESC LIMIT $5"
    )))
    .bind(p.function_id)
    .bind(p.event_id.map(|e| e.0))
    .bind(p.before.map(|r| r.0))
    .bind(p.state.map(RunState::as_str))
    .bind(i64::from(p.limit))
    .bind(p.state.map(stored_states))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter().map(run).collect()
}

/// The stored states a run read in `state` may have (a run reads `running` or `queued` through its calls).
fn stored_states(state: RunState) -> Vec<&'static str> {
    match state {
        RunState::Running | RunState::Queued => vec!["queued", "sleeping"],
        other => vec![other.as_str()],
    }
}

/// A step kind as stored.
pub(crate) fn step_kind(text: &str) -> Result<StepKind> {
    [
        StepKind::Run,
        StepKind::Sleep,
        StepKind::WaitForEvent,
        StepKind::SendEvent,
        StepKind::Invoke,
    ]
    .into_iter()
    .find(|k| k.as_str() == text)
    .ok_or_else(|| StoreError::corrupt(format!("step kind `{text}`")))
}

/// A stored step result (`{"data": ...}` or `{"error": {...}}`), kept as written.
pub(crate) fn step_result(raw: &RawJson) -> Result<StepResult> {
    serde_json::from_str(raw.0.get()).map_err(|e| StoreError::corrupt(format!("step result: {e}")))
}

/// A step result as stored.
pub(crate) fn result_text(result: &StepResult) -> Result<String> {
    serde_json::to_string(result).map_err(|e| StoreError::Internal(format!("step result: {e}")))
}

/// A run's steps in the order they were first seen, with their failed attempts.
pub(crate) async fn steps(conn: &mut PgConnection, id: RunId) -> Result<Vec<StepRecord>> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("run {id}")));
    }
    let attempts = sqlx::query(
        "SELECT step_id, attempt, error_name, error_message, at FROM run_step_attempts WHERE run_id = $1 \
         ORDER BY step_id, attempt",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut failed: BTreeMap<String, Vec<StepAttempt>> = BTreeMap::new();
    for a in &attempts {
        failed
            .entry(get(a, "step_id")?)
            .or_default()
            .push(StepAttempt {
                attempt: crate::codec::u32_of(get(a, "attempt")?, "attempt")?,
                error: StepError {
                    name: get(a, "error_name")?,
                    message: get(a, "error_message")?,
                },
                at: ts(a, "at")?,
            });
    }
    let rows = sqlx::query(
        "SELECT step_id, kind, result, started_at, recorded_at, until FROM run_steps WHERE run_id = $1 \
         ORDER BY seq",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let step: String = get(r, "step_id")?;
            let result = get::<Option<RawJson>>(r, "result")?
                .as_ref()
                .map(step_result)
                .transpose()?;
            Ok(StepRecord {
                failed_attempts: failed.remove(&step).unwrap_or_default(),
                id: step,
                kind: step_kind(get::<&str>(r, "kind")?)?,
                result,
                started_at: ts(r, "started_at")?,
                recorded_at: ts_opt(r, "recorded_at")?,
                until: ts_opt(r, "until")?,
            })
        })
        .collect()
}
