//! Server settings kept in the database: values every node and every restart must agree on.
//!
//! Invariant: a setting, once stored, never changes through [`init`]; the first value stored wins, also when
//! several servers start at once (the primary key decides, and the loser reads the winner's value). A setting
//! that exists is only read.

use offload_core::Timestamp;
use offload_store::{Result, SettingInitParams};
use sqlx::postgres::PgConnection;

use crate::codec::Ts;
use crate::error::db;

/// Returns the stored setting, storing it first unless it exists. A setting that exists is only read (a
/// restart needs no write); a missing one is stored in one statement (the no-op update makes `RETURNING`
/// answer the existing row, and locks it against a concurrent first insert).
pub(crate) async fn init(
    conn: &mut PgConnection,
    now: Timestamp,
    p: SettingInitParams,
) -> Result<String> {
    let stored: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(&p.name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if let Some(value) = stored {
        return Ok(value);
    }
    sqlx::query_scalar(
        "INSERT INTO settings (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING value",
    )
    .bind(p.name)
    .bind(p.value)
    .bind(Ts(now))
    .fetch_one(conn)
    .await
    .map_err(db)
}
