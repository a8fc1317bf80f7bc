//! Reading jobs: one job with its history, and filtered pages newest first.
//!
//! Invariant: a job is read with its history in one statement, so the two never disagree; every list is an
//! index walk in `id` order that stops after `limit` matches. Filters the indexes do not cover (`name`, `tag`,
//! and the `available`/`running` states, which are left out of the per-state index to keep claims cheap) are
//! checked on the rows walked, so a filter matching few recent jobs may walk many.

use offload_core::{
    Attempt, AttemptOutcome, DurationSpec, Job, JobId, JobState, Progress, ScheduledBy,
};
use offload_store::StoreError;
use offload_store::{JobListParams, Result};
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::{Arguments, AssertSqlSafe};

use crate::codec::{self, RawJson, Ts, get, ts, ts_opt};
use crate::error::db;

/// The columns [`job_from_row`] reads.
const JOB_COLUMNS: &str = "id, queue, name, state, payload, priority, attempt, max_attempts, backoff_base_ms, \
     backoff_cap_ms, backoff_jitter, timeout_ms, run_at, created_at, attempted_at, finished_at, lease_expires_at, \
     worker_id, idempotency_key, tags, progress, progress_message, result, last_error, cancel_requested, \
     target::text AS target, schedule_name, schedule_fire_at, grp, debounce_key";

/// One job with its attempt history: ended attempts from `job_attempts` (as arrays, so the job row and its
/// history come from the same statement) plus the running or successful last one, from the job row.
pub(crate) async fn get_job(conn: &mut PgConnection, id: JobId) -> Result<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS}, h.* FROM jobs LEFT JOIN LATERAL ( \
           SELECT array_agg(a.attempt ORDER BY a.attempt) AS h_attempt, \
                  array_agg(a.started_at ORDER BY a.attempt) AS h_started_at, \
                  array_agg(a.finished_at ORDER BY a.attempt) AS h_finished_at, \
                  array_agg(a.worker_id ORDER BY a.attempt) AS h_worker_id, \
                  array_agg(a.outcome ORDER BY a.attempt) AS h_outcome, \
                  array_agg(a.error ORDER BY a.attempt) AS h_error \
           FROM job_attempts a WHERE a.job_id = jobs.id) AS h ON true \
         WHERE id = $1"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let mut job = job_from_row(&row)?;
    let mut attempts = history(&row)?;
    // The running attempt, and a successful last one, live in the job row only (see `jobs_finish`).
    let from_row = match job.state {
        JobState::Running => Some((AttemptOutcome::Running, None)),
        JobState::Succeeded => Some((AttemptOutcome::Succeeded, job.finished_at)),
        _ => None,
    };
    if let Some((outcome, finished_at)) = from_row {
        attempts.push(Attempt {
            attempt: job.attempt,
            started_at: job.attempted_at.unwrap_or(job.run_at),
            finished_at,
            worker_id: job.worker_id.clone(),
            outcome,
            error: None,
        });
    }
    job.attempts = Some(attempts);
    Ok(Some(job))
}

/// The ended attempts aggregated by [`get_job`] (all arrays NULL when there are none).
fn history(row: &PgRow) -> Result<Vec<Attempt>> {
    let Some(numbers) = get::<Option<Vec<i32>>>(row, "h_attempt")? else {
        return Ok(Vec::new());
    };
    let started: Vec<Ts> = get(row, "h_started_at")?;
    let finished: Vec<Ts> = get(row, "h_finished_at")?;
    let workers: Vec<Option<String>> = get(row, "h_worker_id")?;
    let outcomes: Vec<String> = get(row, "h_outcome")?;
    let errors: Vec<Option<String>> = get(row, "h_error")?;
    let n = numbers.len();
    if [
        started.len(),
        finished.len(),
        workers.len(),
        outcomes.len(),
        errors.len(),
    ]
    .iter()
    .any(|len| *len != n)
    {
        return Err(StoreError::corrupt(
            "attempt history arrays differ in length",
        ));
    }
    numbers
        .into_iter()
        .zip(started)
        .zip(finished)
        .zip(workers)
        .zip(outcomes)
        .zip(errors)
        .map(
            |(((((attempt, started), finished), worker_id), outcome), error)| {
                Ok(Attempt {
                    attempt: codec::u32_of(attempt, "attempt")?,
                    started_at: started.0,
                    finished_at: Some(finished.0),
                    worker_id,
                    outcome: outcome.parse().map_err(StoreError::corrupt)?,
                    error,
                })
            },
        )
        .collect()
}

