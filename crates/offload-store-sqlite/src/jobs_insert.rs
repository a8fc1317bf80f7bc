//! Inserting jobs: idempotency decisions first, then multi-row INSERTs for a whole group of commands.
//!
//! Invariant: a command is stored whole or not at all. Every idempotency key of the group is looked up once
//! before anything is written; each command is then decided in order against the stored jobs and the jobs
//! accepted earlier in the group (and earlier in the same command). A command with a conflicting key writes
//! nothing and fails alone; the rows of all accepted commands go into the same few statements.

use std::collections::HashMap;

use offload_core::state::{add, due_state};
use offload_core::{JobId, JobState, NewJob, RunAt, Timestamp};
use offload_store::{Inserted, Result, StoreError};
use sqlx::sqlite::{SqliteArguments, SqliteConnection};

use crate::batch::{self, add as bind};
use crate::codec::{self, get, micros, millis};
use crate::counts::Counts;
use crate::error::db;

/// What is known about the job holding an idempotency key.
#[derive(Debug, Clone)]
struct Holder {
    id: JobId,
    fingerprint: Option<String>,
    state: JobState,
    run_at: Timestamp,
    created_at: Timestamp,
}

impl Holder {
    fn replay(&self) -> Inserted {
        Inserted {
            id: self.id,
            state: self.state,
            run_at: self.run_at,
            created_at: self.created_at,
            duplicate: true,
        }
    }
}

/// A job accepted for writing, with its resolved due time and first state.
struct Row<'a> {
    job: &'a NewJob,
    state: JobState,
    run_at: Timestamp,
}

/// Inserts the jobs of several commands. The outer error means the statements failed (the caller rolls back);
/// the inner results are each command's answer.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    now: Timestamp,
    commands: &[Vec<NewJob>],
    counts: &mut Counts,
) -> Result<Vec<Result<Vec<Inserted>>>> {
    let mut holders = load_holders(conn, commands).await?;
    let mut rows = Vec::new();
    let results = commands
        .iter()
        .map(|jobs| decide(jobs, now, &mut holders, &mut rows))
        .collect();
    write(conn, now, &rows).await?;
    for row in &rows {
        counts.add(&row.job.queue, row.state, 1);
    }
    Ok(results)
}

/// When a new job first becomes due: relative delays count from `now`; instants in the past mean now.
fn resolve(run_at: RunAt, now: Timestamp) -> Timestamp {
    match run_at {
        RunAt::Now => now,
        RunAt::At(t) => t.max(now),
        RunAt::After(d) => add(now, d),
    }
}

fn decide<'a>(
    jobs: &'a [NewJob],
    now: Timestamp,
    holders: &mut HashMap<String, Holder>,
    rows: &mut Vec<Row<'a>>,
) -> Result<Vec<Inserted>> {
    let mut taken: HashMap<&str, Holder> = HashMap::new();
    let mut accepted = Vec::with_capacity(jobs.len());
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Some(key) = job.idempotency_key.as_deref()
            && let Some(holder) = taken.get(key).or_else(|| holders.get(key))
        {
            if holder.fingerprint == job.request_fingerprint {
                out.push(holder.replay());
                continue;
            }
            return Err(StoreError::IdempotencyConflict {
                key: key.to_owned(),
                existing: holder.id,
            });
        }
        let run_at = resolve(job.run_at, now);
        let state = due_state(run_at, now, JobState::Scheduled);
        if let Some(key) = job.idempotency_key.as_deref() {
            let fingerprint = job.request_fingerprint.clone();
            taken.insert(
                key,
                Holder {
                    id: job.id,
                    fingerprint,
                    state,
                    run_at,
                    created_at: now,
                },
            );
        }
        accepted.push(Row { job, state, run_at });
        out.push(Inserted {
            id: job.id,
            state,
            run_at,
            created_at: now,
            duplicate: false,
        });
    }
    holders.extend(taken.into_iter().map(|(k, h)| (k.to_owned(), h)));
    rows.extend(accepted);
    Ok(out)
}

/// The stored holders of every idempotency key used in `commands`, in one statement.
async fn load_holders(
    conn: &mut SqliteConnection,
    commands: &[Vec<NewJob>],
) -> Result<HashMap<String, Holder>> {
    let keys: Vec<&str> = commands
        .iter()
        .flatten()
        .filter_map(|j| j.idempotency_key.as_deref())
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let keys = serde_json::to_string(&keys).map_err(|e| StoreError::Internal(e.to_string()))?;
    let rows = sqlx::query(
        "SELECT idempotency_key, id, request_fingerprint, state, run_at, created_at FROM jobs \
         WHERE idempotency_key IN (SELECT value FROM json_each(?1))",
    )
    .bind(keys)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let holder = Holder {
                id: codec::job_id(get::<&[u8]>(r, "id")?)?,
                fingerprint: get(r, "request_fingerprint")?,
                state: codec::state(get::<&str>(r, "state")?)?,
                run_at: codec::timestamp(get(r, "run_at")?)?,
                created_at: codec::timestamp(get(r, "created_at")?)?,
            };
            Ok((get::<String>(r, "idempotency_key")?, holder))
        })
        .collect()
}

/// Values bound per row.
const PER_ROW: usize = 18;

fn insert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO jobs (created_at, id, queue, name, state, payload, priority, max_attempts, backoff_base_ms, \
         backoff_cap_ms, backoff_jitter, timeout_ms, run_at, idempotency_key, request_fingerprint, tags, target, \
         destination) VALUES {}",
        batch::values(rows, PER_ROW)
    )
}

async fn write(conn: &mut SqliteConnection, now: Timestamp, rows: &[Row<'_>]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let created_at = micros(now);
    let row = |args: &mut SqliteArguments, r: &Row<'_>| {
        let j = r.job;
        bind(args, created_at)?;
        bind(args, j.id.as_bytes().as_slice())?;
        bind(args, j.queue.as_str())?;
        bind(args, j.name.as_deref())?;
        bind(args, r.state.as_str())?;
        bind(args, j.payload.get())?;
        bind(args, j.priority)?;
        bind(args, i64::from(j.max_attempts))?;
        bind(args, millis(j.backoff.base.0))?;
        bind(args, millis(j.backoff.cap.0))?;
        bind(args, j.backoff.jitter)?;
        bind(args, millis(j.timeout))?;
        bind(args, micros(r.run_at))?;
        bind(args, j.idempotency_key.as_deref())?;
        bind(args, j.request_fingerprint.as_deref())?;
        bind(args, codec::tags_to_db(&j.tags))?;
        let (target, destination) = codec::target_to_db(j.target.as_ref())?;
        bind(args, target)?;
        bind(args, destination)
    };
    batch::execute(conn, rows, PER_ROW, &insert_sql, &row).await?;
    Ok(())
}
