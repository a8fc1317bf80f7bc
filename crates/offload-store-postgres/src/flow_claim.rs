//! Claims of a queue that has limits (concurrency, group concurrency, throttle, fair order).
//!
//! Invariant: every claim of a limited queue runs in one transaction that first locks the queue's row
//! (`SELECT ... FOR UPDATE`), so claims of one limited queue are serialised across every server; with the lock
//! held it reads the usage (each statement of a READ COMMITTED transaction sees every claim and end committed
//! before it, and ends only lower usage), asks [`admit`] which candidates start, and writes the claims, the
//! throttle TATs and the groups' `served_at` before releasing the lock at commit. A limit is therefore never
//! exceeded however many servers claim at once. The fast path ([`crate::leases::CLAIM_SQL`]) skips limited and
//! paused queues, so a limited queue is only ever claimed here.
//!
//! Candidates never rescan blocked groups' backlogs: when limits involve groups, the candidate groups come from
//! `queue_groups` (groups with available jobs and, with a group concurrency, a free slot; least recently served
//! first), and each group's head jobs from the `jobs_group_claim` index; jobs without a group are one more
//! pseudo-group, found among the first jobs of the queue in claim order.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use offload_core::flow::admission::{Candidate, Usage, admit};
use offload_core::flow::limits::QueueLimits;
use offload_core::{ClaimedJob, Timestamp};
use offload_store::{ClaimOutcome, JobClaimParams, Result, StoreError};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

use crate::codec::{Ts, get, ts, ts_opt};
use crate::counts;
use crate::error::{self, db};
use crate::flow::{parse_limits, queue_running};
use crate::leases;

/// Attempts of a limited claim the database aborted for a deadlock (group counters locked in another order by
/// a concurrent end of jobs), before the failure is answered.
const ATTEMPTS: usize = 5;

/// How many of the queue's first available jobs (in claim order) are searched for jobs without a group.
const UNGROUPED_PROBE: i64 = 256;

/// Claims up to `max_jobs` jobs: the fast path first; when it found nothing and the queue has limits, the
/// limited path.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    now: Timestamp,
    p: JobClaimParams,
) -> Result<ClaimOutcome> {
    if p.max_jobs == 0 {
        return Ok(ClaimOutcome::default());
    }
    let jobs = leases::claim(conn, now, p.clone()).await?;
    if !jobs.is_empty() {
        return Ok(ClaimOutcome {
            jobs,
            retry_at: None,
        });
    }
    let limited: Option<bool> = sqlx::query_scalar(
        "SELECT true FROM queues WHERE name = $1 AND limits IS NOT NULL AND NOT paused",
    )
    .bind(&p.queue)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    if limited.is_none() {
        return Ok(ClaimOutcome::default());
    }
    let mut attempt = 1;
    loop {
        match limited_claim(conn, now, &p).await {
            Err(StoreError::Unavailable(m))
                if attempt < ATTEMPTS && error::is_retryable_message(&m) =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(1..10))).await;
            }
            other => return other,
        }
    }
}

/// A waiting job, as read for admission.
struct Waiting {
    id: Uuid,
    group: Option<String>,
    priority: i32,
    run_at: Timestamp,
}

impl Waiting {
    fn claim_order(&self) -> (Reverse<i32>, Timestamp, Uuid) {
        (Reverse(self.priority), self.run_at, self.id)
    }
}

/// A candidate group read from `queue_groups`.
struct GroupRow {
    grp: String,
    running: u32,
    served_at: Option<Timestamp>,
}

