//! Per-queue wake-ups for long-polling claimers.
//!
//! Invariant: a claimer registers interest ([`Wakeups::listen`]) *before* it looks for jobs, so a job that
//! becomes available between its empty claim and its wait still wakes it. Wake-ups are hints: the claimer
//! always claims through the store, and a jittered poll backs them up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use offload_store::Wakeup;
use tokio::sync::Notify;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::engine::Inner;

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
pub(crate) async fn forward(inner: Arc<Inner>, mut rx: broadcast::Receiver<Wakeup>) {
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(Wakeup::Queue(queue)) => inner.wakeups.wake(&queue),
                Ok(Wakeup::Push) => inner.push_wakeup.notify_one(),
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    inner.wakeups.wake_all();
                    inner.push_wakeup.notify_one();
                }
                Err(RecvError::Closed) => return,
            },
            _ = inner.stop_loops.cancelled() => return,
        }
    }
}
