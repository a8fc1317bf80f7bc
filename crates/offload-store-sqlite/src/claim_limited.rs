//! Claims of queues with limits: read usage, list a bounded set of candidates, let
//! [`offload_core::flow::admission::admit`] decide, start the admitted jobs and write the usage back.
//!
//! Invariant: runs inside the single writer's transaction, so the usage it reads is the usage it changes: no
//! other claim or finish interleaves, and a limit is never exceeded. Candidates never rescan blocked groups'
//! backlogs: groups come from `queue_groups` (those with available jobs, below their group concurrency, not
//! throttled), least recently served first, at most `2 * want + 8` of them, and each group gives at most the
//! heads it could start, read through the per-group index. Jobs without a group are one more pseudo-group,
//! looked for only when the queue has some available.

use std::collections::HashSet;

use offload_core::flow::admission::{Admission, Candidate, Usage, admit};
use offload_core::flow::limits::QueueLimits;
use offload_core::state::add;
use offload_core::{JobState, Timestamp};
use offload_store::{ClaimOutcome, JobClaimParams, Result};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::flow::{self, QueueFlow, UNGROUPED};
use crate::leases::take;

/// A waiting job as the claim orders it.
#[derive(Debug, Clone)]
struct Waiting {
    seq: i64,
    priority: i64,
    run_at: i64,
    group: Option<String>,
}

/// A candidate group read from `queue_groups`.
struct GroupRow {
    grp: String,
    running: i64,
    tat: Option<i64>,
    served_at: Option<i64>,
}

/// The top available pull jobs of the queue in claim order, any group.
const TOP_SQL: &str = "\
SELECT seq, priority, run_at, grp FROM jobs INDEXED BY jobs_claim
WHERE queue = ?1 AND state = 'available' AND target IS NULL
ORDER BY priority DESC, run_at, seq LIMIT ?2";

/// The top available pull jobs without a group.
const UNGROUPED_SQL: &str = "\
SELECT seq, priority, run_at, grp FROM jobs INDEXED BY jobs_claim
WHERE queue = ?1 AND state = 'available' AND target IS NULL AND grp IS NULL
ORDER BY priority DESC, run_at, seq LIMIT ?2";

/// A group's head jobs in claim order.
const HEADS_SQL: &str = "\
SELECT seq, priority, run_at, grp FROM jobs INDEXED BY jobs_group_claim
WHERE queue = ?1 AND grp = ?2 AND grp IS NOT NULL AND state = 'available' AND target IS NULL
ORDER BY priority DESC, run_at, seq LIMIT ?3";

/// Candidate groups: with available jobs, below `?2` running (NULL: any), TAT at most `?3` (NULL: any), least
/// recently served first.
const GROUPS_SQL: &str = "\
SELECT grp, running, tat, served_at FROM queue_groups INDEXED BY queue_groups_turn
WHERE queue = ?1 AND available > 0 AND (?2 IS NULL OR running < ?2) AND (?3 IS NULL OR tat IS NULL OR tat <= ?3)
ORDER BY served_at, grp LIMIT ?4";

