//! How a call of `schedule_fire` applies its plans, decided once for every store.
//!
//! A store reads the facts inside its transaction (each named schedule's [`ScheduleNow`], the unfinished
//! runs of the schedules whose overlap policy looks at them, and which planned ticks are already recorded),
//! [`decide`] turns them into [`FireWrites`], the store writes those rows, and [`FireWrites::finish`] hands each
//! plan the jobs the store inserted.
//!
//! Invariants:
//! - A plan applies only to the schedule version it was made for: same revision, same next fire time, not
//!   paused. An applied plan moves its schedule's next fire time for the plans after it in the same call, so a
//!   second plan made from the same starting point writes nothing; one made from the first plan's next fire
//!   time applies.
//! - A tick happens once: a tick already recorded, or repeated within the call, is a duplicate and creates no
//!   job. A store that finds a tick row existing anyway drops it with [`FireWrites::keep_written`].
//! - Overlap decisions count the unfinished runs the store read plus the runs decided earlier in the call.
//! - Fire times are compared and written at stored precision (whole microseconds).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use offload_core::cron::{ActiveRuns, Overlap, OverlapDecision, TickOutcome, overlap_decision};
use offload_core::{JobId, NewJob, ScheduledBy, Timestamp};

use crate::{FireOutcome, FiredJob, Inserted, Result, ScheduleFire, StoreError};

/// A schedule's stored state, as read (locked, where the store can) in the firing transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleNow {
    /// Its revision; a plan made for another is stale.
    pub revision: i64,
    /// Its next fire time; a plan that started elsewhere is stale.
    pub next_fire_at: Option<Timestamp>,
    /// A paused schedule fires nothing.
    pub paused: bool,
    /// Its overlap policy.
    pub overlap: Overlap,
}

/// The key of a non-manual tick: its schedule and its fire time at stored precision.
pub type TickKey = (String, Timestamp);

/// A timestamp as both stores keep it: whole microseconds.
pub fn stored_precision(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// Which plans apply, in order (see the module's invariants).
pub fn applicable(fires: &[ScheduleFire], schedules: &HashMap<String, ScheduleNow>) -> Vec<bool> {
    let mut next: HashMap<&str, Option<Timestamp>> = HashMap::new();
    fires
        .iter()
        .map(|f| {
            let Some(s) = schedules.get(&f.name) else {
                return false;
            };
            let at = next
                .entry(f.name.as_str())
                .or_insert(s.next_fire_at.map(stored_precision));
            let matches =
                s.revision == f.revision && *at == Some(stored_precision(f.from)) && !s.paused;
            if matches {
                *at = f.next_fire_at.map(stored_precision);
            }
            matches
        })
        .collect()
}

/// The schedules, in name order, whose unfinished runs the decisions need: those with an applied plan and a
/// policy other than `allow` (which never looks at them).
pub fn counted<'a>(
    fires: &'a [ScheduleFire],
    applies: &[bool],
    schedules: &HashMap<String, ScheduleNow>,
) -> Vec<&'a str> {
    let names: BTreeSet<&str> = fires
        .iter()
        .zip(applies)
        .filter(|(f, a)| {
            **a && schedules
                .get(&f.name)
                .is_some_and(|s| s.overlap != Overlap::Allow)
        })
        .map(|(f, _)| f.name.as_str())
        .collect();
    names.into_iter().collect()
}

/// The ticks of the applied plans to look up among the recorded ones.
pub fn planned<'a>(fires: &'a [ScheduleFire], applies: &[bool]) -> Vec<(&'a str, Timestamp)> {
    fires
        .iter()
        .zip(applies)
        .filter(|(_, a)| **a)
        .flat_map(|(f, _)| {
            f.runs
                .iter()
                .map(|r| r.fire_at)
                .chain(f.missed.map(|m| m.first))
                .map(|t| (f.name.as_str(), stored_precision(t)))
        })
        .collect()
}

/// What a tick row stands for in its plan's outcome, to undo if the row turns out to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stands {
    /// A run: the index of its job in [`FireWrites::jobs`].
    Run(usize),
    /// A tick the overlap policy skipped.
    Skip,
    /// The plan's missed ticks.
    Missed,
}

/// One tick row to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickWrite {
    plan: usize,
    stands: Stands,
    /// The schedule.
    pub schedule: String,
    /// The fire time (of the first tick, for missed ticks), at stored precision.
    pub fire_at: Timestamp,
    /// Fired, skipped or missed.
    pub outcome: TickOutcome,
    /// The job a fired tick created.
    pub job_id: Option<JobId>,
    /// How many ticks the row stands for (more than one only for missed ticks).
    pub count: u64,
    /// The last of several missed ticks.
    pub last_fire_at: Option<Timestamp>,
}

