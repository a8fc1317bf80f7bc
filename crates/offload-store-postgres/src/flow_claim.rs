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
//! pseudo-group, found among the queue's first [`UNGROUPED_PROBE`] available jobs in claim order (so in a queue
//! mixing both, a job without a group further back waits until jobs ahead of it start).
//!
//! Lock order: the queue row, the admitted jobs, the count shards, then the groups' counter rows in (queue,
//! group) order (the jobs are updated in that order, and the row triggers follow it) — the order every writer
//! of grouped jobs (enqueues, ends of attempts) keeps, so claims and completions do not deadlock.
//!
//! Limits: push jobs are claimed by the dispatcher without limits (they still count as running); a fast-path
//! claim already under way when a queue's first limits are set may still start jobs under no limit.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::sync::{LazyLock, Mutex};

use offload_core::flow::admission::{Candidate, Usage, admit};
use offload_core::flow::limits::QueueLimits;
use offload_core::{ClaimedJob, Timestamp};
use offload_store::{ClaimOutcome, JobClaimParams, Result, StoreError};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgRow};
use uuid::Uuid;

use crate::codec::{Ts, get, ts, ts_opt};
use crate::counts;
use crate::error::{self, db};
use crate::leases;

/// Attempts of a limited claim the database aborted for a deadlock (rows locked in another order by a writer
/// outside the lock order, e.g. the stager or a debounced enqueue), before the failure is answered.
const ATTEMPTS: usize = 5;

/// How many of the queue's first available jobs (in claim order) are searched for jobs without a group.
const UNGROUPED_PROBE: i64 = 256;

/// The queues this server found limited: their claims go straight to the limited path. A stale entry is safe
/// both ways: a queue whose limits were cleared is claimed on the fast path by the limited path itself (and
/// leaves the set), and the fast path skips a queue limited meanwhile (which then joins the set).
#[derive(Debug, Default)]
pub(crate) struct LimitedQueues(Mutex<HashSet<String>>);

/// Most queues remembered as limited (the set is emptied when full: it is only a shortcut).
const MAX_REMEMBERED: usize = 10_000;

impl LimitedQueues {
    fn contains(&self, queue: &str) -> bool {
        self.0.lock().is_ok_and(|s| s.contains(queue))
    }

    fn set(&self, queue: &str, limited: bool) {
        if let Ok(mut s) = self.0.lock() {
            if !limited {
                s.remove(queue);
                return;
            }
            if s.len() >= MAX_REMEMBERED {
                s.clear();
            }
            s.insert(queue.to_owned());
        }
    }
}

