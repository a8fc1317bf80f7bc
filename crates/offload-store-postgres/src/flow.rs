//! Queue limits and their live usage: what `queue_set_limits` writes, `queue_get` and `job_get` read.
//!
//! Invariant: a queue's limits are stored as the JSON of a validated [`QueueLimits`] in `queues.limits`, or NULL
//! when it has none (claims then take the fast path). Usage is never counted here: the queue's running jobs are
//! the sum of its `queue_counts` shards, a group's available and running jobs are its `queue_groups` row (kept
//! by row triggers in the transactions that move jobs), and what a limit would do is decided by
//! [`offload_core::flow::admission::admit`], never in SQL.

use offload_core::api::{GroupUsage, QueueInfo, QueueUsage};
use offload_core::flow::admission::{Candidate, Usage, WaitingFor, admit};
use offload_core::flow::gcra::Gcra;
use offload_core::flow::held::{HeldJobs, WaitingGroup};
use offload_core::flow::limits::{QueueLimits, QueueLimitsPatch};
use offload_core::{Job, JobState, Timestamp};
use offload_store::{QueueSetLimitsParams, Result, StoreError};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::codec::{Ts, get, ts_opt};
use crate::error::db;
use crate::queues;

/// The queue's running jobs: the sum of its `queue_counts` shards for `running` (exact at every commit).
pub(crate) async fn queue_running(conn: &mut PgConnection, queue: &str) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(n), 0)::int8 FROM queue_counts WHERE queue = $1 AND state = 'running'",
    )
    .bind(queue)
    .fetch_one(conn)
    .await
    .map_err(db)?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// Applies `p.patch` to the stored limits in one transaction and answers the queue with its usage.
pub(crate) async fn set_limits(
    conn: &mut PgConnection,
    now: Timestamp,
    p: QueueSetLimitsParams,
) -> Result<QueueInfo> {
    let mut tx = conn.begin().await.map_err(db)?;
    apply_limits(&mut tx, now, &p.queue, p.patch).await?;
    let info = get_queue(&mut tx, now, &p.queue)
        .await?
        .ok_or_else(|| StoreError::Internal(format!("queue {} vanished", p.queue)))?;
    tx.commit().await.map_err(db)?;
    Ok(info)
}