impl TickWrite {
    /// The row's key.
    pub fn key(&self) -> TickKey {
        (self.schedule.clone(), self.fire_at)
    }
}

/// One job to insert for a fired tick.
#[derive(Debug, Clone)]
pub struct JobWrite {
    plan: usize,
    /// The job, from the plan.
    pub job: NewJob,
    /// The schedule and tick it belongs to.
    pub by: ScheduledBy,
}

/// Everything one call writes, and what it answers once the jobs are inserted.
#[derive(Debug, Clone)]
pub struct FireWrites {
    /// Tick rows, in plan order.
    pub ticks: Vec<TickWrite>,
    /// Jobs to insert as one command, in plan order.
    pub jobs: Vec<JobWrite>,
    /// Each applied schedule's new next fire time.
    pub next_times: BTreeMap<String, Option<Timestamp>>,
    /// Schedules whose old ticks to prune, in name order.
    pub prune: Vec<String>,
    outcomes: Vec<FireOutcome>,
}

/// Decides every tick of every plan, in order. `active` holds the unfinished runs of the [`counted`]
/// schedules, `recorded` the [`planned`] ticks that already have a row; `sample_prune` says whether a plan
/// with a single run also prunes its schedule's old ticks (pruning costs a statement, so stores do it for
/// about one fire in 16, and always after several runs).
pub fn decide(
    fires: &[ScheduleFire],
    applies: &[bool],
    schedules: &HashMap<String, ScheduleNow>,
    mut active: HashMap<String, ActiveRuns>,
    mut recorded: HashSet<TickKey>,
    mut sample_prune: impl FnMut() -> bool,
) -> FireWrites {
    let mut ticks = Vec::new();
    let mut jobs = Vec::new();
    let mut next_times = BTreeMap::new();
    let mut prune = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(fires.len());
    for (plan, f) in fires.iter().enumerate() {
        if !applies.get(plan).copied().unwrap_or(false) {
            outcomes.push(FireOutcome::default());
            continue;
        }
        let overlap = schedules
            .get(&f.name)
            .map_or(Overlap::default(), |s| s.overlap);
        let runs = active.entry(f.name.clone()).or_default();
        let mut outcome = FireOutcome {
            applied: true,
            ..FireOutcome::default()
        };
        let row = |stands, fire_at, outcome, job_id, count, last_fire_at| TickWrite {
            plan,
            stands,
            schedule: f.name.clone(),
            fire_at,
            outcome,
            job_id,
            count,
            last_fire_at,
        };
        for run in &f.runs {
            let fire_at = stored_precision(run.fire_at);
            if !recorded.insert((f.name.clone(), fire_at)) {
                outcome.duplicates += 1;
                continue;
            }
            match overlap_decision(overlap, *runs) {
                OverlapDecision::Run => {
                    runs.waiting += 1;
                    let stands = Stands::Run(jobs.len());
                    ticks.push(row(
                        stands,
                        fire_at,
                        TickOutcome::Fired,
                        Some(run.job.id),
                        1,
                        None,
                    ));
                    jobs.push(JobWrite {
                        plan,
                        job: run.job.clone(),
                        by: ScheduledBy {
                            name: f.name.clone(),
                            fire_at,
                        },
                    });
                }
                OverlapDecision::Skip => {
                    ticks.push(row(
                        Stands::Skip,
                        fire_at,
                        TickOutcome::Skipped,
                        None,
                        1,
                        None,
                    ));
                    outcome.skipped.push(fire_at);
                }
            }
        }
        if let Some(m) = f.missed {
            let first = stored_precision(m.first);
            if recorded.insert((f.name.clone(), first)) {
                let last = (m.last != m.first).then_some(stored_precision(m.last));
                ticks.push(row(
                    Stands::Missed,
                    first,
                    TickOutcome::Missed,
                    None,
                    m.count,
                    last,
                ));
                outcome.missed = m.count;
            } else {
                outcome.duplicates += 1;
            }
        }
        next_times.insert(f.name.clone(), f.next_fire_at.map(stored_precision));
        if f.runs.len() > 1 || sample_prune() {
            prune.insert(f.name.clone());
        }
        outcomes.push(outcome);
    }
    FireWrites {
        ticks,
        jobs,
        next_times,
        prune: prune.into_iter().collect(),
        outcomes,
    }
}

impl JobWrite {
    /// A job outside any plan: a run triggered by hand.
    pub fn new(job: NewJob, by: ScheduledBy) -> Self {
        Self { plan: 0, job, by }
    }
}

