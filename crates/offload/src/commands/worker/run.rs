//! One claimed job, from start to report: run its command, renew its lease while it runs, report how it ended.
//!
//! Invariant: every claimed job is reported exactly once (complete or fail), except when its lease was lost:
//! then the job belongs to someone else and nothing is reported, so a rescued job is never overwritten.

use std::future::Future;
use std::time::Duration;

use offload_core::api::{CompleteRequest, FailRequest, HeartbeatRequest};
use offload_core::{ClaimedJob, JobId};
use offload_sdk::{Client, Error, retry};
use serde_json::value::RawValue;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::child::{self, Running};
use crate::output;

/// Time a cancelled (or orphaned) command gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The same after a second shutdown signal, when the user wants out now.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
/// Shortest heartbeat interval. (Not 1 s: a job's timeout may be as short as 1 s, and its lease must be
/// renewed well within that.)
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

/// What every job of one worker shares.
#[derive(Debug)]
pub(super) struct Shared {
    /// The API client.
    pub(super) client: Client,
    /// The command to run.
    pub(super) program: String,
    /// Its arguments.
    pub(super) args: Vec<String>,
    /// Heartbeat interval; `None`: a third of each job's timeout.
    pub(super) heartbeat: Option<Duration>,
}

/// How a job's run ended, as the worker will report it.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Exit status 0.
    Succeeded(Option<Box<RawValue>>),
    /// The command failed (or could not start); the error to report.
    Failed(String),
    /// A user cancelled the job; the command was stopped.
    Cancelled,
    /// The worker was told to stop now; the command was stopped.
    Interrupted,
    /// The lease is gone (the job was rescued or deleted); the command was stopped and nothing is reported.
    LeaseLost(String),
}

impl Outcome {
    /// What happened, and the details worth a log line.
    fn summary(&self) -> (&'static str, Option<String>) {
        match self {
            Outcome::Succeeded(_) => ("succeeded", None),
            Outcome::Failed(error) => {
                let line = error
                    .trim_start_matches('…')
                    .lines()
                    .last()
                    .unwrap_or_default();
                ("failed", Some(output::cut(line, 200)))
            }
            Outcome::Cancelled => ("was cancelled", None),
            Outcome::Interrupted => ("was stopped by the worker's shutdown", None),
            Outcome::LeaseLost(why) => ("was abandoned, its lease is lost", Some(why.clone())),
        }
    }
}

