//! Push claims: handing available push jobs to the dispatcher under a per-destination cap.
//!
//! Invariant: like a worker's claim, a push claim is one statement that picks with `FOR UPDATE SKIP LOCKED`,
//! starts the attempts and counts the move, so no job is handed out twice whichever server's dispatcher asks. It
//! only ever takes jobs with a target, of unpaused queues, and never more jobs of one destination than the cap
//! minus what the caller already holds. (The cap is per dispatcher: with several servers, a destination may see
//! up to the cap per server.)
//!
//! Cost: the statement walks the `(destination, queue)` pairs that have available push jobs, one index seek per
//! pair (at most [`MAX_PAIRS`]), and reads at most the destination's remaining budget of jobs from each pair,
//! so a claim's work does not depend on how large any destination's backlog is.

use std::cmp::Reverse;
use std::sync::LazyLock;

use offload_core::Timestamp;
use offload_store::StoreError;
use offload_store::{JobClaimPushParams, PushJob, Result};
use sqlx::postgres::PgConnection;

use crate::codec::{self, Ts, get, ts};
use crate::counts;
use crate::error::db;
use crate::leases::claimed;

/// Most `(destination, queue)` pairs visited by one claim.
pub(crate) const MAX_PAIRS: i64 = 1024;

/// Walks the pairs, picks each open destination's best jobs (its budget spans its queues), the best `$2` of
/// those overall, then starts and counts them like a worker's claim. `$1` now, `$3` the cap, `$4`/`$5` what the
/// caller holds per destination, `$6` the worker id, `$7` the count shard, `$8` [`MAX_PAIRS`].
pub(crate) static CLAIM_PUSH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH RECURSIVE pairs AS (
    (SELECT destination, queue FROM jobs WHERE state = 'available' AND target IS NOT NULL
     ORDER BY destination, queue LIMIT 1)
    UNION ALL
    SELECT n.destination, n.queue FROM pairs p CROSS JOIN LATERAL (
        SELECT destination, queue FROM jobs
        WHERE state = 'available' AND target IS NOT NULL AND (destination, queue) > (p.destination, p.queue)
        ORDER BY destination, queue LIMIT 1) n
), open AS (
    SELECT p.destination, p.queue, $3::int4 - coalesce(b.n, 0) AS budget
    FROM (SELECT destination, queue FROM pairs LIMIT $8) p
    LEFT JOIN unnest($4::text[], $5::int4[]) AS b (destination, n) ON b.destination = p.destination
    WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = p.queue AND q.paused)
), candidates AS (
    SELECT c.ctid, o.destination, o.budget, c.priority, c.run_at, c.id FROM open o CROSS JOIN LATERAL (
        SELECT ctid, priority, run_at, id FROM jobs
        WHERE state = 'available' AND target IS NOT NULL AND destination = o.destination AND queue = o.queue
        ORDER BY priority DESC, run_at, id
        LIMIT greatest(o.budget, 0)
        FOR UPDATE SKIP LOCKED) c
    WHERE o.budget > 0
), picked AS (
    SELECT ctid FROM (
        SELECT ctid, budget, priority, run_at, id,
            row_number() OVER (PARTITION BY destination ORDER BY priority DESC, run_at, id) AS k
        FROM candidates) r
    WHERE k <= budget
    ORDER BY priority DESC, run_at, id
    LIMIT $2
), taken AS (
    UPDATE jobs SET state = 'running', attempt = jobs.attempt + 1, attempted_at = $1,
        lease_token = gen_random_uuid(), lease_expires_at = $1::timestamptz + jobs.timeout_ms * interval '1 millisecond',
        worker_id = $6, progress = NULL, progress_message = NULL
    FROM picked WHERE jobs.ctid = picked.ctid
    RETURNING jobs.id, jobs.queue, jobs.name, jobs.payload, jobs.attempt, jobs.max_attempts, jobs.lease_token,
        jobs.lease_expires_at, jobs.timeout_ms, jobs.tags, jobs.created_at, jobs.priority, jobs.run_at,
        jobs.target::text AS target, jobs.destination
), {}
SELECT * FROM taken",
        counts::cte(
            "SELECT queue, 'available', -1 FROM taken UNION ALL SELECT queue, 'running', 1 FROM taken",
            "$7"
        )
    )
});

/// Claims push jobs; returned highest priority first, then oldest due.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    now: Timestamp,
    p: JobClaimPushParams,
) -> Result<Vec<PushJob>> {
    if p.max_jobs == 0 || p.per_destination == 0 {
        return Ok(Vec::new());
    }
    let (busy_destinations, busy_counts): (Vec<String>, Vec<i32>) = p
        .busy
        .into_iter()
        .map(|(d, n)| (d, i32::try_from(n).unwrap_or(i32::MAX)))
        .unzip();
    let rows = sqlx::query(CLAIM_PUSH_SQL.as_str())
        .bind(Ts(now))
        .bind(i64::from(p.max_jobs))
        .bind(i32::try_from(p.per_destination).unwrap_or(i32::MAX))
        .bind(busy_destinations)
        .bind(busy_counts)
        .bind(&p.worker_id)
        .bind(counts::shard())
        .bind(MAX_PAIRS)
        .fetch_all(conn)
        .await
        .map_err(db)?;
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
