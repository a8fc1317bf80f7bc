//! One claimed job, from start to report: run its handler, keep its lease alive, queue how it ended.
//!
//! Invariant: every claimed job gets exactly one report (complete, fail, snooze or abort), except when its
//! lease was lost: then the job belongs to someone else and nothing is reported. A job still running when the
//! worker stops for good is handed back (snoozed with no delay), so it runs again at once elsewhere without
//! using up an attempt.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use offload_core::ClaimedJob;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, warn};

use super::Shared;
use super::handler::{Ended, RawJob, execute};
use super::job::{Backend, JobCtx, lost};
use super::job_error::JobError;
use super::reporter::{Kind, Report};
use super::stats::add;

/// Shortest heartbeat interval, whatever the job's timeout.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

/// How often running jobs heartbeat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Heartbeat {
    /// This fraction of each job's timeout.
    Fraction(f64),
    /// A fixed interval.
    Every(Duration),
}

impl Heartbeat {
    pub(crate) fn period(self, timeout: Duration) -> Duration {
        match self {
            Heartbeat::Fraction(f) => timeout.mul_f64(f),
            Heartbeat::Every(d) => d,
        }
        .max(MIN_HEARTBEAT)
    }
}

/// Runs `claimed` to its end and queues its report (which frees `permit` once answered).
pub(crate) async fn run(
    shared: Arc<Shared>,
    claimed: ClaimedJob,
    permit: Option<OwnedSemaphorePermit>,
) {
    let ctx = Arc::new(JobCtx::new(Backend::Live {
        client: shared.client.clone(),
        id: claimed.id,
        lease_token: claimed.lease_token,
    }));
    let (id, lease_token) = (claimed.id, claimed.lease_token);
    let timeout = claimed.timeout.0;
    let period = shared.heartbeat.period(timeout);
    let handler = shared.handler_for(claimed.name.as_deref()).cloned();
    let queue = claimed.queue.clone();
    let name = claimed.name.clone();
    let raw = RawJob {
        id,
        queue: claimed.queue,
        name: claimed.name,
        payload: claimed.payload,
        attempt: claimed.attempt,
        max_attempts: claimed.max_attempts,
        tags: claimed.tags,
        created_at: claimed.created_at,
        timeout: claimed.timeout.0,
        ctx: ctx.clone(),
    };
    add(&shared.counters.running, 1);
    let run = async {
        match &handler {
            Some(handler) => execute(handler, raw).await,
            None => Ended::Failed(JobError::retry(format!(
                "no handler for job name `{}` on queue {queue}",
                name.as_deref().unwrap_or("")
            ))),
        }
    };
    let ended = tokio::select! {
        biased;
        ended = run => Some(ended),
        () = shared.kill.cancelled() => None,
        () = keep_alive(&ctx, period) => None,
    };
    shared.counters.running.fetch_sub(1, Ordering::Relaxed);

    if ctx.lease_lost.load(Ordering::Acquire) {
        add(&shared.counters.refused, 1);
        shared.counters.changed();
        warn!(
            "job {id}: the lease was lost (the job was rescued and retried elsewhere); nothing is reported"
        );
        return;
    }
    let kind = match ended {
        Some(ended) => kind_of(&shared, id, ended),
        None => {
            debug!("job {id}: still running at shutdown; handing it back");
            Kind::Snooze {
                delay: Duration::ZERO,
                release: true,
            }
        }
    };
    let report = Report {
        id,
        lease_token,
        kind,
        lease_until: ctx.lease_deadline(timeout),
        permit,
    };
    if shared.reports.send(report).is_err() {
        // Only possible once the worker is gone; the server retries the job when its lease expires.
        add(&shared.counters.unreported, 1);
    }
}

/// What to report for a handler's end.
fn kind_of(shared: &Shared, id: offload_core::JobId, ended: Ended) -> Kind {
    match ended {
        Ended::Succeeded(result) => Kind::Complete(result),
        Ended::Failed(JobError::Retry { error, after }) => Kind::Fail {
            error,
            retry_after: after,
            retryable: true,
        },
        Ended::Failed(JobError::Fatal { error }) => Kind::Fail {
            error,
            retry_after: None,
            retryable: false,
        },
        Ended::Failed(JobError::Snooze { after }) => Kind::Snooze {
            delay: after,
            release: false,
        },
        Ended::Failed(JobError::Cancel { reason }) => Kind::Abort(reason),
        Ended::Panicked(message) => {
            add(&shared.counters.panicked, 1);
            warn!("job {id}: the handler panicked: {message}");
            Kind::Fail {
                error: format!("the handler panicked: {message}"),
                retry_after: None,
                retryable: true,
            }
        }
    }
}

/// Heartbeats every `period` for as long as it is polled; never returns while the lease is held. After the
/// lease is lost it stops sending and waits forever (the handler was told through its token).
async fn keep_alive(ctx: &JobCtx, period: Duration) {
    let mut beats = tokio::time::interval_at(Instant::now() + period, period);
    beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        beats.tick().await;
        if ctx.lease_lost.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        if let Err(e) = ctx.beat(None, None).await
            && !lost(&e)
        {
            warn!("heartbeat failed: {e}; trying again in {period:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_at_a_fraction_of_the_timeout_or_a_fixed_pace() {
        let third = Heartbeat::Fraction(1.0 / 3.0);
        assert_eq!(
            third.period(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(third.period(Duration::from_millis(90)), MIN_HEARTBEAT);
        let every = Heartbeat::Every(Duration::from_secs(7));
        assert_eq!(
            every.period(Duration::from_secs(300)),
            Duration::from_secs(7)
        );
    }
}
