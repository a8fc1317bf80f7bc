//! Jobs per (queue, state), kept in the same transaction as every change.
//!
//! Invariant: for each (queue, state), the sum of `queue_counts.n` over its shards equals the number of jobs in
//! that queue and state, at every commit. A statement that creates, moves or deletes jobs adds its changes in
//! the same statement, either through [`cte`] (counting the rows the statement itself touched, when SQL picks
//! them) or through [`bound_cte`] (changes decided in Rust, bound as arrays; [`Counts::flush`] for a statement
//! of their own), always to one random shard and in (queue, state) order, so two transactions never lock count
//! rows in opposite orders. Readers sum the shards.

use std::collections::BTreeMap;

use offload_core::JobState;
use offload_store::Result;
use sqlx::postgres::PgConnection;

use crate::error::db;

/// Shards per (queue, state); only contention depends on it (readers sum whatever shards exist).
const SHARDS: i16 = 16;

/// The shard one statement adds its changes to.
pub(crate) fn shard() -> i16 {
    fastrand::i16(0..SHARDS)
}

/// A data-modifying CTE, named `counted`, that adds the `(queue, state, n)` rows produced by the query `deltas`
/// to shard `shard` (a placeholder such as `$5`). Data-modifying CTEs run even when nothing refers to them.
pub(crate) fn cte(deltas: &str, shard: &str) -> String {
    format!(
        "counted AS (
    INSERT INTO queue_counts AS c (queue, state, shard, n)
    SELECT queue, state, {shard}::int2, sum(n) FROM ({deltas}) AS d (queue, state, n)
    GROUP BY queue, state HAVING sum(n) <> 0 ORDER BY queue, state
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n)"
    )
}

/// A data-modifying CTE, named `counted`, that adds changes passed as three parallel arrays (queue, state, n:
/// the placeholders `q`, `s`, `n`, see [`Counts::arrays`]) to shard `shard`.
pub(crate) fn bound_cte(q: &str, s: &str, n: &str, shard: &str) -> String {
    format!(
        "counted AS (
    INSERT INTO queue_counts AS c (queue, state, shard, n)
    SELECT uq, us, {shard}::int2, un FROM unnest({q}::text[], {s}::text[], {n}::int8[]) AS u (uq, us, un)
    ORDER BY uq, us
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n)"
    )
}

/// Count changes decided in Rust, not yet written.
#[derive(Debug, Default)]
pub(crate) struct Counts(BTreeMap<(String, JobState), i64>);

impl Counts {
    /// `n` jobs of `queue` entered `state` (negative: left it).
    pub(crate) fn add(&mut self, queue: &str, state: JobState, n: i64) {
        match self.0.get_mut(&(queue.to_owned(), state)) {
            Some(v) => *v += n,
            None => {
                self.0.insert((queue.to_owned(), state), n);
            }
        }
    }

    /// One job of `queue` moved from `from` to `to`.
    pub(crate) fn moved(&mut self, queue: &str, from: JobState, to: JobState) {
        if from != to {
            self.add(queue, from, -1);
            self.add(queue, to, 1);
        }
    }

    /// The non-zero changes as three parallel arrays (queue, state, n), for [`bound_cte`].
    pub(crate) fn arrays(self) -> (Vec<String>, Vec<&'static str>, Vec<i64>) {
        let mut queues = Vec::new();
        let mut states = Vec::new();
        let mut ns = Vec::new();
        for ((queue, state), n) in self.0 {
            if n != 0 {
                queues.push(queue);
                states.push(state.as_str());
                ns.push(n);
            }
        }
        (queues, states, ns)
    }

    /// Adds the changes to `queue_counts`, in one statement.
    pub(crate) async fn flush(self, conn: &mut PgConnection) -> Result<()> {
        let (queues, states, ns) = self.arrays();
        if queues.is_empty() {
            return Ok(());
        }
        let sql = format!("WITH {} SELECT 1", bound_cte("$1", "$2", "$3", "$4"));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(queues)
            .bind(states)
            .bind(ns)
            .bind(shard())
            .execute(conn)
            .await
            .map_err(db)?;
        Ok(())
    }
}