/// A page of jobs, newest first. Each filter combination walks an index in `id` order and stops after
/// `limit` matches: no filter: the primary key; a queue: `jobs_queue`; a queue and a settled state (neither
/// `available` nor `running`): `jobs_settled`; a queue and `available`/`running`: `jobs_queue`, skipping the
/// jobs in other states; a state alone: one such walk per queue that has jobs in that state, merged.
pub(crate) async fn list_jobs(conn: &mut PgConnection, p: &JobListParams) -> Result<Vec<Job>> {
    if p.limit == 0 {
        return Ok(Vec::new());
    }
    let (Some(state), None) = (p.state, &p.queue) else {
        return walk(conn, p, p.queue.as_deref()).await;
    };
    let queues: Vec<String> = sqlx::query_scalar(
        "SELECT queue FROM queue_counts WHERE state = $1 GROUP BY queue HAVING sum(n) > 0 ORDER BY queue",
    )
    .bind(state.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut jobs = Vec::new();
    for queue in &queues {
        jobs.extend(walk(conn, p, Some(queue)).await?);
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
    jobs.truncate(p.limit as usize);
    Ok(jobs)
}

/// One index walk, newest first, over `queue` (or every queue) with the other filters of `p`.
async fn walk(conn: &mut PgConnection, p: &JobListParams, queue: Option<&str>) -> Result<Vec<Job>> {
    let (sql, args) = walk_sql(p, queue)?;
    let rows = sqlx::query_with(AssertSqlSafe(sql), args)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    rows.iter().map(job_from_row).collect()
}

/// The statement of [`walk`].
pub(crate) fn walk_sql(p: &JobListParams, queue: Option<&str>) -> Result<(String, PgArguments)> {
    let mut q = Params::default();
    let mut filters = Vec::new();
    if let Some(queue) = queue {
        filters.push(format!("queue = {}", q.bind(queue.to_owned())?));
    }
    match p.state {
        Some(s @ (JobState::Available | JobState::Running)) => {
            filters.push(format!("state = {}", q.bind(s.as_str())?))
        }
        // Repeats the partial index's condition so that `jobs_settled` applies.
        Some(s) => filters.push(format!(
            "state NOT IN ('available', 'running') AND state = {}",
            q.bind(s.as_str())?
        )),
        None => {}
    }
    if let Some(name) = &p.name {
        filters.push(format!("name = {}", q.bind(name.clone())?));
    }
    if let Some((key, value)) = &p.tag {
        let (k, v) = (q.bind(key.clone())?, q.bind(value.clone())?);
        // Containment, so that the `jobs_tags` index applies.
        filters.push(format!(
            "tags IS NOT NULL AND tags @> jsonb_build_object({k}::text, {v}::text)"
        ));
    }
    if let Some(group) = &p.group {
        filters.push(format!("grp = {}", q.bind(group.clone())?));
    }
    if let Some(before) = &p.before {
        filters.push(format!("id < {}", q.bind(before.0)?));
    }
    let limit = q.bind(i64::from(p.limit))?;
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    Ok((
        format!("SELECT {JOB_COLUMNS} FROM jobs {filters} ORDER BY id DESC LIMIT {limit}"),
        q.args,
    ))
}

/// Arguments of a statement built at run time, numbered `$1`, `$2`... in the order they are bound.
#[derive(Default)]
struct Params {
    args: PgArguments,
    count: usize,
}

impl Params {
    /// Binds a value and returns its placeholder.
    fn bind<T>(&mut self, value: T) -> Result<String>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'static,
    {
        self.args
            .add(value)
            .map_err(|e| StoreError::corrupt(format!("cannot bind a filter: {e}")))?;
        self.count += 1;
        Ok(format!("${}", self.count))
    }
}

/// A job from a row holding [`JOB_COLUMNS`] (without its history).
pub(crate) fn job_from_row(row: &PgRow) -> Result<Job> {
    let progress = match get::<Option<i16>>(row, "progress")? {
        None => None,
        Some(p) => Some(Progress {
            percent: u8::try_from(p).map_err(|_| StoreError::corrupt(format!("progress {p}")))?,
            message: get(row, "progress_message")?,
        }),
    };
    Ok(Job {
        id: JobId(get(row, "id")?),
        queue: get(row, "queue")?,
        name: get(row, "name")?,
        state: codec::state(get::<&str>(row, "state")?)?,
        payload: get::<RawJson>(row, "payload")?.0,
        priority: get(row, "priority")?,
        attempt: codec::u32_of(get(row, "attempt")?, "attempt")?,
        max_attempts: codec::u32_of(get(row, "max_attempts")?, "max_attempts")?,
        backoff: codec::backoff(
            get(row, "backoff_base_ms")?,
            get(row, "backoff_cap_ms")?,
            get(row, "backoff_jitter")?,
        )?,
        timeout: DurationSpec(offload_store::codec::duration(get(row, "timeout_ms")?)?),
        run_at: ts(row, "run_at")?,
        created_at: ts(row, "created_at")?,
        attempted_at: ts_opt(row, "attempted_at")?,
        finished_at: ts_opt(row, "finished_at")?,
        lease_expires_at: ts_opt(row, "lease_expires_at")?,
        worker_id: get(row, "worker_id")?,
        idempotency_key: get(row, "idempotency_key")?,
        tags: codec::tags(get(row, "tags")?),
        progress,
        result: get::<Option<RawJson>>(row, "result")?.map(|j| j.0),
        last_error: get(row, "last_error")?,
        cancel_requested: get(row, "cancel_requested")?,
        attempts: None,
        target: codec::target(get::<Option<&str>>(row, "target")?)?,
        schedule: match get::<Option<String>>(row, "schedule_name")? {
            None => None,
            Some(name) => Some(ScheduledBy {
                name,
                fire_at: ts(row, "schedule_fire_at")?,
            }),
        },
        group: get(row, "grp")?,
        debounce_key: get(row, "debounce_key")?,
        waiting_for: None,
    })
}
