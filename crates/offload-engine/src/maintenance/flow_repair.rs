//! The flow-counter repairer: recounts every flow counter (group and queue usage) from the jobs, sets right
//! any that drifted, and says so (a warning and [`observe::FLOW_COUNTER_REPAIRS`] per counter).
//!
//! Invariant: a repair only ever moves a counter to the number of jobs it counts (the store decides, see
//! [`offload_store::Store::flow_counters_repair`]), so a pass run twice, or beside claims on other servers,
//! fixes nothing twice. A counter that drifted is a bug somewhere else: the warning names it.

use std::sync::Arc;

use offload_store::{DynStore, FlowCounter};

use crate::observe;
use crate::signal::Ticks;
use crate::wakeup::Wakers;

/// Repairs drifted flow counters.
pub(crate) struct FlowRepairer {
    pub(crate) store: DynStore,
    pub(crate) wakers: Arc<Wakers>,
    pub(crate) ticks: Ticks,
}

impl FlowRepairer {
    /// One pass over every counter.
    pub(crate) async fn repair(&self) {
        match self.store.flow_counters_repair().await {
            Ok(fixes) => {
                for fix in &fixes {
                    tracing::warn!(
                        queue = %fix.queue,
                        group = fix.group.as_deref().unwrap_or(""),
                        counter = fix.counter.as_str(),
                        was = fix.was,
                        now = fix.now,
                        "flow counter drifted from its jobs; repaired"
                    );
                    observe::flow_counter_repaired(&fix.queue, fix.counter);
                    if fix.delta() < 0
                        && matches!(
                            fix.counter,
                            FlowCounter::GroupRunning | FlowCounter::QueueRunning
                        )
                    {
                        // Slots counted as taken are free: a claimer of a limited queue may start a job.
                        self.wakers.queues.slot_freed(&fix.queue);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "repairing flow counters failed"),
        }
        self.ticks.tick();
    }
}
