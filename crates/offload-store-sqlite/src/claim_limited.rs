//! Claims of queues with limits: read usage, list a bounded set of candidates, let
//! [`offload_core::flow::admission::admit`] decide, start the admitted jobs and write the usage back.
//!
//! Invariant: runs inside the single writer's transaction, so the usage it reads is the usage it changes: no
//! other claim or finish interleaves, and a limit is never exceeded. Candidates never rescan blocked groups'
//! backlogs: groups come from `queue_groups` (those with available jobs, below their group concurrency, not
//! throttled), least recently served first, at most `2 * want + 8` of them (fair claims: the first `want`),
//! and each group gives at most the heads it could start, read through the per-group index. Jobs without a
//! group are one more pseudo-group, looked for only when the queue has some available. The queue's running
//! and available counts are `queue_counts` plus the writer group's changes so far, so they are exact here.

use std::collections::HashSet;

use offload_core::flow::admission::{Admission, Candidate, Usage, admit};
use offload_core::flow::gcra::allowed_at;
use offload_core::flow::limits::QueueLimits;
use offload_core::state::add;
use offload_core::{JobState, Timestamp};
use offload_store::{ClaimOutcome, JobClaimParams, Result, StoreError};
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

/// A candidate group read by [`GROUPS_SQL`]: name, running jobs, TAT, served_at, heads.
type GroupRow = (String, i64, Option<i64>, Option<i64>, Option<String>);

/// A head job as [`GROUPS_SQL`] lists it.
type HeadRow = (i64, i64, i64);

/// The top available pull jobs of the queue in claim order, any group.
pub(crate) const TOP_SQL: &str = "\
SELECT seq, priority, run_at, grp FROM jobs INDEXED BY jobs_claim
WHERE queue = ?1 AND state = 'available' AND target IS NULL
ORDER BY priority DESC, run_at, seq LIMIT ?2";

/// The top available pull jobs without a group.
pub(crate) const UNGROUPED_SQL: &str = "\
SELECT seq, priority, run_at, grp FROM jobs INDEXED BY jobs_claim
WHERE queue = ?1 AND state = 'available' AND target IS NULL AND grp IS NULL
ORDER BY priority DESC, run_at, seq LIMIT ?2";

/// Candidate groups with their head jobs, in one statement: groups with available jobs, below `?2` running
/// (NULL: any), TAT at most `?3` (NULL: any), least recently served first, at most `?4` of them; for each, its
/// first `?5` available pull jobs through the per-group index, as a JSON array of `[seq, priority, run_at]`.
pub(crate) const GROUPS_SQL: &str = "\
SELECT g.grp, g.running, g.tat, g.served_at,
    (SELECT json_group_array(json_array(seq, priority, run_at)) FROM (
        SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_group_claim
        WHERE queue = ?1 AND grp = g.grp AND grp IS NOT NULL AND state = 'available' AND target IS NULL
        ORDER BY priority DESC, run_at, seq LIMIT ?5)) AS heads
FROM queue_groups g INDEXED BY queue_groups_turn
WHERE g.queue = ?1 AND g.available > 0 AND (?2 IS NULL OR g.running < ?2)
  AND (?3 IS NULL OR g.tat IS NULL OR g.tat <= ?3)
