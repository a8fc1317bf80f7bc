//! Every job state transition, as pure functions.
//!
//! Stores call these with the facts they read inside their transaction and persist the decision; no store
//! encodes a rule of its own. Invariant: a job leaves `running` only through a decision made here (complete,
//! failure, snooze, lease expiry, the worker's own cancellation or an acknowledged cancel request), and a
//! finished job only through [`manual_retry`].

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::backoff::Backoff;
use crate::job::{AttemptOutcome, JobState};

/// A transition that the job's current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job is {from}; cannot {action}")]
pub struct TransitionError {
    /// The state the job is in.
    pub from: JobState,
    /// What was attempted, in words ("cancel", "retry", "delete").
    pub action: &'static str,
}

/// `instant + duration`, saturating at jiff's maximum instead of failing.
pub fn add(instant: Timestamp, duration: Duration) -> Timestamp {
    let d = SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX);
    instant.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// The state of a job that becomes due at `run_at`: available if already due, otherwise `waiting`
/// (`scheduled` for new jobs, `retrying` after a failure).
pub fn due_state(run_at: Timestamp, now: Timestamp, waiting: JobState) -> JobState {
    if run_at <= now {
        JobState::Available
    } else {
        waiting
    }
}

/// When the lease of an attempt claimed (or heartbeated) at `now` ends.
pub fn lease_deadline(now: Timestamp, timeout: Duration) -> Timestamp {
    add(now, timeout)
}

/// Why an attempt did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The error message to keep on the attempt.
    pub error: String,
    /// Overrides the backoff delay when the worker knows better (e.g. a rate limit's reset time).
    pub retry_after: Option<Duration>,
    /// `false` sends the job straight to `dead`.
    pub retryable: bool,
    /// Worker-reported or lease expiry.
    pub cause: FailureCause,
}

/// Who ended a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The worker called fail.
    Worker,
    /// The lease ran out and the rescuer ended the attempt.
    LeaseExpired,
}

impl Failure {
    /// The failure the rescuer records when a lease runs out.
    pub fn lease_expired() -> Self {
        Self {
            error: "lease expired".to_owned(),
            retry_after: None,
            retryable: true,
            cause: FailureCause::LeaseExpired,
        }
    }
}

/// What a store knows about a running job when one of its attempts fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryFacts {
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Retry delay policy.
    pub backoff: Backoff,
    /// A user asked for cancellation during the attempt.
    pub cancel_requested: bool,
}

/// What happens to a job after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    /// The job's next state: `retrying`, `available` (retry due at once), `dead` or `cancelled`.
    pub state: JobState,
    /// When it runs again (only meaningful for `retrying`/`available`).
    pub run_at: Timestamp,
    /// How the attempt is recorded in the history.
    pub outcome: AttemptOutcome,
}

/// Decides a failed attempt's consequence. `unit` is a uniform random draw in `[0, 1)` for the jitter.
pub fn after_failure(
    facts: &RetryFacts,
    failure: &Failure,
    now: Timestamp,
    unit: f64,
) -> AfterFailure {
    let outcome = match failure.cause {
        FailureCause::Worker => AttemptOutcome::Failed,
        FailureCause::LeaseExpired => AttemptOutcome::LeaseExpired,
    };
    if facts.cancel_requested {
        return AfterFailure {
            state: JobState::Cancelled,
            run_at: now,
            outcome: AttemptOutcome::Cancelled,
        };
    }
    if !failure.retryable || facts.attempt >= facts.max_attempts {
        return AfterFailure {
            state: JobState::Dead,
            run_at: now,
            outcome,
        };
    }
    let delay = failure
        .retry_after
        .unwrap_or_else(|| facts.backoff.delay(facts.attempt, unit));
    let run_at = add(now, delay);
    AfterFailure {
        state: due_state(run_at, now, JobState::Retrying),
        run_at,
        outcome,
    }
}

/// What happens to a running job after its worker snoozed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterSnooze {
    /// The job's next state: `scheduled`, `available` (a zero delay) or `cancelled` (a cancel was requested).
    pub state: JobState,
    /// When it runs again (only meaningful for `scheduled`/`available`).
    pub run_at: Timestamp,
    /// The job's new `max_attempts`: one more than before, so the snoozed attempt does not use one up.
    pub max_attempts: u32,
    /// How the attempt is recorded in the history.
    pub outcome: AttemptOutcome,
}

