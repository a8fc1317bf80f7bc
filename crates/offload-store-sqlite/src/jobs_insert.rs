//! Inserting jobs: read the idempotency keys' holders, let [`offload_store::idempotency`] decide, then write
//! multi-row INSERTs for a whole group of commands.
//!
//! Invariant: a command is stored whole or not at all. Every idempotency key of the group is looked up once
//! before anything is written; the decision (replay, conflict, insert, first state) is the shared one. A
//! command with a conflicting key writes nothing and fails alone; the rows of all accepted commands go into
//! the same few statements. Jobs with a debounce key (decided after idempotency) are written one by one, in
//! order, after those: each either moves the waiting job holding its key in its queue (new payload, start per
//! [`offload_core::flow::debounce::DebounceSpec::start_at`]) or is inserted, so one key of one queue never
//! has two waiting jobs.

use offload_core::state::due_state;
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
    /// Its command, and its place in that command's answers.
    at: (usize, usize),
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
    let mut results: Vec<Result<Vec<Inserted>>> = commands
        .iter()
        .enumerate()
        .map(|(c, jobs)| decide(c, jobs, now, &mut holders, &mut rows))
        .collect();
    let (debounced, plain): (Vec<Row<'_>>, Vec<Row<'_>>) =
        rows.into_iter().partition(|r| r.job.debounce.is_some());
    write(conn, now, &plain).await?;
    for row in &plain {
        counts.add(&row.job.queue, row.state, 1);
    }
    for row in &debounced {
        let answer = debounce(conn, now, row, counts).await?;
        if let (Some(answer), Ok(answers)) = (answer, &mut results[row.at.0]) {
            answers[row.at.1] = answer;
        }
    }
    Ok(results)
}

/// The waiting job of a queue (`?1`) holding a debounce key (`?2`): at most one, by the unique index.
pub(crate) const DEBOUNCE_SQL: &str = "\
SELECT seq, id, state, run_at, created_at FROM jobs
WHERE queue = ?1 AND debounce_key = ?2 AND state IN ('scheduled', 'available')";

/// Writes one debounced job: moves the waiting job of its queue holding its key, answering for it, or inserts
/// it (`None`: the planned answer stands).
async fn debounce(
    conn: &mut SqliteConnection,
    now: Timestamp,
    row: &Row<'_>,
    counts: &mut Counts,
) -> Result<Option<Inserted>> {
    let job = row.job;
    let Some(spec) = &job.debounce else {
        return Ok(None);
    };
    let waiting: Option<(i64, Vec<u8>, String, i64, i64)> = sqlx::query_as(DEBOUNCE_SQL)
        .bind(job.queue.as_str())
        .bind(spec.key.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let Some((seq, id, state, run_at, created_at)) = waiting else {
        write(conn, now, std::slice::from_ref(row)).await?;
        counts.add(&job.queue, row.state, 1);
        return Ok(None);
    };
    let (state, run_at, created_at) = (
        codec::state(&state)?,
        codec::timestamp(run_at)?,
        codec::timestamp(created_at)?,
    );
    let start = offload_store::codec::stored_precision(spec.start_at(created_at, run_at, now));
    let next = due_state(start, now, JobState::Scheduled);
    sqlx::query("UPDATE jobs SET payload = ?2, run_at = ?3, state = ?4 WHERE seq = ?1")
        .bind(seq)
        .bind(job.payload.get())
        .bind(micros(start))
        .bind(next.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    counts.moved(&job.queue, state, next, 1);
    Ok(Some(Inserted {
        id: codec::job_id(&id)?,
        state: next,
        run_at: start,
        created_at,
        duplicate: false,
        debounced: true,
    }))
}

/// Decides one command against the group's holders; its accepted jobs join `rows`.
fn decide<'a>(
    command: usize,
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
        at: (command, a.index),
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
