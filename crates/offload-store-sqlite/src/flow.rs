//! A queue's flow-control state as stored, and the usage reads admission needs.
//!
//! Invariant: reads only, and no decisions: what a limit allows is [`offload_core::flow::admission::admit`]'s
//! call. Usage comes from where it is exact: the queue's running jobs from `queue_counts` (exact at every
//! commit; inside the writer plus the group's changes so far, `Counts::pending`), a group's from `queue_groups`
//! (kept by row triggers), throttle TATs from `queues` and `queue_groups`.

use std::collections::BTreeMap;
use std::time::Duration;

use offload_core::Timestamp;
use offload_core::flow::admission::{Candidate, Usage, WaitingFor, admit};
use offload_core::flow::gcra::Gcra;
use offload_core::flow::held::{HeldJobs, WaitingGroup};
use offload_core::flow::limits::{QueueLimits, ThrottleSpec};
use offload_store::Result;
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get};
use crate::error::db;

/// The `queue_groups` row holding the throttle bucket of the jobs without a group.
pub(crate) const UNGROUPED: &str = "";

/// A queue's stored flow-control row.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueFlow {
    /// Paused queues hand out nothing.
    pub(crate) paused: bool,
    /// The limits (the default when none are set).
    pub(crate) limits: QueueLimits,
    /// The queue throttle's TAT.
    pub(crate) throttle_tat: Option<Timestamp>,
    /// When jobs without a group were last served (fair order), unix microseconds.
    pub(crate) ungrouped_served_at: Option<i64>,
    /// The last `served_at` handed out, unix microseconds.
    pub(crate) last_served_at: Option<i64>,
    /// Available grouped pull jobs of the queue.
    pub(crate) grouped_available: i64,
    /// Available jobs of the queue as last committed (without the writer group's changes so far: see
    /// `Counts::pending`).
    pub(crate) available: i64,
    /// Running jobs of the queue as last committed (the same).
    pub(crate) running: i64,
}

/// The queue's row, if it has one.
pub(crate) async fn queue_flow(
    conn: &mut SqliteConnection,
    queue: &str,
) -> Result<Option<QueueFlow>> {
    let row = sqlx::query(
        "SELECT paused, limits, throttle_tat, ungrouped_served_at, last_served_at, grouped_available, \
           (SELECT n FROM queue_counts WHERE queue = ?1 AND state = 'available') AS available, \
           (SELECT n FROM queue_counts WHERE queue = ?1 AND state = 'running') AS running \
         FROM queues WHERE name = ?1",
    )
    .bind(queue)
    .fetch_optional(conn)
    .await
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(QueueFlow {
        paused: get::<i64>(&row, "paused")? != 0,
        limits: offload_store::codec::limits(get::<Option<&str>>(&row, "limits")?)?,
        throttle_tat: get::<Option<i64>>(&row, "throttle_tat")?
            .map(codec::timestamp)
            .transpose()?,
        ungrouped_served_at: get(&row, "ungrouped_served_at")?,
        last_served_at: get(&row, "last_served_at")?,
        grouped_available: get(&row, "grouped_available")?,
        available: get::<Option<i64>>(&row, "available")?.unwrap_or(0),
        running: get::<Option<i64>>(&row, "running")?.unwrap_or(0),
    }))
}

/// A count as a `u32` (counts are never negative; a corrupt negative one reads as 0).
pub(crate) fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// A group's running jobs and throttle TAT (`UNGROUPED` for the jobs without a group).
pub(crate) async fn group_usage(
    conn: &mut SqliteConnection,
    queue: &str,
    group: &str,
) -> Result<(u32, Option<Timestamp>)> {
    let row: Option<(i64, Option<i64>)> =
        sqlx::query_as("SELECT running, tat FROM queue_groups WHERE queue = ?1 AND grp = ?2")
            .bind(queue)
            .bind(group)
            .fetch_optional(conn)
            .await
            .map_err(db)?;
    match row {
        None => Ok((0, None)),
        Some((running, tat)) => Ok((
            u32::try_from(running).unwrap_or(0),
            tat.map(codec::timestamp).transpose()?,
        )),
    }
}

