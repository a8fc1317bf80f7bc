//! Firing ticks: the enqueuer's planned ticks, and runs triggered by hand.
//!
//! Invariants:
//! - A plan is applied only to the schedule version it was made for (same revision, same next fire time,
//!   not paused); otherwise nothing is written for it, and the enqueuer plans again from what is stored.
//! - A tick row is written before its job, with `ON CONFLICT DO NOTHING` on the (schedule, fire time) key: a
//!   tick that already exists creates no job. The job, its tick and the new next fire time commit together.
//! - Overlap decisions use the schedule's unfinished jobs counted inside the transaction.

use offload_core::cron::{
    ActiveRuns, Overlap, OverlapDecision, Tick, TickOutcome, overlap_decision,
};
use offload_core::{JobId, JobState, NewJob, Timestamp};
use offload_store::{
    FireOutcome, FiredJob, Inserted, Result, ScheduleFire, ScheduleTriggerParams,
    ScheduleTriggered, StoreError,
};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::error::{corrupt, db};
use crate::jobs_insert;
use crate::schedules::prune_ticks;

/// Applies every plan; each is answered on its own.
pub(crate) async fn fire(
    conn: &mut SqliteConnection,
    now: Timestamp,
    fires: Vec<ScheduleFire>,
    counts: &mut Counts,
) -> Result<Vec<FireOutcome>> {
    let mut out = Vec::with_capacity(fires.len());
    for f in fires {
        out.push(fire_one(conn, now, f, counts).await?);
    }
    Ok(out)
}

async fn fire_one(
    conn: &mut SqliteConnection,
    now: Timestamp,
    f: ScheduleFire,
    counts: &mut Counts,
) -> Result<FireOutcome> {
    let row = sqlx::query(
        "SELECT overlap FROM schedules WHERE name = ?1 AND revision = ?2 AND next_fire_at = ?3 AND paused = 0",
    )
    .bind(&f.name)
    .bind(f.revision)
    .bind(micros(f.from))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(row) = row else {
        return Ok(FireOutcome::default());
    };
    let overlap: Overlap = get::<&str>(&row, "overlap")?.parse().map_err(corrupt)?;
    let mut active = active_runs(conn, &f.name).await?;
    let mut outcome = FireOutcome {
        applied: true,
        ..FireOutcome::default()
    };
    let mut jobs: Vec<(Timestamp, NewJob)> = Vec::new();
    for run in f.runs {
        match overlap_decision(overlap, active) {
            OverlapDecision::Run => {
                if record(
                    conn,
                    now,
                    &f.name,
                    run.fire_at,
                    TickOutcome::Fired,
                    Some(run.job.id),
                )
                .await?
                {
                    active.waiting += 1;
                    jobs.push((run.fire_at, run.job));
                } else {
                    outcome.duplicates += 1;
                }
            }
            OverlapDecision::Skip => {
                if record(conn, now, &f.name, run.fire_at, TickOutcome::Skipped, None).await? {
                    outcome.skipped.push(run.fire_at);
                } else {
                    outcome.duplicates += 1;
                }
            }
        }
    }
    if let Some(m) = f.missed {
        let inserted = sqlx::query(
            "INSERT INTO schedule_ticks (schedule, fire_at, outcome, count, last_fire_at, recorded_at) \
             VALUES (?1, ?2, 'missed', ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .bind(&f.name)
        .bind(micros(m.first))
        .bind(i64::try_from(m.count).unwrap_or(i64::MAX))
        .bind((m.last != m.first).then(|| micros(m.last)))
        .bind(micros(now))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        if inserted.rows_affected() == 1 {
            outcome.missed = m.count;
        } else {
            outcome.duplicates += 1;
        }
    }
    outcome.fired = insert_jobs(conn, now, &f.name, jobs, counts).await?;
    sqlx::query("UPDATE schedules SET next_fire_at = ?1 WHERE name = ?2")
        .bind(f.next_fire_at.map(micros))
        .bind(&f.name)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    prune_ticks(conn, &f.name).await?;
    Ok(outcome)
}

/// Records a scheduled tick; false when the tick was already recorded.
async fn record(
    conn: &mut SqliteConnection,
    now: Timestamp,
    name: &str,
    fire_at: Timestamp,
    outcome: TickOutcome,
    job: Option<JobId>,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO schedule_ticks (schedule, fire_at, outcome, job_id, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(micros(fire_at))
    .bind(outcome.as_str())
    .bind(job.as_ref().map(|id| id.as_bytes().as_slice()))
    .bind(micros(now))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

/// The schedule's jobs that are not finished, by whether a worker holds them.
async fn active_runs(conn: &mut SqliteConnection, name: &str) -> Result<ActiveRuns> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, COUNT(*) FROM jobs WHERE schedule_name = ?1 \
         AND state IN ('scheduled', 'available', 'running', 'retrying') GROUP BY state",
    )
    .bind(name)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let mut active = ActiveRuns::default();
    for (state, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        match codec::state(&state)? {
            JobState::Running => active.running += n,
            _ => active.waiting += n,
        }
    }
    Ok(active)
}

/// Inserts the jobs of one schedule's ticks and links each to its tick.
async fn insert_jobs(
    conn: &mut SqliteConnection,
    now: Timestamp,
    name: &str,
    jobs: Vec<(Timestamp, NewJob)>,
    counts: &mut Counts,
) -> Result<Vec<FiredJob>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let (fire_times, jobs): (Vec<Timestamp>, Vec<NewJob>) = jobs.into_iter().unzip();
    let queues: Vec<String> = jobs.iter().map(|j| j.queue.clone()).collect();
    let command = [jobs];
    let inserted = jobs_insert::insert(conn, now, &command, counts)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Internal("insert answered no command".to_owned()))??;
    let mut fired = Vec::with_capacity(inserted.len());
    for ((fire_at, queue), ins) in fire_times.into_iter().zip(queues).zip(inserted) {
        link(conn, name, fire_at, &ins).await?;
        fired.push(FiredJob {
            fire_at,
            queue,
            inserted: ins,
        });
    }
    Ok(fired)
}

async fn link(
    conn: &mut SqliteConnection,
    name: &str,
    fire_at: Timestamp,
    ins: &Inserted,
) -> Result<()> {
    sqlx::query("UPDATE jobs SET schedule_name = ?1, schedule_fire_at = ?2 WHERE id = ?3")
        .bind(name)
        .bind(micros(fire_at))
        .bind(ins.id.as_bytes().as_slice())
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
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
    let mut fired = insert_jobs(conn, now, &p.name, vec![(now, p.job)], counts).await?;
    prune_ticks(conn, &p.name).await?;
    let fired = fired
        .pop()
        .ok_or_else(|| StoreError::Internal("trigger inserted no job".to_owned()))?;
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
        queue: fired.queue,
        inserted: fired.inserted,
    })
}