/// Runs `job` to the end and reports it. Never fails: problems are logged.
pub(super) async fn run(shared: &Shared, job: ClaimedJob, work: CancellationToken) {
    let started = Instant::now();
    let (outcome, lease_until) = execute(shared, &job, &work).await;
    let took = output::age(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let (what, detail) = outcome.summary();
    let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
    info!(
        "job {} {what} after {took} (attempt {} of {}){detail}",
        job.id, job.attempt, job.max_attempts
    );
    if let Err(e) = report(&shared.client, &job, outcome, lease_until).await {
        if e.is_lease_mismatch() {
            warn!(
                "job {}: report refused, the lease was lost (the job was rescued): {e}",
                job.id
            );
        } else {
            warn!(
                "job {}: cannot report the outcome: {e}; the server retries the job once its lease has expired",
                job.id
            );
        }
    }
}

/// Runs the command; returns how it ended and when the job's lease has certainly expired (after the last
/// heartbeat), which is how long its report is worth trying.
async fn execute(
    shared: &Shared,
    job: &ClaimedJob,
    work: &CancellationToken,
) -> (Outcome, Instant) {
    let mut renewed = Instant::now();
    let mut running = match Running::spawn(&shared.program, &shared.args, job) {
        Ok(running) => running,
        Err(e) => {
            let outcome = Outcome::Failed(format!("cannot start `{}`: {e}", shared.program));
            return (outcome, retry::lease_deadline(renewed, job.timeout.0));
        }
    };
    let period = shared
        .heartbeat
        .unwrap_or(job.timeout.0 / 3)
        .max(MIN_HEARTBEAT);
    if period >= job.timeout.0 {
        warn!(
            "job {}: the heartbeat interval ({}) is not shorter than its timeout ({}); its lease will expire",
            job.id,
            output::age(period_ms(period)),
            job.timeout
        );
    }
    let mut beats = tokio::time::interval_at(Instant::now() + period, period);
    beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let beat = HeartbeatRequest {
        lease_token: job.lease_token,
        progress: None,
        message: None,
    };

    enum Next {
        Exited(std::io::Result<std::process::ExitStatus>),
        Stop(Outcome),
    }
    let next = loop {
        tokio::select! {
            status = running.wait() => break Next::Exited(status),
            _ = work.cancelled() => break Next::Stop(Outcome::Interrupted),
            _ = beats.tick() => {
                let answer = shared.client.heartbeat(job.id, &beat).await;
                // Whatever the answer, the server may have renewed the lease until now.
                renewed = Instant::now();
                match answer {
                    Ok(answer) if answer.cancel_requested => break Next::Stop(Outcome::Cancelled),
                    Ok(_) => {}
                    Err(e) if e.is_lease_mismatch() || e.is_not_found() => break Next::Stop(Outcome::LeaseLost(e.to_string())),
                    Err(e) => warn!("job {}: heartbeat failed: {e}; trying again in {}", job.id, output::age(period_ms(period))),
                }
            },
        }
    };
    let outcome = match next {
        Next::Exited(Ok(status)) => {
            let captured = running.output().await;
            if status.success() {
                if captured.stdout_overflow {
                    warn!(
                        "job {}: standard output is over {} bytes; completing without a result",
                        job.id,
                        child::MAX_RESULT_BYTES
                    );
                }
                Outcome::Succeeded(child::result_from_stdout(
                    &captured.stdout,
                    captured.stdout_overflow,
                ))
            } else {
                let tail = child::tail_text(&captured.stderr_tail, captured.stderr_cut);
                Outcome::Failed(if tail.is_empty() {
                    child::exit_text(status)
                } else {
                    tail
                })
            }
        }
        Next::Exited(Err(e)) => Outcome::Failed(format!("cannot wait for the command: {e}")),
        Next::Stop(outcome) => {
            let grace = if matches!(outcome, Outcome::Interrupted) {
                INTERRUPT_GRACE
            } else {
                STOP_GRACE
            };
            if let Err(e) = running.stop(grace).await {
                warn!("job {}: cannot stop the command: {e}", job.id);
            }
            drop(running.output().await);
            outcome
        }
    };
    (outcome, retry::lease_deadline(renewed, job.timeout.0))
}

fn period_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reports the outcome, trying again while the server does not answer until `lease_until` (the rule of
/// [`retry`]). A result the server refuses (too large, invalid) is dropped and the job completed without it:
/// the work was done, and running it again would repeat its effects.
async fn report(
    client: &Client,
    job: &ClaimedJob,
    outcome: Outcome,
    lease_until: Instant,
) -> Result<(), Error> {
    let fail = |error: String| FailRequest {
        lease_token: job.lease_token,
        error,
        retry_after: None,
        retryable: None,
    };
    match outcome {
        Outcome::Succeeded(result) => {
            let has_result = result.is_some();
            let request = CompleteRequest {
                lease_token: job.lease_token,
                result,
            };
            match deliver(job.id, lease_until, || client.complete(job.id, &request)).await {
                Err(e) if has_result && matches!(e.status(), Some(400 | 413 | 422)) => {
                    warn!(
                        "job {}: the server refused the result ({e}); completing without it",
                        job.id
                    );
                    let bare = CompleteRequest {
                        lease_token: job.lease_token,
                        result: None,
                    };
                    deliver(job.id, lease_until, || client.complete(job.id, &bare)).await
                }
                other => other,
            }
        }
        Outcome::Failed(error) => {
            let request = fail(error);
            deliver(job.id, lease_until, || client.fail(job.id, &request)).await
        }
        Outcome::Cancelled => {
            let request = fail("cancelled".into());
            deliver(job.id, lease_until, || client.fail(job.id, &request)).await
        }
        Outcome::Interrupted => {
            let request = fail("the worker shut down before the job finished".into());
            deliver(job.id, lease_until, || client.fail(job.id, &request)).await
        }
        Outcome::LeaseLost(_) => Ok(()),
    }
}

/// [`retry::until`], saying in the log each time the server did not answer, so an operator sees why a job
/// has not ended yet.
async fn deliver<F, Fut>(id: JobId, until: Instant, mut send: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    retry::until(until, || {
        let sent = send();
        async move {
            let answer = sent.await;
            if let Err(e) = &answer
                && retry::worth_retrying(e)
            {
                warn!("job {id}: cannot report yet: {e}; trying again while its lease lasts");
            }
            answer
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_show_the_last_error_line() {
        let failed = Outcome::Failed("…warning\nTraceback\nValueError: bad".into()).summary();
        assert_eq!(failed, ("failed", Some("ValueError: bad".to_owned())));
        let failed = Outcome::Failed("exited with status 3".into()).summary();
        assert_eq!(failed, ("failed", Some("exited with status 3".to_owned())));
        assert_eq!(Outcome::Succeeded(None).summary(), ("succeeded", None));
    }
}
