//! The push dispatcher: claims push jobs in batches, delivers each in its own task, and hands the outcomes
//! to a completer that records them in batches.
//!
//! Invariants:
//! - A delivery holds one of `max_in_flight` slots from its claim until its outcome is queued for the
//!   completer. The store's push claim never starts a job of a destination that already runs
//!   `per_destination` push jobs, counting every server's (a slot is given back when the outcome is recorded),
//!   so a slow destination fills only its own slots and never holds back deliveries to others. The
//!   dispatcher's own count per destination only decides when a claim is worth making again.
//! - A job is only ever finished with the lease token of its claim. A crash (or an abandoned delivery at
//!   shutdown) leaves the job running until its lease expires; the rescuer then makes it available again and
//!   it is delivered again with the same `webhook-id`.
//! - Deliveries that outlast a third of the job's lease heartbeat it, so a long request (a slow serverless
//!   function) does not lose its lease; a cancel request seen on a heartbeat stops the delivery.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use offload_core::push::{Classified, PushOutcome};
use offload_core::state::{Failure, FailureCause};
use offload_store::RUN_TAG;
use offload_store::{
    DynStore, Finish, FinishItem, JobClaimPushParams, JobFinishParams, JobHeartbeatParams, PushJob,
    StoreError,
};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Deliverer, PushConfig};
use crate::signal::Ticks;
use crate::wakeup::Wakers;

/// Most outcomes recorded in one store call.
const FINISH_BATCH: usize = 1024;
/// Tries to record a batch of outcomes before leaving them to lease expiry.
const FINISH_TRIES: u32 = 5;

/// The push dispatcher: the store it claims from and records to, its settings, whom it wakes, its two stop
/// signals (stop claiming; stop altogether), and the count of outcome batches it recorded.
pub(crate) struct PushDispatcher {
    pub(crate) store: DynStore,
    pub(crate) wakers: Arc<Wakers>,
    pub(crate) config: PushConfig,
    /// Claims are made as `push:<node id>`.
    pub(crate) node_id: String,
    /// Backstop poll when no wake-up comes (jittered by up to 50 %).
    pub(crate) claim_poll: Duration,
    pub(crate) deliverer: Deliverer,
    pub(crate) stop_claims: CancellationToken,
    pub(crate) stop_loops: CancellationToken,
    pub(crate) ticks: Ticks,
}

impl PushDispatcher {
    /// Runs until the engine stops claiming and the deliveries in flight have ended (or been abandoned).
    pub(crate) async fn run(self) {
        run(Arc::new(self)).await;
    }
}

/// Runs the dispatcher until the engine stops.
async fn run(inner: Arc<PushDispatcher>) {
    let config = inner.config.clone();
    let worker_id = format!("push:{}", inner.node_id);
    let (finish_tx, finish_rx) = mpsc::channel(config.max_in_flight as usize * 2);
    let completer = tokio::spawn(complete(inner.clone(), finish_rx));
    let mut slots = Slots::default();
    let mut deliveries: JoinSet<String> = JoinSet::new();
    // The destination of each delivery task, to free its slot even if the task panics.
    let mut destinations: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut look = true;
    let mut claiming = true;
    // Slots freed at full destinations since the last claim: jobs of those destinations may be waiting. A
    // claim is worth its transaction once a quarter of a destination's slots are free (or nothing is in
    // flight), not for every single slot.
    let mut freed = 0u32;
    let worth_claiming = (config.per_destination / 4).max(1);
    loop {
        if inner.stop_claims.is_cancelled() || inner.stop_loops.is_cancelled() {
            claiming = false;
        }
        while let Some(done) = deliveries.try_join_next_with_id() {
            let destination = finished(&mut destinations, done);
            freed += u32::from(slots.release(&destination));
        }
        if freed >= worth_claiming || (freed > 0 && deliveries.is_empty()) {
            look = true;
        }
        if claiming && look && slots.total < config.max_in_flight {
            let want = (config.max_in_flight - slots.total).min(config.claim_batch);
            let params = JobClaimPushParams {
                worker_id: worker_id.clone(),
                max_jobs: want,
                per_destination: config.per_destination,
            };
            freed = 0;
            match inner.store.job_claim_push(params).await {
                Ok(jobs) => {
                    look = jobs.len() == want as usize;
                    for job in jobs {
                        slots.take(&job.destination);
                        let destination = job.destination.clone();
                        let task = deliver(inner.clone(), job, finish_tx.clone());
                        let handle = deliveries.spawn(task);
                        destinations.insert(handle.id(), destination);
                    }
                    slots.mark_full(config.per_destination);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming push jobs failed");
                    look = false;
                }
            }
            continue;
        }
        if !claiming && deliveries.is_empty() {
            break;
        }
        let poll = inner.claim_poll.mul_f64(0.5 + fastrand::f64() * 0.5);
        tokio::select! {
            Some(done) = deliveries.join_next_with_id(), if !deliveries.is_empty() => {
                let destination = finished(&mut destinations, done);
                freed += u32::from(slots.release(&destination));
            }
            _ = inner.wakers.push.notified(), if claiming => look = true,
            _ = tokio::time::sleep(poll), if claiming => look = true,
            _ = inner.stop_claims.cancelled(), if claiming => claiming = false,
            _ = inner.stop_loops.cancelled(), if claiming => claiming = false,
        }
        if !claiming && !deliveries.is_empty() {
            finish_in_flight(&mut deliveries, config.shutdown_grace).await;
        }
    }
    drop(finish_tx);
    let _ = completer.await;
}

