//! Singleton maintenance work: staging due jobs, rescuing expired leases, pruning finished jobs.
//!
//! Invariant: the duties only run while this node holds the `maintenance` leader lease, and a node stops
//! them at its next renewal point (a third of the lease) unless the renewal succeeded, so two nodes never
//! run them at once for longer than a clock-skew margin. Each duty is idempotent anyway (it only moves rows
//! whose state and time qualify), so an overlap is harmless.

use std::sync::Arc;
use std::time::Duration;

use offload_core::JobState;
use offload_store::{JobPruneParams, JobRescueParams, JobStageParams};
use tokio::time::Instant;

use crate::engine::Inner;
use crate::observe;

const LEASE_NAME: &str = "maintenance";

/// Runs until the engine's loops are stopped, then resigns the lease.
pub(crate) async fn run(inner: Arc<Inner>) {
    // Shared with each leadership term's future; only one term runs at a time.
    let timers = Arc::new(tokio::sync::Mutex::new(Timers::new(Instant::now())));
    let work = inner.clone();
    crate::leadership::run_while_leader(inner, LEASE_NAME, move |renew_at| {
        let (inner, timers) = (work.clone(), timers.clone());
        async move { run_duties(&inner, &mut *timers.lock().await, renew_at).await }
    })
    .await;
}

/// When each duty runs next.
struct Timers {
    stage: Instant,
    rescue: Instant,
    prune: Instant,
}

impl Timers {
    fn new(now: Instant) -> Self {
        Self {
            stage: now,
            rescue: now,
            prune: now,
        }
    }

    fn earliest(&self) -> Instant {
        self.stage.min(self.rescue).min(self.prune)
    }
}

async fn run_duties(inner: &Inner, timers: &mut Timers, until: Instant) {
    loop {
        let now = Instant::now();
        if now >= until || inner.stop_loops.is_cancelled() {
            return;
        }
        if now >= timers.stage {
            timers.stage = stage(inner, now).await;
        }
        if now >= timers.rescue {
            rescue(inner).await;
            timers.rescue = now + inner.config.rescue_interval;
        }
        if now >= timers.prune {
            prune(inner).await;
            timers.prune = now + inner.config.prune_interval;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(timers.earliest().min(until)) => {}
            _ = inner.stager_wakeup.notified() => timers.stage = Instant::now(),
            _ = inner.stop_loops.cancelled() => return,
        }
    }
}

/// Stages due jobs; returns when to look again: at once if the batch was full, else at the next due time
/// (bounded by the stage interval).
async fn stage(inner: &Inner, now: Instant) -> Instant {
    let limit = inner.config.maintenance_batch;
    match inner.store.job_stage_due(JobStageParams { limit }).await {
        Ok(report) => {
            let mut moved = 0;
            for (queue, n) in &report.staged {
                moved += n;
                inner.wakeups.wake(queue);
            }
            if moved > 0 {
                inner.push_wakeup.notify_one();
            }
            if moved >= u64::from(limit) {
                return now;
            }
            let mut wait = inner.config.stage_interval;
            if let Some(due) = report.next_due_at {
                let until_due = inner.store.now().duration_until(due);
                let until_due = Duration::try_from(until_due).unwrap_or(Duration::ZERO);
                wait = wait.min(until_due);
            }
            now + wait
        }
        Err(e) => {
            tracing::warn!(error = %e, "staging due jobs failed");
            now + inner.config.stage_interval
        }
    }
}

async fn rescue(inner: &Inner) {
    let limit = inner.config.maintenance_batch;
    loop {
        match inner
            .store
            .job_rescue_expired(JobRescueParams { limit })
            .await
        {
            Ok(report) => {
                for job in &report.rescued {
                    observe::lease_expired(&job.queue);
                    observe::finished(&job.queue, job.state);
                    tracing::info!(job = %job.id, queue = %job.queue, state = %job.state, "lease expired; job rescued");
                    if job.state == JobState::Available {
                        inner.wakeups.wake(&job.queue);
                        inner.push_wakeup.notify_one();
                    } else if job.state == JobState::Retrying {
                        inner.stager_wakeup.notify_one();
                    }
                }
                if !report.rescued.is_empty() {
                    // A rescued push job that died may have created its failure callback.
                    inner.push_wakeup.notify_one();
                }
                if report.rescued.len() < limit as usize {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rescuing expired leases failed");
                return;
            }
        }
    }
}

async fn prune(inner: &Inner) {
    let r = inner.config.retention;
    let limit = inner.config.maintenance_batch;
    let mut total = 0;
    loop {
        let params = JobPruneParams {
            succeeded: r.succeeded,
            dead: r.dead,
            cancelled: r.cancelled,
            limit,
        };
        match inner.store.job_prune(params).await {
            Ok(n) => {
                total += n;
                if n < u64::from(limit) || inner.stop_loops.is_cancelled() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning finished jobs failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::debug!(pruned = total, "pruned finished jobs");
    }
}
