//! Inserting jobs: idempotency decisions first, then one multi-row INSERT for a whole group of commands.
//!
//! Invariant: a command is stored whole or not at all. When the group uses idempotency keys, it first takes a
//! transaction-scoped advisory lock per key (in one fixed order, so two groups never wait for each other in a
//! cycle), then reads the keys' holders: any other transaction inserting one of these keys, on any server,
//! waits for this one to commit and then sees its job. Each command is decided in order against the stored
//! holders and the jobs accepted earlier in the group by [`offload_store::idempotency`]; a command with a
//! conflicting key writes nothing and fails alone, the rows of all accepted commands go into one statement
//! that also counts them. The unique index on the key stays as a backstop. Jobs of schedule ticks take the same
//! path ([`insert_scheduled`]), their schedule and fire time written in the same row by the same statement.
//! Debounced jobs are decided after idempotency, in the same transaction (`crate::debounce`). Rows are written
//! in (queue, group) order, so the group counters' row triggers lock their rows in that order.

use std::sync::LazyLock;

use offload_core::{JobId, JobState, NewJob, ScheduledBy, Timestamp};
use offload_store::codec::{millis, target_to_db};
use offload_store::idempotency::{Holder, Holders};
use offload_store::{Inserted, Result};
use serde_json::value::RawValue;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::codec::{self, Ts, get, ts};
use crate::counts::{self, Counts};
use crate::error::db;

/// A job accepted for writing, with its resolved due time and first state.
pub(crate) struct Row<'a> {
    pub(crate) job: &'a NewJob,
    pub(crate) state: JobState,
    pub(crate) run_at: Timestamp,
    /// The schedule tick that created it, if one did.
    scheduled_by: Option<&'a ScheduledBy>,
    /// The payload to write: the job's own, or that of a later debounced enqueue of the same key in the group.
    pub(crate) payload: &'a RawValue,
    /// Where its answer is: the command's index in the group, the job's in the command.
    pub(crate) at: (usize, usize),
}

/// What a group's insert did: each command's answer, and what to announce once it is committed (see
/// [`outcome`]).
pub(crate) struct Outcome {
    pub(crate) answers: Vec<Result<Vec<Inserted>>>,
    pub(crate) announce: Vec<String>,
}

/// A command's jobs, each with the schedule tick that created it (if one did), so enqueued and scheduled jobs
/// share one insert path.
trait Command {
    /// The jobs, in order.
    fn jobs(&self) -> impl Iterator<Item = (&NewJob, Option<&ScheduledBy>)>;
}

impl Command for Vec<NewJob> {
    fn jobs(&self) -> impl Iterator<Item = (&NewJob, Option<&ScheduledBy>)> {
        self.iter().map(|j| (j, None))
    }
}

impl Command for &[(NewJob, ScheduledBy)] {
    fn jobs(&self) -> impl Iterator<Item = (&NewJob, Option<&ScheduledBy>)> {
        self.iter().map(|(j, by)| (j, Some(by)))
    }
}

/// Inserts the jobs of several commands. The outer error means the statements failed and nothing was stored;
/// the inner results are each command's answer.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    now: Timestamp,
    commands: &[Vec<NewJob>],
) -> Result<Outcome> {
    insert_commands(conn, now, commands, false).await
}

/// Inserts the call jobs of runs as one command: each row gets its `run_id` (from the job's
/// [`offload_store::RUN_TAG`] tag) and `run_step` (from the call request's `run_step`) in the same statement.
pub(crate) async fn insert_calls(
    conn: &mut PgConnection,
    now: Timestamp,
    jobs: Vec<NewJob>,
) -> Result<Outcome> {
    insert_commands(conn, now, &[jobs], true).await
}

/// Inserts the jobs of schedule ticks as one command, each row written with its schedule and fire time in the
/// same statement (the cron enqueuer and manual triggers, inside their own transaction).
pub(crate) async fn insert_scheduled(
    conn: &mut PgConnection,
    now: Timestamp,
    jobs: &[(NewJob, ScheduledBy)],
) -> Result<Outcome> {
    insert_commands(conn, now, &[jobs], false).await
}

