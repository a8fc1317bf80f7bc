//! Firing ticks: the enqueuer's planned ticks, and runs triggered by hand.
//!
//! Invariants:
//! - What a call writes is decided by [`offload_store::firing`], from the schedules, unfinished runs and
//!   recorded ticks read inside the transaction; this module keeps the SQL. The single writer keeps what was
//!   read current until the commit, so the unique (schedule, fire time) key never fails a call.
//! - A tick, its job and the new next fire time commit together.
//! - The work is a fixed number of statements whatever the number of plans (rows passed through
//!   `json_each`), so a thousand schedules firing in the same second cost one short transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use offload_core::cron::{ActiveRuns, Tick, TickOutcome};
use offload_core::{JobState, ScheduledBy, Timestamp};
use offload_store::firing::{self, JobWrite, ScheduleNow, TickKey, TickWrite};
use offload_store::{
    FireOutcome, Inserted, Result, ScheduleFire, ScheduleTriggerParams, ScheduleTriggered,
    StoreError,
};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get, micros, timestamp};
use crate::counts::Counts;
use crate::error::db;
use crate::jobs_insert;
use crate::schedules::prune_ticks;

/// Applies every plan; each is answered on its own. Whatever the number of plans, this is a fixed number of
/// statements: each reads or writes the rows of every plan at once (through `json_each`).
pub(crate) async fn fire(
    conn: &mut SqliteConnection,
    now: Timestamp,
    fires: Vec<ScheduleFire>,
    counts: &mut Counts,
) -> Result<Vec<FireOutcome>> {
    let names: Vec<&str> = fires.iter().map(|f| f.name.as_str()).collect();
    let schedules = current(conn, &names).await?;
    let applies = firing::applicable(&fires, &schedules);
    let active = active_runs(conn, &firing::counted(&fires, &applies, &schedules)).await?;
    let recorded = recorded_ticks(conn, &firing::planned(&fires, &applies)).await?;
    let writes = firing::decide(&fires, &applies, &schedules, active, recorded, || {
        fastrand::u8(..16) == 0
    });

    write_ticks(conn, now, &writes.ticks).await?;
    let inserted = insert_jobs(conn, now, &writes.jobs, counts).await?;
    advance(conn, &writes.next_times).await?;
    for name in &writes.prune {
        prune_ticks(conn, name).await?;
    }
    writes.finish(inserted)
}

fn json_text(value: serde_json::Value) -> Result<String> {
    serde_json::to_string(&value).map_err(|e| StoreError::Internal(e.to_string()))
}

/// The state of every named schedule.
async fn current(
    conn: &mut SqliteConnection,
    names: &[&str],
) -> Result<HashMap<String, ScheduleNow>> {
    let rows = sqlx::query(
        "SELECT name, revision, next_fire_at, paused, overlap FROM schedules \
         WHERE name IN (SELECT value FROM json_each(?1))",
    )
    .bind(json_text(serde_json::json!(names))?)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok((
                get::<String>(r, "name")?,
                ScheduleNow {
                    revision: get(r, "revision")?,
                    next_fire_at: get::<Option<i64>>(r, "next_fire_at")?
                        .map(timestamp)
                        .transpose()?,
                    paused: get::<i64>(r, "paused")? != 0,
                    overlap: get::<&str>(r, "overlap")?
                        .parse()
                        .map_err(StoreError::corrupt)?,
                },
            ))
        })
        .collect()
}

/// Each named schedule's jobs that are not finished, by whether a worker holds them.
async fn active_runs(
    conn: &mut SqliteConnection,
    names: &[&str],
) -> Result<HashMap<String, ActiveRuns>> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT schedule_name, state, COUNT(*) FROM jobs \
         WHERE schedule_name IN (SELECT value FROM json_each(?1)) \
         AND state IN ('scheduled', 'available', 'running', 'retrying') GROUP BY schedule_name, state",
    )
    .bind(json_text(serde_json::json!(names))?)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let mut active: HashMap<String, ActiveRuns> = HashMap::new();
    for (name, state, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        let runs = active.entry(name).or_default();
        match codec::state(&state)? {
            JobState::Running => runs.running += n,
            _ => runs.waiting += n,
        }
    }
    Ok(active)
}

