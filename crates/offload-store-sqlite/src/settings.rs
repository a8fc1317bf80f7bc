//! Server settings kept in the database: values every node and every restart must agree on.
//!
//! Invariant: a setting, once stored, never changes through [`init`]; the first value stored wins. Reading a
//! setting that exists ([`get`]) needs no write, so a server restarting on a full disk still reads it.

use offload_core::Timestamp;
use offload_store::{Result, SettingInitParams};
use sqlx::sqlite::SqliteConnection;

use crate::codec::micros;
use crate::error::db;

/// The stored value of a setting, if any.
pub(crate) async fn get(conn: &mut SqliteConnection, name: &str) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT value FROM settings WHERE name = ?1")
        .bind(name)
        .fetch_optional(conn)
        .await
        .map_err(db)
}

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