/// The one insert path: lock and read the idempotency keys' holders (if any), decide, write.
async fn insert_commands<C: Command + Sync>(
    conn: &mut PgConnection,
    now: Timestamp,
    commands: &[C],
    calls: bool,
) -> Result<Outcome> {
    let mut keys: Vec<&str> = commands
        .iter()
        .flat_map(C::jobs)
        .filter_map(|(j, _)| j.idempotency_key.as_deref())
        .collect();
    let debounced = commands
        .iter()
        .flat_map(C::jobs)
        .any(|(j, _)| j.debounce.is_some());
    if keys.is_empty() && !debounced {
        let mut rows = Vec::new();
        let answers = commands
            .iter()
            .enumerate()
            .map(|(c, jobs)| decide(c, jobs.jobs(), now, &mut Holders::default(), &mut rows))
            .collect();
        write(conn, now, &rows, calls).await?;
        return Ok(outcome(answers, &rows));
    }
    keys.sort_unstable();
    keys.dedup();
    let mut tx = conn.begin().await.map_err(db)?;
    let mut holders = if keys.is_empty() {
        Holders::default()
    } else {
        lock_keys(&mut tx, &keys).await?;
        load_holders(&mut tx, &keys).await?
    };
    let mut rows = Vec::new();
    let mut answers: Vec<_> = commands
        .iter()
        .enumerate()
        .map(|(c, jobs)| decide(c, jobs.jobs(), now, &mut holders, &mut rows))
        .collect();
    // Idempotency decided first; then debounced jobs whose key has a waiting job update it instead.
    let moved = if debounced {
        crate::debounce::absorb(&mut tx, now, &mut rows, &mut answers).await?
    } else {
        Vec::new()
    };
    write(&mut tx, now, &rows, calls).await?;
    tx.commit().await.map_err(db)?;
    let mut out = outcome(answers, &rows);
    out.announce.extend(moved);
    out.announce.sort_unstable();
    out.announce.dedup();
    Ok(out)
}

/// The answers, and what to announce: the queues that got available pull jobs, and
/// [`crate::notify::PUSH`] when push jobs became available.
fn outcome(answers: Vec<Result<Vec<Inserted>>>, rows: &[Row<'_>]) -> Outcome {
    let mut announce: Vec<String> = rows
        .iter()
        .filter(|r| r.state == JobState::Available)
        .map(|r| match r.job.target {
            Some(_) => crate::notify::PUSH.to_owned(),
            None => r.job.queue.clone(),
        })
        .collect();
    announce.sort_unstable();
    announce.dedup();
    Outcome { answers, announce }
}

/// Decides one command against the group's holders; its accepted jobs join `rows`.
fn decide<'a>(
    command: usize,
    jobs: impl Iterator<Item = (&'a NewJob, Option<&'a ScheduledBy>)>,
    now: Timestamp,
    holders: &mut Holders,
    rows: &mut Vec<Row<'a>>,
) -> Result<Vec<Inserted>> {
    let jobs: Vec<_> = jobs.collect();
    let plan = holders.command(jobs.iter().map(|(j, _)| *j), now, codec::stored_precision)?;
    rows.extend(plan.accepted.iter().map(|a| {
        let (job, scheduled_by) = jobs[a.index];
        Row {
            job,
            state: a.state,
            run_at: a.run_at,
            scheduled_by,
            payload: &job.payload,
            at: (command, a.index),
        }
    }));
    Ok(plan.answers)
}

/// Advisory-lock class of idempotency keys (the first half of the two-part lock key).
const KEY_LOCK_CLASS: i32 = 0x00ff_10ad;

/// Locks every key until the transaction ends, in the order of the locks' own ids.
async fn lock_keys(conn: &mut PgConnection, keys: &[&str]) -> Result<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, h) FROM \
         (SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) AS k ORDER BY 1 OFFSET 0) AS ordered",
    )
    .bind(KEY_LOCK_CLASS)
    .bind(keys)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// The stored holders of `keys`, in one statement.
async fn load_holders(conn: &mut PgConnection, keys: &[&str]) -> Result<Holders> {
    let rows = sqlx::query(
        "SELECT idempotency_key, id, request_fingerprint, state, run_at, created_at FROM jobs \
         WHERE idempotency_key = ANY($1)",
    )
    .bind(keys)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let holder = Holder {
                id: JobId(get(r, "id")?),
                fingerprint: get(r, "request_fingerprint")?,
                state: codec::state(get::<&str>(r, "state")?)?,
                run_at: ts(r, "run_at")?,
                created_at: ts(r, "created_at")?,
            };
            Ok((get::<String>(r, "idempotency_key")?, holder))
        })
        .collect::<Result<Vec<_>>>()
        .map(Holders::new)
}

