//! The rescuer: ends attempts whose lease expired (a dead or stuck worker), so their jobs run again or die.
//!
//! Invariant: it only ends attempts whose lease has passed on the store's clock; the store fences each by
//! its lease token, so a worker that reports late is refused and a pass run twice rescues nothing twice.

use std::sync::Arc;

use offload_core::JobState;
use offload_store::{DynStore, JobRescueParams};

use crate::observe;
use crate::signal::Ticks;
use crate::wakeup::Wakers;

/// Rescues expired leases in batches of `limit`.
pub(crate) struct Rescuer {
    pub(crate) store: DynStore,
    pub(crate) wakers: Arc<Wakers>,
    /// Rows per statement.
    pub(crate) limit: u32,
    pub(crate) ticks: Ticks,
}

impl Rescuer {
    /// One pass: every expired lease, batch after batch.
    pub(crate) async fn rescue(&self) {
        self.pass().await;
        self.ticks.tick();
    }

    async fn pass(&self) {
        let limit = self.limit;
        loop {
            match self
                .store
                .job_rescue_expired(JobRescueParams { limit })
                .await
            {
                Ok(report) => {
                    for job in &report.rescued {
                        observe::lease_expired(&job.queue);
                        observe::finished(&job.queue, job.state);
                        if let Some(change) = &job.run {
                            observe::run_changed(change);
                        }
                        tracing::info!(job = %job.id, queue = %job.queue, state = %job.state, "lease expired; job rescued");
                        if job.state == JobState::Available {
                            self.wakers.queues.wake(&job.queue);
                            self.wakers.push.notify_one();
                        } else {
                            // Its slot is free: a claimer of a limited queue may start another job.
                            self.wakers.queues.slot_freed(&job.queue);
                            if job.state == JobState::Retrying {
                                self.wakers.stager.notify_one();
                            }
                        }
                    }
                    if !report.rescued.is_empty() {
                        // A rescued push job that died may have created its failure callback.
                        self.wakers.push.notify_one();
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
}