/// Claims up to `p.max_jobs` jobs of a queue with limits (not paused), in admission order; `retry_at` says when
/// a throttle lets a held job start.
pub(crate) async fn claim(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: &JobClaimParams,
    flow: QueueFlow,
    counts: &mut Counts,
) -> Result<ClaimOutcome> {
    let limits = flow.limits;
    let mut want = p.max_jobs as usize;
    let mut usage = Usage {
        queue_tat: flow.throttle_tat,
        ..Usage::default()
    };
    if let Some(concurrency) = limits.concurrency {
        usage.running = flow::running(conn, &p.queue).await?;
        want = want.min(concurrency.saturating_sub(usage.running) as usize);
        if want == 0 {
            return Ok(ClaimOutcome::default());
        }
    }
    let per_group_throttle = limits.throttle.filter(|t| t.per_group);
    let by_group =
        limits.group_concurrency.is_some() || limits.fair || per_group_throttle.is_some();
    let mut throttled_until = None;
    let candidates = if by_group {
        let listed = group_candidates(conn, now, &p.queue, &flow, want, &mut usage).await?;
        throttled_until = listed.throttled_until;
        listed.jobs
    } else {
        read_waiting(conn, TOP_SQL, &p.queue, None, want).await?
    };
    let admission = {
        let view: Vec<Candidate<'_>> = candidates
            .iter()
            .map(|w| Candidate {
                group: w.group.as_deref(),
            })
            .collect();
        admit(&limits, usage, &view, want, now)
    };
    let order: Vec<i64> = admission
        .admitted
        .iter()
        .map(|&i| candidates[i].seq)
        .collect();
    let jobs = take(conn, now, &p.queue, &p.worker_id, &order, counts).await?;
    write_usage(conn, now, &p.queue, &flow, &limits, &candidates, &admission).await?;
    let retry_at = match (admission.wake_at, throttled_until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(ClaimOutcome { jobs, retry_at })
}

/// Candidates of a claim whose limits involve groups, in the order admission takes them.
struct Listed {
    jobs: Vec<Waiting>,
    /// When the earliest group skipped for its throttle may start one.
    throttled_until: Option<Timestamp>,
}

/// Lists candidate groups and their heads, filling `usage` with their running counts and throttle TATs.
async fn group_candidates(
    conn: &mut SqliteConnection,
    now: Timestamp,
    queue: &str,
    flow: &QueueFlow,
    want: usize,
    usage: &mut Usage,
) -> Result<Listed> {
    let limits: &QueueLimits = &flow.limits;
    let per_group_throttle = limits.throttle.filter(|t| t.per_group);
    let tolerance = per_group_throttle.map(|t| flow::tolerance(&t));
    // A TAT at most `now + tolerance` allows a start now.
    let tat_bound = tolerance.map(|tol| micros(add(now, tol)));
    let gc = limits.group_concurrency.map(i64::from);
    let max_groups = 2 * want + 8;
    let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(GROUPS_SQL)
        .bind(queue)
        .bind(gc)
        .bind(tat_bound)
        .bind(max_groups as i64)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let groups: Vec<GroupRow> = rows
        .into_iter()
        .map(|(grp, running, tat, served_at)| GroupRow {
            grp,
            running,
            tat,
            served_at,
        })
        .collect();

    // Jobs without a group: one more pseudo-group, placed by when it was last served.
    let ungrouped_available = available(conn, queue).await? - flow.grouped_available;
    let mut ungrouped = Vec::new();
    let mut throttled_until = None;
    if ungrouped_available > 0 {
        let (_, tat) = flow::group_usage(conn, queue, UNGROUPED).await?;
        let blocked = match (tat, tat_bound) {
            (Some(tat), Some(bound)) => micros(tat) > bound,
            _ => false,
        };
        if let (true, Some(tat), Some(tol)) = (blocked, tat, tolerance) {
            throttled_until = Some(sub(tat, tol));
        } else {
            if let Some(tat) = tat {
                usage.group_tats.insert(UNGROUPED.to_owned(), tat);
            }
            ungrouped = read_waiting(conn, UNGROUPED_SQL, queue, None, want).await?;
        }
    }

    // Never served (NULL) sorts first; the pseudo-group goes before the first group served after it.
    let place = |served_at: Option<i64>| served_at.unwrap_or(i64::MIN);
    let ungrouped_place = place(flow.ungrouped_served_at);
    let mut jobs = Vec::new();
    for g in &groups {
        if !ungrouped.is_empty() && place(g.served_at) > ungrouped_place {
            jobs.append(&mut ungrouped);
        }
        let running = u32::try_from(g.running).unwrap_or(0);
        let heads = match limits.group_concurrency {
            Some(gc) => want.min(gc.saturating_sub(running) as usize),
            None => want,
        };
        if heads == 0 {
            continue;
        }
        usage.group_running.insert(g.grp.clone(), running);
        if let Some(tat) = g.tat {
            usage
                .group_tats
                .insert(g.grp.clone(), codec::timestamp(tat)?);
        }
        jobs.extend(read_waiting(conn, HEADS_SQL, queue, Some(&g.grp), heads).await?);
    }
    jobs.append(&mut ungrouped);

    if let (Some(bound), Some(tol)) = (tat_bound, tolerance) {
        // Groups skipped for their throttle: the earliest may start at its TAT minus the tolerance.
        let earliest: Option<i64> = sqlx::query_scalar(
            "SELECT min(tat) FROM queue_groups INDEXED BY queue_groups_turn \
             WHERE queue = ?1 AND available > 0 AND tat > ?2",
        )
        .bind(queue)
        .bind(bound)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        if let Some(tat) = earliest {
            let until = sub(codec::timestamp(tat)?, tol);
            throttled_until = Some(throttled_until.map_or(until, |u: Timestamp| u.min(until)));
        }
    }

    if !limits.fair {
        jobs.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.run_at.cmp(&b.run_at))
                .then(a.seq.cmp(&b.seq))
        });
    }
    Ok(Listed {
        jobs,
        throttled_until,
    })
}

