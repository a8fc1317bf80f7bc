//! Inserting jobs: read the idempotency keys' holders, let [`offload_store::idempotency`] decide, then write
//! multi-row INSERTs for a whole group of commands.
//!
//! Invariant: a command is stored whole or not at all. Every idempotency key of the group is looked up once
//! before anything is written; the decision (replay, conflict, insert, first state) is the shared one. A
//! command with a conflicting key writes nothing and fails alone; the rows of all accepted commands go into
//! the same few statements.

use offload_core::{JobState, NewJob, Timestamp};
use offload_store::codec::{millis, target_to_db};
use offload_store::idempotency::{Holder, Holders};
use offload_store::{Inserted, Result, StoreError};
use sqlx::sqlite::{SqliteArguments, SqliteConnection};

use crate::batch::{self, add as bind};
use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::error::db;

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

/// Decides one command against the group's holders; its accepted jobs join `rows`.
fn decide<'a>(
    jobs: &'a [NewJob],
    now: Timestamp,
    holders: &mut Holders,
    rows: &mut Vec<Row<'a>>,
) -> Result<Vec<Inserted>> {
    let plan = holders.command(jobs, now, |t| t)?;
    rows.extend(plan.accepted.iter().map(|a| Row {
        job: &jobs[a.index],
        state: a.state,
        run_at: a.run_at,
    }));
    Ok(plan.answers)
}

/// The stored holders of every idempotency key used in `commands`, in one statement.
async fn load_holders(conn: &mut SqliteConnection, commands: &[Vec<NewJob>]) -> Result<Holders> {
    let keys: Vec<&str> = commands
        .iter()
        .flatten()
        .filter_map(|j| j.idempotency_key.as_deref())
        .collect();
    if keys.is_empty() {
        return Ok(Holders::default());
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
        .collect::<Result<Vec<_>>>()
        .map(Holders::new)
}

/// Values bound per row.
const PER_ROW: usize = 20;

fn insert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO jobs (created_at, id, queue, name, state, payload, priority, max_attempts, backoff_base_ms, \
         backoff_cap_ms, backoff_jitter, timeout_ms, run_at, idempotency_key, request_fingerprint, tags, target, \
         destination, grp, debounce_key) VALUES {}",
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
        let (target, destination) = target_to_db(j.target.as_ref())?;
        bind(args, target)?;
        bind(args, destination)?;
        bind(args, j.group.as_deref())?;
        bind(args, j.debounce.as_ref().map(|d| d.key.as_str()))
    };
    batch::execute(conn, rows, PER_ROW, &insert_sql, &row).await?;
    Ok(())
}
