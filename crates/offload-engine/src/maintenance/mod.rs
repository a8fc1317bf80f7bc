//! Singleton maintenance work: the [`Stager`], the [`Rescuer`], the [`RunWaker`] (timeouts of waiting function
//! runs), the [`Pruner`] and the [`FlowRepairer`] (flow counters that drifted), run in turn under the
//! `maintenance` leader lease.
//!
//! Invariant: the duties only run while this node holds the `maintenance` leader lease, and a node stops
//! them at its next renewal point (a third of the lease) unless the renewal succeeded, so two nodes never
//! run them at once for longer than a clock-skew margin. Each duty is idempotent anyway (it only moves rows
//! whose state and time qualify), so an overlap is harmless.

mod flow_repair;
mod pruner;
mod rescuer;
mod run_waker;
mod stager;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use flow_repair::FlowRepairer;
pub(crate) use pruner::Pruner;
pub(crate) use rescuer::Rescuer;
pub(crate) use run_waker::RunWaker;
pub(crate) use stager::Stager;

use crate::leadership::LeaderLease;
use crate::wakeup::Wakers;

/// The name of the lease the duties run under.
pub(crate) const LEASE_NAME: &str = "maintenance";

/// The duties and how often the rescuer, the pruner and the flow repairer run.
pub(crate) struct Maintenance {
    pub(crate) stager: Stager,
    pub(crate) rescuer: Rescuer,
    pub(crate) run_waker: RunWaker,
    pub(crate) pruner: Pruner,
    pub(crate) flow_repairer: FlowRepairer,
    pub(crate) rescue_interval: Duration,
    pub(crate) prune_interval: Duration,
    pub(crate) flow_repair_interval: Duration,
    /// Wakes the stager early (its `stager` notify).
    pub(crate) wakers: Arc<Wakers>,
    pub(crate) stop: CancellationToken,
}

impl Maintenance {
    /// Runs the duties while `lease` is held, until `stop`; then resigns the lease.
    pub(crate) async fn run(self, lease: LeaderLease) {
        // Shared with each leadership term's future; only one term runs at a time.
        let timers = Arc::new(tokio::sync::Mutex::new(Timers::new(Instant::now())));
        let this = Arc::new(self);
        lease
            .run_while_leader(move |renew_at| {
                let (this, timers) = (this.clone(), timers.clone());
                async move { this.run_duties(&mut *timers.lock().await, renew_at).await }
            })
            .await;
    }

    async fn run_duties(&self, timers: &mut Timers, until: Instant) {
        loop {
            let now = Instant::now();
            if now >= until || self.stop.is_cancelled() {
                return;
            }
            if now >= timers.stage {
                timers.stage = self.stager.stage(now).await;
            }
            if now >= timers.wake {
                timers.wake = self.run_waker.wake(now).await;
            }
            if now >= timers.rescue {
                self.rescuer.rescue().await;
                timers.rescue = now + self.rescue_interval;
            }
            if now >= timers.prune {
                self.pruner.prune().await;
                timers.prune = now + self.prune_interval;
            }
            if now >= timers.repair {
                self.flow_repairer.repair().await;
                timers.repair = now + self.flow_repair_interval;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(timers.earliest().min(until)) => {}
                _ = self.wakers.stager.notified() => {
                    let now = Instant::now();
                    timers.stage = now;
                    timers.wake = now;
                }
                _ = self.stop.cancelled() => return,
            }
        }
    }
}

/// When each duty runs next.
struct Timers {
    stage: Instant,
    wake: Instant,
    rescue: Instant,
    prune: Instant,
    repair: Instant,
}

impl Timers {
    fn new(now: Instant) -> Self {
        Self {
            stage: now,
            wake: now,
            rescue: now,
            prune: now,
            repair: now,
        }
    }

    fn earliest(&self) -> Instant {
        self.stage
            .min(self.wake)
            .min(self.rescue)
            .min(self.prune)
            .min(self.repair)
    }
}