/// The limited path, in one transaction under the queue row's lock.
async fn limited_claim(
    conn: &mut PgConnection,
    now: Timestamp,
    p: &JobClaimParams,
) -> Result<ClaimOutcome> {
    let mut tx = conn.begin().await.map_err(db)?;
    let row = sqlx::query(
        "SELECT paused, limits, throttle_tat, ungrouped_served_at FROM queues WHERE name = $1 FOR UPDATE",
    )
    .bind(&p.queue)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some(row) = row else {
        return Ok(ClaimOutcome::default());
    };
    if get::<bool>(&row, "paused")? {
        return Ok(ClaimOutcome::default());
    }
    let limits = parse_limits(get::<Option<&str>>(&row, "limits")?)?;
    if limits.is_unlimited() {
        // The limits were cleared meanwhile: the fast path takes the queue again.
        drop(tx);
        let jobs = leases::claim(conn, now, p.clone()).await?;
        return Ok(ClaimOutcome {
            jobs,
            retry_at: None,
        });
    }
    let throttle_tat = ts_opt(&row, "throttle_tat")?;
    let ungrouped_served_at = ts_opt(&row, "ungrouped_served_at")?;
    let want = p.max_jobs as usize;
    let per_group_throttle = limits.throttle.is_some_and(|t| t.per_group);
    let mut usage = Usage {
        running: queue_running(&mut tx, &p.queue).await?,
        ..Usage::default()
    };
    if per_group_throttle {
        if let Some(tat) = throttle_tat {
            usage.group_tats.insert(String::new(), tat);
        }
    } else {
        usage.queue_tat = throttle_tat;
    }
    if limits.concurrency.is_some_and(|c| usage.running >= c) {
        // Full: nothing can start, whatever waits.
        tx.commit().await.map_err(db)?;
        return Ok(ClaimOutcome::default());
    }
    let grouped = limits.group_concurrency.is_some() || limits.fair || per_group_throttle;
    let waiting = if grouped {
        grouped_candidates(
            &mut tx,
            &p.queue,
            &limits,
            want,
            ungrouped_served_at,
            &mut usage,
        )
        .await?
    } else {
        top_available(&mut tx, &p.queue, want as i64).await?
    };
    let candidates: Vec<Candidate<'_>> = waiting
        .iter()
        .map(|w| Candidate {
            group: w.group.as_deref(),
        })
        .collect();
    let admission = admit(&limits, usage, &candidates, want, now);
    if admission.admitted.is_empty() {
        tx.commit().await.map_err(db)?;
        return Ok(ClaimOutcome {
            jobs: Vec::new(),
            retry_at: admission.wake_at,
        });
    }
    // The groups served, in name order (the order their counter rows are locked in), with their new TATs.
    let mut served: BTreeMap<&str, Option<Timestamp>> = BTreeMap::new();
    let mut ungrouped_served = false;
    for &i in &admission.admitted {
        match waiting[i].group.as_deref() {
            Some(g) => {
                let tat = if per_group_throttle {
                    admission.usage.group_tats.get(g).copied()
                } else {
                    None
                };
                served.insert(g, tat);
            }
            None => ungrouped_served = true,
        }
    }
    if !served.is_empty() {
        let groups: Vec<&str> = served.keys().copied().collect();
        let tats: Vec<Option<Ts>> = served.values().map(|t| t.map(Ts)).collect();
        sqlx::query(
            "UPDATE queue_groups g SET served_at = $2, tat = coalesce(u.tat, g.tat) \
             FROM (SELECT * FROM unnest($3::text[], $4::timestamptz[]) ORDER BY 1) AS u (grp, tat) \
             WHERE g.queue = $1 AND g.grp = u.grp",
        )
        .bind(&p.queue)
        .bind(Ts(now))
        .bind(groups)
        .bind(tats)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    let ids: Vec<Uuid> = admission.admitted.iter().map(|&i| waiting[i].id).collect();
    let rows = sqlx::query(CLAIM_IDS_SQL.as_str())
        .bind(&ids)
        .bind(&p.queue)
        .bind(Ts(now))
        .bind(&p.worker_id)
        .bind(counts::shard())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    let new_tat = if per_group_throttle {
        admission.usage.group_tats.get("").copied()
    } else {
        admission.usage.queue_tat
    };
    if new_tat != throttle_tat || ungrouped_served {
        sqlx::query(
            "UPDATE queues SET throttle_tat = $2, \
                 ungrouped_served_at = CASE WHEN $3 THEN $4 ELSE ungrouped_served_at END \
             WHERE name = $1",
        )
        .bind(&p.queue)
        .bind(new_tat.map(Ts))
        .bind(ungrouped_served)
        .bind(Ts(now))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    let mut claimed: BTreeMap<Uuid, ClaimedJob> = rows
        .iter()
        .map(|r| {
            let job = leases::claimed(r)?;
            Ok((job.id.0, job))
        })
        .collect::<Result<_>>()?;
    // In admission order.
    let jobs = ids.iter().filter_map(|id| claimed.remove(id)).collect();
    Ok(ClaimOutcome {
        jobs,
        retry_at: admission.wake_at,
    })
}

/// Starts the admitted jobs (those still available: a job cancelled or deleted meanwhile is skipped) and counts
/// the moves, in one statement; the row triggers move their groups' counters.
static CLAIM_IDS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH taken AS (
    UPDATE jobs SET state = 'running', attempt = jobs.attempt + 1, attempted_at = $3,
        lease_token = gen_random_uuid(), lease_expires_at = $3::timestamptz + jobs.timeout_ms * interval '1 millisecond',
        worker_id = $4, progress = NULL, progress_message = NULL
    WHERE jobs.id = ANY($1) AND jobs.queue = $2 AND jobs.state = 'available' AND jobs.target IS NULL
    RETURNING jobs.id, jobs.queue, jobs.name, jobs.payload, jobs.attempt, jobs.max_attempts, jobs.lease_token,
        jobs.lease_expires_at, jobs.timeout_ms, jobs.tags, jobs.created_at, jobs.priority, jobs.run_at
), {}
SELECT * FROM taken",
        counts::cte(
            "SELECT queue, 'available', -1 FROM taken UNION ALL SELECT queue, 'running', 1 FROM taken",
            "$5"
        )
    )
});

