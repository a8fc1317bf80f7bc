//! Reading jobs: one job with its history, and filtered pages newest first.
//!
//! Invariant: a job is read with its history in one statement, so the two never disagree; every list is an
//! index walk in `id` order that stops after `limit` matches, or (for a state holding few jobs, per the
//! maintained counters) a read of that state's partial index. Tags and names have indexes of their own;
//! filters an index does not cover are checked on the rows walked, so combining a common tag or name with a
//! rare other filter may walk many rows.

use offload_core::{
    Attempt, AttemptOutcome, DurationSpec, Job, JobId, JobState, Progress, ScheduledBy,
};
use offload_store::StoreError;
use offload_store::{JobListParams, Result};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe};

use crate::codec::{self, get};
use crate::error::db;

/// The columns [`job_from_row`] reads.
const JOB_COLUMNS: &str = "seq, id, queue, name, state, payload, priority, attempt, max_attempts, backoff_base_ms, \
     backoff_cap_ms, backoff_jitter, timeout_ms, run_at, created_at, attempted_at, finished_at, lease_expires_at, \
     worker_id, idempotency_key, tags, progress, progress_message, result, last_error, cancel_requested, target, \
     schedule_name, schedule_fire_at, grp, debounce_key";

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
/// `limit` matches: a tag: `job_tags` (the jobs carrying it); else a group: `jobs_group`; else a name: `jobs_name`; no filter: `jobs_id`;
/// a queue: `jobs_queue`; a queue and a settled state (neither `available` nor `running`): `jobs_settled`; a
/// queue and `available`/`running`: `jobs_queue`, skipping the jobs in other states, unless the counters say
/// the state's jobs are few ([`Walk::Sparse`]): then its partial index is read whole and the few rows sorted;
/// a state alone: one such walk per queue that has jobs in that state, merged.
pub(crate) async fn list_jobs(conn: &mut SqliteConnection, p: &JobListParams) -> Result<Vec<Job>> {
    if p.limit == 0 {
        return Ok(Vec::new());
    }
    // Walks that need a queue (per-state and per-name indexes start with it) run once per queue, merged.
    let per_queue = p.queue.is_none()
        && p.tag.is_none()
        && p.group.is_none()
        && (p.state.is_some() || p.name.is_some());
    if !per_queue {
        let how = walk_for(conn, p, p.queue.as_deref()).await?;
        return walk(conn, p, p.queue.as_deref(), how).await;
    }
    let queues: Vec<String> = match p.state {
        Some(state) => sqlx::query_scalar(
            "SELECT queue FROM queue_counts WHERE state = ?1 AND n > 0 ORDER BY queue",
        )
        .bind(state.as_str()),
        None => sqlx::query_scalar(
            "SELECT DISTINCT queue FROM queue_counts WHERE n > 0 AND ?1 IS NULL ORDER BY queue",
        )
        .bind(None::<&str>),
    }
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut jobs = Vec::new();
    for queue in &queues {
        let how = walk_for(conn, p, Some(queue)).await?;
        jobs.extend(walk(conn, p, Some(queue), how).await?);
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
    jobs.truncate(p.limit as usize);
    Ok(jobs)
}

/// How a list reaches its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Walk an index in `id` order, checking the filters on each row, until `limit` rows matched.
    ById,
    /// Read every job of the state (available or running) through its partial index and sort them: for
    /// states that hold few of a queue's jobs, which a walk by id might have to skip past by the thousand.
    Sparse,
}

/// Most jobs of a state read whole by a [`Walk::Sparse`] list.
const SPARSE_MAX: i64 = 200_000;

