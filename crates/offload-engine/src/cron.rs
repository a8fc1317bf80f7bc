//! The cron enqueuer: turns due ticks into jobs.
//!
//! It runs as singleton work under the `cron` leader lease (as maintenance does under its own), so one node
//! fires at a time, and it is idempotent anyway: every plan names the schedule revision and next fire time it
//! was made from, and ticks are unique per (schedule, fire time) in the store, so a second node, a restart
//! or a replayed pass can never create a tick's job twice.
//!
//! A pass reads the due schedules, decides each one's ticks with [`plan_due`] (catch-up policy, grace), draws
//! each run's jitter, and hands all plans to [`offload_store::Store::schedule_fire`] in one transaction, which
//! applies the overlap policy and persists the next fire times. Between passes the enqueuer sleeps until the
//! earliest next fire time (at most `cron_poll`), or until a schedule changes on this node.
//!
//! The same pass then starts the runs of due cron-triggered functions
//! ([`offload_store::Store::function_cron_fire`]: one run per tick, after downtime one run for the most recent
//! tick), and the sleep also ends at the earliest function's next fire time, or when a function is registered,
//! replaced or removed on this node.
//!
//! Invariant: the persisted next fire time only moves forward through a pass, so a restart resumes exactly
//! where the last committed pass stopped, and a clock that jumps backwards fires nothing until it is past
//! the persisted time again.

use std::sync::Arc;
use std::time::Duration;

use offload_core::cron::policy::jittered;
use offload_core::cron::{CatchUpRule, ScheduleRecord, TickOutcome, plan_due};
use offload_core::{JobState, Timestamp};
use offload_store::{
    DynStore, FireOutcome, FunctionCronFireParams, ScheduleDueParams, ScheduleFire,
    ScheduleFireParams, TickRun,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::leadership::LeaderLease;
use crate::signal::Ticks;
use crate::wakeup::Wakers;

/// The name of the lease the enqueuer runs under.
pub(crate) const LEASE_NAME: &str = "cron";

/// What one pass of the enqueuer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CronPass {
    /// Jobs created.
    pub fired: u64,
    /// Ticks the overlap policy skipped.
    pub skipped: u64,
    /// Ticks recorded as missed.
    pub missed: u64,
    /// Schedules whose plan was stale (changed during the pass); they are planned again next pass.
    pub stale: u64,
    /// Runs of cron-triggered functions started.
    pub function_runs: u64,
    /// The earliest next fire time of the schedules (and cron-triggered functions) that are not due.
    pub next_fire_at: Option<Timestamp>,
}

/// The cron enqueuer: what it reads and fires through, its timings, whom it wakes, when it stops.
pub(crate) struct CronEnqueuer {
    pub(crate) store: DynStore,
    pub(crate) wakers: Arc<Wakers>,
    /// A tick at most this late is on time (see [`crate::EngineConfig::cron_grace`]).
    pub(crate) grace: Duration,
    /// Longest sleep between passes.
    pub(crate) poll: Duration,
    /// Most schedules fired in one transaction.
    pub(crate) batch: u32,
    pub(crate) stop: CancellationToken,
    pub(crate) ticks: Ticks,
}

impl CronEnqueuer {
    /// Runs passes while `lease` is held, until `stop`; then resigns the lease.
    pub(crate) async fn run(self, lease: LeaderLease) {
        let this = Arc::new(self);
        lease
            .run_while_leader(move |renew_at| {
                let this = this.clone();
                async move { this.fire_until(renew_at).await }
            })
            .await;
    }

    /// One pass now: fires every due tick of every unpaused schedule. Safe at any time (plans are fenced by
    /// revision and ticks are unique).
    pub(crate) async fn pass(&self) -> Result<CronPass> {
        let report = pass(self).await;
        self.ticks.tick();
        report
    }