/// The first `n` available pull jobs of the queue, in claim order (limits on the queue only).
async fn top_available(conn: &mut PgConnection, queue: &str, n: i64) -> Result<Vec<Waiting>> {
    let rows = sqlx::query(
        "SELECT id, grp, priority, run_at FROM jobs \
         WHERE queue = $1 AND state = 'available' AND target IS NULL \
         ORDER BY priority DESC, run_at, id LIMIT $2",
    )
    .bind(queue)
    .bind(n)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter().map(waiting_of).collect()
}

fn waiting_of(r: &sqlx::postgres::PgRow) -> Result<Waiting> {
    Ok(Waiting {
        id: get(r, "id")?,
        group: get(r, "grp")?,
        priority: get(r, "priority")?,
        run_at: ts(r, "run_at")?,
    })
}

/// Candidates when limits involve groups: the least recently served groups with available jobs (and a free
/// slot under `group_concurrency`), each with its head jobs, plus the jobs without a group as one more
/// pseudo-group placed by when they were last served. Fair: group-major order; otherwise claim order. Fills
/// `usage` with the candidate groups' running jobs and TATs.
async fn grouped_candidates(
    conn: &mut PgConnection,
    queue: &str,
    limits: &QueueLimits,
    want: usize,
    ungrouped_served_at: Option<Timestamp>,
    usage: &mut Usage,
) -> Result<Vec<Waiting>> {
    let gc = limits.group_concurrency;
    let max_groups = i64::try_from(2 * want + 8).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT grp, running, tat, served_at FROM queue_groups \
         WHERE queue = $1 AND available > 0 AND ($2::int4 IS NULL OR running < $2) \
         ORDER BY served_at NULLS FIRST, grp LIMIT $3",
    )
    .bind(queue)
    .bind(gc.map(|g| i32::try_from(g).unwrap_or(i32::MAX)))
    .bind(max_groups)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut groups = Vec::with_capacity(rows.len());
    for r in &rows {
        let grp: String = get(r, "grp")?;
        let running = u32::try_from(get::<i32>(r, "running")?.max(0)).unwrap_or(0);
        if let Some(tat) = ts_opt(r, "tat")? {
            usage.group_tats.insert(grp.clone(), tat);
        }
        usage.group_running.insert(grp.clone(), running);
        groups.push(GroupRow {
            grp,
            running,
            served_at: ts_opt(r, "served_at")?,
        });
    }
    let names: Vec<&str> = groups.iter().map(|g| g.grp.as_str()).collect();
    let heads: Vec<i64> = groups
        .iter()
        .map(|g| {
            let free = gc.map_or(want, |gc| gc.saturating_sub(g.running) as usize);
            i64::try_from(free.min(want)).unwrap_or(i64::MAX)
        })
        .collect();
    let rows = sqlx::query(
        "SELECT j.id, j.grp, j.priority, j.run_at \
         FROM unnest($2::text[], $3::int8[]) WITH ORDINALITY AS g (grp, n, ord) \
         CROSS JOIN LATERAL ( \
             SELECT id, grp, priority, run_at FROM jobs \
             WHERE queue = $1 AND grp = g.grp AND state = 'available' AND target IS NULL \
             ORDER BY priority DESC, run_at, id LIMIT g.n) AS j \
         ORDER BY g.ord, j.priority DESC, j.run_at, j.id",
    )
    .bind(queue)
    .bind(&names)
    .bind(&heads)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let grouped: Vec<Waiting> = rows.iter().map(waiting_of).collect::<Result<_>>()?;
    let rows = sqlx::query(
        "SELECT id, grp, priority, run_at FROM ( \
             SELECT id, grp, priority, run_at FROM jobs \
             WHERE queue = $1 AND state = 'available' AND target IS NULL \
             ORDER BY priority DESC, run_at, id LIMIT $3) AS head \
         WHERE grp IS NULL ORDER BY priority DESC, run_at, id LIMIT $2",
    )
    .bind(queue)
    .bind(i64::try_from(want).unwrap_or(i64::MAX))
    .bind(UNGROUPED_PROBE)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let ungrouped: Vec<Waiting> = rows.iter().map(waiting_of).collect::<Result<_>>()?;
    let mut all = grouped;
    if !limits.fair {
        all.extend(ungrouped);
        all.sort_by_key(Waiting::claim_order);
        return Ok(all);
    }
    // Fair: the pseudo-group of jobs without a group takes its place among the groups by when it was served
    // (never served: first, like a group never served).
    let place = match ungrouped_served_at {
        None => 0,
        Some(at) => {
            let before = groups
                .iter()
                .position(|g| g.served_at.is_some_and(|s| s > at))
                .unwrap_or(groups.len());
            groups[..before]
                .iter()
                .map(|g| {
                    all.iter()
                        .filter(|w| w.group.as_deref() == Some(&g.grp))
                        .count()
                })
                .sum()
        }
    };
    all.splice(place..place, ungrouped);
    Ok(all)
}
