//! Server settings kept in the database: values every node and every restart must agree on.
//!
//! Invariant: a setting, once stored, never changes through [`init`]; the first value stored wins.

use offload_core::Timestamp;
use offload_store::{Result, SettingInitParams};
use sqlx::sqlite::SqliteConnection;

use crate::codec::micros;
use crate::error::db;

/// Stores the setting unless it exists; returns the stored value (one statement: the no-op update makes
/// `RETURNING` answer the existing row).
pub(crate) async fn init(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: SettingInitParams,
) -> Result<String> {
    sqlx::query_scalar(
        "INSERT INTO settings (name, value, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING value",
    )
    .bind(p.name)
    .bind(p.value)
    .bind(micros(now))
    .fetch_one(conn)
    .await
    .map_err(db)
}
