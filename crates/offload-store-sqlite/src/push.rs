//! Push claims: handing available push jobs to the dispatcher under a per-destination cap.
//!
//! Invariant: like a worker's claim, a push claim runs in the single writer's transaction, so no job is handed
//! out twice; it only ever takes jobs with a target, of unpaused queues, and never starts a job of a destination
//! that already runs the cap: the running push jobs of each destination are counted from the `jobs` rows in
//! that transaction (every way a running job ends moves its row out of `running`), and
//! [`offload_store::push_cap::pick`] decides. So the cap holds across every dispatcher sharing the database.
//!
//! Cost: the claim walks the `(destination, queue)` pairs that have available push jobs, one index seek per
//! pair, jumping over a whole destination that is at its cap and over paused queues; it then reads at most the
//! remaining budget of jobs from each pair. Each destination's running jobs are counted once, through the
//! `jobs_push_running` index (about the cap's rows). So a claim's work does not depend on how large a backlog
//! any destination (or paused queue) has. At most [`MAX_PAIRS`] pairs are visited per claim, in name order.

use std::collections::HashMap;

use offload_core::{JobState, Timestamp};
use offload_store::StoreError;
use offload_store::push_cap;
use offload_store::{JobClaimPushParams, PushJob, Result};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::leases::{ClaimedRow, TAKE_SQL, claimed};

/// The first `(destination, queue)` pair with available push jobs after `(?1, ?2)`.
pub(crate) const NEXT_PAIR_SQL: &str = "\
SELECT destination, queue FROM jobs
WHERE state = 'available' AND target IS NOT NULL AND (destination, queue) > (?1, ?2)
ORDER BY destination, queue LIMIT 1";

/// The first pair of the next destination after `?1`.
pub(crate) const NEXT_DESTINATION_SQL: &str = "\
SELECT destination, queue FROM jobs
WHERE state = 'available' AND target IS NOT NULL AND destination > ?1
ORDER BY destination, queue LIMIT 1";

/// The first jobs of one pair in claim order: `[seq, priority, run_at]`.
pub(crate) const PAIR_JOBS_SQL: &str = "\
SELECT json_group_array(json_array(seq, priority, run_at) ORDER BY priority DESC, run_at, seq) FROM (
    SELECT seq, priority, run_at FROM jobs
    WHERE state = 'available' AND target IS NOT NULL AND destination = ?1 AND queue = ?2
    ORDER BY priority DESC, run_at, seq
    LIMIT ?3)";

/// The claimed push jobs: the worker claim's columns, then the target and its destination.
const READ_PUSH_SQL: &str = "\
SELECT json_group_array(json_array(
    json_array(seq, hex(id), queue, name, payload, attempt, max_attempts, hex(lease_token), lease_expires_at,
               timeout_ms, tags, created_at, run_at),
    target, destination))
FROM jobs WHERE seq IN (SELECT value FROM json_each(?1))";

/// The push jobs of destination `?1` running now.
pub(crate) const RUNNING_SQL: &str = "\
SELECT count(*) FROM jobs INDEXED BY jobs_push_running
WHERE state = 'running' AND target IS NOT NULL AND destination = ?1";

/// Most `(destination, queue)` pairs visited by one claim.
pub(crate) const MAX_PAIRS: usize = 1024;

/// One candidate job.
struct Candidate {
    seq: i64,
    priority: i64,
    run_at: i64,
    pair: usize,
}

