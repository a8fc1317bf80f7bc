//! Reading jobs: one job with its history, and filtered pages newest first.
//!
//! Invariant: a job is read with its history in one statement, so the two never disagree; every list is an
//! index walk in `id` order that stops after `limit` matches. Filters the index does not cover (`name`, `tag`,
//! and the `available`/`running` states, which are left out of the per-state index to keep claims cheap) are
//! checked on the rows walked, so a filter matching few recent jobs may walk many.

use offload_core::{
    Attempt, AttemptOutcome, DurationSpec, Job, JobId, JobState, Progress, ScheduledBy,
};
use offload_store::{JobListParams, Result};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe};

use crate::codec::{self, get};
use crate::error::{corrupt, db};

/// The columns [`job_from_row`] reads.
const JOB_COLUMNS: &str = "seq, id, queue, name, state, payload, priority, attempt, max_attempts, backoff_base_ms, \
     backoff_cap_ms, backoff_jitter, timeout_ms, run_at, created_at, attempted_at, finished_at, lease_expires_at, \
     worker_id, idempotency_key, tags, progress, progress_message, result, last_error, cancel_requested, \
     schedule_name, schedule_fire_at";

/// One job with its attempt history: ended attempts from `job_attempts` (as one JSON array, so the job row
/// and its history come from the same statement) plus the running one synthesized from the job row.
pub(crate) async fn get_job(conn: &mut SqliteConnection, id: JobId) -> Result<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS}, \
           (SELECT json_group_array(json_array(attempt, started_at, finished_at, worker_id, outcome, error) \
                                    ORDER BY attempt) \
            FROM job_attempts WHERE job_seq = jobs.seq) AS attempts \
         FROM jobs WHERE id = ?1"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.as_bytes().as_slice())
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let mut job = job_from_row(&row)?;
    let mut attempts = attempts(get::<Option<String>>(&row, "attempts")?.as_deref())?;
    if job.state == JobState::Running {
        attempts.push(Attempt {
            attempt: job.attempt,
            started_at: job.attempted_at.unwrap_or(job.run_at),
            finished_at: None,
            worker_id: job.worker_id.clone(),
            outcome: AttemptOutcome::Running,
            error: None,
        });
    }
    job.attempts = Some(attempts);
    Ok(Some(job))
}

