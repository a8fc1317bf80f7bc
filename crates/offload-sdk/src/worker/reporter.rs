//! Reports ended attempts to the server, completions and failures in batches.
//!
//! Invariant: each report is sent until the server answers it (accepted or refused) or its job's lease has
//! certainly expired (the rule of [`crate::retry`]); its job's concurrency slot is held until then, so a worker never runs more jobs than its limit while their
//! reports are pending. Batching is natural: whatever queued up while the previous requests were in flight
//! goes out together, so a lone report is sent at once and a flood is sent in few requests.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use offload_core::JobId;
use offload_core::LeaseToken;
use offload_core::api::{
    AbortRequest, CompleteBatchRequest, CompleteItem, CompleteRequest, FailBatchRequest, FailItem,
    FailRequest, FinishBatchResponse, SnoozeRequest,
};
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::warn;

use super::stats::{Counters, add};
use crate::Client;
use crate::error::Error;
use crate::retry;

/// One ended attempt, to report.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) id: JobId,
    pub(crate) lease_token: LeaseToken,
    pub(crate) kind: Kind,
    /// When the job's lease has certainly expired ([`retry::lease_deadline`]): the report is tried until then.
    pub(crate) lease_until: Instant,
    /// The job's concurrency slot, freed once the report is answered.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// What to report.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Success.
    Complete(Option<Box<RawValue>>),
    /// Failure; `retryable: false` makes the job dead.
    Fail {
        error: String,
        retry_after: Option<Duration>,
        retryable: bool,
    },
    /// Run again later without using up an attempt; `release` marks a job handed back at shutdown.
    Snooze { delay: Duration, release: bool },
    /// End the job cancelled.
    Abort(String),
}

/// Sends reports from `rx` until it closes and every report is answered, with at most `in_flight` requests at
/// a time and at most `max_batch` reports per request.
pub(crate) async fn run(
    client: Client,
    mut rx: mpsc::UnboundedReceiver<Report>,
    counters: Arc<Counters>,
    max_batch: usize,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut sending = JoinSet::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            // Reap finished sends so the set does not grow.
            Some(_) = sending.join_next(), if !sending.is_empty() => continue,
        };
        let Ok(slot) = slot else { break };
        let Some(first) = rx.recv().await else { break };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(report) => batch.push(report),
                Err(_) => break,
            }
        }
        let (client, counters) = (client.clone(), counters.clone());
        sending.spawn(async move {
            send(&client, &counters, batch).await;
            counters.changed();
            drop(slot);
        });
    }
    while sending.join_next().await.is_some() {}
}

/// Sends one batch: completions in one request, failures in another, the rest one by one.
async fn send(client: &Client, counters: &Counters, batch: Vec<Report>) {
    let mut completes = Vec::new();
    let mut fails = Vec::new();
    let mut singles = Vec::new();
    for report in batch {
        match report.kind {
            Kind::Complete(_) => completes.push(report),
            Kind::Fail { .. } => fails.push(report),
            _ => singles.push(report),
        }
    }
    let singles = async {
        for report in singles {
            send_single(client, counters, report).await;
        }
    };
    tokio::join!(
        send_completes(client, counters, completes),
        send_fails(client, counters, fails),
        singles
    );
}

async fn send_completes(client: &Client, counters: &Counters, reports: Vec<Report>) {
    if reports.is_empty() {
        return;
    }
    let until = latest_lease(&reports);
    let mut permits = Vec::with_capacity(reports.len());
    let jobs = reports
        .into_iter()
        .map(|r| {
            permits.push(r.permit);
            CompleteItem {
                id: r.id,
                lease_token: r.lease_token,
                result: match r.kind {
                    Kind::Complete(result) => result,
                    _ => None,
                },
            }
        })
        .collect();
    let request = CompleteBatchRequest { jobs };
    match deliver(counters, until, || client.complete_batch(&request)).await {
        Ok(answer) => tally(counters, &answer, &counters.succeeded, "completion"),
        // The batch as a whole was refused (a result over the size limit): report one by one.
        Err(e) if is_refused_request(&e) => {
            for item in request.jobs {
                complete_one(client, counters, item, until).await;
            }
        }
        Err(e) => gave_up(counters, request.jobs.len(), "completions", &e),
    }
    drop(permits);
}

/// One completion; a result the server refuses (too large) is dropped and the job completed without it, since
/// the work was done.
async fn complete_one(client: &Client, counters: &Counters, item: CompleteItem, until: Instant) {
    let request = CompleteRequest {
        lease_token: item.lease_token,
        result: item.result,
    };
    let mut answer = deliver(counters, until, || client.complete(item.id, &request)).await;
    if let Err(e) = &answer
        && request.result.is_some()
        && is_refused_request(e)
    {
        warn!(
            "job {}: the server refused the result ({e}); completing without it",
            item.id
        );
        let bare = CompleteRequest {
            lease_token: item.lease_token,
            result: None,
        };
        answer = deliver(counters, until, || client.complete(item.id, &bare)).await;
    }
    settle(counters, item.id, answer, &counters.succeeded, "completion");
}

