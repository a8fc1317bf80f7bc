//! The stager: makes due jobs (delayed, retrying, snoozed) available and wakes their claimers.
//!
//! Invariant: it only moves jobs whose due time has passed on the store's clock, so a pass run twice (or on
//! two nodes) moves nothing twice.

use std::sync::Arc;
use std::time::Duration;

use offload_store::{DynStore, JobStageParams};
use tokio::time::Instant;

use crate::signal::Ticks;
use crate::wakeup::Wakers;

/// Stages due jobs in batches of `limit`.
pub(crate) struct Stager {
    pub(crate) store: DynStore,
    pub(crate) wakers: Arc<Wakers>,
    /// Rows per statement.
    pub(crate) limit: u32,
    /// Longest wait between passes.
    pub(crate) interval: Duration,
    pub(crate) ticks: Ticks,
}

impl Stager {
    /// One pass; returns when to look again: at once if the batch was full, else at the next due time
    /// (bounded by the interval).
    pub(crate) async fn stage(&self, now: Instant) -> Instant {
        let next = self.pass(now).await;
        self.ticks.tick();
        next
    }

    async fn pass(&self, now: Instant) -> Instant {
        let limit = self.limit;
        match self.store.job_stage_due(JobStageParams { limit }).await {
            Ok(report) => {
                let mut moved = 0;
                for (queue, n) in &report.staged {
                    moved += n;
                    self.wakers.queues.wake(queue);
                }
                if moved > 0 {
                    self.wakers.push.notify_one();
                }
                if moved >= u64::from(limit) {
                    return now;
                }
                let mut wait = self.interval;
                if let Some(due) = report.next_due_at {
                    let until_due = self.store.now().duration_until(due);
                    let until_due = Duration::try_from(until_due).unwrap_or(Duration::ZERO);
                    wait = wait.min(until_due);
                }
                now + wait
            }
            Err(e) => {
                tracing::warn!(error = %e, "staging due jobs failed");
                now + self.interval
            }
        }
    }
}