    /// Passes until `until` (the next lease renewal), sleeping until each next fire time in between.
    async fn fire_until(&self, until: Instant) {
        loop {
            if Instant::now() >= until || self.stop.is_cancelled() {
                return;
            }
            // Listen before the pass, so a schedule changed during it still wakes the sleep below.
            let changed = self.wakers.cron.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait = match self.pass().await {
                Ok(report) => match report.next_fire_at {
                    // Wake early enough to read and plan before the tick.
                    Some(next) => {
                        let until_next = self.store.now().duration_until(next);
                        Duration::try_from(until_next)
                            .unwrap_or(Duration::ZERO)
                            .saturating_sub(PLAN_AHEAD)
                            .min(self.poll)
                    }
                    None => self.poll,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "firing due schedules failed");
                    self.poll
                }
            };
            let wake_at = (Instant::now() + wait).min(until);
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = &mut changed => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }
}

/// How far ahead of a tick the enqueuer reads and plans, so the tick's transaction starts at its fire time
/// rather than after the reads.
const PLAN_AHEAD: Duration = Duration::from_millis(100);

/// One pass: every schedule due now or within [`PLAN_AHEAD`], in batches of `cron_batch` schedules per
/// transaction. A batch is planned for the latest fire time among it, then fired once the store's clock
/// reaches that instant.
async fn pass(inner: &CronEnqueuer) -> Result<CronPass> {
    // A failing schedule pass does not hold back the functions' ticks (nor the other way round).
    let scheduled = schedules_pass(inner).await;
    let mut report = scheduled.as_ref().cloned().unwrap_or_default();
    functions_pass(inner, &mut report).await?;
    scheduled.map(|_| report)
}

/// The schedules' part of a pass.
async fn schedules_pass(inner: &CronEnqueuer) -> Result<CronPass> {
    let limit = inner.batch.max(1);
    let mut report = CronPass::default();
    loop {
        let now = inner.store.now();
        let until = offload_core::state::add(now, PLAN_AHEAD);
        let due = inner
            .store
            .schedule_due(ScheduleDueParams { until, limit })
            .await?;
        report.next_fire_at = earliest(report.next_fire_at, due.next_fire_at);
        if due.due.is_empty() {
            return Ok(report);
        }
        let full = due.due.len() >= limit as usize;
        let at = due
            .due
            .iter()
            .filter_map(|r| r.next_fire_at)
            .max()
            .map_or(now, |t| t.max(now));
        let fires: Vec<ScheduleFire> = due
            .due
            .iter()
            .filter_map(|record| plan(inner, record, at))
            .collect();
        if !reached(inner, at).await {
            // The clock did not get there (a clock moved by hand): plan again next time.
            report.next_fire_at = earliest(report.next_fire_at, Some(at));
            return Ok(report);
        }
        let names: Vec<String> = fires.iter().map(|f| f.name.clone()).collect();
        let nexts: Vec<Option<Timestamp>> = fires.iter().map(|f| f.next_fire_at).collect();
        let outcomes = inner
            .store
            .schedule_fire(ScheduleFireParams { fires })
            .await?;
        for ((name, outcome), next) in names.iter().zip(&outcomes).zip(nexts) {
            account(inner, name, outcome, &mut report);
            // The schedules just fired wait for their new next fire time; a stale plan is planned again at
            // once.
            let wake = if outcome.applied { next } else { Some(at) };
            report.next_fire_at = earliest(report.next_fire_at, wake);
        }
        if !full {
            return Ok(report);
        }
    }
}

/// The functions' part of a pass: due cron ticks of functions start their runs, in batches of `cron_batch`
/// functions per transaction, until none is due. A tick within [`PLAN_AHEAD`] is waited for and fired in the
/// same pass (the loop wakes that early for schedules), once per pass.
async fn functions_pass(inner: &CronEnqueuer, report: &mut CronPass) -> Result<()> {
    let limit = inner.batch.max(1);
    let plan_ahead = jiff::SignedDuration::try_from(PLAN_AHEAD).unwrap_or_default();
    let mut waited = false;
    loop {
        let fired = inner
            .store
            .function_cron_fire(FunctionCronFireParams { limit })
            .await?;
        for queue in &fired.queues {
            inner.wakers.queues.wake(queue);
        }
        if !fired.fired.is_empty() {
            // A push function's first call is delivered by the dispatcher.
            inner.wakers.push.notify_one();
        }
        for tick in &fired.fired {
            metrics::counter!("offload_function_cron_ticks_total", "function" => tick.function_id.clone(), "outcome" => "fired")
                .increment(1);
            tracing::debug!(function = %tick.function_id, scheduled_at = %tick.scheduled_at, run = %tick.run_id, "function cron tick fired");
            if tick.missed > 0 {
                metrics::counter!("offload_function_cron_ticks_total", "function" => tick.function_id.clone(), "outcome" => "missed")
                    .increment(tick.missed);
                tracing::warn!(function = %tick.function_id, ticks = tick.missed, "function cron ticks missed: one run for the most recent");
            }
        }
        report.function_runs += fired.fired.len() as u64;
        if fired.fired.len() >= limit as usize {
            continue;
        }
        if let Some(next) = fired.next_fire_at
            && !waited
            && inner.store.now().duration_until(next) <= plan_ahead
        {
            waited = true;
            if reached(inner, next).await {
                continue;
            }
        }
        report.next_fire_at = earliest(report.next_fire_at, fired.next_fire_at);
        return Ok(());
    }
}