async fn send_fails(client: &Client, counters: &Counters, reports: Vec<Report>) {
    if reports.is_empty() {
        return;
    }
    let until = latest_lease(&reports);
    let mut permits = Vec::with_capacity(reports.len());
    let jobs = reports
        .into_iter()
        .filter_map(|r| {
            permits.push(r.permit);
            match r.kind {
                Kind::Fail {
                    error,
                    retry_after,
                    retryable,
                } => Some(FailItem {
                    id: r.id,
                    lease_token: r.lease_token,
                    error,
                    retry_after: retry_after.map(Into::into),
                    retryable: Some(retryable),
                }),
                _ => None,
            }
        })
        .collect();
    let request = FailBatchRequest { jobs };
    match deliver(counters, until, || client.fail_batch(&request)).await {
        Ok(answer) => tally(counters, &answer, &counters.failed, "failure"),
        // Refused as a whole (a `retry_after` beyond the server's limit): one by one, without the override
        // where it is refused.
        Err(e) if is_refused_request(&e) => {
            for item in request.jobs {
                fail_one(client, counters, item, until).await;
            }
        }
        Err(e) => gave_up(counters, request.jobs.len(), "failures", &e),
    }
    drop(permits);
}

async fn fail_one(client: &Client, counters: &Counters, item: FailItem, until: Instant) {
    let mut request = FailRequest {
        lease_token: item.lease_token,
        error: item.error,
        retry_after: item.retry_after,
        retryable: item.retryable,
    };
    let mut answer = deliver(counters, until, || client.fail(item.id, &request)).await;
    if let Err(e) = &answer
        && request.retry_after.is_some()
        && is_refused_request(e)
    {
        warn!(
            "job {}: the server refused the retry delay ({e}); failing with the job's backoff",
            item.id
        );
        request.retry_after = None;
        answer = deliver(counters, until, || client.fail(item.id, &request)).await;
    }
    settle(counters, item.id, answer, &counters.failed, "failure");
}

async fn send_single(client: &Client, counters: &Counters, report: Report) {
    let Report {
        id,
        lease_token,
        kind,
        lease_until: until,
        permit,
    } = report;
    match kind {
        Kind::Snooze { delay, release } => {
            let request = SnoozeRequest {
                lease_token,
                delay: delay.into(),
            };
            let answer = deliver(counters, until, || client.snooze(id, &request)).await;
            match answer {
                Err(e) if is_refused_request(&e) => {
                    warn!(
                        "job {id}: the server refused the snooze ({e}); failing the attempt instead"
                    );
                    let item = FailItem {
                        id,
                        lease_token,
                        error: format!("snooze refused: {e}"),
                        retry_after: None,
                        retryable: Some(true),
                    };
                    fail_one(client, counters, item, until).await;
                }
                answer => {
                    let counter = if release {
                        &counters.released
                    } else {
                        &counters.snoozed
                    };
                    settle(counters, id, answer, counter, "snooze");
                }
            }
        }
        Kind::Abort(reason) => {
            let request = AbortRequest {
                lease_token,
                reason: Some(reason),
            };
            let answer = deliver(counters, until, || client.abort(id, &request)).await;
            settle(counters, id, answer, &counters.cancelled, "cancellation");
        }
        Kind::Complete(result) => {
            let item = CompleteItem {
                id,
                lease_token,
                result,
            };
            complete_one(client, counters, item, until).await;
        }
        Kind::Fail {
            error,
            retry_after,
            retryable,
        } => {
            let item = FailItem {
                id,
                lease_token,
                error,
                retry_after: retry_after.map(Into::into),
                retryable: Some(retryable),
            };
            fail_one(client, counters, item, until).await;
        }
    }
    drop(permit);
}

/// Counts a batch answer: accepted items on `accepted`, the rest as refused.
fn tally(
    counters: &Counters,
    answer: &FinishBatchResponse,
    accepted: &std::sync::atomic::AtomicU64,
    what: &str,
) {
    let ok = answer.jobs.iter().filter(|r| r.ok).count() as u64;
    add(accepted, ok);
    for refused in answer.jobs.iter().filter(|r| !r.ok) {
        add(&counters.refused, 1);
        warn!(
            "job {}: {what} refused ({}): the lease was lost, the job was retried elsewhere",
            refused.id,
            refused.code.as_deref().unwrap_or("unknown")
        );
    }
}

/// Counts a single answer.
fn settle(
    counters: &Counters,
    id: JobId,
    answer: Result<(), Error>,
    accepted: &std::sync::atomic::AtomicU64,
    what: &str,
) {
    match answer {
        Ok(()) => add(accepted, 1),
        Err(e) if crate::worker::job::lost(&e) => {
            add(&counters.refused, 1);
            warn!(
                "job {id}: {what} refused ({e}): the lease was lost, the job was retried elsewhere"
            );
        }
        Err(e) => gave_up(counters, 1, what, &e),
    }
}

fn gave_up(counters: &Counters, n: usize, what: &str, e: &Error) {
    add(&counters.unreported, n as u64);
    warn!(
        "cannot report {n} {what}: {e}; the server will retry those jobs when their leases expire"
    );
}

/// The request itself was refused as invalid or too large (not a per-job refusal).
fn is_refused_request(e: &Error) -> bool {
    matches!(e.status(), Some(400 | 413 | 422))
}

/// The last instant any lease of `reports` may still last: a batch is tried until then (the server refuses
/// the items whose leases are gone one by one).
fn latest_lease(reports: &[Report]) -> Instant {
    reports
        .iter()
        .map(|r| r.lease_until)
        .max()
        .unwrap_or_else(Instant::now)
}

/// [`retry::until`], counting each unanswered try in [`WorkerStats::report_retries`](super::WorkerStats).
async fn deliver<F, Fut, T>(counters: &Counters, until: Instant, mut send: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    retry::until(until, || {
        let sent = send();
        async move {
            let answer = sent.await;
            if let Err(e) = &answer
                && retry::worth_retrying(e)
            {
                add(&counters.report_retries, 1);
                counters.changed();
            }
            answer
        }
    })
    .await
}
