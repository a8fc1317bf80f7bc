//! The pruner: deletes finished jobs older than their retention, then ended function runs (with their steps)
//! and stored events older than theirs.
//!
//! Invariant: it only deletes jobs in a final state whose retention has passed, in bounded batches, and stops
//! between batches when the engine stops.

use offload_store::{DynStore, JobPruneParams, RunPruneParams};
use tokio_util::sync::CancellationToken;

use crate::config::{FunctionsConfig, Retention};
use crate::signal::Ticks;

/// Prunes finished jobs in batches of `limit`.
pub(crate) struct Pruner {
    pub(crate) store: DynStore,
    pub(crate) retention: Retention,
    /// Retention of events and ended runs.
    pub(crate) functions: FunctionsConfig,
    /// Rows per statement.
    pub(crate) limit: u32,
    pub(crate) stop: CancellationToken,
    pub(crate) ticks: Ticks,
}

impl Pruner {
    /// One pass: batch after batch until one is not full.
    pub(crate) async fn prune(&self) {
        self.pass().await;
        self.prune_runs().await;
        self.ticks.tick();
    }

    async fn pass(&self) {
        let r = self.retention;
        let limit = self.limit;
        let mut total = 0;
        loop {
            let params = JobPruneParams {
                succeeded: r.succeeded,
                dead: r.dead,
                cancelled: r.cancelled,
                limit,
            };
            match self.store.job_prune(params).await {
                Ok(n) => {
                    total += n;
                    if n < u64::from(limit) || self.stop.is_cancelled() {
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

    async fn prune_runs(&self) {
        let limit = self.limit;
        let mut total = 0;
        loop {
            let params = RunPruneParams {
                runs: self.functions.run_retention,
                events: self.functions.event_retention,
                limit,
            };
            match self.store.run_prune(params).await {
                Ok(n) => {
                    total += n;
                    if n < u64::from(limit) || self.stop.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning ended runs and old events failed");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::debug!(pruned = total, "pruned ended runs and old events");
        }
    }
}
