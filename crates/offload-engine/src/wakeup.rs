//! Per-queue wake-ups for long-polling claimers.
//!
//! Invariant: a claimer registers interest ([`Wakeups::listen`]) *before* it looks for jobs, so a job that
//! becomes available between its empty claim and its wait still wakes it. Wake-ups are hints: the claimer
//! always claims through the store, and a jittered poll backs them up. [`Wakers`] bundles every wake-up
//! one part of the engine may give another, so services share it instead of the whole engine.
//!
//! A job that ends frees a slot only in a queue with limits (a claimer of a queue without limits never waits
//! for one): [`Wakeups::slot_freed`] wakes one claimer of the queues this process knows to be limited, and
//! costs a set lookup elsewhere. The set is a hint learned from what this process reads and sets (limits set
//! on another server are learned when this one lists or reads the queue); the poll covers the rest.

use std::collections::{HashMap, HashSet};
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
    /// Queues known to have limits, whose claimers may wait for a running job to end.
    limited: Mutex<HashSet<String>>,
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

    /// Records whether `queue` has limits (a hint for [`Wakeups::slot_freed`]).
    pub(crate) fn set_limited(&self, queue: &str, limited: bool) {
        let mut set = self.limited.lock().unwrap_or_else(|e| e.into_inner());
        if limited {
            if !set.contains(queue) {
                set.insert(queue.to_owned());
            }
        } else {
            set.remove(queue);
        }
    }

    /// A running job of `queue` ended: when the queue has limits, wakes one claimer (a slot is free for one
    /// job; if it starts none, the next end wakes the next). Queues without limits cost a set lookup.
    pub(crate) fn slot_freed(&self, queue: &str) {
        let limited = self
            .limited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(queue);
        if limited {
            let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = queues.get(queue) {
                n.notify_one();
            }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn woken(notify: &Notify) -> bool {
        tokio::time::timeout(Duration::from_millis(50), notify.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_freed_slot_wakes_a_claimer_of_a_limited_queue_only() {
        let wakeups = Wakeups::default();
        let free = wakeups.listen("free");
        let limited = wakeups.listen("limited");
        wakeups.set_limited("limited", true);
        wakeups.slot_freed("free");
        wakeups.slot_freed("limited");
        assert!(woken(&limited).await, "the limited queue's claimer wakes");
        assert!(!woken(&free).await, "a queue without limits is not woken");
        wakeups.set_limited("limited", false);
        wakeups.slot_freed("limited");
        assert!(!woken(&limited).await, "limits cleared: no wake-up");
    }
}
