//! Firing ticks: the enqueuer's planned ticks, and runs triggered by hand.
//!
//! Invariants:
//! - A plan is applied only to the schedule version it was made for (same revision, same next fire time,
//!   not paused); otherwise nothing is written for it, and the enqueuer plans again from what is stored.
//! - Planned ticks that already have a row are left out (reported as duplicates) and create no job; the
//!   unique (schedule, fire time) key would fail the whole transaction on any that slipped through. A tick,
//!   its job and the new next fire time commit together.
//! - Overlap decisions use the schedule's unfinished jobs counted inside the transaction.
//! - The work is a fixed number of statements whatever the number of plans (rows passed through
//!   `json_each`), so a thousand schedules firing in the same second cost one short transaction.

use std::collections::{HashMap, HashSet};

use offload_core::cron::{
    ActiveRuns, Overlap, OverlapDecision, Tick, TickOutcome, overlap_decision,
};
use offload_core::{JobId, JobState, NewJob, Timestamp};
use offload_store::{
    FireOutcome, FiredJob, Result, ScheduleFire, ScheduleTriggerParams, ScheduleTriggered,
    StoreError,
};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::error::{corrupt, db};
use crate::jobs_insert;
use crate::schedules::prune_ticks;

/// The state of a schedule a plan must match.
struct Current {
    revision: i64,
    next_fire_at: Option<i64>,
    paused: bool,
    overlap: Overlap,
}

/// Applies every plan; each is answered on its own. Whatever the number of plans, this is a fixed number of
/// statements: each reads or writes the rows of every plan at once (through `json_each`).
pub(crate) async fn fire(
    conn: &mut SqliteConnection,
    now: Timestamp,
    fires: Vec<ScheduleFire>,
    counts: &mut Counts,
) -> Result<Vec<FireOutcome>> {
    let names: Vec<&str> = fires.iter().map(|f| f.name.as_str()).collect();
    let current = current(conn, &names).await?;
    let applies = |f: &ScheduleFire| {
        current.get(&f.name).is_some_and(|c| {
            c.revision == f.revision && c.next_fire_at == Some(micros(f.from)) && !c.paused
        })
    };
    let live: Vec<&ScheduleFire> = fires.iter().filter(|f| applies(f)).collect();
    // `allow` never looks at unfinished runs: count them only for the other policies.
    let counted: Vec<&ScheduleFire> = live
        .iter()
        .copied()
        .filter(|f| {
            current
                .get(&f.name)
                .is_some_and(|c| c.overlap != Overlap::Allow)
        })
        .collect();
    let mut active = active_runs(conn, &counted).await?;
    let recorded = recorded_ticks(conn, &live).await?;

    // Decide every tick, in plan order.
    let mut outcomes = Vec::with_capacity(fires.len());
    let mut ticks: Vec<serde_json::Value> = Vec::new();
    let mut jobs: Vec<NewJob> = Vec::new();
    let mut origins: Vec<(String, Timestamp)> = Vec::new();
    let mut next_times: Vec<serde_json::Value> = Vec::new();
    let mut prune: Vec<&str> = Vec::new();
    for f in &fires {
        if !applies(f) {
            outcomes.push(FireOutcome::default());
            continue;
        }
        let overlap = current
            .get(&f.name)
            .map_or(Overlap::default(), |c| c.overlap);
        let runs = active.entry(f.name.clone()).or_default();
        let mut outcome = FireOutcome {
            applied: true,
            ..FireOutcome::default()
        };
        for run in &f.runs {
            if recorded.contains(&(f.name.clone(), micros(run.fire_at))) {
                outcome.duplicates += 1;
                continue;
            }
            match overlap_decision(overlap, *runs) {
                OverlapDecision::Run => {
                    runs.waiting += 1;
                    ticks.push(tick_row(
                        &f.name,
                        run.fire_at,
                        TickOutcome::Fired,
                        Some(run.job.id),
                        1,
                        None,
                    ));
                    jobs.push(run.job.clone());
                    origins.push((f.name.clone(), run.fire_at));
                }
                OverlapDecision::Skip => {
                    ticks.push(tick_row(
                        &f.name,
                        run.fire_at,
                        TickOutcome::Skipped,
                        None,
                        1,
                        None,
                    ));
                    outcome.skipped.push(run.fire_at);
                }
            }
        }
        if let Some(m) = f.missed {
            if recorded.contains(&(f.name.clone(), micros(m.first))) {
                outcome.duplicates += 1;
            } else {
                let last = (m.last != m.first).then_some(m.last);
                ticks.push(tick_row(
                    &f.name,
                    m.first,
                    TickOutcome::Missed,
                    None,
                    m.count,
                    last,
                ));
                outcome.missed = m.count;
            }
        }
        next_times.push(serde_json::json!([f.name, f.next_fire_at.map(micros)]));
        // Pruning a schedule's old ticks costs a statement; about one fire in 16 does it (and every one that
        // recorded several ticks), which keeps roughly the newest KEEP_TICKS.
        if f.runs.len() > 1 || fastrand::u8(..16) == 0 {
            prune.push(&f.name);
        }
        outcomes.push(outcome);
    }

    write_ticks(conn, now, &ticks).await?;
    let fired = insert_jobs(conn, now, jobs, origins, counts).await?;
    advance(conn, &next_times).await?;
    for name in prune {
        prune_ticks(conn, name).await?;
    }
    // Hand each plan its jobs, in order.
    let mut fired = fired.into_iter().peekable();
    for (f, outcome) in fires.iter().zip(outcomes.iter_mut()) {
        while let Some(job) = fired.next_if(|j| j.0 == f.name) {
            outcome.fired.push(job.1);
        }
    }
    Ok(outcomes)
}

