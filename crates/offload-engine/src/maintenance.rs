//! Singleton maintenance work: staging due jobs, rescuing expired leases, pruning finished jobs.
//!
//! Invariant: the duties only run while this node holds the `maintenance` leader lease. Every election is timed
//! from the moment its request was sent, which is no later than the instant the store started the lease: the
//! node works until a third of the lease has passed, then renews; if the renewal fails or does not answer
//! within that third, it stops at once, and a duty stuck on the store is abandoned before the lease would end.
//! So a node that cannot renew has stepped down well before another node may take the lease. A node that is
//! not leader tries again when the holder's lease ends (at most a third of a lease later), so a dead leader is
//! replaced within one lease period. Each duty is idempotent anyway (it only moves rows whose state and time
//! qualify), so even an overlap is harmless.

use std::sync::Arc;
use std::time::Duration;

use offload_core::JobState;
use offload_store::{
    JobPruneParams, JobRescueParams, JobStageParams, LeaderElectParams, LeaderResignParams,
};
use tokio::time::Instant;

use crate::engine::Inner;

const LEASE_NAME: &str = "maintenance";

/// Runs until the engine's loops are stopped, then resigns the lease.
pub(crate) async fn run(inner: Arc<Inner>) {
    let ttl = inner.config.leader_ttl;
    let mut timers = Timers::new(Instant::now());
    let mut was_leader = false;
    while !inner.stop_loops.is_cancelled() {
        let elect = LeaderElectParams {
            name: LEASE_NAME.to_owned(),
            node_id: inner.config.node_id.clone(),
            ttl,
        };
        let sent = Instant::now();
        let renew_at = sent + ttl / 3;
        let answer =
            tokio::time::timeout_at(renew_at, inner.store.leader_attempt_elect(elect)).await;
        let (is_leader, next_try) = match answer {
            Ok(Ok(l)) if l.is_leader => (true, renew_at),
            Ok(Ok(l)) => {
                // Try again just after the holder's lease ends, or at the usual rhythm if that is sooner.
                let until_free = inner.store.now().duration_until(l.expires_at);
                let until_free = Duration::try_from(until_free).unwrap_or(Duration::ZERO);
                let retry = until_free + Duration::from_millis(fastrand::u64(10..60));
                (false, renew_at.min(Instant::now() + retry))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "leader election failed; maintenance paused on this node");
                (false, renew_at)
            }
            Err(_) => {
                tracing::warn!(
                    "leader election did not answer in time; maintenance paused on this node"
                );
                (false, renew_at)
            }
        };
        if is_leader != was_leader {
            tracing::info!(node = %inner.config.node_id, leader = is_leader, "maintenance leadership changed");
            was_leader = is_leader;
        }
        if is_leader {
            // Abandon a duty stuck on the store before the lease (started no earlier than `sent`) ends.
            let lease_end = sent + ttl.mul_f64(0.9);
            let duties = run_duties(&inner, &mut timers, renew_at);
            if tokio::time::timeout_at(lease_end, duties).await.is_err() {
                tracing::warn!("maintenance duty outlasted the leader lease; stepping down");
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until(next_try) => {}
                _ = inner.stop_loops.cancelled() => {}
            }
        }
    }
    if was_leader {
        let resign = LeaderResignParams {
            name: LEASE_NAME.to_owned(),
            node_id: inner.config.node_id.clone(),
        };
        if let Err(e) = inner.store.leader_resign(resign).await {
            tracing::debug!(error = %e, "could not resign maintenance lease");
        }
    }
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
                    tracing::info!(job = %job.id, queue = %job.queue, state = %job.state, "lease expired; job rescued");
                    if job.state == JobState::Available {
                        inner.wakeups.wake(&job.queue);
                    } else if job.state == JobState::Retrying {
                        inner.stager_wakeup.notify_one();
                    }
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
