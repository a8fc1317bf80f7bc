//! Leases on singleton work (leader election).
//!
//! Invariant: at most one node holds a named lease at a time, and `term` grows every time the lease changes
//! hands, so work fenced by the term from an old holder is recognisable. A holder renews without changing
//! the term; anyone may take a lease whose `expires_at <= now`. Taking or renewing is one statement (an upsert
//! whose update only applies to the holder or an expired lease), so two nodes racing for a free lease cannot
//! both win: the row lock orders them and the second sees the first's lease.

use offload_core::Timestamp;
use offload_core::state::add;
use offload_store::{LeaderElectParams, LeaderResignParams, Leadership, Result, StoreError};
use sqlx::postgres::PgConnection;

use crate::codec::{Ts, get, ts};
use crate::error::db;

/// Takes the lease if free or expired, renews it if held by this node, otherwise reports the holder.
pub(crate) async fn elect(
    conn: &mut PgConnection,
    now: Timestamp,
    p: LeaderElectParams,
) -> Result<Leadership> {
    let expires_at = crate::codec::stored_precision(add(now, p.ttl));
    let won = sqlx::query(
        "INSERT INTO leaders AS l (name, node_id, term, expires_at) VALUES ($1, $2, 1, $3) \
         ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id, \
           term = CASE WHEN l.node_id = excluded.node_id THEN l.term ELSE l.term + 1 END, \
           expires_at = excluded.expires_at \
         WHERE l.node_id = excluded.node_id OR l.expires_at <= $4 \
         RETURNING term",
    )
    .bind(&p.name)
    .bind(&p.node_id)
    .bind(Ts(expires_at))
    .bind(Ts(now))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    if let Some(row) = won {
        return Ok(Leadership {
            is_leader: true,
            term: get(&row, "term")?,
            expires_at,
        });
    }
    let row = sqlx::query("SELECT term, expires_at FROM leaders WHERE name = $1")
        .bind(&p.name)
        .fetch_optional(conn)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::Internal(format!("lease {} vanished", p.name)))?;
    Ok(Leadership {
        is_leader: false,
        term: get(&row, "term")?,
        expires_at: ts(&row, "expires_at")?,
    })
}

/// Ends this node's lease now (keeping the term, so the next holder's is higher).
pub(crate) async fn resign(
    conn: &mut PgConnection,
    now: Timestamp,
    p: LeaderResignParams,
) -> Result<()> {
    sqlx::query(
        "UPDATE leaders SET expires_at = $1 WHERE name = $2 AND node_id = $3 AND expires_at > $1",
    )
    .bind(Ts(now))
    .bind(&p.name)
    .bind(&p.node_id)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}
