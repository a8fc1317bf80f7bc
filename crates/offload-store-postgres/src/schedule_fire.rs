//! The cron enqueuer's writes: planned ticks applied in one transaction, and runs triggered by hand.
//!
//! What a call writes is decided by [`offload_store::firing`]; this module keeps the locking and the SQL.
//!
//! Invariants:
//! - A plan is applied only to the schedule version it was made for (same revision, same next fire time, not
//!   paused); otherwise nothing is written for it, and the enqueuer plans again from what is stored. The rows
//!   of all planned schedules are locked (`FOR UPDATE`, in name order, so two servers firing overlapping sets
//!   never wait for each other in a cycle) before anything is read or decided: fires of one schedule, from any
//!   server, apply one after the other, and the second finds the next fire time moved and writes nothing.
//! - A tick happens once. Ticks already recorded are read under the lock and left out (reported as
//!   duplicates), as are ticks repeated within the call; the unique index `schedule_ticks_once` is the
//!   backstop: a tick row that conflicts anyway (`ON CONFLICT DO NOTHING`) is counted as a duplicate and its
//!   job is not created.
//! - Overlap decisions use the schedule's unfinished jobs counted inside the transaction, under the lock (only
//!   fires create a schedule's jobs by its policy), plus the runs decided earlier in the same call.
//! - A tick, its job (written with its schedule and fire time by the same INSERT) and the new next fire time
//!   commit together. The work is a fixed number of statements whatever the number of plans (rows passed as
//!   arrays), so a thousand schedules firing in the same second cost one short transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use offload_core::cron::{ActiveRuns, Tick, TickOutcome};
use offload_core::{JobState, NewJob, ScheduledBy, Timestamp};
use offload_store::firing::{self, JobWrite, ScheduleNow, TickKey, TickWrite};
use offload_store::{
    FireOutcome, Inserted, Result, ScheduleFireParams, ScheduleTriggerParams, ScheduleTriggered,
    StoreError,
};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::codec::{self, Ts, get, ts, ts_opt};
use crate::error::db;
use crate::jobs_insert;
use crate::schedules::prune_ticks;

/// Tick rows to write, as one array per column.
#[derive(Default)]
struct Ticks {
    schedules: Vec<String>,
    fire_ats: Vec<Ts>,
    outcomes: Vec<&'static str>,
    job_ids: Vec<Option<uuid::Uuid>>,
    counts: Vec<i64>,
    lasts: Vec<Option<Ts>>,
}

impl Ticks {
    fn of(rows: &[TickWrite]) -> Self {
        let mut t = Self::default();
        for r in rows {
            t.schedules.push(r.schedule.clone());
            t.fire_ats.push(Ts(r.fire_at));
            t.outcomes.push(r.outcome.as_str());
            t.job_ids.push(r.job_id.map(|id| id.0));
            t.counts.push(i64::try_from(r.count).unwrap_or(i64::MAX));
            t.lasts.push(r.last_fire_at.map(Ts));
        }
        t
    }
}

/// Applies every plan in one transaction; each is answered on its own, in order. Also returns the queues
/// that got available jobs.
pub(crate) async fn fire(
    conn: &mut PgConnection,
    now: Timestamp,
    p: ScheduleFireParams,
) -> Result<(Vec<FireOutcome>, Vec<String>)> {
    let fires = p.fires;
    if fires.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut names: Vec<&str> = fires.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut tx = conn.begin().await.map_err(db)?;
    let schedules = lock(&mut tx, &names).await?;
    let applies = firing::applicable(&fires, &schedules);
    let active = active_runs(&mut tx, &firing::counted(&fires, &applies, &schedules)).await?;
    let recorded = recorded_ticks(&mut tx, &firing::planned(&fires, &applies)).await?;
    let mut writes = firing::decide(&fires, &applies, &schedules, active, recorded, || {
        fastrand::u8(..16) == 0
    });

    // The backstop: a tick row that exists already is a duplicate, and its run creates no job.
    let written = write_ticks(&mut tx, now, &writes.ticks).await?;
    writes.keep_written(&written);
    let (inserted, available) = insert_jobs(&mut tx, now, &writes.jobs).await?;
    advance(&mut tx, &writes.next_times).await?;
    let prune: Vec<&str> = writes.prune.iter().map(String::as_str).collect();
    prune_ticks(&mut tx, &prune).await?;
    tx.commit().await.map_err(db)?;
    Ok((writes.finish(inserted)?, available))
}