ORDER BY g.served_at, g.grp LIMIT ?4";

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
        usage.running = flow::count(flow.running + counts.pending(&p.queue, JobState::Running));
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
        let listed = group_candidates(conn, now, &p.queue, &flow, want, &mut usage, counts).await?;
        throttled_until = listed.throttled_until;
        listed.jobs
    } else {
        read_waiting(conn, TOP_SQL, &p.queue, want).await?
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
    counts: &Counts,
) -> Result<Listed> {
    let limits: &QueueLimits = &flow.limits;
    let per_group_throttle = limits.throttle.filter(|t| t.per_group);
    let tolerance = per_group_throttle.map(|t| flow::tolerance(&t));
    // A TAT at most `now + tolerance` allows a start now.
    let tat_bound = tolerance.map(|tol| micros(add(now, tol)));
    let gc = limits.group_concurrency.map(i64::from);
    // Fair claims take one job per group per round, groups in this order: the first `want` groups are all a
    // claim of `want` can start. Other claims order candidates by priority across the whole window.
    let max_groups = if limits.fair { want } else { 2 * want + 8 };
    // Heads per group: no more than the group could start (its concurrency, its throttle's burst), and a
    // budget of about `4 * want` rows over the whole window, so a large claim does not read want² rows.
    let mut max_heads = want;
    if let Some(gc) = limits.group_concurrency {
        max_heads = max_heads.min(gc as usize);
    }
    if let Some(t) = per_group_throttle {
        max_heads = max_heads.min(t.burst.max(1) as usize);
    }
    let max_heads = max_heads.min(((4 * want + 64) / max_groups.max(1)).max(1));
    let groups: Vec<GroupRow> = sqlx::query_as(GROUPS_SQL)
        .bind(queue)
        .bind(gc)
        .bind(tat_bound)
        .bind(max_groups as i64)
        .bind(max_heads as i64)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;

    // Jobs without a group: one more pseudo-group, placed by when it was last served.
    // Both sides live: the committed count plus the writer group's changes so far, against the trigger-kept
    // count of grouped jobs.
    let available = flow.available + counts.pending(queue, JobState::Available);
    let ungrouped_available = available - flow.grouped_available;
    let mut ungrouped = Vec::new();
    let mut throttled_until = None;
    if ungrouped_available > 0 {
        let (_, tat) = flow::group_usage(conn, queue, UNGROUPED).await?;
        let blocked = match (tat, tat_bound) {
            (Some(tat), Some(bound)) => micros(tat) > bound,
            _ => false,
        };
        if let (true, Some(tat), Some(tol)) = (blocked, tat, tolerance) {
            throttled_until = Some(allowed_at(tat, tol));
        } else {
            if let Some(tat) = tat {
                usage.group_tats.insert(UNGROUPED.to_owned(), tat);
            }
            ungrouped = read_waiting(conn, UNGROUPED_SQL, queue, want).await?;
        }
    }

    // Never served (NULL) sorts first; the pseudo-group goes before the first group served after it.
    let place = |served_at: Option<i64>| served_at.unwrap_or(i64::MIN);
    let ungrouped_place = place(flow.ungrouped_served_at);
    let mut jobs = Vec::new();
    for (grp, running, tat, served_at, heads) in groups {
        if !ungrouped.is_empty() && place(served_at) > ungrouped_place {
            jobs.append(&mut ungrouped);
        }
        let running = u32::try_from(running).unwrap_or(0);
        let room = match limits.group_concurrency {
            Some(gc) => want.min(gc.saturating_sub(running) as usize),
            None => want,
        };
        let heads: Vec<HeadRow> = match heads {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::corrupt(format!("group heads: {e}")))?,
            None => Vec::new(),
        };
        let mut heads: Vec<Waiting> = heads
            .into_iter()
            .map(|(seq, priority, run_at)| Waiting {
                seq,
                priority,
                run_at,
                group: Some(grp.clone()),
            })
            .collect();
        heads.sort_by(claim_order);
        heads.truncate(room);
        if heads.is_empty() {
            continue;
        }
        usage.group_running.insert(grp.clone(), running);
        if let Some(tat) = tat {
            usage.group_tats.insert(grp, codec::timestamp(tat)?);
        }
        jobs.extend(heads);
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
            let until = allowed_at(codec::timestamp(tat)?, tol);
            throttled_until = Some(throttled_until.map_or(until, |u: Timestamp| u.min(until)));
        }
    }

    if !limits.fair {
        jobs.sort_by(claim_order);
    }
    Ok(Listed {
        jobs,
        throttled_until,
    })
}

/// Claim order: priority, then due time, then insertion.
fn claim_order(a: &Waiting, b: &Waiting) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.run_at.cmp(&b.run_at))
        .then(a.seq.cmp(&b.seq))
}

/// Reads waiting jobs with [`TOP_SQL`] or [`UNGROUPED_SQL`].
async fn read_waiting(
    conn: &mut SqliteConnection,
    sql: &'static str,
    queue: &str,
    limit: usize,
) -> Result<Vec<Waiting>> {
    let rows = sqlx::query_as::<_, (i64, i64, i64, Option<String>)>(sql)
        .bind(queue)
        .bind(limit as i64)
        .fetch_all(conn)
        .await
        .map_err(db)?;
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
    if !group_writes.is_empty() {
        let rows = serde_json::to_string(&group_writes)
            .map_err(|e| StoreError::Internal(format!("group usage: {e}")))?;
        sqlx::query(
            "INSERT INTO queue_groups (queue, grp, served_at, tat) \
             SELECT ?1, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?2) WHERE true \
             ON CONFLICT (queue, grp) DO UPDATE SET served_at = excluded.served_at, \
               tat = coalesce(excluded.tat, tat)",
        )
        .bind(queue)
        .bind(rows)
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