/// Claims up to `max_jobs` jobs: the limited path for queues known to be limited; otherwise the fast path
/// first and, when it found nothing and the queue turns out to have limits, the limited path.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    now: Timestamp,
    known: &LimitedQueues,
    p: JobClaimParams,
) -> Result<ClaimOutcome> {
    if p.max_jobs == 0 {
        return Ok(ClaimOutcome::default());
    }
    if known.contains(&p.queue) {
        if let Some(outcome) = limited_retrying(conn, now, &p).await? {
            return Ok(outcome);
        }
        known.set(&p.queue, false);
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
    known.set(&p.queue, true);
    Ok(limited_retrying(conn, now, &p).await?.unwrap_or_default())
}

/// [`limited_claim`], again when the database aborted it for a deadlock.
async fn limited_retrying(
    conn: &mut PgConnection,
    now: Timestamp,
    p: &JobClaimParams,
) -> Result<Option<ClaimOutcome>> {
    let mut attempt = 1;
    loop {
        match limited_claim(conn, now, p).await {
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
    served_at: Option<Timestamp>,
}

/// The limited path, in one transaction under the queue row's lock: lock and read the limits; read the usage
/// and the candidates (one statement, after the lock, so it sees every claim committed before); admit; write
/// the claims, the TATs and the groups served (one statement); commit. `None` when the queue has no limits
/// (any more): the caller claims on the fast path.
async fn limited_claim(
    conn: &mut PgConnection,
    now: Timestamp,
    p: &JobClaimParams,
) -> Result<Option<ClaimOutcome>> {
    let mut tx = conn.begin().await.map_err(db)?;
    let row = sqlx::query(
        "SELECT paused, limits, throttle_tat, ungrouped_served_at FROM queues WHERE name = $1 FOR UPDATE",
    )
    .bind(&p.queue)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some(row) = row else {
        tx.rollback().await.map_err(db)?;
        return Ok(None);
    };
    let limits = offload_store::codec::limits(get::<Option<&str>>(&row, "limits")?)?;
    if limits.is_unlimited() {
        tx.rollback().await.map_err(db)?;
        return Ok(None);
    }
    if get::<bool>(&row, "paused")? {
        tx.rollback().await.map_err(db)?;
        return Ok(Some(ClaimOutcome::default()));
    }
    let throttle_tat = ts_opt(&row, "throttle_tat")?;
    let ungrouped_served_at = ts_opt(&row, "ungrouped_served_at")?;
    let want = p.max_jobs as usize;
    let per_group_throttle = limits.throttle.is_some_and(|t| t.per_group);
    let mut usage = Usage::default();
    if per_group_throttle {
        if let Some(tat) = throttle_tat {
            usage.group_tats.insert(String::new(), tat);
        }
    } else {
        usage.queue_tat = throttle_tat;
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
        top_available(&mut tx, &p.queue, want, &mut usage).await?
    };
    let candidates: Vec<Candidate<'_>> = waiting
        .iter()
        .map(|w| Candidate {
            group: w.group.as_deref(),
        })
        .collect();
    let admission = admit(&limits, usage, &candidates, want, now);
    if admission.admitted.is_empty() {
        tx.rollback().await.map_err(db)?;
        return Ok(Some(ClaimOutcome {
            jobs: Vec::new(),
            retry_at: admission.wake_at,
        }));
    }
    // The groups served, in name order, with their new TATs.
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
    let groups: Vec<&str> = served.keys().copied().collect();
    let tats: Vec<Option<Ts>> = served.values().map(|t| t.map(Ts)).collect();
    let new_tat = if per_group_throttle {
        admission.usage.group_tats.get("").copied()
    } else {
        admission.usage.queue_tat
    };
    let ids: Vec<Uuid> = admission.admitted.iter().map(|&i| waiting[i].id).collect();
    // Joined in group order, so the triggers lock the groups' rows in that order.
    let mut by_group: Vec<(Option<&str>, Uuid)> = admission
        .admitted
        .iter()
        .map(|&i| (waiting[i].group.as_deref(), waiting[i].id))
        .collect();
    by_group.sort_unstable();
    let sorted_ids: Vec<Uuid> = by_group.iter().map(|(_, id)| *id).collect();
    let rows = sqlx::query(CLAIM_IDS_SQL.as_str())
        .bind(&sorted_ids)
        .bind(&p.queue)
        .bind(Ts(now))
        .bind(&p.worker_id)
        .bind(counts::shard())
        .bind(new_tat.map(Ts))
        .bind(ungrouped_served)
        .bind(new_tat != throttle_tat || ungrouped_served)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    if !groups.is_empty() {
        // The groups' rows are already locked by the claim's triggers.
        sqlx::query(
            "UPDATE queue_groups g SET served_at = $2, tat = coalesce(u.tat, g.tat) \
             FROM unnest($3::text[], $4::timestamptz[]) AS u (grp, tat) \
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
    Ok(Some(ClaimOutcome {
        jobs,
        retry_at: admission.wake_at,
    }))
}

/// Starts the admitted jobs (those still available: a job cancelled or deleted meanwhile is skipped) and counts
/// the moves; the row triggers move their groups' counters, in group order (the jobs are joined in that order),
/// after the count shards, as every writer of grouped jobs locks them. Writes the queue's throttle TAT and when
/// jobs without a group were served (when `$8`). One statement.
pub(crate) static CLAIM_IDS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH queue AS (
    UPDATE queues SET throttle_tat = $6,
        ungrouped_served_at = CASE WHEN $7 THEN $3 ELSE ungrouped_served_at END
    WHERE name = $2 AND $8
), taken AS (
    UPDATE jobs SET state = 'running', attempt = jobs.attempt + 1, attempted_at = $3,
        lease_token = gen_random_uuid(), lease_expires_at = $3::timestamptz + jobs.timeout_ms * interval '1 millisecond',
        worker_id = $4, progress = NULL, progress_message = NULL
    FROM unnest($1::uuid[]) AS u (id)
    WHERE jobs.id = u.id AND jobs.queue = $2 AND jobs.state = 'available' AND jobs.target IS NULL
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

/// The queue's running jobs, as a scalar subquery of the candidates' statements (the sum of its `queue_counts`
/// shards, exact at every commit).
const QUEUE_RUNNING: &str =
    "(SELECT coalesce(sum(n), 0)::int8 FROM queue_counts WHERE queue = $1 AND state = 'running')";

/// Candidates when limits involve groups, with the queue's running jobs (see [`grouped_candidates`]): `$1`
/// queue, `$2` group concurrency (NULL: none), `$3` most groups, `$4` most jobs per group, `$5` how many of
/// the queue's first jobs are searched for jobs without a group.
pub(crate) static GROUPED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH g AS ( \
             SELECT grp, running, tat, served_at FROM queue_groups \
             WHERE queue = $1 AND available > 0 AND ($2::int4 IS NULL OR running < $2) \
             ORDER BY served_at NULLS FIRST, grp LIMIT $3) \
         SELECT {QUEUE_RUNNING} AS queue_running, c.* FROM ( \
             (SELECT g.grp AS g_grp, g.running AS g_running, g.tat AS g_tat, g.served_at AS g_served_at, \
                     j.id, j.grp, j.priority, j.run_at \
              FROM g CROSS JOIN LATERAL ( \
                  SELECT id, grp, priority, run_at FROM jobs \
                  WHERE queue = $1 AND grp = g.grp AND state = 'available' AND target IS NULL \
                  ORDER BY priority DESC, run_at, id \
                  LIMIT least($4::int8, coalesce($2::int8 - g.running, $4::int8))) AS j) \
             UNION ALL \
             (SELECT NULL, NULL, NULL, NULL, h.id, h.grp, h.priority, h.run_at FROM ( \
                  SELECT id, grp, priority, run_at FROM jobs \
                  WHERE queue = $1 AND state = 'available' AND target IS NULL \
                  ORDER BY priority DESC, run_at, id LIMIT $5) AS h \
              WHERE h.grp IS NULL ORDER BY h.priority DESC, h.run_at, h.id LIMIT $4)) AS c"
    )
});

/// The first `$2` available pull jobs of queue `$1` in claim order, with the queue's running jobs.
pub(crate) static TOP_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {QUEUE_RUNNING} AS queue_running, id, grp, priority, run_at FROM jobs \
         WHERE queue = $1 AND state = 'available' AND target IS NULL \
         ORDER BY priority DESC, run_at, id LIMIT $2"
    )
});