/// Locks the named schedules' rows, in name order, and reads what a plan must match.
async fn lock(conn: &mut PgConnection, names: &[&str]) -> Result<HashMap<String, ScheduleNow>> {
    let rows = sqlx::query(
        "SELECT name, revision, next_fire_at, paused, overlap FROM schedules WHERE name = ANY($1) \
         ORDER BY name FOR UPDATE",
    )
    .bind(names)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok((
                get::<String>(r, "name")?,
                ScheduleNow {
                    revision: get(r, "revision")?,
                    next_fire_at: ts_opt(r, "next_fire_at")?,
                    paused: get(r, "paused")?,
                    overlap: get::<&str>(r, "overlap")?
                        .parse()
                        .map_err(StoreError::corrupt)?,
                },
            ))
        })
        .collect()
}

/// The unfinished jobs of the named schedules, one probe of `jobs_schedule_active` each.
const ACTIVE_SQL: &str = "SELECT schedule_name, state, count(*) AS n FROM jobs \
     WHERE schedule_name = ANY($1) AND schedule_name IS NOT NULL \
     AND state IN ('scheduled', 'available', 'running', 'retrying') GROUP BY schedule_name, state";

/// Each named schedule's jobs that are not finished, by whether a worker holds them.
async fn active_runs(
    conn: &mut PgConnection,
    names: &[&str],
) -> Result<HashMap<String, ActiveRuns>> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(ACTIVE_SQL)
        .bind(names)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    let mut active: HashMap<String, ActiveRuns> = HashMap::new();
    for r in &rows {
        let n: i64 = get(r, "n")?;
        let n = u64::try_from(n).map_err(|_| StoreError::corrupt(format!("negative count {n}")))?;
        let runs = active.entry(get(r, "schedule_name")?).or_default();
        match codec::state(get::<&str>(r, "state")?)? {
            JobState::Running => runs.running += n,
            _ => runs.waiting += n,
        }
    }
    Ok(active)
}

/// The planned (schedule, fire time) pairs that already have a tick.
async fn recorded_ticks(
    conn: &mut PgConnection,
    planned: &[(&str, Timestamp)],
) -> Result<HashSet<TickKey>> {
    if planned.is_empty() {
        return Ok(HashSet::new());
    }
    let names: Vec<&str> = planned.iter().map(|&(n, _)| n).collect();
    let fire_ats: Vec<Ts> = planned.iter().map(|&(_, t)| Ts(t)).collect();
    let rows = sqlx::query(
        "SELECT schedule, fire_at FROM schedule_ticks WHERE NOT manual AND (schedule, fire_at) IN \
         (SELECT * FROM unnest($1::text[], $2::timestamptz[]))",
    )
    .bind(names)
    .bind(fire_ats)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| Ok((get(r, "schedule")?, ts(r, "fire_at")?)))
        .collect()
}

/// Inserts the tick rows (leaving out any that exist already) and returns the keys of those written.
async fn write_ticks(
    conn: &mut PgConnection,
    now: Timestamp,
    rows: &[TickWrite],
) -> Result<HashSet<TickKey>> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let ticks = Ticks::of(rows);
    let rows = sqlx::query(
        "INSERT INTO schedule_ticks (schedule, fire_at, outcome, job_id, count, last_fire_at, recorded_at) \
         SELECT u.*, $7 FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::uuid[], $5::int8[], \
                                    $6::timestamptz[]) AS u \
         ON CONFLICT (schedule, fire_at) WHERE NOT manual DO NOTHING \
         RETURNING schedule, fire_at",
    )
    .bind(&ticks.schedules)
    .bind(&ticks.fire_ats)
    .bind(&ticks.outcomes)
    .bind(&ticks.job_ids)
    .bind(&ticks.counts)
    .bind(&ticks.lasts)
    .bind(Ts(now))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| Ok((get(r, "schedule")?, ts(r, "fire_at")?)))
        .collect()
}

