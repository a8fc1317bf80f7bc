//! Cron schedules: upsert, pause, due lists, firing (overlap, missed ticks, unique ticks, stale plans) and
//! manual triggers.

use offload_core::{JobState, NewJob, SignedDuration, Timestamp};

use offload_core::cron::{
    MissedTicks, Schedule, ScheduleRecord, ScheduleSource, ScheduleSpec, TickOutcome,
};
use offload_core::spec::Limits;

use crate::StoreError;
use crate::{
    FireOutcome, ScheduleDeleteParams, ScheduleDueParams, ScheduleFire, ScheduleFireParams,
    ScheduleGetParams, ScheduleListParams, ScheduleSetPausedParams, ScheduleTriggerParams,
    ScheduleUpsertParams, ScheduleUpserted, TickRun,
};

use super::{Harness, job, secs, t0};

/// A validated schedule named `name` firing on `cron` (UTC) into queue `cron-q`, with `extra` JSON fields.
pub fn schedule(name: &str, cron: &str, extra: &str) -> Schedule {
    let json =
        format!(r#"{{"cron":"{cron}","job":{{"queue":"cron-q","payload":{{"n":1}}}}{extra}}}"#);
    serde_json::from_str::<ScheduleSpec>(&json)
        .expect("schedule JSON")
        .validate(Some(name), &Limits::default(), t0())
        .expect("valid schedule")
}

impl Harness {
    /// Creates or replaces a schedule from the API.
    pub async fn put_schedule(&self, s: Schedule) -> ScheduleUpserted {
        self.store
            .schedule_upsert(ScheduleUpsertParams {
                schedule: s,
                source: ScheduleSource::Api,
            })
            .await
            .expect("schedule_upsert")
    }

    /// A schedule that must exist, with up to 50 recent ticks.
    pub async fn get_schedule(&self, name: &str) -> ScheduleRecord {
        self.store
            .schedule_get(ScheduleGetParams {
                name: name.into(),
                recent_ticks: 50,
            })
            .await
            .expect("schedule_get")
            .expect("schedule exists")
    }

    /// Plans `runs` (fire times) and `missed` against the schedule's stored state and fires, with the next
    /// fire time `next`.
    pub async fn fire(
        &self,
        name: &str,
        runs: &[Timestamp],
        missed: Option<MissedTicks>,
        next: Option<Timestamp>,
    ) -> FireOutcome {
        let record = self.get_schedule(name).await;
        let fire = ScheduleFire {
            name: name.into(),
            revision: record.revision,
            from: record.next_fire_at.expect("a next fire time"),
            runs: runs
                .iter()
                .map(|&fire_at| TickRun {
                    fire_at,
                    job: record.schedule.job.new_job(fire_at).expect("job"),
                })
                .collect(),
            missed,
            next_fire_at: next,
        };
        let mut out = self
            .store
            .schedule_fire(ScheduleFireParams { fires: vec![fire] })
            .await
            .expect("schedule_fire");
        assert_eq!(out.len(), 1);
        out.remove(0)
    }
}

fn at(secs_after_t0: i64) -> Timestamp {
    t0().checked_add(SignedDuration::from_secs(secs_after_t0))
        .expect("test instant")
}

/// Create, read, replace (keeping the next fire time when the cadence is unchanged), list in pages, delete.
pub async fn schedule_upsert_get_list_delete(h: Harness) {
    let created = h.put_schedule(schedule("b-hourly", "0 * * * *", "")).await;
    assert!(created.created);
    let r = &created.record;
    assert_eq!(r.next_fire_at, Some(at(3600)));
    assert_eq!((r.paused, r.source), (false, ScheduleSource::Api));
    assert_eq!((r.created_at, r.updated_at), (t0(), t0()));
    let mut expected = schedule("b-hourly", "0 * * * *", "");
    expected.paused = Some(false);
    assert_eq!(
        r.schedule, expected,
        "stored as defined, with its pause state"
    );
    let got = h.get_schedule("b-hourly").await;
    assert_eq!(got.recent_ticks.as_deref(), Some(&[][..]));
    assert_eq!(got.revision, r.revision);

    // Replacing the template keeps the next fire time; replacing the cadence recomputes it.
    h.advance(secs(600));
    let replaced = h
        .put_schedule(schedule(
            "b-hourly",
            "0 * * * *",
            r#","overlap":"allow","jitter":"5s""#,
        ))
        .await;
    assert!(!replaced.created);
    assert_eq!(replaced.record.next_fire_at, Some(at(3600)));
    assert!(replaced.record.revision > r.revision);
    assert_eq!(replaced.record.updated_at, at(600));
    assert_eq!(replaced.record.created_at, t0());
    assert_eq!(replaced.record.schedule.jitter, secs(5));
    let recomputed = h
        .put_schedule(schedule("b-hourly", "*/5 * * * *", ""))
        .await;
    assert_eq!(recomputed.record.next_fire_at, Some(at(900)));

    for name in ["c-daily", "a-weekly"] {
        h.put_schedule(schedule(name, "@daily", "")).await;
    }
    h.store
        .schedule_upsert(ScheduleUpsertParams {
            schedule: schedule("d-file", "@daily", ""),
            source: ScheduleSource::File,
        })
        .await
        .unwrap();
    let names = |v: Vec<ScheduleRecord>| -> Vec<String> {
        v.into_iter().map(|r| r.schedule.name).collect()
    };
    let list = |after: Option<&str>, source: Option<ScheduleSource>, limit: u32| {
        let store = h.store.clone();
        let p = ScheduleListParams {
            after: after.map(str::to_owned),
            source,
            limit,
        };
        async move { store.schedule_list(p).await.unwrap() }
    };
    assert_eq!(
        names(list(None, None, 10).await),
        ["a-weekly", "b-hourly", "c-daily", "d-file"]
    );
    assert_eq!(names(list(None, None, 2).await), ["a-weekly", "b-hourly"]);
    assert_eq!(
        names(list(Some("b-hourly"), None, 2).await),
        ["c-daily", "d-file"]
    );
    assert_eq!(
        names(list(None, Some(ScheduleSource::File), 10).await),
        ["d-file"]
    );
    assert!(
        list(None, None, 10)
            .await
            .iter()
            .all(|r| r.recent_ticks.is_none())
    );

    h.store
        .schedule_delete(ScheduleDeleteParams {
            name: "c-daily".into(),
        })
        .await
        .unwrap();
    assert!(
        h.store
            .schedule_get(ScheduleGetParams {
                name: "c-daily".into(),
                recent_ticks: 5
            })
            .await
            .unwrap()
            .is_none()
    );
    let again = h
        .store
        .schedule_delete(ScheduleDeleteParams {
            name: "c-daily".into(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
}

/// Paused schedules are never due; pausing keeps the next fire time; a replace without `paused` keeps the
/// pause state; unknown names are `NotFound`.
pub async fn schedule_pause_resume_and_due(h: Harness) {
    h.put_schedule(schedule("minutely", "* * * * *", "")).await;
    h.put_schedule(schedule("hourly", "0 * * * *", "")).await;
    let due_by = |h: &Harness, until: Timestamp| {
        let store = h.store.clone();
        async move {
            store
                .schedule_due(ScheduleDueParams { until, limit: 10 })
                .await
                .unwrap()
        }
    };
    let due = |h: &Harness| due_by(h, h.now());
    let none = due(&h).await;
    assert!(none.due.is_empty());
    assert_eq!(none.next_fire_at, Some(at(60)));
    // Looking ahead: due by a later instant.
    let ahead = due_by(&h, at(60)).await;
    assert_eq!(ahead.due.len(), 1);
    assert_eq!(ahead.next_fire_at, Some(at(3600)));

    h.advance(secs(61));
    let one = due(&h).await;
    assert_eq!(one.due.len(), 1);
    assert_eq!(one.due[0].schedule.name, "minutely");
    assert_eq!(one.next_fire_at, Some(at(3600)));

    let paused = h
        .store
        .schedule_set_paused(ScheduleSetPausedParams {
            name: "minutely".into(),
            paused: true,
        })
        .await
        .unwrap();
    assert!(paused.paused);
    assert_eq!(
        paused.next_fire_at,
        Some(at(60)),
        "pausing keeps the next fire time"
    );
    assert!(due(&h).await.due.is_empty());
    let replaced = h.put_schedule(schedule("minutely", "* * * * *", "")).await;
    assert!(
        replaced.record.paused,
        "a replace without `paused` keeps the state"
    );

    let resumed = h
        .store
        .schedule_set_paused(ScheduleSetPausedParams {
            name: "minutely".into(),
            paused: false,
        })
        .await
        .unwrap();
    assert!(!resumed.paused && resumed.revision > paused.revision);
    assert_eq!(due(&h).await.due.len(), 1, "due again, to be caught up");
    let explicit = h
        .put_schedule(schedule("minutely", "* * * * *", r#","paused":true"#))
        .await;
    assert!(explicit.record.paused);

    let unknown = h
        .store
        .schedule_set_paused(ScheduleSetPausedParams {
            name: "nope".into(),
            paused: true,
        })
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
}

/// A fire creates the tick's job (carrying the schedule and fire time), records the tick, persists the next
/// fire time; the same plan applied again writes nothing.
pub async fn schedule_fire_creates_jobs_and_advances(h: Harness) {
    h.put_schedule(schedule("every-minute", "* * * * *", ""))
        .await;
    h.advance(secs(60));
    let record = h.get_schedule("every-minute").await;
    let out = h.fire("every-minute", &[at(60)], None, Some(at(120))).await;
    assert!(out.applied);
    assert_eq!(out.fired.len(), 1);
    let fired = &out.fired[0];
    assert_eq!((fired.fire_at, fired.queue.as_str()), (at(60), "cron-q"));
    assert_eq!(fired.inserted.state, JobState::Available);

    let job = h.get(fired.inserted.id).await;
    assert_eq!(job.queue, "cron-q");
    assert_eq!(job.payload.get(), r#"{"n":1}"#);
    let by = job.schedule.expect("the job carries its tick");
    assert_eq!((by.name.as_str(), by.fire_at), ("every-minute", at(60)));

    let after = h.get_schedule("every-minute").await;
    assert_eq!(after.next_fire_at, Some(at(120)));
    assert_eq!(
        after.revision, record.revision,
        "firing is not a change of definition"
    );
    let ticks = after.recent_ticks.unwrap();
    assert_eq!(ticks.len(), 1);
    assert_eq!(ticks[0].fire_at, at(60));
    assert_eq!(ticks[0].outcome, TickOutcome::Fired);
    assert_eq!(ticks[0].job_id, Some(fired.inserted.id));
    assert_eq!((ticks[0].count, ticks[0].manual), (1, false));

    // The plan made before the fire is stale now: nothing is written.
    let stale = ScheduleFire {
        name: "every-minute".into(),
        revision: record.revision,
        from: at(60),
        runs: vec![TickRun {
            fire_at: at(60),
            job: record.schedule.job.new_job(at(60)).unwrap(),
        }],
        missed: None,
        next_fire_at: Some(at(120)),
    };
    let out = h
        .store
        .schedule_fire(ScheduleFireParams { fires: vec![stale] })
        .await
        .unwrap();
    assert_eq!(out, vec![FireOutcome::default()]);
    assert_eq!(h.counts("cron-q").await[&JobState::Available], 1);
}

/// Whatever a plan says, a tick that was already recorded creates no second job.
pub async fn schedule_ticks_are_unique_per_fire_time(h: Harness) {
    h.put_schedule(schedule("once", "* * * * *", r#","overlap":"allow""#))
        .await;
    h.advance(secs(120));
    let first = h.fire("once", &[at(60)], None, Some(at(120))).await;
    assert_eq!(first.fired.len(), 1);
    // A plan that repeats the 60 s tick (a planner behind a clock that went backwards) fires only 120 s.
    let second = h
        .fire("once", &[at(60), at(120)], None, Some(at(180)))
        .await;
    assert!(second.applied);
    assert_eq!(second.duplicates, 1);
    assert_eq!(second.fired.len(), 1);
    assert_eq!(second.fired[0].fire_at, at(120));
    assert_eq!(h.counts("cron-q").await[&JobState::Available], 2);
    let ticks = h.get_schedule("once").await.recent_ticks.unwrap();
    assert_eq!(
        ticks.iter().map(|t| t.fire_at).collect::<Vec<_>>(),
        [at(120), at(60)],
        "newest first, one each"
    );
}

/// A tick repeated within one call, in one plan or in a later plan for the same schedule, fires once; the
/// repeats are duplicates and the call succeeds.
pub async fn schedule_fire_skips_a_tick_repeated_in_one_call(h: Harness) {
    h.put_schedule(schedule("twice", "* * * * *", r#","overlap":"allow""#))
        .await;
    h.advance(secs(180));
    let out = h
        .fire("twice", &[at(60), at(60)], None, Some(at(120)))
        .await;
    assert!(out.applied);
    assert_eq!((out.fired.len(), out.duplicates), (1, 1));
    assert_eq!(out.fired[0].fire_at, at(60));

    let record = h.get_schedule("twice").await;
    let first = plan(&record, at(120), &[at(120)], at(180));
    let again = plan(&record, at(180), &[at(120), at(180)], at(240));
    let out = h
        .store
        .schedule_fire(ScheduleFireParams {
            fires: vec![first, again],
        })
        .await
        .expect("a repeated tick does not fail the call");
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].fired.len(), out[0].duplicates), (1, 0));
    assert_eq!((out[1].fired.len(), out[1].duplicates), (1, 1));
    assert_eq!(out[1].fired[0].fire_at, at(180));
    assert_eq!(h.counts("cron-q").await[&JobState::Available], 3);
    let ticks = h.get_schedule("twice").await.recent_ticks.unwrap();
    assert_eq!(
        ticks.iter().map(|t| t.fire_at).collect::<Vec<_>>(),
        [at(180), at(120), at(60)],
        "one tick each"
    );
}

/// Several plans for one schedule in one call apply in order: each applies only if it starts where the
/// plans before it left the schedule, and the last applied one sets the next fire time.
pub async fn schedule_fire_applies_plans_for_one_schedule_in_order(h: Harness) {
    h.put_schedule(schedule("chained", "* * * * *", r#","overlap":"allow""#))
        .await;
    h.advance(secs(180));
    let record = h.get_schedule("chained").await;
    let fires = vec![
        plan(&record, at(60), &[at(60)], at(120)),
        // Made from the same starting point as the first: stale once the first applied.
        plan(&record, at(60), &[at(60)], at(120)),
        plan(&record, at(120), &[at(120)], at(180)),
        // Starts where nothing left the schedule.
        plan(&record, at(600), &[at(600)], at(660)),
    ];
    let out = h
        .store
        .schedule_fire(ScheduleFireParams { fires })
        .await
        .expect("schedule_fire");
    let applied: Vec<bool> = out.iter().map(|o| o.applied).collect();
    assert_eq!(applied, [true, false, true, false]);
    assert_eq!(out[1], FireOutcome::default());
    assert_eq!(out[3], FireOutcome::default());
    assert_eq!(
        (out[0].fired[0].fire_at, out[2].fired[0].fire_at),
        (at(60), at(120))
    );
    let after = h.get_schedule("chained").await;
    assert_eq!(after.next_fire_at, Some(at(180)));
    assert_eq!(after.recent_ticks.unwrap().len(), 2);
    assert_eq!(h.counts("cron-q").await[&JobState::Available], 2);
}

/// A plan for `record` starting at `from`, running `runs`, moving the next fire time to `next`.
fn plan(
    record: &ScheduleRecord,
    from: Timestamp,
    runs: &[Timestamp],
    next: Timestamp,
) -> ScheduleFire {
    ScheduleFire {
        name: record.schedule.name.clone(),
        revision: record.revision,
        from,
        runs: runs
            .iter()
            .map(|&fire_at| TickRun {
                fire_at,
                job: record.schedule.job.new_job(fire_at).expect("job"),
            })
            .collect(),
        missed: None,
        next_fire_at: Some(next),
    }
}

/// Overlap decisions count the schedule's unfinished jobs in the firing transaction, including runs created
/// earlier in the same plan.
pub async fn schedule_fire_applies_the_overlap_policy(h: Harness) {
    for (name, policy) in [
        ("s-skip", "skip"),
        ("s-buffer", "buffer_one"),
        ("s-allow", "allow"),
    ] {
        let extra = format!(r#","overlap":"{policy}""#);
        let mut s = schedule(name, "* * * * *", &extra);
        s.job.queue = name.into();
        h.put_schedule(s).await;
    }
    h.advance(secs(180));
    let fired = |o: &FireOutcome| o.fired.iter().map(|f| f.fire_at).collect::<Vec<_>>();
    // Three due ticks in one plan.
    let ticks = [at(60), at(120), at(180)];
    let skip = h.fire("s-skip", &ticks, None, Some(at(240))).await;
    assert_eq!(
        (fired(&skip), skip.skipped.clone()),
        (vec![at(60)], vec![at(120), at(180)])
    );
    let buffer = h.fire("s-buffer", &ticks, None, Some(at(240))).await;
    assert_eq!(fired(&buffer), [at(60)]);
    let allow = h.fire("s-allow", &ticks, None, Some(at(240))).await;
    assert_eq!(fired(&allow), ticks);

    // The skip schedule's run is taken by a worker: skip still skips, buffer_one lets one wait.
    let skip_running = h.claim("s-skip", 1).await;
    assert_eq!(skip_running.len(), 1);
    assert_eq!(h.claim("s-buffer", 1).await.len(), 1);
    h.advance(secs(60));
    assert_eq!(
        h.fire("s-skip", &[at(240)], None, Some(at(300)))
            .await
            .skipped,
        [at(240)]
    );
    let buffered = h.fire("s-buffer", &[at(240)], None, Some(at(300))).await;
    assert_eq!(fired(&buffered), [at(240)]);
    h.advance(secs(60));
    let full = h.fire("s-buffer", &[at(300)], None, Some(at(360))).await;
    assert_eq!(full.skipped, [at(300)], "one run already waits");

    // A finished run no longer counts.
    assert!(h.complete(&skip_running[0], None).await.is_ok());
    let again = h.fire("s-skip", &[at(300)], None, Some(at(360))).await;
    assert_eq!(fired(&again), [at(300)]);
    let ticks = h.get_schedule("s-skip").await.recent_ticks.unwrap();
    let skipped = ticks
        .iter()
        .filter(|t| t.outcome == TickOutcome::Skipped)
        .count();
    assert_eq!(skipped, 3);
}

/// Missed ticks are one record with their count and last fire time.
pub async fn schedule_fire_records_missed_ticks(h: Harness) {
    h.put_schedule(schedule("late", "* * * * *", "")).await;
    h.advance(secs(600));
    let missed = MissedTicks {
        first: at(60),
        last: at(540),
        count: 9,
    };
    let out = h
        .fire("late", &[at(600)], Some(missed), Some(at(660)))
        .await;
    assert_eq!((out.missed, out.fired.len()), (9, 1));
    let ticks = h.get_schedule("late").await.recent_ticks.unwrap();
    let record = ticks
        .iter()
        .find(|t| t.outcome == TickOutcome::Missed)
        .expect("a missed record");
    assert_eq!(
        (
            record.fire_at,
            record.last_fire_at,
            record.count,
            record.job_id
        ),
        (at(60), Some(at(540)), 9, None)
    );
    assert_eq!(h.get_schedule("late").await.next_fire_at, Some(at(660)));
}

/// A plan for a schedule paused, replaced or deleted since it was made writes nothing.
pub async fn schedule_fire_ignores_changed_schedules(h: Harness) {
    for name in ["paused", "replaced", "deleted"] {
        h.put_schedule(schedule(name, "* * * * *", "")).await;
    }
    h.advance(secs(60));
    let due = h
        .store
        .schedule_due(ScheduleDueParams {
            until: h.now(),
            limit: 10,
        })
        .await
        .unwrap()
        .due;
    assert_eq!(due.len(), 3);
    h.store
        .schedule_set_paused(ScheduleSetPausedParams {
            name: "paused".into(),
            paused: true,
        })
        .await
        .unwrap();
    h.put_schedule(schedule("replaced", "* * * * *", r#","jitter":"1s""#))
        .await;
    h.store
        .schedule_delete(ScheduleDeleteParams {
            name: "deleted".into(),
        })
        .await
        .unwrap();
    let fires = due
        .iter()
        .map(|r| ScheduleFire {
            name: r.schedule.name.clone(),
            revision: r.revision,
            from: r.next_fire_at.unwrap(),
            runs: vec![TickRun {
                fire_at: at(60),
                job: r.schedule.job.new_job(at(60)).unwrap(),
            }],
            missed: None,
            next_fire_at: Some(at(120)),
        })
        .collect();
    let out = h
        .store
        .schedule_fire(ScheduleFireParams { fires })
        .await
        .unwrap();
    assert!(out.iter().all(|o| !o.applied), "{out:?}");
    assert!(h.counts("cron-q").await.values().all(|n| *n == 0));
    assert_eq!(h.get_schedule("paused").await.next_fire_at, Some(at(60)));
}

/// A trigger creates a job at once, recorded as a manual tick, whatever the pause state; the next fire time
/// stays; deleting the schedule keeps its jobs.
pub async fn schedule_trigger_runs_now(h: Harness) {
    h.put_schedule(schedule("nightly", "0 3 * * *", r#","paused":true"#))
        .await;
    h.advance(secs(5));
    let trigger = |h: &Harness| {
        let store = h.store.clone();
        let job = schedule("nightly", "0 3 * * *", "")
            .job
            .new_job(h.now())
            .unwrap();
        async move {
            store
                .schedule_trigger(ScheduleTriggerParams {
                    name: "nightly".into(),
                    job,
                })
                .await
        }
    };
    let first = trigger(&h).await.unwrap();
    let second = trigger(&h).await.unwrap();
    assert_ne!(first.inserted.id, second.inserted.id);
    assert!(first.tick.manual && first.tick.fire_at == at(5));
    assert_eq!(first.queue, "cron-q");
    let job = h.get(first.inserted.id).await;
    assert_eq!(
        job.schedule.map(|s| (s.name, s.fire_at)),
        Some(("nightly".to_owned(), at(5)))
    );

    let record = h.get_schedule("nightly").await;
    assert_eq!(record.next_fire_at, Some(at(3 * 3600)));
    let ticks = record.recent_ticks.unwrap();
    assert_eq!(ticks.len(), 2);
    assert!(
        ticks
            .iter()
            .all(|t| t.manual && t.outcome == TickOutcome::Fired)
    );

    let unknown = h
        .store
        .schedule_trigger(ScheduleTriggerParams {
            name: "nope".into(),
            job: job_for_trigger(),
        })
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );

    h.store
        .schedule_delete(ScheduleDeleteParams {
            name: "nightly".into(),
        })
        .await
        .unwrap();
    assert!(h.store.job_get(first.inserted.id).await.unwrap().is_some());
}

fn job_for_trigger() -> NewJob {
    job("cron-q")
}
