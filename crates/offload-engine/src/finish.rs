//! Recording the ends of attempts, with what a store cannot do: counting them, and waking claimers of a job
//! due again at once (or the stager, for one due later) and, in a queue with limits, a claimer that may take
//! the slot the ended job freed. Shared by the API's completions and the push dispatcher's.
//!
//! Invariant: a wake-up follows only an outcome the store committed.

use offload_core::JobState;
use offload_store::{DynStore, FinishOutcome, JobFinishParams};

use crate::error::Result;
use crate::observe;
use crate::wakeup::Wakers;

/// Applies completions and failures (and snoozes), then counts and wakes.
pub(crate) async fn finish(
    store: &DynStore,
    wakers: &Wakers,
    params: JobFinishParams,
) -> Result<Vec<FinishOutcome>> {
    let outcomes = store.job_finish(params).await?;
    let now = store.now();
    let mut delayed = false;
    for finished in outcomes.iter().flatten() {
        observe::finished(&finished.queue, finished.state);
        observe::ran(&finished.queue, finished.started_at, now);
        if let Some(change) = &finished.run {
            observe::run_changed(change);
        }
        match finished.state {
            JobState::Available => wakers.queues.wake(&finished.queue),
            JobState::Retrying | JobState::Scheduled => {
                delayed = true;
                wakers.queues.slot_freed(&finished.queue);
            }
            _ => wakers.queues.slot_freed(&finished.queue),
        }
    }
    if delayed {
        wakers.stager.notify_one();
    }
    Ok(outcomes)
}