/// Persists each schedule's next fire time, in one statement.
async fn advance(
    conn: &mut PgConnection,
    next_times: &BTreeMap<String, Option<Timestamp>>,
) -> Result<()> {
    if next_times.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = next_times.keys().map(String::as_str).collect();
    let times: Vec<Option<Ts>> = next_times.values().map(|t| t.map(Ts)).collect();
    sqlx::query(
        "UPDATE schedules SET next_fire_at = u.next FROM unnest($1::text[], $2::timestamptz[]) AS u (name, next) \
         WHERE schedules.name = u.name",
    )
    .bind(names)
    .bind(times)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Inserts the jobs of ticks as one command, each carrying its schedule and fire time; returns what the insert
/// decided for each, in order, and the queues that got available jobs.
async fn insert_jobs(
    conn: &mut PgConnection,
    now: Timestamp,
    jobs: &[JobWrite],
) -> Result<(Vec<Inserted>, Vec<String>)> {
    if jobs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let jobs: Vec<(NewJob, ScheduledBy)> =
        jobs.iter().map(|w| (w.job.clone(), w.by.clone())).collect();
    let out = jobs_insert::insert_scheduled(conn, now, &jobs).await?;
    let inserted = out
        .answers
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Internal("insert answered no command".to_owned()))??;
    if inserted.len() != jobs.len() {
        return Err(StoreError::Internal(
            "insert answered the wrong number of jobs".to_owned(),
        ));
    }
    Ok((inserted, out.announce))
}

/// Creates a schedule's job now, recorded as a manual tick at `now`; ignores the overlap policy and the pause
/// state, and leaves the next fire time alone. The schedule's row is share-locked so that it cannot be
/// deleted meanwhile.
pub(crate) async fn trigger(
    conn: &mut PgConnection,
    now: Timestamp,
    p: ScheduleTriggerParams,
) -> Result<(ScheduleTriggered, Vec<String>)> {
    let mut tx = conn.begin().await.map_err(db)?;
    let exists = sqlx::query("SELECT 1 FROM schedules WHERE name = $1 FOR KEY SHARE")
        .bind(&p.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("schedule {}", p.name)));
    }
    let queue = p.job.queue.clone();
    let by = ScheduledBy {
        name: p.name.clone(),
        fire_at: now,
    };
    let (mut inserted, available) = insert_jobs(&mut tx, now, &[JobWrite::new(p.job, by)]).await?;
    let inserted = inserted
        .pop()
        .ok_or_else(|| StoreError::Internal("trigger inserted no job".to_owned()))?;
    sqlx::query(
        "INSERT INTO schedule_ticks (schedule, fire_at, outcome, job_id, manual, recorded_at) \
         VALUES ($1, $2, 'fired', $3, true, $2)",
    )
    .bind(&p.name)
    .bind(Ts(now))
    .bind(inserted.id.0)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    prune_ticks(&mut tx, &[p.name.as_str()]).await?;
    tx.commit().await.map_err(db)?;
    let triggered = ScheduleTriggered {
        tick: Tick {
            fire_at: now,
            outcome: TickOutcome::Fired,
            job_id: Some(inserted.id),
            count: 1,
            last_fire_at: None,
            manual: true,
            recorded_at: now,
        },
        queue,
        inserted,
    };
    Ok((triggered, available))
}

#[cfg(test)]
mod tests {
    //! Several servers on one database: fires of the same schedules race, creates of the same name race.

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use offload_core::cron::ScheduleSource;
    use offload_core::{ManualClock, SignedDuration};
    use offload_store::conformance::schedules::schedule;
    use offload_store::conformance::t0;
    use offload_store::{
        FireOutcome, ScheduleFire, ScheduleFireParams, ScheduleGetParams, ScheduleUpsertParams,
        Store, TickRun,
    };

    use crate::testing::{self, TestSchema};
    use crate::{PostgresOptions, PostgresStore};