/// The queue's available jobs as last committed (the group's own changes are not in it yet: a claim in the same
/// group as an insert may not see that insert's jobs without a group; the next claim does).
async fn available(conn: &mut SqliteConnection, queue: &str) -> Result<i64> {
    let n: Option<i64> =
        sqlx::query_scalar("SELECT n FROM queue_counts WHERE queue = ?1 AND state = ?2")
            .bind(queue)
            .bind(JobState::Available.as_str())
            .fetch_optional(conn)
            .await
            .map_err(db)?;
    Ok(n.unwrap_or(0))
}

fn sub(t: Timestamp, d: std::time::Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_sub(d).unwrap_or(Timestamp::MIN)
}

/// Reads waiting jobs with one of the statements above (`?2` the group for [`HEADS_SQL`]).
async fn read_waiting(
    conn: &mut SqliteConnection,
    sql: &'static str,
    queue: &str,
    group: Option<&str>,
    limit: usize,
) -> Result<Vec<Waiting>> {
    let query = sqlx::query_as::<_, (i64, i64, i64, Option<String>)>(sql).bind(queue);
    let query = match group {
        Some(g) => query.bind(g),
        None => query,
    };
    let rows = query.bind(limit as i64).fetch_all(conn).await.map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(seq, priority, run_at, group)| Waiting {
            seq,
            priority,
            run_at,
            group,
        })
        .collect())
}

/// Writes what admission changed: the queue throttle's TAT, and for each group that started a job its TAT and
/// its `served_at` (strictly increasing per queue, so fair order holds within one instant).
async fn write_usage(
    conn: &mut SqliteConnection,
    now: Timestamp,
    queue: &str,
    flow: &QueueFlow,
    limits: &QueueLimits,
    candidates: &[Waiting],
    admission: &Admission,
) -> Result<()> {
    if admission.admitted.is_empty() {
        return Ok(());
    }
    let per_group_throttle = limits.throttle.is_some_and(|t| t.per_group);
    let mut served = micros(now).max(flow.last_served_at.map_or(i64::MIN, |l| l + 1));
    let mut seen = HashSet::new();
    let mut ungrouped_served = None;
    let mut group_writes: Vec<(&str, i64, Option<i64>)> = Vec::new();
    for &i in &admission.admitted {
        let group = candidates[i].group.as_deref();
        if !seen.insert(group) {
            continue;
        }
        let key = group.unwrap_or(UNGROUPED);
        let tat = match per_group_throttle {
            true => admission.usage.group_tats.get(key).map(|t| micros(*t)),
            false => None,
        };
        match group {
            Some(g) => group_writes.push((g, served, tat)),
            None => {
                ungrouped_served = Some(served);
                if tat.is_some() {
                    group_writes.push((UNGROUPED, served, tat));
                }
            }
        }
        served += 1;
    }
    let last_served = served - 1;
    for (grp, served_at, tat) in group_writes {
        sqlx::query(
            "INSERT INTO queue_groups (queue, grp, served_at, tat) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (queue, grp) DO UPDATE SET served_at = excluded.served_at, \
               tat = coalesce(excluded.tat, tat)",
        )
        .bind(queue)
        .bind(grp)
        .bind(served_at)
        .bind(tat)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    let queue_tat = match limits.throttle {
        Some(t) if !t.per_group => admission.usage.queue_tat.map(micros),
        _ => None,
    };
    sqlx::query(
        "UPDATE queues SET last_served_at = ?2, throttle_tat = coalesce(?3, throttle_tat), \
           ungrouped_served_at = coalesce(?4, ungrouped_served_at) WHERE name = ?1",
    )
    .bind(queue)
    .bind(last_served)
    .bind(queue_tat)
    .bind(ungrouped_served)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}
