//! Registered functions: put, get, list, remove, and an app's whole set in one sync.
//!
//! Invariant: a function's row and its `function_events` (the event names it listens to, for fan-out) change
//! together in the writer's transaction. A removed function keeps its row with `deleted_at`, so its runs keep
//! their definition; it is hidden from reads and starts no runs. Specs are validated again when read. A function
//! that declares `concurrency` or `throttle` writes them as its queue's limits in the same transaction.

use jiff::Timestamp;
use offload_core::function::definition::{Function, FunctionSpec, Trigger};
use offload_store::{
    AppSyncParams, AppSynced, FunctionListParams, FunctionPut, FunctionPutParams, FunctionRecord,
    Result, StoreError,
};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{self, get, micros};
use crate::error::db;

/// Columns of a function read.
const COLUMNS: &str = "id, spec, app, created_at, updated_at";

fn record(row: &SqliteRow) -> Result<FunctionRecord> {
    let id: String = get(row, "id")?;
    let text: String = get(row, "spec")?;
    let spec: Value = serde_json::from_str(&text)
        .map_err(|e| StoreError::corrupt(format!("function {id}: {e}")))?;
    Ok(FunctionRecord {
        function: validate(&id, &spec)?,
        spec,
        app: get(row, "app")?,
        created_at: codec::timestamp(get(row, "created_at")?)?,
        updated_at: codec::timestamp(get(row, "updated_at")?)?,
    })
}

fn validate(id: &str, spec: &Value) -> Result<Function> {
    serde_json::from_value::<FunctionSpec>(spec.clone())
        .map_err(|e| StoreError::corrupt(format!("function {id}: {e}")))?
        .validate(Some(id))
        .map_err(|e| StoreError::corrupt(format!("function {id}: {e}")))
}

/// One function; `removed` also finds a removed one (the definition its runs keep using).
pub(crate) async fn load(
    conn: &mut SqliteConnection,
    id: &str,
    removed: bool,
) -> Result<Option<FunctionRecord>> {
    let sql = if removed {
        "SELECT id, spec, app, created_at, updated_at FROM functions WHERE id = ?1"
    } else {
        "SELECT id, spec, app, created_at, updated_at FROM functions WHERE id = ?1 AND deleted_at IS NULL"
    };
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db)?
        .as_ref()
        .map(record)
        .transpose()
}

/// Registers or replaces a function.
pub(crate) async fn put(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: FunctionPutParams,
) -> Result<FunctionPut> {
    let (record, created) = write(conn, now, &p.function, &p.spec, p.app.as_deref()).await?;
    Ok(FunctionPut { record, created })
}

/// Writes one function (and its event names); true when it was new (or removed before).
async fn write(
    conn: &mut SqliteConnection,
    now: Timestamp,
    function: &Function,
    spec: &Value,
    app: Option<&str>,
) -> Result<(FunctionRecord, bool)> {
    let existing = load(conn, &function.id, false).await?;
    let text = spec.to_string();
    sqlx::query(
        "INSERT INTO functions (id, spec, app, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT (id) DO UPDATE SET spec = ?2, app = ?3, updated_at = ?4, deleted_at = NULL, \
           created_at = CASE WHEN functions.deleted_at IS NULL THEN functions.created_at ELSE ?4 END",
    )
    .bind(&function.id)
    .bind(&text)
    .bind(app)
    .bind(micros(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query("DELETE FROM function_events WHERE function_id = ?1")
        .bind(&function.id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let names = function
        .triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Event { name, .. } => Some((name.as_str(), "trigger")),
            Trigger::Cron(_) => None,
        })
        .chain(
            function
                .cancel_on
                .iter()
                .map(|c| (c.event.as_str(), "cancel")),
        );
    for (name, kind) in names {
        sqlx::query(
            "INSERT OR IGNORE INTO function_events (name, kind, function_id) VALUES (?1, ?2, ?3)",
        )
        .bind(name)
        .bind(kind)
        .bind(&function.id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    if let Some(patch) = function.flow.queue_patch() {
        crate::queues::apply_limits(conn, now, &function.queue, patch).await?;
    }
    crate::function_cron::register(conn, now, function).await?;
    let record = FunctionRecord {
        function: function.clone(),
        spec: spec.clone(),
        app: app.map(str::to_owned),
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    Ok((record, existing.is_none()))
}

/// One function that is not removed.
pub(crate) async fn get_one(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<FunctionRecord>> {
    load(conn, id, false).await
}

/// A page of functions by id.
pub(crate) async fn list(
    conn: &mut SqliteConnection,
    p: &FunctionListParams,
) -> Result<Vec<FunctionRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM functions WHERE deleted_at IS NULL \
         AND (?1 IS NULL OR app = ?1) AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
    )))
    .bind(p.app.as_deref())
    .bind(p.after.as_deref())
    .bind(i64::from(p.limit))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter().map(record).collect()
}

/// Removes a function: hidden, starts no runs; its runs keep going.
pub(crate) async fn delete(conn: &mut SqliteConnection, now: Timestamp, id: &str) -> Result<()> {
    let done = sqlx::query(
        "UPDATE functions SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(micros(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("function {id}")));
    }
    crate::function_cron::forget(conn, id).await
}

/// Replaces an app's set: each function created, updated (its spec changed, or it belonged elsewhere) or
/// unchanged; the app's functions missing from the set removed.
pub(crate) async fn sync(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: AppSyncParams,
) -> Result<AppSynced> {
    let mut out = AppSynced::default();
    for (function, spec) in &p.functions {
        match load(conn, &function.id, false).await? {
            Some(old) if old.spec == *spec && old.app.as_deref() == Some(p.app.as_str()) => {
                out.unchanged.push(function.id.clone());
            }
            Some(_) => {
                write(conn, now, function, spec, Some(&p.app)).await?;
                out.updated.push(function.id.clone());
            }
            None => {
                write(conn, now, function, spec, Some(&p.app)).await?;
                out.created.push(function.id.clone());
            }
        }
    }
    let ids: Vec<&str> = p.functions.iter().map(|(f, _)| f.id.as_str()).collect();
    let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Internal(e.to_string()))?;
    let removed: Vec<String> = sqlx::query_scalar(
        "UPDATE functions SET deleted_at = ?3, updated_at = ?3 WHERE app = ?1 AND deleted_at IS NULL \
         AND id NOT IN (SELECT value FROM json_each(?2)) RETURNING id",
    )
    .bind(&p.app)
    .bind(ids)
    .bind(micros(now))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for id in &removed {
        crate::function_cron::forget(conn, id).await?;
    }
    out.removed = removed;
    out.removed.sort();
    out.created.sort();
    out.updated.sort();
    out.unchanged.sort();
    Ok(out)
}
