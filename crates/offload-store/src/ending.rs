//! What ending a running attempt decides: the same for every store, so that the stores only differ in how they
//! read the facts and write the decision.
//!
//! Invariant: pure. A completion succeeds even when a cancel was requested (the work was done); a failure
//! follows [`offload_core::state::after_failure`], a snooze [`offload_core::state::after_snooze`], a worker's
//! cancellation [`offload_core::state::after_worker_cancel`]. Only a push job that ends succeeded or dead gets a
//! callback job ([`offload_core::push::callback_job`]).

use offload_core::api::MAX_ERROR_LEN;
use offload_core::push::Target;
use offload_core::push::callback::{Ended, callback_job};
use offload_core::state::{RetryFacts, after_failure, after_snooze, after_worker_cancel};
use offload_core::{AttemptOutcome, Backoff, JobId, JobState, NewJob, Timestamp};
use serde_json::value::RawValue;

use crate::Finish;

/// What a store knows of a running job whose attempt ends.
#[derive(Debug, Clone, Copy)]
pub struct RunningJob<'a> {
    /// The job.
    pub id: JobId,
    /// Its queue.
    pub queue: &'a str,
    /// Its name.
    pub name: Option<&'a str>,
    /// Its push target (push jobs only), for the callback.
    pub target: Option<&'a Target>,
    /// The attempt that ends.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Its retry policy.
    pub backoff: Backoff,
    /// A user asked to cancel it.
    pub cancel_requested: bool,
}

/// What the end of the attempt decides, for the store to write.
#[derive(Debug, Clone)]
pub struct AttemptEnd<'a> {
    /// The job's next state.
    pub state: JobState,
    /// Its new due time (retries, snoozes); `None` keeps the stored one.
    pub run_at: Option<Timestamp>,
    /// Its new attempt allowance (snoozes); `None` keeps the stored one.
    pub max_attempts: Option<u32>,
    /// The result it completed with.
    pub result: Option<&'a RawValue>,
    /// The attempt's error, at most [`MAX_ERROR_LEN`] bytes.
    pub error: Option<&'a str>,
    /// The attempt's outcome in the history.
    pub outcome: AttemptOutcome,
    /// The callback job to insert in the same transaction.
    pub callback: Option<NewJob>,
}

/// Decides the end of `job`'s attempt reported as `finish` at `now`; `jitter` is a random draw in `[0, 1)` for
/// the retry delay.
pub fn end_attempt<'a>(
    job: &RunningJob<'_>,
    finish: &'a Finish,
    now: Timestamp,
    jitter: f64,
) -> AttemptEnd<'a> {
    let retry = RetryFacts {
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        backoff: job.backoff,
        cancel_requested: job.cancel_requested,
    };
    match finish {
        Finish::Complete { result } => {
            let result = result.as_deref();
            AttemptEnd {
                state: JobState::Succeeded,
                run_at: None,
                max_attempts: None,
                result,
                error: None,
                outcome: AttemptOutcome::Succeeded,
                callback: callback(job, JobState::Succeeded, result, None, now),
            }
        }
        Finish::Fail(failure) => {
            let decision = after_failure(&retry, failure, now, jitter);
            let error = truncate_error(&failure.error);
            AttemptEnd {
                state: decision.state,
                run_at: (!decision.state.is_finished()).then_some(decision.run_at),
                max_attempts: None,
                result: None,
                error: Some(error),
                outcome: decision.outcome,
                callback: callback(job, decision.state, None, Some(error), now),
            }
        }
        Finish::Snooze { delay } => {
            let decision = after_snooze(&retry, *delay, now);
            let back = !decision.state.is_finished();
            AttemptEnd {
                state: decision.state,
                run_at: back.then_some(decision.run_at),
                max_attempts: back.then_some(decision.max_attempts),
                result: None,
                error: None,
                outcome: decision.outcome,
                // A snooze brings the job back (or cancels it): no end a callback reports.
                callback: None,
            }
        }
        Finish::Cancel { reason } => {
            let decision = after_worker_cancel(now);
            AttemptEnd {
                state: decision.state,
                run_at: None,
                max_attempts: None,
                result: None,
                error: Some(truncate_error(reason)),
                outcome: decision.outcome,
                // Callbacks follow only a push job's success or death.
                callback: None,
            }
        }
    }
}

/// The callback job of a push job ending in `state`, if it asked for one.
fn callback(
    job: &RunningJob<'_>,
    state: JobState,
    result: Option<&RawValue>,
    error: Option<&str>,
    now: Timestamp,
) -> Option<NewJob> {
    let target = job.target?;
    if !matches!(state, JobState::Succeeded | JobState::Dead) {
        return None;
    }
    callback_job(&Ended {
        id: job.id,
        queue: job.queue,
        name: job.name,
        target,
        state,
        attempt: job.attempt,
        result,
        error,
        finished_at: now,
    })
}

/// `s` cut to at most [`MAX_ERROR_LEN`] bytes, at a character boundary.
pub fn truncate_error(s: &str) -> &str {
    if s.len() <= MAX_ERROR_LEN {
        return s;
    }
    let mut end = MAX_ERROR_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use offload_core::state::{Failure, FailureCause};

    use super::*;

    fn running(target: Option<&Target>) -> RunningJob<'_> {
        RunningJob {
            id: JobId::new(),
            queue: "q",
            name: None,
            target,
            attempt: 1,
            max_attempts: 1,
            backoff: Backoff::default(),
            cancel_requested: false,
        }
    }

    #[test]
    fn errors_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = truncate_error(&long);
        assert!(cut.len() <= MAX_ERROR_LEN && cut.len() >= MAX_ERROR_LEN - 1);
        assert_eq!(truncate_error("short"), "short");
    }

    #[test]
    fn a_snooze_adds_an_attempt_and_never_calls_back() {
        let target = Target::post("https://example.com/hook");
        let snooze = Finish::Snooze {
            delay: Duration::from_secs(30),
        };
        let now = Timestamp::now();
        let end = end_attempt(&running(Some(&target)), &snooze, now, 0.0);
        assert_eq!(end.state, JobState::Scheduled);
        assert_eq!(end.max_attempts, Some(2));
        assert_eq!(end.outcome, AttemptOutcome::Snoozed);
        assert!(end.callback.is_none());
    }

    #[test]
    fn only_a_push_job_that_ends_for_good_gets_a_callback() {
        let target = Target {
            callback_url: Some("https://example.com/done".to_owned()),
            failure_callback_url: Some("https://example.com/failed".to_owned()),
            ..Target::post("https://example.com/hook")
        };
        let now = Timestamp::now();
        let fail = Finish::Fail(Failure {
            error: "boom".to_owned(),
            retry_after: None,
            retryable: true,
            cause: FailureCause::Worker,
        });
        let dead = end_attempt(&running(Some(&target)), &fail, now, 0.0);
        assert_eq!(dead.state, JobState::Dead);
        assert!(
            dead.callback.is_some(),
            "a dead push job reports its failure"
        );
        let pull = end_attempt(&running(None), &fail, now, 0.0);
        assert!(pull.callback.is_none(), "pull jobs have no callbacks");
        let cancel = Finish::Cancel {
            reason: "stop".into(),
        };
        let cancelled = end_attempt(&running(Some(&target)), &cancel, now, 0.0);
        assert_eq!(cancelled.state, JobState::Cancelled);
        assert!(cancelled.callback.is_none());
    }
}
