//! Flow counters recounted from the jobs they count, and set right where they drifted.
//!
//! Invariant: every writer changes a job and the counters that count it in one transaction, so one consistent
//! snapshot (a REPEATABLE READ, read-only transaction) sees counters and jobs agree unless a counter drifted;
//! [`offload_store::drift::drift`] says which did. Each fix then *adds* the drift found (never sets a value), in
//! a transaction of its own: moves committed since the snapshot changed counter and jobs alike, so the counter
//! plus its drift is the truth whatever ran meanwhile, and claims, ends and enqueues go on while it runs. Lock
//! order, as claims keep it (see `flow_claim`): the queue row (`FOR UPDATE`), the count shard, then the group
//! rows in (queue, group) order.
//!
//! The counters: `queue_groups.available` and `.running` (grouped jobs, as the triggers of migration 7 count
//! them) and the queue's available and running `queue_counts` (the sum of its shards).

use std::collections::BTreeMap;

use offload_store::drift::{CounterKey, drift};
use offload_store::{CounterRepair, FlowCounter, Result};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::counts;
use crate::error::db;

/// Recounts, fixes and reports the drifted counters.
pub(crate) async fn repair(conn: &mut PgConnection) -> Result<Vec<CounterRepair>> {
    let fixes = measure(conn).await?;
    let mut by_queue: BTreeMap<&str, Vec<&CounterRepair>> = BTreeMap::new();
    for fix in &fixes {
        by_queue.entry(fix.queue.as_str()).or_default().push(fix);
    }
    for (queue, fixes) in by_queue {
        apply(conn, queue, &fixes).await?;
    }
    Ok(fixes)
}

/// The drifted counters, read in one snapshot.
async fn measure(conn: &mut PgConnection) -> Result<Vec<CounterRepair>> {
    let mut tx = conn.begin().await.map_err(db)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let mut stored: BTreeMap<CounterKey, i64> = BTreeMap::new();
    let mut truth: BTreeMap<CounterKey, i64> = BTreeMap::new();
    let groups: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT queue, grp, available::int8, running::int8 FROM queue_groups \
         WHERE available <> 0 OR running <> 0",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let jobs: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT queue, grp, count(*) FILTER (WHERE state = 'available'), \
           count(*) FILTER (WHERE state = 'running') \
         FROM jobs WHERE grp IS NOT NULL AND state IN ('available', 'running') GROUP BY queue, grp",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    for (into, rows) in [(&mut stored, groups), (&mut truth, jobs)] {
        for (queue, grp, available, running) in rows {
            into.insert(
                (
                    queue.clone(),
                    Some(grp.clone()),
                    FlowCounter::GroupAvailable,
                ),
                available,
            );
            into.insert((queue, Some(grp), FlowCounter::GroupRunning), running);
        }
    }
    let kept: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT queue, state, sum(n)::int8 FROM queue_counts WHERE state IN ('available', 'running') \
         GROUP BY queue, state",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let real: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT queue, state, count(*) FROM jobs WHERE state IN ('available', 'running') GROUP BY queue, state",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    for (into, rows) in [(&mut stored, kept), (&mut truth, real)] {
        for (queue, state, n) in rows {
            let counter = if state == "available" {
                FlowCounter::QueueAvailable
            } else {
                FlowCounter::QueueRunning
            };
            into.insert((queue, None, counter), n);
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(drift(&stored, &truth))
}

/// Adds each fix's drift to its counter, for one queue, in one transaction.
async fn apply(conn: &mut PgConnection, queue: &str, fixes: &[&CounterRepair]) -> Result<()> {
    let mut tx = conn.begin().await.map_err(db)?;
    sqlx::query("SELECT 1 FROM queues WHERE name = $1 FOR UPDATE")
        .bind(queue)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let shard = counts::shard();
    // Shards in (queue, state) order: `available` before `running`.
    for (counter, state) in [
        (FlowCounter::QueueAvailable, "available"),
        (FlowCounter::QueueRunning, "running"),
    ] {
        if let Some(fix) = fixes.iter().find(|f| f.counter == counter) {
            sqlx::query(
                "INSERT INTO queue_counts AS c (queue, state, shard, n) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n",
            )
            .bind(queue)
            .bind(state)
            .bind(shard)
            .bind(fix.delta())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
    }
    // Group rows in group order, both counters of a group at once.
    let mut groups: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for fix in fixes {
        let Some(group) = fix.group.as_deref() else {
            continue;
        };
        let d = groups.entry(group).or_default();
        match fix.counter {
            FlowCounter::GroupAvailable => d.0 += fix.delta(),
            FlowCounter::GroupRunning => d.1 += fix.delta(),
            _ => {}
        }
    }
    for (group, (da, dr)) in groups {
        sqlx::query(
            "INSERT INTO queue_groups AS c (queue, grp, available, running) \
             VALUES ($1, $2, greatest($3::int4, 0), greatest($4::int4, 0)) \
             ON CONFLICT (queue, grp) DO UPDATE \
             SET available = greatest(c.available + $3::int4, 0), running = greatest(c.running + $4::int4, 0)",
        )
        .bind(queue)
        .bind(group)
        .bind(i32::try_from(da).unwrap_or(0))
        .bind(i32::try_from(dr).unwrap_or(0))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}
