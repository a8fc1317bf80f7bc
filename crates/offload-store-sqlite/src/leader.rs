//! Leases on singleton work (leader election).
//!
//! Invariant: at most one node holds a named lease at a time, and `term` grows every time the lease changes
//! hands, so work fenced by the term from an old holder is recognisable. A holder renews without changing
//! the term; anyone may take a lease whose `expires_at <= now`, or one held by a node whose process is gone:
//! a store that holds the file's exclusive lock knows that every holder recorded before it opened the file
//! (see [`holders`]) died with its process, so a restart after a crash takes every lease at once.

use std::collections::HashSet;

use offload_core::Timestamp;
use offload_core::state::add;
use offload_store::{LeaderElectParams, LeaderResignParams, Leadership, Result};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get, micros};
use crate::error::db;

/// The nodes recorded as lease holders (read when the file is locked: they are all gone by then).
pub(crate) async fn holders(conn: &mut SqliteConnection) -> Result<HashSet<String>> {
    let nodes: Vec<String> = sqlx::query_scalar("SELECT DISTINCT node_id FROM leaders")
        .fetch_all(conn)
        .await
        .map_err(db)?;
    Ok(nodes.into_iter().collect())
}

/// Takes the lease if free, expired or held by a node of `gone`, renews it if held by this node, otherwise
/// reports the holder.
pub(crate) async fn elect(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: LeaderElectParams,
    gone: &HashSet<String>,
) -> Result<Leadership> {
    let expires_at = add(now, p.ttl);
    let row = sqlx::query("SELECT node_id, term, expires_at FROM leaders WHERE name = ?1")
        .bind(&p.name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let term = match row {
        None => 1,
        Some(row) => {
            let holder: String = get(&row, "node_id")?;
            let term: i64 = get(&row, "term")?;
            let held_until: i64 = get(&row, "expires_at")?;
            if holder == p.node_id {
                term
            } else if held_until > micros(now) && !gone.contains(&holder) {
                return Ok(Leadership {
                    is_leader: false,
                    term,
                    expires_at: codec::timestamp(held_until)?,
                });
            } else {
                term + 1
            }
        }
    };
    sqlx::query(
        "INSERT INTO leaders (name, node_id, term, expires_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id, term = excluded.term, \
         expires_at = excluded.expires_at",
    )
    .bind(&p.name)
    .bind(&p.node_id)
    .bind(term)
    .bind(micros(expires_at))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(Leadership {
        is_leader: true,
        term,
        expires_at,
    })
}

/// Ends this node's lease now (keeping the term, so the next holder's is higher).
pub(crate) async fn resign(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: LeaderResignParams,
) -> Result<()> {
    sqlx::query(
        "UPDATE leaders SET expires_at = ?1 WHERE name = ?2 AND node_id = ?3 AND expires_at > ?1",
    )
    .bind(micros(now))
    .bind(&p.name)
    .bind(&p.node_id)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}
