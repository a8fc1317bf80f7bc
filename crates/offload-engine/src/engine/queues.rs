//! Queue limits through the engine: set and read them, and keep this process's hint of which queues have
//! limits (so a job that ends wakes a claimer only where a slot matters) in step with what it sees.
//!
//! Invariant: the store decides and enforces limits; what is kept here only chooses whom to wake.

use offload_core::api::QueueInfo;
use offload_core::flow::limits::QueueLimitsPatch;
use offload_store::QueueSetLimitsParams;

use super::Engine;
use crate::error::Result;

impl Engine {
    /// Changes a queue's limits (creating the queue if unknown) and answers it with its live usage. Raised or
    /// removed limits may let held jobs start: the queue's claimers are woken.
    pub async fn set_limits(&self, queue: String, patch: QueueLimitsPatch) -> Result<QueueInfo> {
        let info = self
            .inner
            .store
            .queue_set_limits(QueueSetLimitsParams { queue, patch })
            .await?;
        let wakeups = &self.inner.wakers.queues;
        wakeups.set_limited(&info.name, !info.limits.is_unlimited());
        wakeups.wake(&info.name);
        Ok(info)
    }

    /// How many of a queue's available jobs its limits hold now, by kind of limit (see
    /// [`offload_store::Store::queue_held`]).
    pub async fn queue_held(&self, name: &str) -> Result<offload_core::flow::held::HeldJobs> {
        Ok(self.inner.store.queue_held(name).await?)
    }

    /// One queue with its counts, limits and live usage; `None` when the store knows no such queue.
    pub async fn queue(&self, name: &str) -> Result<Option<QueueInfo>> {
        let info = self.inner.store.queue_get(name).await?;
        if let Some(info) = &info {
            self.inner
                .wakers
                .queues
                .set_limited(&info.name, !info.limits.is_unlimited());
        }
        Ok(info)
    }

    /// Records which of `queues` have limits.
    pub(super) fn learn_limits(&self, queues: &[QueueInfo]) {
        for info in queues {
            self.inner
                .wakers
                .queues
                .set_limited(&info.name, !info.limits.is_unlimited());
        }
    }

    /// Learns which queues have limits when the engine starts (a failure only delays what the poll covers).
    pub(super) async fn learn_limits_at_start(self) {
        match self.inner.store.queue_list().await {
            Ok(queues) => self.learn_limits(&queues),
            Err(e) => tracing::warn!(error = %e, "cannot read the queues' limits"),
        }
    }
}