fn tick_row(
    name: &str,
    fire_at: Timestamp,
    outcome: TickOutcome,
    job: Option<JobId>,
    count: u64,
    last: Option<Timestamp>,
) -> serde_json::Value {
    serde_json::json!([
        name,
        micros(fire_at),
        outcome.as_str(),
        job.map(|id| id.0.simple().to_string()),
        i64::try_from(count).unwrap_or(i64::MAX),
        last.map(micros)
    ])
}

fn json_text(value: serde_json::Value) -> Result<String> {
    serde_json::to_string(&value).map_err(|e| StoreError::Internal(e.to_string()))
}

/// The state of every named schedule.
async fn current(conn: &mut SqliteConnection, names: &[&str]) -> Result<HashMap<String, Current>> {
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
                Current {
                    revision: get(r, "revision")?,
                    next_fire_at: get(r, "next_fire_at")?,
                    paused: get::<i64>(r, "paused")? != 0,
                    overlap: get::<&str>(r, "overlap")?.parse().map_err(corrupt)?,
                },
            ))
        })
        .collect()
}

/// Each schedule's jobs that are not finished, by whether a worker holds them.
async fn active_runs(
    conn: &mut SqliteConnection,
    fires: &[&ScheduleFire],
) -> Result<HashMap<String, ActiveRuns>> {
    if fires.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<&str> = fires.iter().map(|f| f.name.as_str()).collect();
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
    fires: &[&ScheduleFire],
) -> Result<HashSet<(String, i64)>> {
    let pairs: Vec<(&str, i64)> = fires
        .iter()
        .flat_map(|f| {
            f.runs
                .iter()
                .map(|r| r.fire_at)
                .chain(f.missed.map(|m| m.first))
                .map(|t| (f.name.as_str(), micros(t)))
        })
        .collect();
    if pairs.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT schedule, fire_at FROM schedule_ticks WHERE manual = 0 AND (schedule, fire_at) IN \
         (SELECT value ->> 0, value ->> 1 FROM json_each(?1))",
    )
    .bind(json_text(serde_json::json!(pairs))?)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().collect())
}

/// Inserts tick rows (`[schedule, fire_at, outcome, job id hex, count, last_fire_at]`). The unique key makes
/// a repeated tick fail the whole transaction; the caller has already left out every recorded one.
async fn write_ticks(
    conn: &mut SqliteConnection,
    now: Timestamp,
    ticks: &[serde_json::Value],
) -> Result<()> {
    if ticks.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO schedule_ticks (schedule, fire_at, outcome, job_id, count, last_fire_at, recorded_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, unhex(value ->> 3), value ->> 4, value ->> 5, ?2 \
         FROM json_each(?1)",
    )
    .bind(json_text(serde_json::json!(ticks))?)
    .bind(micros(now))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Persists each schedule's next fire time (`[name, micros or null]`).
async fn advance(conn: &mut SqliteConnection, next_times: &[serde_json::Value]) -> Result<()> {
    if next_times.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE schedules SET next_fire_at = j.value ->> 1 FROM json_each(?1) AS j \
         WHERE schedules.name = j.value ->> 0",
    )
    .bind(json_text(serde_json::json!(next_times))?)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Inserts the jobs of ticks and links each to its schedule and tick; returns them with their schedule's
/// name, in order.
async fn insert_jobs(
    conn: &mut SqliteConnection,
    now: Timestamp,
    jobs: Vec<NewJob>,
    origins: Vec<(String, Timestamp)>,
    counts: &mut Counts,
) -> Result<Vec<(String, FiredJob)>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let queues: Vec<String> = jobs.iter().map(|j| j.queue.clone()).collect();
    let command = [jobs];
    let inserted = jobs_insert::insert(conn, now, &command, counts)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Internal("insert answered no command".to_owned()))??;
    let links: Vec<(String, &str, i64)> = inserted
        .iter()
        .zip(&origins)
        .map(|(ins, (name, fire_at))| {
            (
                ins.id.0.simple().to_string(),
                name.as_str(),
                micros(*fire_at),
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
    Ok(inserted
        .into_iter()
        .zip(origins)
        .zip(queues)
        .map(|((ins, (name, fire_at)), queue)| {
            (
                name,
                FiredJob {
                    fire_at,
                    queue,
                    inserted: ins,
                },
            )
        })
        .collect())
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
    let mut fired =
        insert_jobs(conn, now, vec![p.job], vec![(p.name.clone(), now)], counts).await?;
    prune_ticks(conn, &p.name).await?;
    let (_, fired) = fired
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