/// Waits until the store's clock reads `at` (at most [`PLAN_AHEAD`] away); false if it still does not.
async fn reached(inner: &CronEnqueuer, at: Timestamp) -> bool {
    let left = Duration::try_from(inner.store.now().duration_until(at)).unwrap_or(Duration::ZERO);
    if left.is_zero() {
        return true;
    }
    tokio::time::sleep(left.min(PLAN_AHEAD)).await;
    inner.store.now() >= at
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The plan of one due schedule, as of `now` (the instant it will be fired at).
fn plan(inner: &CronEnqueuer, record: &ScheduleRecord, now: Timestamp) -> Option<ScheduleFire> {
    let from = record.next_fire_at?;
    let s = &record.schedule;
    let rule = CatchUpRule {
        policy: s.catch_up,
        window: s.catch_up_window,
        grace: inner.grace,
    };
    let due = plan_due(&s.cadence, from, now, rule);
    let mut runs = Vec::with_capacity(due.run.len());
    for fire_at in due.run {
        let run_at = jittered(fire_at, s.jitter, fastrand::f64());
        match s.job.new_job(run_at) {
            Ok(job) => runs.push(TickRun { fire_at, job }),
            Err(e) => {
                // A stored template always makes a valid job; never fire half a plan if one does not.
                tracing::error!(schedule = %s.name, error = %e, "schedule template does not make a valid job");
                return None;
            }
        }
    }
    Some(ScheduleFire {
        name: s.name.clone(),
        revision: record.revision,
        from,
        runs,
        missed: due.missed,
        next_fire_at: due.next_fire_at,
    })
}

/// Metrics, logs and wake-ups for one applied plan.
fn account(inner: &CronEnqueuer, name: &str, outcome: &FireOutcome, report: &mut CronPass) {
    if !outcome.applied {
        report.stale += 1;
        return;
    }
    let count = |outcome: TickOutcome, n: u64| {
        if n > 0 {
            metrics::counter!("offload_cron_ticks_total", "schedule" => name.to_owned(), "outcome" => outcome.as_str())
                .increment(n);
        }
    };
    let fired = outcome.fired.len() as u64;
    let skipped = outcome.skipped.len() as u64;
    count(TickOutcome::Fired, fired);
    count(TickOutcome::Skipped, skipped);
    count(TickOutcome::Missed, outcome.missed);
    report.fired += fired;
    report.skipped += skipped;
    report.missed += outcome.missed;
    let mut delayed = false;
    for job in &outcome.fired {
        tracing::debug!(schedule = %name, fire_at = %job.fire_at, job = %job.inserted.id, "tick fired");
        match job.inserted.state {
            JobState::Available => {
                inner.wakers.queues.wake(&job.queue);
                // The template may make it a push job: the dispatcher looks too (cheap when it has none).
                inner.wakers.push.notify_one();
            }
            JobState::Scheduled => delayed = true,
            _ => {}
        }
    }
    if delayed {
        inner.wakers.stager.notify_one();
    }
    for fire_at in &outcome.skipped {
        tracing::info!(schedule = %name, fire_at = %fire_at, "tick skipped: an earlier run is unfinished");
    }
    if outcome.missed > 0 {
        tracing::warn!(schedule = %name, ticks = outcome.missed, "ticks missed (catch-up policy)");
    }
}
