//! How a handler says an attempt did not succeed, and what the server should do about it.
//!
//! Invariant: every variant maps to exactly one worker report (fail, fail without retry, snooze, abort), so the
//! retry policy stays on the server (`offload_core::state`); a handler only classifies what happened.

use std::fmt;
use std::time::Duration;

/// The error side of a handler's result: each variant is one way to end an attempt.
///
/// Any `std::error::Error` converts into [`JobError::Retry`], so `?` works in handlers:
///
/// ```
/// use offload_sdk::{Job, JobError};
///
/// async fn parse(job: Job<String>) -> Result<u64, JobError> {
///     let n: u64 = job.payload.trim().parse()?; // a bad number: retried with backoff
///     if n == 0 {
///         return Err(JobError::fatal("zero is never valid")); // dead at once
///     }
///     Ok(n)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// Failed; try again per the job's backoff, or after `after` when given. The last attempt's failure makes
    /// the job `dead`.
    Retry {
        /// What went wrong (kept on the attempt).
        error: String,
        /// Overrides the backoff delay (e.g. a rate limit's reset).
        after: Option<Duration>,
    },
    /// Failed for good: no more attempts, the job is `dead`.
    Fatal {
        /// What went wrong.
        error: String,
    },
    /// Not now: run the job again after `after`, without using up an attempt (like River's `JobSnooze`).
    Snooze {
        /// How long to wait (zero: available again at once).
        after: Duration,
    },
    /// Stop for good without it being an error: the job ends `cancelled`.
    Cancel {
        /// Why (kept on the attempt).
        reason: String,
    },
}

impl JobError {
    /// A failure retried per the job's backoff.
    pub fn retry(error: impl fmt::Display) -> Self {
        JobError::Retry {
            error: error.to_string(),
            after: None,
        }
    }

    /// A failure retried after `after` instead of the backoff.
    pub fn retry_after(error: impl fmt::Display, after: Duration) -> Self {
        JobError::Retry {
            error: error.to_string(),
            after: Some(after),
        }
    }

    /// A failure that must not be retried: the job goes `dead`.
    pub fn fatal(error: impl fmt::Display) -> Self {
        JobError::Fatal {
            error: error.to_string(),
        }
    }

    /// Run again after `after` without using up an attempt.
    pub fn snooze(after: Duration) -> Self {
        JobError::Snooze { after }
    }

    /// End the job as `cancelled`.
    pub fn cancel(reason: impl fmt::Display) -> Self {
        JobError::Cancel {
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Retry { error, after: None } => write!(f, "{error} (will retry)"),
            JobError::Retry {
                error,
                after: Some(after),
            } => write!(f, "{error} (will retry after {after:?})"),
            JobError::Fatal { error } => write!(f, "{error} (fatal)"),
            JobError::Snooze { after } => write!(f, "snoozed for {after:?}"),
            JobError::Cancel { reason } => write!(f, "cancelled: {reason}"),
        }
    }
}

/// `?` on any error retries the job, keeping the whole chain of causes as the message. (`JobError` itself is
/// not a `std::error::Error`, which is what makes this blanket conversion possible, as with `anyhow`.)
impl<E: std::error::Error> From<E> for JobError {
    fn from(e: E) -> Self {
        let mut error = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            error.push_str(": ");
            error.push_str(&c.to_string());
            cause = c.source();
        }
        JobError::Retry { error, after: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot send")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn errors_convert_to_retries_with_their_causes() {
        let e: JobError = Outer(std::io::Error::other("connection reset")).into();
        assert_eq!(e, JobError::retry("cannot send: connection reset"));
    }

    #[test]
    fn constructors_and_display() {
        assert_eq!(
            JobError::retry_after("busy", Duration::from_secs(2)).to_string(),
            "busy (will retry after 2s)"
        );
        assert_eq!(JobError::fatal("bad").to_string(), "bad (fatal)");
        assert_eq!(
            JobError::snooze(Duration::from_millis(1500)).to_string(),
            "snoozed for 1.5s"
        );
        assert_eq!(JobError::cancel("gone").to_string(), "cancelled: gone");
    }
}