/// One statement for any number of rows: the values travel as one array per column.
pub(crate) static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ins AS (
    INSERT INTO jobs (id, queue, name, state, payload, priority, max_attempts, backoff_base_ms, backoff_cap_ms,
        backoff_jitter, timeout_ms, run_at, created_at, idempotency_key, request_fingerprint, tags, target,
        destination, schedule_name, schedule_fire_at, run_id, run_step, grp, debounce_key)
    SELECT id, queue, name, state, payload::json, priority, max_attempts, base_ms, cap_ms, jitter, timeout_ms,
        run_at, $1, key, fingerprint, tags::jsonb, target::json, destination, schedule_name, schedule_fire_at,
        CASE WHEN $25 THEN (tags::jsonb ->> 'offload.run')::uuid END,
        CASE WHEN $25 THEN payload::json ->> 'run_step' END,
        grp, debounce_key
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[], $8::int4[], $9::int8[],
                $10::int8[], $11::float8[], $12::int8[], $13::timestamptz[], $14::text[], $15::text[], $16::text[],
                $21::text[], $22::text[], $23::text[], $24::timestamptz[], $26::text[], $27::text[])
        WITH ORDINALITY AS u (id, queue, name, state, payload, priority, max_attempts, base_ms, cap_ms, jitter,
              timeout_ms, run_at, key, fingerprint, tags, target, destination, schedule_name, schedule_fire_at,
              grp, debounce_key, ord)
    -- Rows arrive sorted by (queue, group): the group counters' triggers lock their rows in that order.
    ORDER BY ord
), {}
SELECT 1",
        counts::bound_cte("$17", "$18", "$19", "$20")
    )
});

async fn write(
    conn: &mut PgConnection,
    now: Timestamp,
    rows: &[Row<'_>],
    calls: bool,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut bases = Vec::with_capacity(n);
    let mut caps = Vec::with_capacity(n);
    let mut jitters = Vec::with_capacity(n);
    let mut timeouts = Vec::with_capacity(n);
    let mut run_ats = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut fingerprints = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut targets = Vec::with_capacity(n);
    let mut destinations = Vec::with_capacity(n);
    let mut schedule_names = Vec::with_capacity(n);
    let mut schedule_fire_ats = Vec::with_capacity(n);
    let mut groups = Vec::with_capacity(n);
    let mut debounce_keys = Vec::with_capacity(n);
    let mut counts = Counts::default();
    // In (queue, group) order, so that two transactions counting jobs of the same groups (row triggers on
    // `queue_groups`) lock those rows in the same order and never wait for each other in a cycle.
    let mut sorted: Vec<&Row<'_>> = rows.iter().collect();
    sorted.sort_by(|a, b| (&a.job.queue, &a.job.group).cmp(&(&b.job.queue, &b.job.group)));
    for r in sorted {
        counts.add(&r.job.queue, r.state, 1);
        let j = r.job;
        ids.push(j.id.0);
        queues.push(j.queue.as_str());
        names.push(j.name.as_deref());
        states.push(r.state.as_str());
        payloads.push(r.payload.get());
        priorities.push(j.priority);
        max_attempts.push(i32::try_from(j.max_attempts).unwrap_or(i32::MAX));
        bases.push(millis(j.backoff.base.0));
        caps.push(millis(j.backoff.cap.0));
        jitters.push(j.backoff.jitter);
        timeouts.push(millis(j.timeout));
        run_ats.push(Ts(r.run_at));
        keys.push(j.idempotency_key.as_deref());
        fingerprints.push(j.request_fingerprint.as_deref());
        tags.push(codec::tags_to_db(&j.tags));
        let (target, destination) = target_to_db(j.target.as_ref())?;
        targets.push(target);
        destinations.push(destination);
        schedule_names.push(r.scheduled_by.map(|s| s.name.as_str()));
        schedule_fire_ats.push(r.scheduled_by.map(|s| Ts(s.fire_at)));
        groups.push(j.group.as_deref());
        debounce_keys.push(j.debounce.as_ref().map(|d| d.key.as_str()));
    }
    let query = sqlx::query(INSERT_SQL.as_str())
        .bind(Ts(now))
        .bind(ids)
        .bind(queues)
        .bind(names)
        .bind(states)
        .bind(payloads)
        .bind(priorities)
        .bind(max_attempts)
        .bind(bases)
        .bind(caps)
        .bind(jitters)
        .bind(timeouts)
        .bind(run_ats)
        .bind(keys)
        .bind(fingerprints)
        .bind(tags);
    let (count_queues, count_states, count_ns) = counts.arrays();
    query
        .bind(count_queues)
        .bind(count_states)
        .bind(count_ns)
        .bind(counts::shard())
        .bind(targets)
        .bind(destinations)
        .bind(schedule_names)
        .bind(schedule_fire_ats)
        .bind(calls)
        .bind(groups)
        .bind(debounce_keys)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}
