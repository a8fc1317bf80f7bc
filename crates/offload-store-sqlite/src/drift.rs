//! Flow counters recounted from the jobs they count, and set right where they drifted.
//!
//! Invariant: runs as one writer operation, so the counters and the jobs are read in one transaction that no
//! other write interleaves with; the queue counts the writer group has not flushed yet (`Counts::pending`) are
//! part of the stored side, and a fix of a queue count goes through the group's own counts. What drifted is
//! [`offload_store::drift::drift`]'s call. The counters: `queue_groups.available` and `.running` (grouped pull
//! jobs, as the triggers of migration 7 count them), the queue's available and running `queue_counts`, and
//! `queues.grouped_available` (for queues with a row).

use std::collections::{BTreeMap, BTreeSet};

use offload_core::JobState;
use offload_store::drift::{CounterKey, drift};
use offload_store::{CounterRepair, FlowCounter, Result};
use sqlx::sqlite::SqliteConnection;

use crate::counts::Counts;
use crate::error::db;

/// Recounts, fixes and reports the drifted counters.
pub(crate) async fn repair(
    conn: &mut SqliteConnection,
    counts: &mut Counts,
) -> Result<Vec<CounterRepair>> {
    let mut stored: BTreeMap<CounterKey, i64> = BTreeMap::new();
    let mut truth: BTreeMap<CounterKey, i64> = BTreeMap::new();

    let groups: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT queue, grp, available, running FROM queue_groups WHERE available <> 0 OR running <> 0",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for (queue, grp, available, running) in groups {
        stored.insert(
            (
                queue.clone(),
                Some(grp.clone()),
                FlowCounter::GroupAvailable,
            ),
            available,
        );
        stored.insert((queue, Some(grp), FlowCounter::GroupRunning), running);
    }
    let jobs: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT queue, grp, sum(state = 'available'), sum(state = 'running') FROM jobs \
         WHERE grp IS NOT NULL AND target IS NULL AND state IN ('available', 'running') GROUP BY queue, grp",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut grouped_available: BTreeMap<String, i64> = BTreeMap::new();
    for (queue, grp, available, running) in jobs {
        *grouped_available.entry(queue.clone()).or_default() += available;
        truth.insert(
            (
                queue.clone(),
                Some(grp.clone()),
                FlowCounter::GroupAvailable,
            ),
            available,
        );
        truth.insert((queue, Some(grp), FlowCounter::GroupRunning), running);
    }

    let queues: Vec<(String, i64)> = sqlx::query_as("SELECT name, grouped_available FROM queues")
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    for (queue, n) in queues {
        let real = grouped_available.get(&queue).copied().unwrap_or(0);
        truth.insert(
            (queue.clone(), None, FlowCounter::QueueGroupedAvailable),
            real,
        );
        stored.insert((queue, None, FlowCounter::QueueGroupedAvailable), n);
    }

    let kept: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT queue, state, n FROM queue_counts WHERE state IN ('available', 'running')",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut counted: BTreeSet<(String, FlowCounter)> = BTreeSet::new();
    for (queue, state, n) in kept {
        let (state, counter) = match state.as_str() {
            "available" => (JobState::Available, FlowCounter::QueueAvailable),
            _ => (JobState::Running, FlowCounter::QueueRunning),
        };
        counted.insert((queue.clone(), counter));
        let n = n + counts.pending(&queue, state);
        stored.insert((queue, None, counter), n);
    }
    let real: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT queue, state, count(*) FROM jobs WHERE state IN ('available', 'running') GROUP BY queue, state",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for (queue, state, n) in real {
        let (state, counter) = match state.as_str() {
            "available" => (JobState::Available, FlowCounter::QueueAvailable),
            _ => (JobState::Running, FlowCounter::QueueRunning),
        };
        if !counted.contains(&(queue.clone(), counter)) {
            // No row yet: the group's own changes so far are all that is stored.
            stored.insert(
                (queue.clone(), None, counter),
                counts.pending(&queue, state),
            );
        }
        truth.insert((queue, None, counter), n);
    }

    let fixes = drift(&stored, &truth);
    for fix in &fixes {
        write(conn, counts, fix).await?;
    }
    Ok(fixes)
}

/// Sets one counter to its truth.
async fn write(
    conn: &mut SqliteConnection,
    counts: &mut Counts,
    fix: &CounterRepair,
) -> Result<()> {
    let group = fix.group.as_deref().unwrap_or_default();
    let sql = match fix.counter {
        FlowCounter::QueueAvailable => {
            counts.add(&fix.queue, JobState::Available, fix.delta());
            return Ok(());
        }
        FlowCounter::QueueRunning => {
            counts.add(&fix.queue, JobState::Running, fix.delta());
            return Ok(());
        }
        FlowCounter::QueueGroupedAvailable => {
            "UPDATE queues SET grouped_available = ?3 WHERE name = ?1 AND ?2 = ''"
        }
        FlowCounter::GroupAvailable => {
            "INSERT INTO queue_groups (queue, grp, available) VALUES (?1, ?2, ?3) \
             ON CONFLICT (queue, grp) DO UPDATE SET available = excluded.available"
        }
        FlowCounter::GroupRunning => {
            "INSERT INTO queue_groups (queue, grp, running) VALUES (?1, ?2, ?3) \
             ON CONFLICT (queue, grp) DO UPDATE SET running = excluded.running"
        }
    };
    sqlx::query(sql)
        .bind(&fix.queue)
        .bind(group)
        .bind(fix.now)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}