/// The destination of a finished delivery task (whether it returned, panicked or was aborted).
fn finished(
    destinations: &mut HashMap<tokio::task::Id, String>,
    done: Result<(tokio::task::Id, String), tokio::task::JoinError>,
) -> String {
    let id = match &done {
        Ok((id, _)) => *id,
        Err(e) => {
            if e.is_panic() {
                tracing::error!(error = %e, "a push delivery task panicked; its job is left to its lease");
            }
            e.id()
        }
    };
    destinations.remove(&id).unwrap_or_default()
}

/// At shutdown: lets deliveries in flight finish within the grace period, then abandons the rest (their
/// leases expire and they are delivered again).
async fn finish_in_flight(deliveries: &mut JoinSet<String>, grace: Duration) {
    let all = async { while deliveries.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            abandoned = deliveries.len(),
            "push deliveries still in flight at shutdown; they will be delivered again after their lease"
        );
        deliveries.abort_all();
        while deliveries.join_next().await.is_some() {}
    }
}

/// Deliveries held, in all and per destination.
#[derive(Debug, Default)]
struct Slots {
    total: u32,
    per_destination: HashMap<String, u32>,
    /// Destinations at their cap after the last claim: that claim may have left jobs of theirs behind, so each
    /// slot they free counts towards the next claim.
    full: std::collections::HashSet<String>,
}

impl Slots {
    /// Holds a slot of `destination` for a claimed delivery.
    fn take(&mut self, destination: &str) {
        self.total += 1;
        match self.per_destination.get_mut(destination) {
            Some(n) => *n += 1,
            None => {
                self.per_destination.insert(destination.to_owned(), 1);
            }
        }
    }

    /// Remembers which destinations are at `cap` now, after a claim.
    fn mark_full(&mut self, cap: u32) {
        self.full = self
            .per_destination
            .iter()
            .filter(|(_, n)| **n >= cap)
            .map(|(d, _)| d.clone())
            .collect();
    }