fn set_running(usage: &mut Usage, rows: &[PgRow]) -> Result<()> {
    if let Some(r) = rows.first() {
        let n: i64 = get(r, "queue_running")?;
        usage.running = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    }
    Ok(())
}

/// The first `want` available pull jobs of the queue, in claim order (limits on the queue only), and the
/// queue's running jobs.
async fn top_available(
    conn: &mut PgConnection,
    queue: &str,
    want: usize,
    usage: &mut Usage,
) -> Result<Vec<Waiting>> {
    let rows = sqlx::query(TOP_SQL.as_str())
        .bind(queue)
        .bind(i64::try_from(want).unwrap_or(i64::MAX))
        .fetch_all(conn)
        .await
        .map_err(db)?;
    set_running(usage, &rows)?;
    rows.iter().map(waiting_of).collect()
}

fn waiting_of(r: &PgRow) -> Result<Waiting> {
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
    let rows = sqlx::query(GROUPED_SQL.as_str())
        .bind(queue)
        .bind(gc.map(|g| i32::try_from(g).unwrap_or(i32::MAX)))
        .bind(i64::try_from(2 * want + 8).unwrap_or(i64::MAX))
        .bind(i64::try_from(want).unwrap_or(i64::MAX))
        .bind(UNGROUPED_PROBE)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    set_running(usage, &rows)?;
    let mut groups: Vec<GroupRow> = Vec::new();
    let mut grouped = Vec::new();
    let mut ungrouped = Vec::new();
    for r in &rows {
        let w = waiting_of(r)?;
        let Some(grp) = get::<Option<String>>(r, "g_grp")? else {
            ungrouped.push(w);
            continue;
        };
        if !usage.group_running.contains_key(&grp) {
            let running = u32::try_from(get::<i32>(r, "g_running")?.max(0)).unwrap_or(0);
            if let Some(tat) = ts_opt(r, "g_tat")? {
                usage.group_tats.insert(grp.clone(), tat);
            }
            usage.group_running.insert(grp.clone(), running);
            groups.push(GroupRow {
                grp,
                served_at: ts_opt(r, "g_served_at")?,
            });
        }
        grouped.push(w);
    }
    // Least recently served first (never served: first), as `queue_groups_waiting` lists them.
    groups.sort_by(|a, b| {
        (a.served_at.is_some(), a.served_at, &a.grp).cmp(&(
            b.served_at.is_some(),
            b.served_at,
            &b.grp,
        ))
    });
    // Group-major in the groups' order, each group's jobs in claim order.
    let order: BTreeMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.grp.as_str(), i))
        .collect();
    grouped.sort_by_key(|w| {
        (
            w.group.as_deref().and_then(|g| order.get(g)).copied(),
            w.claim_order(),
        )
    });
    ungrouped.sort_by_key(Waiting::claim_order);
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
