//! Registered functions: put, get, list, remove, and an app's whole set in one transaction.
//!
//! Invariant: a function's row holds the definition exactly as registered (`spec`), re-validated on every read,
//! and the event names its triggers and `cancel_on` rules name (for fan-out's index). Removing a function only
//! stamps `deleted_at`: it is hidden and starts no runs, while its runs' calls still read the definition. A
//! function that declares `concurrency` or `throttle` writes them as its queue's limits in the same transaction.

use offload_core::Timestamp;
use offload_core::function::definition::{Function, FunctionSpec, Trigger};
use offload_store::{
    AppSyncParams, AppSynced, FunctionListParams, FunctionPut, FunctionPutParams, FunctionRecord,
    Result, StoreError,
};
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgRow};

use crate::codec::{RawJson, Ts, get, ts};
use crate::error::db;

/// The columns [`record`] reads.
const COLUMNS: &str = "id, spec, app, created_at, updated_at";

/// A stored function, re-validated.
fn record(row: &PgRow) -> Result<FunctionRecord> {
    let id: String = get(row, "id")?;
    let spec: RawJson = get(row, "spec")?;
    let spec: Value = serde_json::from_str(spec.0.get())
        .map_err(|e| StoreError::corrupt(format!("function {id}: {e}")))?;
    let function = parse(&id, &spec)?;
    Ok(FunctionRecord {
        function,
        spec,
        app: get(row, "app")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// The definition of function `id` from its registered form.
pub(crate) fn parse(id: &str, spec: &Value) -> Result<Function> {
    let parsed: FunctionSpec = serde_json::from_value(spec.clone())
        .map_err(|e| StoreError::corrupt(format!("function {id}: {e}")))?;
    parsed
        .validate(Some(id))
        .map_err(|e| StoreError::corrupt(format!("function {id}: {}: {}", e.field, e.message)))
}

/// The event names that start runs of `f`.
fn trigger_events(f: &Function) -> Vec<&str> {
    f.triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Event { name, .. } => Some(name.as_str()),
            Trigger::Cron(_) => None,
        })
        .collect()
}

/// The event names that cancel runs of `f`.
fn cancel_events(f: &Function) -> Vec<&str> {
    f.cancel_on.iter().map(|c| c.event.as_str()).collect()
}

/// A function's row, removed or not, locked.
async fn locked(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<(Value, Option<String>, bool)>> {
    let row = sqlx::query("SELECT spec, app, deleted_at IS NOT NULL AS removed FROM functions WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    row.map(|r| {
        let spec: RawJson = get(&r, "spec")?;
        let spec: Value = serde_json::from_str(spec.0.get())
            .map_err(|e| StoreError::corrupt(format!("function {id}: {e}")))?;
        Ok((spec, get(&r, "app")?, get(&r, "removed")?))
    })
    .transpose()
}

/// Writes a function (new, replaced, or brought back after a removal); the row is locked by the caller.
async fn write(
    conn: &mut PgConnection,
    now: Timestamp,
    function: &Function,
    spec: &Value,
    app: Option<&str>,
    fresh: bool,
) -> Result<FunctionRecord> {
    let spec_text = serde_json::to_string(spec).map_err(|e| StoreError::Internal(e.to_string()))?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO functions AS f (id, spec, app, trigger_events, cancel_events, created_at, updated_at)
         VALUES ($1, $2::json, $3, $4, $5, $6, $6)
         ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, app = excluded.app,
             trigger_events = excluded.trigger_events, cancel_events = excluded.cancel_events,
             updated_at = excluded.updated_at, deleted_at = NULL,
             created_at = CASE WHEN $7 THEN excluded.created_at ELSE f.created_at END
         RETURNING {COLUMNS}"
    )))
    .bind(&function.id)
    .bind(spec_text)
    .bind(app)
    .bind(trigger_events(function))
    .bind(cancel_events(function))
    .bind(Ts(now))
    .bind(fresh)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    if let Some(patch) = function.flow.queue_patch() {
        crate::flow::apply_limits(conn, now, &function.queue, patch).await?;
    }
    crate::function_cron::register(conn, now, function).await?;
    record(&row)
}

/// Registers or replaces one function.
pub(crate) async fn put(
    conn: &mut PgConnection,
    now: Timestamp,
    p: FunctionPutParams,
) -> Result<FunctionPut> {
    let mut tx = conn.begin().await.map_err(db)?;
    let created = locked(&mut tx, &p.function.id)
        .await?
        .is_none_or(|(_, _, removed)| removed);
    let record = write(
        &mut tx,
        now,
        &p.function,
        &p.spec,
        p.app.as_deref(),
        created,
    )
    .await?;
    tx.commit().await.map_err(db)?;
    Ok(FunctionPut { record, created })
}

/// One function that is not removed.
pub(crate) async fn get_one(conn: &mut PgConnection, id: &str) -> Result<Option<FunctionRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM functions WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(db)?;
    row.as_ref().map(record).transpose()
}

/// A function's definition whether removed or not (its runs' calls still need it).
pub(crate) async fn definition(conn: &mut PgConnection, id: &str) -> Result<Option<Function>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM functions WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(db)?;
    Ok(row.as_ref().map(record).transpose()?.map(|r| r.function))
}

/// A page of functions that are not removed, by id.
pub(crate) async fn list(
    conn: &mut PgConnection,
    p: FunctionListParams,
) -> Result<Vec<FunctionRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM functions WHERE deleted_at IS NULL AND ($1::text IS NULL OR app = $1)
         AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3"
    )))
    .bind(p.app)
    .bind(p.after)
    .bind(i64::from(p.limit))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter().map(record).collect()
}

/// Removes a function (it starts no more runs; its runs keep going).
pub(crate) async fn delete(conn: &mut PgConnection, now: Timestamp, id: &str) -> Result<()> {
    let done = sqlx::query("UPDATE functions SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(Ts(now))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("function {id}")));
    }
    crate::function_cron::forget(conn, id).await
}

/// Replaces an app's set: the given functions are created, updated or left alone; the app's other functions are
/// removed (their runs keep going).
pub(crate) async fn app_sync(
    conn: &mut PgConnection,
    now: Timestamp,
    p: AppSyncParams,
) -> Result<AppSynced> {
    let mut tx = conn.begin().await.map_err(db)?;
    // The app's functions, locked, so two syncs of one app apply one after the other.
    let current: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM functions WHERE app = $1 AND deleted_at IS NULL ORDER BY id FOR UPDATE",
    )
    .bind(&p.app)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut out = AppSynced::default();
    let mut functions = p.functions;
    functions.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    for (function, spec) in &functions {
        let id = function.id.clone();
        match locked(&mut tx, &id).await? {
            Some((_, _, true)) | None => {
                write(&mut tx, now, function, spec, Some(&p.app), true).await?;
                out.created.push(id);
            }
            Some((old, app, false)) if old == *spec && app.as_deref() == Some(p.app.as_str()) => {
                out.unchanged.push(id);
            }
            Some(_) => {
                write(&mut tx, now, function, spec, Some(&p.app), false).await?;
                out.updated.push(id);
            }
        }
    }
    for id in current {
        if functions.iter().all(|(f, _)| f.id != id) {
            delete(&mut tx, now, &id).await?;
            out.removed.push(id);
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(out)
}
