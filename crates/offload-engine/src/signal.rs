//! Signals the engine's services raise as they work, so tests (and anything else) wait on what happened
//! instead of sleeping for a guessed time.
//!
//! Invariant: a [`Ticks`] count only grows, by one after each completed pass of its service, and a waiter
//! registered before a pass ends always sees it; a [`Flag`] always holds the service's current state.

use std::sync::Arc;

use tokio::sync::watch;

/// Counts the completed passes of one service.
#[derive(Debug, Clone)]
pub struct Ticks {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for Ticks {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Ticks {
    /// Records one completed pass.
    pub(crate) fn tick(&self) {
        self.tx.send_modify(|n| *n += 1);
    }

    /// Passes completed so far.
    pub fn count(&self) -> u64 {
        *self.tx.borrow()
    }

    /// Waits until more than `seen` passes have completed; returns the count then.
    pub async fn past(&self, seen: u64) -> u64 {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the wait cannot fail.
        rx.wait_for(|n| *n > seen).await.map_or(seen, |n| *n)
    }

    /// Waits for the next completed pass from now; returns the count then.
    pub async fn next(&self) -> u64 {
        self.past(self.count()).await
    }
}

/// A yes/no state of one service (such as "holds its leader lease").
#[derive(Debug, Clone)]
pub struct Flag {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Flag {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl Flag {
    /// Sets the state (waking waiters when it changes).
    pub(crate) fn set(&self, value: bool) {
        self.tx
            .send_if_modified(|v| std::mem::replace(v, value) != value);
    }

    /// The current state.
    pub fn get(&self) -> bool {
        *self.tx.borrow()
    }

    /// Waits until the state is `value`.
    pub async fn until(&self, value: bool) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v == value).await;
    }
}

/// Every signal of one engine (see [`crate::Engine::signals`]).
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Passes of the stager (each looked for due jobs once).
    pub stager: Ticks,
    /// Passes of the rescuer (each looked for expired leases once).
    pub rescuer: Ticks,
    /// Passes of the pruner (each deleted what retention allowed).
    pub pruner: Ticks,
    /// Passes of the flow-counter repairer (each recounted every flow counter once).
    pub flow_repair: Ticks,
    /// Passes of the wait-timeout service (each resolved every wait and invoke whose timeout passed).
    pub run_waker: Ticks,
    /// Passes of the cron enqueuer (each fired every due tick).
    pub cron: Ticks,
    /// Batches of push outcomes the push dispatcher recorded.
    pub push: Ticks,
    /// Long polls that found their queue empty and began to wait for a wake-up.
    pub long_polls: Ticks,
    /// This node holds the `maintenance` lease (stager, rescuer, pruner).
    pub maintenance_leader: Flag,
    /// This node holds the `cron` lease.
    pub cron_leader: Flag,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_sees_a_pass_that_ends_after_it_started_waiting() {
        let ticks = Ticks::default();
        let seen = ticks.count();
        let waiter = tokio::spawn({
            let ticks = ticks.clone();
            async move { ticks.past(seen).await }
        });
        ticks.tick();
        assert_eq!(waiter.await.unwrap(), 1);
        assert_eq!(
            ticks.past(0).await,
            1,
            "a pass already seen answers at once"
        );
    }

    #[tokio::test]
    async fn a_flag_wakes_waiters_when_it_changes() {
        let flag = Flag::default();
        let waiter = tokio::spawn({
            let flag = flag.clone();
            async move { flag.until(true).await }
        });
        flag.set(true);
        waiter.await.unwrap();
        assert!(flag.get());
    }
}
