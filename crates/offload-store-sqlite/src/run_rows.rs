//! A run's rows on the write path: the run, its step records (each written once), its pending steps, its
//! state, its cancel keys, and which jobs are its calls.
//!
//! Invariant: a step's result columns are only filled while empty, so a step is recorded once whatever repeats
//! its report; the run's `steps` and `state_bytes` grow with each record written.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use offload_core::function::definition::Function;
use offload_core::function::protocol::{Json, StepError, StepResult};
use offload_core::function::record::{NewStepRecord, StepKind, result_bytes};
use offload_core::function::run::{RunId, RunState};
use offload_store::fanout::cancel_keys;
use offload_store::{Result, StoreError};
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{get, micros};
use crate::error::db;

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

pub(crate) async fn load_run_seq(conn: &mut SqliteConnection, seq: i64) -> Result<Option<Run>> {
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

/// Notes a step that is not recorded yet (a parked step, a failing step, a planned parallel step). A planned
/// step stays planned while it fails and retries.
pub(crate) async fn pending(
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
         ON CONFLICT (run_seq, step_id) DO UPDATE SET kind = excluded.kind, \
           planned = max(run_steps.planned, excluded.planned), until = excluded.until \
         WHERE run_steps.result_kind IS NULL",
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

pub(crate) async fn set_state(
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

/// Stores how the events that cancel a live run find it ([`cancel_keys`]).
pub(crate) async fn write_cancel_keys(
    conn: &mut SqliteConnection,
    run_seq: i64,
    function: &Function,
    event: &str,
) -> Result<()> {
    if function.cancel_on.is_empty() {
        return Ok(());
    }
    let event: serde_json::Value =
        serde_json::from_str(event).map_err(|e| StoreError::corrupt(format!("run event: {e}")))?;
    for k in cancel_keys(&function.cancel_on, &event) {
        sqlx::query(
            "INSERT INTO run_cancel_keys (event_name, match_path, match_key, run_seq) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&k.event)
        .bind(&k.path)
        .bind(&k.key)
        .bind(run_seq)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
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