/// Claims push jobs; returned highest priority first, then oldest due.
pub(crate) async fn claim(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: JobClaimPushParams,
    counts: &mut Counts,
) -> Result<Vec<PushJob>> {
    if p.max_jobs == 0 || p.per_destination == 0 {
        return Ok(Vec::new());
    }
    // Running push jobs per destination met so far, counted when first met.
    let mut running: HashMap<String, u32> = HashMap::new();
    let paused: Vec<String> = sqlx::query_scalar("SELECT name FROM queues WHERE paused")
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let budget = |running: &HashMap<String, u32>, d: &str| {
        push_cap::budget(p.per_destination, running.get(d).copied().unwrap_or(0)).min(p.max_jobs)
    };

    // Walk the pairs, reading each open pair's first jobs.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut at: Option<(String, String)> = None;
    for _ in 0..MAX_PAIRS {
        let next: Option<(String, String)> = match &at {
            None => sqlx::query_as(NEXT_PAIR_SQL).bind("").bind(""),
            Some((d, _)) if budget(&running, d) == 0 => {
                sqlx::query_as(NEXT_DESTINATION_SQL).bind(d.as_str())
            }
            Some((d, q)) => sqlx::query_as(NEXT_PAIR_SQL)
                .bind(d.as_str())
                .bind(q.as_str()),
        }
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let Some((destination, queue)) = next else {
            break;
        };
        if !running.contains_key(&destination) {
            let n: i64 = sqlx::query_scalar(RUNNING_SQL)
                .bind(destination.as_str())
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
            running.insert(destination.clone(), crate::flow::count(n));
        }
        let open = budget(&running, &destination);
        if open > 0 && !paused.contains(&queue) {
            let json: String = sqlx::query_scalar(PAIR_JOBS_SQL)
                .bind(destination.as_str())
                .bind(queue.as_str())
                .bind(i64::from(open))
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
            let rows: Vec<(i64, i64, i64)> = serde_json::from_str(&json)
                .map_err(|e| StoreError::corrupt(format!("push claim: {e}")))?;
            let pair = pairs.len();
            candidates.extend(rows.into_iter().map(|(seq, priority, run_at)| Candidate {
                seq,
                priority,
                run_at,
                pair,
            }));
            pairs.push((destination.clone(), queue.clone()));
        }
        at = Some((destination, queue));
    }

    // Best first across pairs; each destination's budget spans its queues.
    candidates.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.run_at, c.seq));
    let destinations: Vec<&str> = candidates
        .iter()
        .map(|c| pairs[c.pair].0.as_str())
        .collect();
    let chosen = push_cap::pick(p.per_destination, &running, &destinations, p.max_jobs);
    let mut order = Vec::with_capacity(chosen.len());
    let mut per_queue: HashMap<&str, i64> = HashMap::new();
    for i in chosen {
        let c = &candidates[i];
        order.push(c.seq);
        *per_queue.entry(pairs[c.pair].1.as_str()).or_default() += 1;
    }
    if order.is_empty() {
        return Ok(Vec::new());
    }
    let picked = serde_json::to_string(&order)
        .map_err(|e| StoreError::corrupt(format!("push claim: {e}")))?;
    sqlx::query(TAKE_SQL)
        .bind(micros(now))
        .bind(p.worker_id)
        .bind(picked.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let json: String = sqlx::query_scalar(READ_PUSH_SQL)
        .bind(picked)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let rows: Vec<(ClaimedRow, String, String)> = serde_json::from_str(&json)
        .map_err(|e| StoreError::corrupt(format!("claimed push jobs: {e}")))?;
    let position: HashMap<i64, usize> =
        order.iter().enumerate().map(|(i, seq)| (*seq, i)).collect();
    let mut jobs = rows
        .into_iter()
        .map(|(row, target, destination)| {
            let (seq, job) = claimed(row)?;
            let target = codec::target(Some(&target))?
                .ok_or_else(|| StoreError::corrupt("push job without target"))?;
            Ok((
                seq,
                PushJob {
                    job,
                    target,
                    destination,
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|(seq, _)| position.get(seq).copied().unwrap_or(usize::MAX));
    for (queue, n) in per_queue {
        counts.moved(queue, JobState::Available, JobState::Running, n);
    }
    Ok(jobs.into_iter().map(|(_, job)| job).collect())
}