/// Applies a patch to a queue's stored limits in the caller's transaction (the queue row is created when
/// unknown, and locked while the limits are read and written); returns the limits now in force.
pub(crate) async fn apply_limits(
    conn: &mut PgConnection,
    now: Timestamp,
    queue: &str,
    patch: QueueLimitsPatch,
) -> Result<QueueLimits> {
    sqlx::query(
        "INSERT INTO queues (name, paused, created_at) VALUES ($1, false, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(queue)
    .bind(Ts(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT limits FROM queues WHERE name = $1 FOR UPDATE")
            .bind(queue)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    let limits = offload_store::codec::limits(stored.as_deref())?
        .patched(patch)
        .map_err(|e| StoreError::Internal(format!("queue limits: {e}")))?;
    sqlx::query("UPDATE queues SET limits = $2 WHERE name = $1")
        .bind(queue)
        .bind(offload_store::codec::limits_to_db(&limits)?)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(limits)
}

/// One queue with its counts, limits and usage; `None` when unknown (no jobs, no queue row).
pub(crate) async fn get_queue(
    conn: &mut PgConnection,
    now: Timestamp,
    name: &str,
) -> Result<Option<QueueInfo>> {
    let Some(mut info) = queues::list(conn, now, Some(name)).await?.pop() else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM queue_groups WHERE queue = $1 AND running > 0)::int8 AS groups_running, \
                (SELECT throttle_tat FROM queues WHERE name = $1) AS throttle_tat",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let groups_running: i64 = get(&row, "groups_running")?;
    let tat = ts_opt(&row, "throttle_tat")?;
    let top = sqlx::query(
        "SELECT grp, available::int8 AS available, running::int8 AS running FROM queue_groups \
         WHERE queue = $1 AND available > 0 ORDER BY available DESC, grp LIMIT 10",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let top_groups = top
        .iter()
        .map(|r| {
            Ok(GroupUsage {
                group: get(r, "grp")?,
                available: u64::try_from(get::<i64>(r, "available")?).unwrap_or(0),
                running: u64::try_from(get::<i64>(r, "running")?).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let throttle_next_at = info.limits.throttle.filter(|t| !t.per_group).and_then(|t| {
        Gcra::new(t.limit, t.period.0, t.burst)
            .check(tat, now)
            .err()
    });
    info.usage = Some(QueueUsage {
        running: info.counts.get(&JobState::Running).copied().unwrap_or(0),
        groups_running: u64::try_from(groups_running).unwrap_or(0),
        throttle_next_at,
        top_groups,
    });
    Ok(Some(info))
}

/// Why an available job of a limited queue does not start: what admission would say of it alone, with the
/// queue's usage as stored now (`None` when it would start, or the queue has no limits).
pub(crate) async fn waiting_for(
    conn: &mut PgConnection,
    now: Timestamp,
    job: &Job,
) -> Result<Option<WaitingFor>> {
    if job.state != JobState::Available || job.target.is_some() {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT q.limits, q.throttle_tat, g.running, g.tat FROM queues q \
         LEFT JOIN queue_groups g ON g.queue = q.name AND g.grp = $2 \
         WHERE q.name = $1 AND q.limits IS NOT NULL",
    )
    .bind(&job.queue)
    .bind(job.group.as_deref())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let limits = offload_store::codec::limits(get::<Option<&str>>(&row, "limits")?)?;
    let per_group = limits.throttle.is_some_and(|t| t.per_group);
    let queue_tat = ts_opt(&row, "throttle_tat")?;
    let mut usage = Usage {
        running: queue_running(conn, &job.queue).await?,
        ..Usage::default()
    };
    if per_group {
        let tat = match &job.group {
            Some(_) => ts_opt(&row, "tat")?,
            None => queue_tat,
        };
        if let Some(tat) = tat {
            usage
                .group_tats
                .insert(job.group.clone().unwrap_or_default(), tat);
        }
    } else {
        usage.queue_tat = queue_tat;
    }
    if let Some(group) = &job.group {
        let running = get::<Option<i32>>(&row, "running")?.unwrap_or(0);
        usage
            .group_running
            .insert(group.clone(), u32::try_from(running.max(0)).unwrap_or(0));
    }
    let candidate = Candidate {
        group: job.group.as_deref(),
    };
    let admission = admit(&limits, usage, &[candidate], 1, now);
    Ok(admission.held.first().map(|(_, why)| *why))
}

/// Most groups with available jobs [`held`] lists (least recently served first, as claims take them).
const HELD_GROUPS: i64 = 1000;

/// How many of `queue`'s available jobs its limits hold now, by kind (none for a queue without limits, or a
/// paused one): [`offload_core::flow::held::held`] over the queue's usage and its first [`HELD_GROUPS`]
/// groups with available jobs, plus the jobs without a group.
pub(crate) async fn held(conn: &mut PgConnection, now: Timestamp, queue: &str) -> Result<HeldJobs> {
    let row = sqlx::query(
        "SELECT limits, paused, throttle_tat, \
           (SELECT coalesce(sum(n), 0)::int8 FROM queue_counts WHERE queue = $1 AND state = 'available') \
             AS available, \
           (SELECT coalesce(sum(available), 0)::int8 FROM queue_groups WHERE queue = $1 AND available > 0) \
             AS grouped \
         FROM queues WHERE name = $1 AND limits IS NOT NULL",
    )
    .bind(queue)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(row) = row else {
        return Ok(HeldJobs::default());
    };
    let limits = offload_store::codec::limits(get::<Option<&str>>(&row, "limits")?)?;
    if get::<bool>(&row, "paused")? || limits.is_unlimited() {
        return Ok(HeldJobs::default());
    }
    let mut usage = Usage {
        running: queue_running(conn, queue).await?,
        ..Usage::default()
    };
    // With a per-group throttle, the queue's TAT is the bucket of the jobs without a group.
    let queue_tat = ts_opt(&row, "throttle_tat")?;
    if limits.throttle.is_some_and(|t| t.per_group) {
        if let Some(tat) = queue_tat {
            usage.group_tats.insert(String::new(), tat);
        }
    } else {
        usage.queue_tat = queue_tat;
    }
    let rows = sqlx::query(
        "SELECT grp, available::int8 AS available, running::int8 AS running, tat FROM queue_groups \
         WHERE queue = $1 AND available > 0 ORDER BY served_at NULLS FIRST, grp LIMIT $2",
    )
    .bind(queue)
    .bind(HELD_GROUPS)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut waiting: Vec<(String, u64)> = Vec::with_capacity(rows.len());
    for r in &rows {
        let grp: String = get(r, "grp")?;
        let running: i64 = get(r, "running")?;
        usage
            .group_running
            .insert(grp.clone(), u32::try_from(running.max(0)).unwrap_or(0));
        if let Some(tat) = ts_opt(r, "tat")? {
            usage.group_tats.insert(grp.clone(), tat);
        }
        let available: i64 = get(r, "available")?;
        waiting.push((grp, u64::try_from(available.max(0)).unwrap_or(0)));
    }
    let mut groups: Vec<WaitingGroup<'_>> = waiting
        .iter()
        .map(|(grp, available)| WaitingGroup {
            group: Some(grp.as_str()),
            available: *available,
        })
        .collect();
    let ungrouped = get::<i64>(&row, "available")? - get::<i64>(&row, "grouped")?;
    if ungrouped > 0 {
        groups.push(WaitingGroup {
            group: None,
            available: u64::try_from(ungrouped).unwrap_or(0),
        });
    }
    Ok(offload_core::flow::held::held(&limits, usage, &groups, now))
}