impl FireWrites {
    /// The backstop of a store whose tick insert skips rows that exist already: every tick row not in
    /// `written` becomes a duplicate, and a run's job is not created.
    pub fn keep_written(&mut self, written: &HashSet<TickKey>) {
        let mut dropped = HashSet::new();
        self.ticks.retain(|t| {
            if written.contains(&t.key()) {
                return true;
            }
            let outcome = &mut self.outcomes[t.plan];
            outcome.duplicates += 1;
            match t.stands {
                Stands::Run(j) => {
                    dropped.insert(j);
                }
                Stands::Skip => outcome.skipped.retain(|at| *at != t.fire_at),
                Stands::Missed => outcome.missed = 0,
            }
            false
        });
        if dropped.is_empty() {
            return;
        }
        let mut index = 0;
        self.jobs.retain(|_| {
            let keep = !dropped.contains(&index);
            index += 1;
            keep
        });
        // Renumber the runs left, so that a second call still finds their jobs.
        let mut kept = 0;
        for t in &mut self.ticks {
            if let Stands::Run(_) = t.stands {
                t.stands = Stands::Run(kept);
                kept += 1;
            }
        }
    }

    /// Each plan's answer, in order, given what the insert decided for each of [`FireWrites::jobs`].
    pub fn finish(self, inserted: Vec<Inserted>) -> Result<Vec<FireOutcome>> {
        if inserted.len() != self.jobs.len() {
            return Err(StoreError::Internal(
                "insert answered the wrong number of jobs".to_owned(),
            ));
        }
        let mut outcomes = self.outcomes;
        for (job, inserted) in self.jobs.into_iter().zip(inserted) {
            outcomes[job.plan].fired.push(FiredJob {
                fire_at: job.by.fire_at,
                queue: job.job.queue,
                inserted,
            });
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use offload_core::cron::MissedTicks;
    use offload_core::{Backoff, DurationSpec, JobState, RunAt, SignedDuration};
    use serde_json::value::RawValue;

    use super::*;
    use crate::TickRun;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + secs).unwrap()
    }

    fn new_job() -> NewJob {
        NewJob {
            id: JobId::new(),
            queue: "cron-q".into(),
            name: None,
            payload: RawValue::from_string("{}".to_owned()).unwrap(),
            run_at: RunAt::Now,
            priority: 0,
            max_attempts: 1,
            backoff: Backoff {
                base: DurationSpec(Duration::from_secs(1)),
                cap: DurationSpec(Duration::from_secs(1)),
                jitter: 0.0,
            },
            timeout: Duration::from_secs(30),
            idempotency_key: None,
            request_fingerprint: None,
            tags: BTreeMap::new(),
            target: None,
            group: None,
            debounce: None,
        }
    }

    fn plan(name: &str, from: i64, runs: &[i64], next: i64) -> ScheduleFire {
        ScheduleFire {
            name: name.into(),
            revision: 1,
            from: at(from),
            runs: runs
                .iter()
                .map(|&t| TickRun {
                    fire_at: at(t),
                    job: new_job(),
                })
                .collect(),
            missed: None,
            next_fire_at: Some(at(next)),
        }
    }

    fn stored(name: &str, next: i64, overlap: Overlap) -> HashMap<String, ScheduleNow> {
        HashMap::from([(
            name.to_owned(),
            ScheduleNow {
                revision: 1,
                next_fire_at: Some(at(next)),
                paused: false,
                overlap,
            },
        )])
    }

    fn inserted(writes: &FireWrites) -> Vec<Inserted> {
        writes
            .jobs
            .iter()
            .map(|w| Inserted {
                id: w.job.id,
                state: JobState::Available,
                run_at: w.by.fire_at,
                created_at: w.by.fire_at,
                duplicate: false,
                debounced: false,
            })
            .collect()
    }

    fn run(fires: &[ScheduleFire], schedules: &HashMap<String, ScheduleNow>) -> FireWrites {
        let applies = applicable(fires, schedules);
        decide(
            fires,
            &applies,
            schedules,
            HashMap::new(),
            HashSet::new(),
            || false,
        )
    }

    #[test]
    fn a_tick_repeated_in_one_call_fires_once() {
        let schedules = stored("s", 60, Overlap::Allow);
        let fires = [
            plan("s", 60, &[60, 60], 120),
            plan("s", 120, &[60, 120], 180),
        ];
        let writes = run(&fires, &schedules);
        let keys: Vec<Timestamp> = writes.ticks.iter().map(|t| t.fire_at).collect();
        assert_eq!(keys, [at(60), at(120)]);
        let out = writes.clone().finish(inserted(&writes)).unwrap();
        assert_eq!((out[0].fired.len(), out[0].duplicates), (1, 1));
        assert_eq!((out[1].fired.len(), out[1].duplicates), (1, 1));
        assert_eq!(out[1].fired[0].fire_at, at(120));
    }