    /// Frees the slot of a finished delivery; true when its destination was at its cap after the last claim
    /// (so jobs of it may have been left out, and this slot can take one).
    fn release(&mut self, destination: &str) -> bool {
        self.total = self.total.saturating_sub(1);
        match self.per_destination.get_mut(destination) {
            Some(n) if *n <= 1 => {
                self.per_destination.remove(destination);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        self.full.contains(destination)
    }
}

/// One delivery task: delivers (heartbeating a long one), counts it, and queues its outcome. Returns the
/// destination, to free its slot.
async fn deliver(
    inner: Arc<PushDispatcher>,
    push: PushJob,
    finish: mpsc::Sender<FinishItem>,
) -> String {
    let ended = deliver_under_lease(&inner, &push).await;
    let item = match ended {
        Ended::Delivered(Classified { outcome, label }) => {
            metrics::counter!(
                crate::observe::PUSH_DELIVERIES,
                "queue" => push.job.queue.clone(),
                "result" => label,
            )
            .increment(1);
            let finish = match outcome {
                PushOutcome::Succeeded(result) if push.job.tags.contains_key(RUN_TAG) => {
                    call_response(&result)
                }
                PushOutcome::Succeeded(result) => Finish::Complete {
                    result: Some(result),
                },
                PushOutcome::Failed(failure) => Finish::Fail(failure),
            };
            Some(finish)
        }
        Ended::Cancelled => Some(Finish::Fail(Failure {
            error: "cancelled during delivery".to_owned(),
            retry_after: None,
            retryable: false,
            cause: FailureCause::Worker,
        })),
        Ended::LeaseLost => None,
    };
    if let Some(finish_with) = item {
        let item = FinishItem {
            id: push.job.id,
            lease_token: push.job.lease_token,
            finish: finish_with,
        };
        // Only fails when the completer is gone (shutdown); the lease then brings the job back.
        let _ = finish.send(item).await;
    }
    push.destination
}

/// How a delivery under a lease ended.
enum Ended {
    Delivered(Classified),
    /// A user cancelled the job while it was being delivered.
    Cancelled,
    /// The lease was lost (the job was rescued and may be delivered by another attempt): report nothing.
    LeaseLost,
}

/// Delivers, heartbeating every third of the job's lease while the request runs.
async fn deliver_under_lease(inner: &PushDispatcher, push: &PushJob) -> Ended {
    let beat = (push.job.timeout.0 / 3).max(Duration::from_millis(100));
    let delivery = inner.deliverer.deliver(push);
    tokio::pin!(delivery);
    loop {
        tokio::select! {
            classified = &mut delivery => return Ended::Delivered(classified),
            _ = tokio::time::sleep(beat) => {
                let heartbeat = JobHeartbeatParams {
                    id: push.job.id,
                    lease_token: push.job.lease_token,
                    progress: None,
                };
                match inner.store.job_heartbeat(heartbeat).await {
                    Ok(r) if r.cancel_requested => return Ended::Cancelled,
                    Ok(_) => {}
                    Err(StoreError::LeaseMismatch | StoreError::NotFound(_)) => return Ended::LeaseLost,
                    Err(e) => tracing::warn!(job = %push.job.id, error = %e, "push heartbeat failed"),
                }
            }
        }
    }
}

/// Records outcomes in batches until every sender is gone.
async fn complete(inner: Arc<PushDispatcher>, mut rx: mpsc::Receiver<FinishItem>) {
    let mut items = Vec::with_capacity(FINISH_BATCH);
    while rx.recv_many(&mut items, FINISH_BATCH).await > 0 {
        let batch = std::mem::replace(&mut items, Vec::with_capacity(FINISH_BATCH));
        record(&inner, batch).await;
        inner.ticks.tick();
    }
}

async fn record(inner: &PushDispatcher, items: Vec<FinishItem>) {
    let mut wait = Duration::from_millis(50);
    for attempt in 1..=FINISH_TRIES {
        let params = JobFinishParams {
            items: items.clone(),
        };
        match crate::finish::finish(&inner.store, &inner.wakers, params).await {
            Ok(outcomes) => {
                // A retry due at once, or a callback, may be waiting for the dispatcher.
                inner.wakers.push.notify_one();
                for (item, outcome) in items.iter().zip(outcomes) {
                    if let Err(e) = outcome {
                        tracing::debug!(job = %item.id, error = %e, "push outcome not recorded");
                    }
                }
                return;
            }
            Err(e) if attempt < FINISH_TRIES => {
                tracing::warn!(error = %e, attempt, "recording push outcomes failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => tracing::error!(
                error = %e,
                jobs = items.len(),
                "recording push outcomes failed; the jobs will be delivered again after their lease"
            ),
        }
    }
}

/// The end of a function call delivered by push: the endpoint's 2xx body is the call response, so the job's
/// result is that body itself (not the delivery record `{"status", "body"}` other push jobs keep). A body
/// that is not whole JSON fails the attempt, which retries like any call.
fn call_response(record: &RawValue) -> Finish {
    #[derive(serde::Deserialize)]
    struct Record<'a> {
        #[serde(borrow)]
        body: Option<&'a RawValue>,
        #[serde(default)]
        truncated: bool,
    }
    let invalid = |why: &str| {
        Finish::Fail(Failure {
            error: format!("invalid call response: {why}"),
            retry_after: None,
            retryable: true,
            cause: FailureCause::Worker,
        })
    };
    match serde_json::from_str::<Record<'_>>(record.get()) {
        Ok(Record {
            truncated: true, ..
        }) => invalid(&format!(
            "the body is longer than {} bytes",
            offload_core::push::MAX_RESPONSE_BODY
        )),
        Ok(Record {
            body: Some(body), ..
        }) if body.get().trim_start().starts_with('{') => Finish::Complete {
            result: Some(body.to_owned()),
        },
        _ => invalid("the 2xx body is not a JSON object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_a_full_destination_frees_counts() {
        let mut s = Slots::default();
        s.take("a");
        s.take("a");
        s.take("b");
        s.mark_full(2);
        assert_eq!(s.total, 3);
        assert_eq!(s.per_destination.get("a"), Some(&2));
        assert_eq!(s.per_destination.get("b"), Some(&1));
        assert!(s.release("a"), "a was at its cap of 2 after the claim");
        assert!(
            s.release("a"),
            "and its second slot may take a waiting job too"
        );
        assert!(!s.release("b"), "b had room: the claim took all its jobs");
        assert_eq!(s.total, 0);
        assert!(s.per_destination.is_empty());
        s.take("a");
        s.mark_full(2);
        assert!(!s.release("a"), "a is no longer full after the next claim");
    }

    #[test]
    fn a_push_call_completes_with_the_body_itself() {
        let record =
            |text: &str| serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
        match super::call_response(&record(r#"{"status":200,"body":{"done":true}}"#)) {
            Finish::Complete { result: Some(r) } => assert_eq!(r.get(), r#"{"done":true}"#),
            other => panic!("{other:?}"),
        }
        for text in [
            r#"{"status":200}"#,
            r#"{"status":200,"body":"ok"}"#,
            r#"{"status":200,"body":{"done":true},"truncated":true}"#,
        ] {
            assert!(
                matches!(super::call_response(&record(text)), Finish::Fail(_)),
                "{text}"
            );
        }
    }
}
