//! The wait-timeout service: resolves `wait_for_event` and `invoke` steps whose timeout passed (the step
//! records its timeout and the run's next call is enqueued at once), and wakes the claimers of those calls.
//!
//! Invariant: it only resolves waits whose `until` has passed on the store's clock, and the store claims each
//! wait by deleting it, so a pass run twice (or on two nodes) resolves nothing twice.

use std::sync::Arc;
use std::time::Duration;

use offload_store::{DynStore, RunWakeParams};
use tokio::time::Instant;

use crate::signal::Ticks;
use crate::wakeup::Wakers;

/// Resolves timed-out waits in batches of `limit`.
pub(crate) struct RunWaker {
    pub(crate) store: DynStore,
    pub(crate) wakers: Arc<Wakers>,
    /// Runs per statement.
    pub(crate) limit: u32,
    /// Longest wait between passes.
    pub(crate) interval: Duration,
    pub(crate) ticks: Ticks,
}

impl RunWaker {
    /// One pass; returns when to look again: at once if the batch was full, else at the earliest pending
    /// timeout (bounded by the interval, which also bounds how late a wait planned since is noticed).
    pub(crate) async fn wake(&self, now: Instant) -> Instant {
        let next = self.pass(now).await;
        self.ticks.tick();
        next
    }

    async fn pass(&self, now: Instant) -> Instant {
        let limit = self.limit;
        match self.store.run_wake_due(RunWakeParams { limit }).await {
            Ok(report) => {
                for queue in &report.queues {
                    self.wakers.queues.wake(queue);
                }
                if report.woken > 0 {
                    self.wakers.push.notify_one();
                }
                if report.woken >= u64::from(limit) {
                    return now;
                }
                let mut wait = self.interval;
                if let Some(due) = report.next_due_at {
                    let until_due = self.store.now().duration_until(due);
                    wait = wait.min(Duration::try_from(until_due).unwrap_or(Duration::ZERO));
                }
                now + wait
            }
            Err(e) => {
                tracing::warn!(error = %e, "resolving timed-out waits failed");
                now + self.interval
            }
        }
    }
}