/// A page of jobs, newest first. Each filter combination walks an index in `id` order and stops after
/// `limit` matches: no filter: `jobs_id`; a queue: `jobs_queue`; a queue and a settled state (neither
/// `available` nor `running`): `jobs_settled`; a queue and `available`/`running`: `jobs_queue`, skipping the
/// jobs in other states; a state alone: one such walk per queue that has jobs in that state, merged.
pub(crate) async fn list_jobs(conn: &mut SqliteConnection, p: &JobListParams) -> Result<Vec<Job>> {
    if p.limit == 0 {
        return Ok(Vec::new());
    }
    let (Some(state), None) = (p.state, &p.queue) else {
        return walk(conn, p, p.queue.as_deref()).await;
    };
    let queues: Vec<String> = sqlx::query_scalar(
        "SELECT queue FROM queue_counts WHERE state = ?1 AND n > 0 ORDER BY queue",
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
async fn walk(
    conn: &mut SqliteConnection,
    p: &JobListParams,
    queue: Option<&str>,
) -> Result<Vec<Job>> {
    let (sql, args) = walk_sql(p, queue)?;
    let rows = sqlx::query_with(AssertSqlSafe(sql), args)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    rows.iter().map(job_from_row).collect()
}

/// The statement of [`walk`].
pub(crate) fn walk_sql(
    p: &JobListParams,
    queue: Option<&str>,
) -> Result<(String, SqliteArguments)> {
    let mut q = Params::default();
    let mut filters = Vec::new();
    if let Some(queue) = queue {
        filters.push(format!("queue = {}", q.bind(queue)?));
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
        filters.push(format!("name = {}", q.bind(name.as_str())?));
    }
    if let Some((key, value)) = &p.tag {
        // Tags are a JSON object; json_each compares the key exactly (no JSON-path quoting of user text).
        let (k, v) = (q.bind(key.as_str())?, q.bind(value.as_str())?);
        filters.push(format!(
            "EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE key = {k} AND value = {v})"
        ));
    }
    if let Some(before) = &p.before {
        filters.push(format!("id < {}", q.bind(before.as_bytes().as_slice())?));
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

/// Arguments of a statement built at run time, numbered `?1`, `?2`... in the order they are bound.
#[derive(Default)]
struct Params {
    args: SqliteArguments,
    count: usize,
}

impl Params {
    /// Binds a value and returns its placeholder.
    fn bind<'q, T>(&mut self, value: T) -> Result<String>
    where
        T: sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        self.args
            .add(value)
            .map_err(|e| corrupt(format!("cannot bind a filter: {e}")))?;
        self.count += 1;
        Ok(format!("?{}", self.count))
    }
}

/// A job from a row holding [`JOB_COLUMNS`] (without its history).
fn job_from_row(row: &SqliteRow) -> Result<Job> {
    let progress = match get::<Option<i64>>(row, "progress")? {
        None => None,
        Some(p) => Some(Progress {
            percent: u8::try_from(p).map_err(|_| corrupt(format!("progress {p}")))?,
            message: get(row, "progress_message")?,
        }),
    };
    Ok(Job {
        id: codec::job_id(get::<&[u8]>(row, "id")?)?,
        queue: get(row, "queue")?,
        name: get(row, "name")?,
        state: codec::state(get::<&str>(row, "state")?)?,
        payload: codec::raw_json(get(row, "payload")?)?,
        priority: get(row, "priority")?,
        attempt: codec::u32_of(get(row, "attempt")?, "attempt")?,
        max_attempts: codec::u32_of(get(row, "max_attempts")?, "max_attempts")?,
        backoff: codec::backoff(
            get(row, "backoff_base_ms")?,
            get(row, "backoff_cap_ms")?,
            get(row, "backoff_jitter")?,
        )?,
        timeout: DurationSpec(codec::duration(get(row, "timeout_ms")?)?),
        run_at: codec::timestamp(get(row, "run_at")?)?,
        created_at: codec::timestamp(get(row, "created_at")?)?,
        attempted_at: get::<Option<i64>>(row, "attempted_at")?
            .map(codec::timestamp)
            .transpose()?,
        finished_at: get::<Option<i64>>(row, "finished_at")?
            .map(codec::timestamp)
            .transpose()?,
        lease_expires_at: get::<Option<i64>>(row, "lease_expires_at")?
            .map(codec::timestamp)
            .transpose()?,
        worker_id: get(row, "worker_id")?,
        idempotency_key: get(row, "idempotency_key")?,
        tags: codec::tags(get::<Option<&str>>(row, "tags")?)?,
        progress,
        result: get::<Option<String>>(row, "result")?
            .map(codec::raw_json)
            .transpose()?,
        last_error: get(row, "last_error")?,
        cancel_requested: get::<i64>(row, "cancel_requested")? != 0,
        attempts: None,
        schedule: match get::<Option<String>>(row, "schedule_name")? {
            Some(name) => Some(ScheduledBy {
                name,
                fire_at: codec::timestamp(get(row, "schedule_fire_at")?)?,
            }),
            None => None,
        },
    })
}

/// One ended attempt as `get_job` aggregates it: `[attempt, started_at, finished_at, worker_id, outcome, error]`.
type AttemptRow = (
    i64,
    i64,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
);

fn attempts(json: Option<&str>) -> Result<Vec<Attempt>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let rows: Vec<AttemptRow> =
        serde_json::from_str(json).map_err(|e| corrupt(format!("attempts: {e}")))?;
    rows.into_iter()
        .map(
            |(attempt, started_at, finished_at, worker_id, outcome, error)| {
                Ok(Attempt {
                    attempt: codec::u32_of(attempt, "attempt")?,
                    started_at: codec::timestamp(started_at)?,
                    finished_at: finished_at.map(codec::timestamp).transpose()?,
                    worker_id,
                    outcome: outcome.parse().map_err(corrupt)?,
                    error,
                })
            },
        )
        .collect()
}