/// How far ahead of `now` a throttle TAT may be and still allow a start: the GCRA's burst tolerance. Used only
/// to skip throttled groups when listing candidates; admission still decides.
pub(crate) fn tolerance(throttle: &ThrottleSpec) -> Duration {
    Gcra::new(throttle.limit, throttle.period.0, throttle.burst).tolerance()
}

/// Why an available job of `group` in `queue` would not start now (`None`: it would, or the queue has no
/// limits): admission asked about that one job against the queue's usage.
pub(crate) async fn waiting_for(
    conn: &mut SqliteConnection,
    now: Timestamp,
    queue: &str,
    group: Option<&str>,
) -> Result<Option<WaitingFor>> {
    let Some(flow) = queue_flow(conn, queue).await? else {
        return Ok(None);
    };
    let limits = flow.limits;
    if flow.paused || limits.is_unlimited() {
        return Ok(None);
    }
    let mut usage = Usage {
        queue_tat: flow.throttle_tat,
        ..Usage::default()
    };
    usage.running = count(flow.running);
    let (group_running, tat) = group_usage(conn, queue, group.unwrap_or(UNGROUPED)).await?;
    if let Some(g) = group {
        usage.group_running = BTreeMap::from([(g.to_owned(), group_running)]);
    }
    if let Some(tat) = tat {
        usage.group_tats = BTreeMap::from([(group.unwrap_or(UNGROUPED).to_owned(), tat)]);
    }
    let admission = admit(&limits, usage, &[Candidate { group }], 1, now);
    Ok(admission.held.first().map(|(_, why)| *why))
}

/// Most groups with available jobs [`held`] lists (least recently served first, as claims take them).
const HELD_GROUPS: i64 = 1000;

/// How many of `queue`'s available jobs its limits hold now, by kind (none for a queue without limits, or a
/// paused one): [`offload_core::flow::held::held`] over the queue's usage and its first [`HELD_GROUPS`]
/// groups with available jobs, plus the jobs without a group.
pub(crate) async fn held(
    conn: &mut SqliteConnection,
    now: Timestamp,
    queue: &str,
) -> Result<HeldJobs> {
    let Some(flow) = queue_flow(conn, queue).await? else {
        return Ok(HeldJobs::default());
    };
    if flow.paused || flow.limits.is_unlimited() {
        return Ok(HeldJobs::default());
    }
    let rows: Vec<(String, i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT grp, available, running, tat FROM queue_groups INDEXED BY queue_groups_turn \
         WHERE queue = ?1 AND available > 0 AND grp <> '' ORDER BY served_at, grp LIMIT ?2",
    )
    .bind(queue)
    .bind(HELD_GROUPS)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut usage = Usage {
        running: count(flow.running),
        queue_tat: flow.throttle_tat,
        ..Usage::default()
    };
    let (_, ungrouped_tat) = group_usage(conn, queue, UNGROUPED).await?;
    if let Some(tat) = ungrouped_tat {
        usage.group_tats.insert(UNGROUPED.to_owned(), tat);
    }
    for (grp, _, running, tat) in &rows {
        usage.group_running.insert(grp.clone(), count(*running));
        if let Some(tat) = tat {
            usage
                .group_tats
                .insert(grp.clone(), codec::timestamp(*tat)?);
        }
    }
    let mut groups: Vec<WaitingGroup<'_>> = rows
        .iter()
        .map(|(grp, available, _, _)| WaitingGroup {
            group: Some(grp.as_str()),
            available: u64::from(count(*available)),
        })
        .collect();
    let ungrouped = flow.available - flow.grouped_available;
    if ungrouped > 0 {
        groups.push(WaitingGroup {
            group: None,
            available: u64::from(count(ungrouped)),
        });
    }
    Ok(offload_core::flow::held::held(
        &flow.limits,
        usage,
        &groups,
        now,
    ))
}