/// The planned (schedule, fire time) pairs that already have a tick.
async fn recorded_ticks(
    conn: &mut SqliteConnection,
    planned: &[(&str, Timestamp)],
) -> Result<HashSet<TickKey>> {
    if planned.is_empty() {
        return Ok(HashSet::new());
    }
    let pairs: Vec<(&str, i64)> = planned.iter().map(|&(n, t)| (n, micros(t))).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT schedule, fire_at FROM schedule_ticks WHERE manual = 0 AND (schedule, fire_at) IN \
         (SELECT value ->> 0, value ->> 1 FROM json_each(?1))",
    )
    .bind(json_text(serde_json::json!(pairs))?)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|(name, us)| Ok((name, timestamp(us)?)))
        .collect()
}

/// Inserts the tick rows. The unique key makes a repeated tick fail the whole transaction; the decision has
/// already left out every recorded or repeated one (and SQLite's single writer keeps what was read current).
async fn write_ticks(
    conn: &mut SqliteConnection,
    now: Timestamp,
    ticks: &[TickWrite],
) -> Result<()> {
    if ticks.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = ticks
        .iter()
        .map(|t| {
            serde_json::json!([
                t.schedule,
                micros(t.fire_at),
                t.outcome.as_str(),
                t.job_id.map(|id| id.0.simple().to_string()),
                i64::try_from(t.count).unwrap_or(i64::MAX),
                t.last_fire_at.map(micros)
            ])
        })
        .collect();
    sqlx::query(
        "INSERT INTO schedule_ticks (schedule, fire_at, outcome, job_id, count, last_fire_at, recorded_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, unhex(value ->> 3), value ->> 4, value ->> 5, ?2 \
         FROM json_each(?1)",
    )
    .bind(json_text(serde_json::json!(rows))?)
    .bind(micros(now))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Persists each schedule's next fire time.
async fn advance(
    conn: &mut SqliteConnection,
    next_times: &BTreeMap<String, Option<Timestamp>>,
) -> Result<()> {
    if next_times.is_empty() {
        return Ok(());
    }
    let rows: Vec<(&str, Option<i64>)> = next_times
        .iter()
        .map(|(name, t)| (name.as_str(), t.map(micros)))
        .collect();
    sqlx::query(
        "UPDATE schedules SET next_fire_at = j.value ->> 1 FROM json_each(?1) AS j \
         WHERE schedules.name = j.value ->> 0",
    )
    .bind(json_text(serde_json::json!(rows))?)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Inserts the jobs of ticks as one command and links each to its schedule and tick; returns what the insert
/// decided for each, in order.
async fn insert_jobs(
    conn: &mut SqliteConnection,
    now: Timestamp,
    jobs: &[JobWrite],
    counts: &mut Counts,
) -> Result<Vec<Inserted>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let command = [jobs.iter().map(|w| w.job.clone()).collect::<Vec<_>>()];
    let inserted = jobs_insert::insert(conn, now, &command, counts)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Internal("insert answered no command".to_owned()))??;
    let links: Vec<(String, &str, i64)> = inserted
        .iter()
        .zip(jobs)
        .map(|(ins, w)| {
            (
                ins.id.0.simple().to_string(),
                w.by.name.as_str(),
                micros(w.by.fire_at),
            )
        })
        .collect();
    sqlx::query(
        "UPDATE jobs SET schedule_name = j.value ->> 1, schedule_fire_at = j.value ->> 2 \
         FROM json_each(?1) AS j WHERE jobs.id = unhex(j.value ->> 0)",
    )
    .bind(json_text(serde_json::json!(links))?)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(inserted)
}

/// Creates a schedule's job now, as a manual tick.
pub(crate) async fn trigger(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: ScheduleTriggerParams,
    counts: &mut Counts,
) -> Result<ScheduleTriggered> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM schedules WHERE name = ?1")
        .bind(&p.name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("schedule {}", p.name)));
    }
    let job_id = p.job.id;
    sqlx::query(
        "INSERT INTO schedule_ticks (schedule, fire_at, outcome, job_id, manual, recorded_at) \
         VALUES (?1, ?2, 'fired', ?3, 1, ?2)",
    )
    .bind(&p.name)
    .bind(micros(now))
    .bind(job_id.as_bytes().as_slice())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let queue = p.job.queue.clone();
    let run = JobWrite::new(
        p.job,
        ScheduledBy {
            name: p.name.clone(),
            fire_at: now,
        },
    );
    let inserted = insert_jobs(conn, now, &[run], counts)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Internal("trigger inserted no job".to_owned()))?;
    prune_ticks(conn, &p.name).await?;
    Ok(ScheduleTriggered {
        tick: Tick {
            fire_at: now,
            outcome: TickOutcome::Fired,
            job_id: Some(job_id),
            count: 1,
            last_fire_at: None,
            manual: true,
            recorded_at: now,
        },
        queue,
        inserted,
    })
}