/// [`Walk::Sparse`] when the counters say `state` holds at most [`SPARSE_MAX`] jobs (all queues' for
/// `running`, whose index has no queue) and at most half of `queue`'s.
async fn walk_for(
    conn: &mut SqliteConnection,
    p: &JobListParams,
    queue: Option<&str>,
) -> Result<Walk> {
    let (Some(queue), Some(state @ (JobState::Available | JobState::Running)), None, None, None) =
        (queue, p.state, &p.tag, &p.name, &p.group)
    else {
        return Ok(Walk::ById);
    };
    let (in_state, in_queue, all_queues): (i64, i64, i64) = sqlx::query_as(
        "SELECT coalesce(SUM(CASE WHEN queue = ?1 AND state = ?2 THEN n END), 0), \
                coalesce(SUM(CASE WHEN queue = ?1 THEN n END), 0), \
                coalesce(SUM(CASE WHEN state = ?2 THEN n END), 0) \
         FROM queue_counts WHERE queue = ?1 OR state = ?2",
    )
    .bind(queue)
    .bind(state.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let scanned = if state == JobState::Running {
        all_queues
    } else {
        in_state
    };
    Ok(if scanned <= SPARSE_MAX && in_state * 2 <= in_queue {
        Walk::Sparse
    } else {
        Walk::ById
    })
}

/// One index walk, newest first, over `queue` (or every queue) with the other filters of `p`.
async fn walk(
    conn: &mut SqliteConnection,
    p: &JobListParams,
    queue: Option<&str>,
    how: Walk,
) -> Result<Vec<Job>> {
    let (sql, args) = walk_sql_with(p, queue, how)?;
    let rows = sqlx::query_with(AssertSqlSafe(sql), args)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    rows.iter().map(job_from_row).collect()
}

/// The statement of a [`Walk::ById`] walk.
#[cfg(test)]
pub(crate) fn walk_sql(
    p: &JobListParams,
    queue: Option<&str>,
) -> Result<(String, SqliteArguments)> {
    walk_sql_with(p, queue, Walk::ById)
}

/// The statement of [`walk`].
pub(crate) fn walk_sql_with(
    p: &JobListParams,
    queue: Option<&str>,
    how: Walk,
) -> Result<(String, SqliteArguments)> {
    let mut q = Params::default();
    let mut filters = Vec::new();
    // The tag's jobs come from `job_tags`, in id order (its key ends with the job id).
    let mut from = "jobs".to_owned();
    let mut order = "jobs.id";
    if let Some((key, value)) = &p.tag {
        let (k, v) = (q.bind(key.as_str())?, q.bind(value.as_str())?);
        from = "job_tags AS t CROSS JOIN jobs ON jobs.id = t.job_id".to_owned();
        order = "t.job_id";
        filters.push(format!("t.key = {k} AND t.value = {v}"));
    } else if p.group.is_some() {
        from = "jobs INDEXED BY jobs_group".to_owned();
    } else if p.name.is_some() {
        from = "jobs INDEXED BY jobs_name".to_owned();
    }
    if let Some(group) = &p.group {
        filters.push(format!("jobs.grp = {}", q.bind(group.as_str())?));
    }
    if let Some(queue) = queue {
        filters.push(format!("jobs.queue = {}", q.bind(queue)?));
    }
    let mut sparse = None;
    match (p.state, how) {
        // Literal states: SQLite only uses a partial index when the query implies its condition.
        (Some(JobState::Available), Walk::Sparse) => {
            sparse = Some("jobs INDEXED BY jobs_available_since");
            filters.push("jobs.state = 'available'".to_owned());
        }
        (Some(JobState::Running), Walk::Sparse) => {
            sparse = Some("jobs INDEXED BY jobs_lease");
            filters.push("jobs.state = 'running'".to_owned());
        }
        (Some(s @ (JobState::Available | JobState::Running)), _) => {
            filters.push(format!("jobs.state = {}", q.bind(s.as_str())?))
        }
        // Repeats the partial index's condition so that `jobs_settled` applies.
        (Some(s), _) => filters.push(format!(
            "jobs.state NOT IN ('available', 'running') AND jobs.state = {}",
            q.bind(s.as_str())?
        )),
        (None, _) => {}
    }
    if let Some(name) = &p.name {
        filters.push(format!("jobs.name = {}", q.bind(name.as_str())?));
    }
    if let Some(before) = &p.before {
        filters.push(format!(
            "{order} < {}",
            q.bind(before.as_bytes().as_slice())?
        ));
    }
    let limit = q.bind(i64::from(p.limit))?;
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    let columns = JOB_COLUMNS
        .split(", ")
        .map(|c| format!("jobs.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = match sparse {
        // Pick the page's rows from the small index first (no table reads), then read just those rows.
        Some(index) => format!(
            "SELECT {columns} FROM jobs WHERE seq IN \
               (SELECT jobs.seq FROM {index} {filters} ORDER BY jobs.id DESC LIMIT {limit}) \
             ORDER BY jobs.id DESC"
        ),
        None => {
            format!("SELECT {columns} FROM {from} {filters} ORDER BY {order} DESC LIMIT {limit}")
        }
    };
    Ok((sql, q.args))
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
            .map_err(|e| StoreError::corrupt(format!("cannot bind a filter: {e}")))?;
        self.count += 1;
        Ok(format!("?{}", self.count))
    }
}

/// A job from a row holding [`JOB_COLUMNS`] (without its history).
fn job_from_row(row: &SqliteRow) -> Result<Job> {
    let progress = match get::<Option<i64>>(row, "progress")? {
        None => None,
        Some(p) => Some(Progress {
            percent: u8::try_from(p).map_err(|_| StoreError::corrupt(format!("progress {p}")))?,
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
        timeout: DurationSpec(offload_store::codec::duration(get(row, "timeout_ms")?)?),
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
        target: codec::target(get::<Option<&str>>(row, "target")?)?,
        schedule: match get::<Option<String>>(row, "schedule_name")? {
            Some(name) => Some(ScheduledBy {
                name,
                fire_at: codec::timestamp(get(row, "schedule_fire_at")?)?,
            }),
            None => None,
        },
        group: get(row, "grp")?,
        debounce_key: get(row, "debounce_key")?,
        waiting_for: None,
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
        serde_json::from_str(json).map_err(|e| StoreError::corrupt(format!("attempts: {e}")))?;
    rows.into_iter()
        .map(
            |(attempt, started_at, finished_at, worker_id, outcome, error)| {
                Ok(Attempt {
                    attempt: codec::u32_of(attempt, "attempt")?,
                    started_at: codec::timestamp(started_at)?,
                    finished_at: finished_at.map(codec::timestamp).transpose()?,
                    worker_id,
                    outcome: outcome.parse().map_err(StoreError::corrupt)?,
                    error,
                })
            },
        )
        .collect()
}