/// Decides a snooze: the worker asks to run the job again after `delay` without counting this attempt against
/// `max_attempts` (the attempt stays in the history as `snoozed`, and `max_attempts` grows by one, so attempt
/// numbers stay unique). A requested cancel wins: the job ends `cancelled` instead of coming back.
pub fn after_snooze(facts: &RetryFacts, delay: Duration, now: Timestamp) -> AfterSnooze {
    if facts.cancel_requested {
        return AfterSnooze {
            state: JobState::Cancelled,
            run_at: now,
            max_attempts: facts.max_attempts,
            outcome: AttemptOutcome::Cancelled,
        };
    }
    let run_at = add(now, delay);
    AfterSnooze {
        state: due_state(run_at, now, JobState::Scheduled),
        run_at,
        max_attempts: facts.max_attempts.saturating_add(1),
        outcome: AttemptOutcome::Snoozed,
    }
}

/// Decides a cancellation by the job's own worker (it found the job must not run again, e.g. its subject no
/// longer exists): the job ends `cancelled` at once, whatever attempts are left, with no retry.
pub fn after_worker_cancel(now: Timestamp) -> AfterFailure {
    AfterFailure {
        state: JobState::Cancelled,
        run_at: now,
        outcome: AttemptOutcome::Cancelled,
    }
}

/// What a cancel request does to a job in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// Not running: cancelled at once.
    Now,
    /// Running: flag it; the worker sees the request on its next heartbeat, and its next failure (or the lease
    /// expiry) ends the job as cancelled. A completion still wins: the work was done.
    Request,
    /// Already cancelled: nothing to do.
    Noop,
}

/// Decides a cancel request. Succeeded and dead jobs cannot be cancelled.
pub fn cancel(state: JobState) -> Result<Cancel, TransitionError> {
    match state {
        JobState::Scheduled | JobState::Available | JobState::Retrying => Ok(Cancel::Now),
        JobState::Running => Ok(Cancel::Request),
        JobState::Cancelled => Ok(Cancel::Noop),
        JobState::Succeeded | JobState::Dead => Err(TransitionError {
            from: state,
            action: "cancel",
        }),
    }
}

/// A manual retry: dead and cancelled jobs go back to `available`. Returns the new `max_attempts`: the
/// attempts already made stay in the history and count, and the job gets at least one more.
pub fn manual_retry(
    state: JobState,
    attempt: u32,
    max_attempts: u32,
) -> Result<u32, TransitionError> {
    match state {
        JobState::Dead | JobState::Cancelled => Ok(max_attempts.max(attempt.saturating_add(1))),
        _ => Err(TransitionError {
            from: state,
            action: "retry",
        }),
    }
}

