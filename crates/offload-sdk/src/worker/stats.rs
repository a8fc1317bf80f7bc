//! Counters of what a worker did, readable while it runs.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// What a worker has done so far. Each ended attempt is counted once, when the server acknowledged its report
/// (or refused it, or it could not be sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Jobs handed to this worker.
    pub claimed: u64,
    /// Jobs whose handler is running now.
    pub running: u64,
    /// Completions the server accepted.
    pub succeeded: u64,
    /// Failures the server accepted (retries and fatal errors alike; panics included).
    pub failed: u64,
    /// Handler panics (each also counted in `failed` once reported).
    pub panicked: u64,
    /// Snoozes the server accepted.
    pub snoozed: u64,
    /// Cancellations (by the handler) the server accepted.
    pub cancelled: u64,
    /// Jobs handed back unfinished at shutdown (to run again at once elsewhere, no attempt used up).
    pub released: u64,
    /// Reports the server refused because the lease was lost (the job was rescued and retried).
    pub refused: u64,
    /// Reports that could not be delivered while their job's lease lasted (the server retries those jobs).
    pub unreported: u64,
    /// Report requests the server did not answer (unreachable, 429 or 5xx), each tried again later.
    pub report_retries: u64,
}

/// The live counters behind [`WorkerStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Woken after every change of an outcome counter (not of `running`), for [`Counters::wait_until`].
    changed: Notify,
    pub(crate) claimed: AtomicU64,
    pub(crate) running: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) snoozed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) unreported: AtomicU64,
    pub(crate) report_retries: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// Wakes [`Counters::wait_until`] callers; call after updating outcome counters.
    pub(crate) fn changed(&self) {
        self.changed.notify_waiters();
    }

    /// Waits until `done` holds for the counters; returns them.
    pub(crate) async fn wait_until(
        &self,
        mut done: impl FnMut(&WorkerStats) -> bool,
    ) -> WorkerStats {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let stats = self.snapshot();
            if done(&stats) {
                return stats;
            }
            notified.await;
        }
    }

    pub(crate) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            claimed: get(&self.claimed),
            running: get(&self.running),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            panicked: get(&self.panicked),
            snoozed: get(&self.snoozed),
            cancelled: get(&self.cancelled),
            released: get(&self.released),
            refused: get(&self.refused),
            unreported: get(&self.unreported),
            report_retries: get(&self.report_retries),
        }
    }
}