    #[test]
    fn plans_for_one_schedule_chain_on_the_next_fire_time() {
        let schedules = stored("s", 60, Overlap::Allow);
        let fires = [
            plan("s", 60, &[60], 120),
            plan("s", 60, &[60], 120),
            plan("s", 120, &[120], 180),
            plan("gone", 60, &[60], 120),
        ];
        assert_eq!(applicable(&fires, &schedules), [true, false, true, false]);
        let writes = run(&fires, &schedules);
        assert_eq!(
            writes.next_times,
            BTreeMap::from([("s".to_owned(), Some(at(180)))])
        );
        assert_eq!(writes.jobs.len(), 2);
    }

    #[test]
    fn stale_and_paused_plans_write_nothing() {
        let mut schedules = stored("s", 60, Overlap::Allow);
        let mut other_revision = plan("s", 60, &[60], 120);
        other_revision.revision = 2;
        assert_eq!(applicable(&[other_revision], &schedules), [false]);
        schedules.get_mut("s").unwrap().paused = true;
        let writes = run(&[plan("s", 60, &[60], 120)], &schedules);
        assert!(writes.ticks.is_empty() && writes.next_times.is_empty());
        assert_eq!(writes.finish(Vec::new()).unwrap(), [FireOutcome::default()]);
    }

    #[test]
    fn overlap_counts_runs_decided_earlier_in_the_call() {
        let schedules = stored("s", 60, Overlap::Skip);
        let fires = [plan("s", 60, &[60, 120], 180)];
        let applies = applicable(&fires, &schedules);
        assert_eq!(counted(&fires, &applies, &schedules), ["s"]);
        let writes = decide(
            &fires,
            &applies,
            &schedules,
            HashMap::new(),
            HashSet::new(),
            || false,
        );
        let out = writes.clone().finish(inserted(&writes)).unwrap();
        assert_eq!(out[0].fired.len(), 1);
        assert_eq!(out[0].skipped, [at(120)]);
        assert_eq!(writes.prune, ["s"], "several runs prune");
    }

    #[test]
    fn recorded_ticks_are_duplicates_and_missed_ticks_are_one_row() {
        let schedules = stored("s", 60, Overlap::Allow);
        let mut fire = plan("s", 60, &[60, 180], 240);
        fire.missed = Some(MissedTicks {
            first: at(120),
            last: at(120),
            count: 1,
        });
        let fires = [fire];
        let applies = applicable(&fires, &schedules);
        assert_eq!(planned(&fires, &applies).len(), 3);
        let recorded = HashSet::from([("s".to_owned(), at(60))]);
        let writes = decide(
            &fires,
            &applies,
            &schedules,
            HashMap::new(),
            recorded,
            || true,
        );
        let out = writes.clone().finish(inserted(&writes)).unwrap();
        assert_eq!(
            (out[0].duplicates, out[0].missed, out[0].fired.len()),
            (1, 1, 1)
        );
        let missed = writes
            .ticks
            .iter()
            .find(|t| t.outcome == TickOutcome::Missed)
            .unwrap();
        assert_eq!((missed.fire_at, missed.last_fire_at), (at(120), None));
        assert_eq!(writes.prune, ["s"], "sampled");
    }

    #[test]
    fn rows_that_exist_anyway_are_dropped_with_their_jobs() {
        let schedules = stored("s", 60, Overlap::Allow);
        let mut writes = run(&[plan("s", 60, &[60, 120, 180], 240)], &schedules);
        let written: HashSet<TickKey> =
            [("s".to_owned(), at(60)), ("s".to_owned(), at(180))].into();
        writes.keep_written(&written);
        assert_eq!(writes.ticks.len(), 2);
        assert_eq!(writes.jobs.len(), 2);
        let out = writes.clone().finish(inserted(&writes)).unwrap();
        let fired: Vec<Timestamp> = out[0].fired.iter().map(|f| f.fire_at).collect();
        assert_eq!(fired, [at(60), at(180)]);
        assert_eq!(out[0].duplicates, 1);
        assert!(writes.finish(Vec::new()).is_err(), "one answer per job");
    }

    #[test]
    fn fire_times_are_kept_at_microseconds() {
        let t = at(0)
            .checked_add(SignedDuration::from_nanos(1_500))
            .unwrap();
        assert_eq!(stored_precision(t).as_microsecond(), t.as_microsecond());
        assert_eq!(stored_precision(t).subsec_nanosecond() % 1_000, 0);
    }
}
