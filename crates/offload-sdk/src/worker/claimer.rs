//! The claim loop of one queue: ask for as many jobs as there are free slots, long-polling when none is
//! available, and start each one.
//!
//! Invariant: at most `concurrency` jobs of the queue are held at once (running, or waiting for their report to
//! be answered), because a claim never asks for more jobs than the free slots it holds. Stopping drops an
//! in-flight long poll: a job the server hands out in that very instant is not lost, it is retried when its
//! lease expires.

use std::sync::Arc;
use std::time::Duration;

use offload_core::api::{ClaimRequest, MAX_CLAIM_JOBS};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::Shared;
use super::running;
use super::stats::add;
use crate::retry::Backoff;

/// An empty claim answered faster than this is followed by a pause of this length, so a server that does
/// not long-poll is not hammered.
const MIN_CLAIM_CYCLE: Duration = Duration::from_millis(500);

/// Claims jobs of `queue` into at most `concurrency` slots until `fetch` is cancelled; each job runs on
/// `tracker`.
pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    fetch: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let most = shared.claim_batch.min(MAX_CLAIM_JOBS as usize).max(1);
    let mut backoff = Backoff::new();
    loop {
        let first = tokio::select! {
            biased;
            () = fetch.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        while permits.len() < most {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let request = ClaimRequest {
            worker_id: shared.worker_id.clone(),
            max_jobs: Some(u32::try_from(permits.len()).unwrap_or(MAX_CLAIM_JOBS)),
            wait: Some(shared.claim_wait.into()),
        };
        let asked = Instant::now();
        let answer = tokio::select! {
            biased;
            () = fetch.cancelled() => return,
            answer = shared.client.claim(&queue, &request) => answer,
        };
        match answer {
            Ok(answer) => {
                backoff.reset();
                if answer.jobs.is_empty() {
                    if asked.elapsed() < MIN_CLAIM_CYCLE && pause(&fetch, MIN_CLAIM_CYCLE).await {
                        return;
                    }
                    continue;
                }
                add(&shared.counters.claimed, answer.jobs.len() as u64);
                shared.counters.changed();
                for job in answer.jobs {
                    let permit = permits.pop();
                    if permit.is_none() {
                        warn!(
                            "job {}: the server handed out more jobs than asked for; running it anyway",
                            job.id
                        );
                    }
                    tracker.spawn(running::run(shared.clone(), job, permit));
                }
            }
            Err(e) => {
                let delay = backoff.next_pause();
                warn!("cannot claim jobs from queue {queue}: {e}; trying again in {delay:?}");
                if pause(&fetch, delay).await {
                    return;
                }
            }
        }
    }
}

/// Waits `delay` unless `fetch` is cancelled first; true when cancelled.
async fn pause(fetch: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = fetch.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}
