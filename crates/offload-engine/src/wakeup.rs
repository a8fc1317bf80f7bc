//! Per-queue wake-ups for long-polling claimers.
//!
//! Invariant: a claimer registers interest ([`Wakeups::listen`]) *before* it looks for jobs, so a job that
//! becomes available between its empty claim and its wait still wakes it. Wake-ups are hints: the claimer
//! always claims through the store, and a jittered poll backs them up. [`Wakers`] bundles every wake-up
//! one part of the engine may give another, so services share it instead of the whole engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use offload_store::Wakeup;
use tokio::sync::Notify;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

/// The wake-ups of one engine: its claimers, its stager, its push dispatcher and its cron enqueuer.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    /// Long-polling claimers, per queue.
    pub(crate) queues: Wakeups,
    /// The stager, when a job became due later (a delayed job, a retry, a snooze).
    pub(crate) stager: Notify,
    /// The push dispatcher, when push jobs may have become available.
    pub(crate) push: Notify,
    /// The cron enqueuer, when a schedule changed.
    pub(crate) cron: Notify,
}

/// Notifiers keyed by queue name.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    /// The notifier of a queue, created on first use.
    pub(crate) fn listen(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = queues.get(queue) {
            return n.clone();
        }
        let n = Arc::new(Notify::new());
        queues.insert(queue.to_owned(), n.clone());
        n
    }

    /// Wakes every claimer waiting on `queue`. Queues nobody waits on cost a map lookup.
    pub(crate) fn wake(&self, queue: &str) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = queues.get(queue) {
            n.notify_waiters();
        }
    }

    /// Wakes every waiting claimer (shutdown, or a change that may affect any queue).
    pub(crate) fn wake_all(&self) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        for n in queues.values() {
            n.notify_waiters();
        }
    }
}

/// Forwards the store's wake-ups (jobs made available by other servers, or by SQL in applications) to this
/// process's claimers and push dispatcher, until the engine stops. A lagging receiver may have missed some: it wakes everyone.
pub(crate) async fn forward(
    wakers: Arc<Wakers>,
    mut rx: broadcast::Receiver<Wakeup>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(Wakeup::Queue(queue)) => wakers.queues.wake(&queue),
                Ok(Wakeup::Push) => wakers.push.notify_one(),
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    wakers.queues.wake_all();
                    wakers.push.notify_one();
                }
                Err(RecvError::Closed) => return,
            },
            _ = stop.cancelled() => return,
        }
    }
}