    /// Two stores on one schema, sharing a manual clock.
    async fn two_servers(
        url: &str,
        schema: &TestSchema,
    ) -> (Arc<PostgresStore>, Arc<PostgresStore>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(t0()));
        let options = PostgresOptions::new(url)
            .with_schema(&schema.name)
            .with_clock(clock.clone());
        let a = PostgresStore::open(options.clone()).await.unwrap();
        let b = PostgresStore::open(options).await.unwrap();
        (Arc::new(a), Arc::new(b), clock)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_fires_apply_each_plan_once_and_never_deadlock() {
        let Some(url) = testing::url() else { return };
        let schema = TestSchema::new(&url);
        let (a, b, clock) = two_servers(&url, &schema).await;
        let names: Vec<String> = (0..6).map(|i| format!("race-{i}")).collect();
        for name in &names {
            let s = schedule(name, "* * * * *", r#","overlap":"allow""#);
            a.schedule_upsert(ScheduleUpsertParams {
                schedule: s,
                source: ScheduleSource::Api,
            })
            .await
            .unwrap();
        }
        for round in 1..=5_i64 {
            clock.advance(SignedDuration::from_secs(60));
            let mut plans = Vec::new();
            for name in &names {
                let r = a
                    .schedule_get(ScheduleGetParams {
                        name: name.clone(),
                        recent_ticks: 0,
                    })
                    .await
                    .unwrap()
                    .unwrap();
                let from = r.next_fire_at.unwrap();
                plans.push(ScheduleFire {
                    name: name.clone(),
                    revision: r.revision,
                    from,
                    runs: vec![TickRun {
                        fire_at: from,
                        job: r.schedule.job.new_job(from).unwrap(),
                    }],
                    missed: None,
                    next_fire_at: from.checked_add(SignedDuration::from_secs(60)).ok(),
                });
            }
            // Eight callers on two servers, half with the plans in reverse order.
            let mut calls = Vec::new();
            for i in 0..8 {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let mut fires = plans.clone();
                if i % 4 < 2 {
                    fires.reverse();
                }
                calls.push(tokio::spawn(async move {
                    let out = store
                        .schedule_fire(ScheduleFireParams {
                            fires: fires.clone(),
                        })
                        .await
                        .unwrap();
                    fires
                        .into_iter()
                        .map(|f| f.name)
                        .zip(out)
                        .collect::<Vec<_>>()
                }));
            }
            let mut applied: BTreeMap<String, Vec<FireOutcome>> = BTreeMap::new();
            for call in calls {
                for (name, outcome) in call.await.unwrap() {
                    if outcome.applied {
                        applied.entry(name).or_default().push(outcome);
                    }
                }
            }
            assert_eq!(applied.len(), names.len(), "round {round}: {applied:?}");
            for (name, outcomes) in &applied {
                assert_eq!(outcomes.len(), 1, "round {round}: {name} applied twice");
                assert_eq!(outcomes[0].fired.len(), 1);
            }
        }
        for name in &names {
            let r = b
                .schedule_get(ScheduleGetParams {
                    name: name.clone(),
                    recent_ticks: 50,
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.recent_ticks.unwrap().len(), 5, "{name}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_creates_of_one_name_create_it_once() {
        let Some(url) = testing::url() else { return };
        let schema = TestSchema::new(&url);
        let (a, b, _clock) = two_servers(&url, &schema).await;
        for round in 0..5 {
            let name = format!("created-{round}");
            let mut calls = Vec::new();
            for i in 0..6 {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let s = schedule(&name, "* * * * *", "");
                calls.push(tokio::spawn(async move {
                    store
                        .schedule_upsert(ScheduleUpsertParams {
                            schedule: s,
                            source: ScheduleSource::Api,
                        })
                        .await
                        .unwrap()
                }));
            }
            let mut created = 0;
            let mut revisions = Vec::new();
            for call in calls {
                let done = call.await.unwrap();
                created += usize::from(done.created);
                revisions.push(done.record.revision);
            }
            revisions.sort_unstable();
            assert_eq!(created, 1, "{name}");
            assert_eq!(revisions, (1..=6).collect::<Vec<i64>>(), "{name}");
        }
    }
}
