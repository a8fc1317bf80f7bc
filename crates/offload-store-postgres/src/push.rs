//! Push claims: handing available push jobs to the dispatcher under a per-destination cap.
//!
//! Invariant: a push claim is one transaction that first takes the schema's push-claim advisory lock, so push
//! claims are serialised across every server; with the lock held it counts each candidate destination's running
//! push jobs from the `jobs` rows (each statement of a READ COMMITTED transaction sees every claim committed
//! before it, and every way a running job ends only lowers the count), lists candidates with
//! `FOR UPDATE SKIP LOCKED`, lets [`offload_store::push_cap::pick`] decide, then starts and counts the picked
//! jobs before the lock is released at commit. So no job is handed out twice and a destination never runs more
//! push jobs than the claimer's cap, however many servers claim. It only ever takes jobs with a target, of
//! unpaused queues.
//!
//! Cost: the candidates' statement walks the `(destination, queue)` pairs that have available push jobs, one
//! index seek per pair (at most [`MAX_PAIRS`]), counts each destination's running push jobs through
//! `jobs_push_running` (about the cap's rows), and reads at most the destination's remaining budget of jobs from
//! each pair, so a claim's work does not depend on how large any destination's backlog is.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::LazyLock;

use offload_core::Timestamp;
use offload_store::{JobClaimPushParams, PushJob, Result};
use offload_store::{StoreError, push_cap};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

use crate::codec::{self, Ts, get, ts};
use crate::counts;
use crate::error::db;
use crate::leases::claimed;

/// Most `(destination, queue)` pairs visited by one claim.
pub(crate) const MAX_PAIRS: i64 = 1024;

/// Advisory-lock class of push claims (the first half of the two-part key; the second is the schema's hash, so
/// installations sharing a database do not wait for each other).
const PUSH_LOCK_CLASS: i32 = 0x00ff_1a5e;

/// Candidates: walks the pairs (at most `$3`), counts each destination's running push jobs, and locks each open
/// pair's first jobs up to the destination's budget (`$1` the cap minus its running jobs, at most `$2`).
pub(crate) const CANDIDATES_SQL: &str = "\
WITH RECURSIVE pairs AS (
    (SELECT destination, queue FROM jobs WHERE state = 'available' AND target IS NOT NULL
     ORDER BY destination, queue LIMIT 1)
    UNION ALL
    SELECT n.destination, n.queue FROM pairs p CROSS JOIN LATERAL (
        SELECT destination, queue FROM jobs
        WHERE state = 'available' AND target IS NOT NULL AND (destination, queue) > (p.destination, p.queue)
        ORDER BY destination, queue LIMIT 1) n
), walked AS (
    SELECT destination, queue FROM pairs LIMIT $3
), running AS (
    SELECT d.destination, (SELECT count(*) FROM jobs r
        WHERE r.state = 'running' AND r.target IS NOT NULL AND r.destination = d.destination)::int8 AS running
    FROM (SELECT DISTINCT destination FROM walked) d
), open AS (
    SELECT w.destination, w.queue, r.running, least(greatest($1::int8 - r.running, 0), $2::int8) AS budget
    FROM walked w JOIN running r ON r.destination = w.destination
    WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = w.queue AND q.paused)
)
SELECT o.destination, o.running, c.id, c.priority, c.run_at FROM open o CROSS JOIN LATERAL (
    SELECT id, priority, run_at FROM jobs
    WHERE state = 'available' AND target IS NOT NULL AND destination = o.destination AND queue = o.queue
    ORDER BY priority DESC, run_at, id
    LIMIT o.budget
    FOR UPDATE SKIP LOCKED) c
WHERE o.budget > 0";

/// Starts the picked jobs (`$1`) and counts the moves like a worker's claim. `$2` now, `$3` the worker id, `$4`
/// the count shard. The jobs are matched by id only: [`CANDIDATES_SQL`] locked them in this transaction, so they
/// are still available push jobs (and a state test would let the planner walk a partial index instead).
pub(crate) static TAKE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH taken AS (
    UPDATE jobs SET state = 'running', attempt = jobs.attempt + 1, attempted_at = $2,
        lease_token = gen_random_uuid(), lease_expires_at = $2::timestamptz + jobs.timeout_ms * interval '1 millisecond',
        worker_id = $3, progress = NULL, progress_message = NULL
    FROM unnest($1::uuid[]) AS u (id)
    WHERE jobs.id = u.id
    RETURNING jobs.id, jobs.queue, jobs.name, jobs.payload, jobs.attempt, jobs.max_attempts, jobs.lease_token,
        jobs.lease_expires_at, jobs.timeout_ms, jobs.tags, jobs.created_at, jobs.priority, jobs.run_at,
        jobs.target::text AS target, jobs.destination
), {}
SELECT * FROM taken",
        counts::cte(
            "SELECT queue, 'available', -1 FROM taken UNION ALL SELECT queue, 'running', 1 FROM taken",
            "$4"
        )
    )
});

/// A waiting push job, as read for the pick.
struct Waiting {
    id: Uuid,
    destination: String,
    priority: i32,
    run_at: Timestamp,
}

/// Claims push jobs; returned highest priority first, then oldest due.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    now: Timestamp,
    p: JobClaimPushParams,
) -> Result<Vec<PushJob>> {
    if p.max_jobs == 0 || p.per_destination == 0 {
        return Ok(Vec::new());
    }
    let mut tx = conn.begin().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(PUSH_LOCK_CLASS)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let rows = sqlx::query(CANDIDATES_SQL)
        .bind(i64::from(p.per_destination))
        .bind(i64::from(p.max_jobs))
        .bind(MAX_PAIRS)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    let mut running: HashMap<String, u32> = HashMap::new();
    let mut waiting = Vec::with_capacity(rows.len());
    for r in &rows {
        let destination: String = get(r, "destination")?;
        let n: i64 = get(r, "running")?;
        running.insert(
            destination.clone(),
            u32::try_from(n.max(0)).unwrap_or(u32::MAX),
        );
        waiting.push(Waiting {
            id: get(r, "id")?,
            destination,
            priority: get(r, "priority")?,
            run_at: ts(r, "run_at")?,
        });
    }
    // Best first across pairs; each destination's budget spans its queues.
    waiting.sort_by_key(|w| (Reverse(w.priority), w.run_at, w.id));
    let destinations: Vec<&str> = waiting.iter().map(|w| w.destination.as_str()).collect();
    let picked = push_cap::pick(p.per_destination, &running, &destinations, p.max_jobs);
    if picked.is_empty() {
        tx.rollback().await.map_err(db)?;
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = picked.iter().map(|&i| waiting[i].id).collect();
    let rows = sqlx::query(TAKE_SQL.as_str())
        .bind(&ids)
        .bind(Ts(now))
        .bind(&p.worker_id)
        .bind(counts::shard())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    let mut jobs = rows
        .iter()
        .map(|r| {
            let order = (Reverse(get::<i32>(r, "priority")?), ts(r, "run_at")?);
            let target = codec::target(get::<Option<&str>>(r, "target")?)?
                .ok_or_else(|| StoreError::corrupt("push job without target"))?;
            let job = PushJob {
                job: claimed(r)?,
                target,
                destination: get(r, "destination")?,
            };
            Ok((order, job))
        })
        .collect::<Result<Vec<_>>>()?;
    jobs.sort_by(|(a, ja), (b, jb)| a.cmp(b).then(ja.job.id.cmp(&jb.job.id)));
    Ok(jobs.into_iter().map(|(_, job)| job).collect())
}