/// Deletion is allowed in every state but `running` (cancel it first, or wait for it).
pub fn delete(state: JobState) -> Result<(), TransitionError> {
    match state {
        JobState::Running => Err(TransitionError {
            from: state,
            action: "delete",
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::DurationSpec;

    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn facts(attempt: u32, max_attempts: u32) -> RetryFacts {
        RetryFacts {
            attempt,
            max_attempts,
            backoff: Backoff {
                base: DurationSpec(Duration::from_secs(2)),
                cap: DurationSpec(Duration::from_secs(60)),
                jitter: 0.0,
            },
            cancel_requested: false,
        }
    }

    fn worker_error() -> Failure {
        Failure {
            error: "boom".into(),
            retry_after: None,
            retryable: true,
            cause: FailureCause::Worker,
        }
    }

    #[test]
    fn failure_with_attempts_left_retries_after_backoff() {
        let d = after_failure(&facts(2, 5), &worker_error(), t0(), 0.0);
        assert_eq!(d.state, JobState::Retrying);
        assert_eq!(d.run_at, add(t0(), Duration::from_secs(4)));
        assert_eq!(d.outcome, AttemptOutcome::Failed);
    }

    #[test]
    fn last_attempt_goes_dead() {
        let d = after_failure(&facts(5, 5), &worker_error(), t0(), 0.0);
        assert_eq!(d.state, JobState::Dead);
    }

    #[test]
    fn non_retryable_goes_dead_at_once() {
        let f = Failure {
            retryable: false,
            ..worker_error()
        };
        assert_eq!(
            after_failure(&facts(1, 25), &f, t0(), 0.0).state,
            JobState::Dead
        );
    }

    #[test]
    fn retry_after_overrides_backoff_and_zero_means_available() {
        let f = Failure {
            retry_after: Some(Duration::from_secs(90)),
            ..worker_error()
        };
        assert_eq!(
            after_failure(&facts(1, 3), &f, t0(), 0.0).run_at,
            add(t0(), Duration::from_secs(90))
        );
        let f = Failure {
            retry_after: Some(Duration::ZERO),
            ..worker_error()
        };
        assert_eq!(
            after_failure(&facts(1, 3), &f, t0(), 0.0).state,
            JobState::Available
        );
    }

    #[test]
    fn lease_expiry_is_recorded_as_such_and_counts_as_an_attempt() {
        let d = after_failure(&facts(1, 2), &Failure::lease_expired(), t0(), 0.0);
        assert_eq!(
            (d.state, d.outcome),
            (JobState::Retrying, AttemptOutcome::LeaseExpired)
        );
        let d = after_failure(&facts(2, 2), &Failure::lease_expired(), t0(), 0.0);
        assert_eq!(
            (d.state, d.outcome),
            (JobState::Dead, AttemptOutcome::LeaseExpired)
        );
    }

    #[test]
    fn requested_cancel_turns_a_failure_into_cancelled() {
        let f = RetryFacts {
            cancel_requested: true,
            ..facts(1, 5)
        };
        let d = after_failure(&f, &worker_error(), t0(), 0.0);
        assert_eq!(
            (d.state, d.outcome),
            (JobState::Cancelled, AttemptOutcome::Cancelled)
        );
    }

    #[test]
    fn snooze_runs_again_later_without_using_up_an_attempt() {
        let d = after_snooze(&facts(3, 3), Duration::from_secs(30), t0());
        assert_eq!(
            d,
            AfterSnooze {
                state: JobState::Scheduled,
                run_at: add(t0(), Duration::from_secs(30)),
                max_attempts: 4,
                outcome: AttemptOutcome::Snoozed,
            }
        );
        let d = after_snooze(&facts(1, 3), Duration::ZERO, t0());
        assert_eq!((d.state, d.run_at), (JobState::Available, t0()));
        assert_eq!(
            after_snooze(&facts(1, u32::MAX), Duration::ZERO, t0()).max_attempts,
            u32::MAX
        );
    }

    #[test]
    fn snooze_after_a_cancel_request_cancels() {
        let f = RetryFacts {
            cancel_requested: true,
            ..facts(1, 5)
        };
        let d = after_snooze(&f, Duration::from_secs(30), t0());
        assert_eq!(
            (d.state, d.max_attempts, d.outcome),
            (JobState::Cancelled, 5, AttemptOutcome::Cancelled)
        );
    }

    #[test]
    fn worker_cancel_ends_the_job_at_once() {
        let d = after_worker_cancel(t0());
        assert_eq!(
            (d.state, d.run_at, d.outcome),
            (JobState::Cancelled, t0(), AttemptOutcome::Cancelled)
        );
    }

    #[test]
    fn cancel_rules() {
        assert_eq!(cancel(JobState::Scheduled), Ok(Cancel::Now));
        assert_eq!(cancel(JobState::Available), Ok(Cancel::Now));
        assert_eq!(cancel(JobState::Retrying), Ok(Cancel::Now));
        assert_eq!(cancel(JobState::Running), Ok(Cancel::Request));
        assert_eq!(cancel(JobState::Cancelled), Ok(Cancel::Noop));
        assert!(cancel(JobState::Succeeded).is_err());
        assert!(cancel(JobState::Dead).is_err());
    }

    #[test]
    fn manual_retry_rules() {
        assert_eq!(manual_retry(JobState::Dead, 5, 5), Ok(6));
        assert_eq!(manual_retry(JobState::Cancelled, 0, 5), Ok(5));
        for s in [
            JobState::Scheduled,
            JobState::Available,
            JobState::Running,
            JobState::Retrying,
            JobState::Succeeded,
        ] {
            assert!(manual_retry(s, 1, 5).is_err(), "{s}");
        }
    }

    #[test]
    fn delete_rules() {
        for s in JobState::ALL {
            assert_eq!(delete(s).is_ok(), s != JobState::Running, "{s}");
        }
    }

    #[test]
    fn due_state_and_saturating_add() {
        assert_eq!(
            due_state(t0(), t0(), JobState::Scheduled),
            JobState::Available
        );
        assert_eq!(
            due_state(
                add(t0(), Duration::from_millis(1)),
                t0(),
                JobState::Scheduled
            ),
            JobState::Scheduled
        );
        assert_eq!(add(t0(), Duration::MAX), Timestamp::MAX);
    }
}
