//! The job a handler receives: its typed payload, what it needs to know about the attempt, and its link back
//! to the worker (cancellation, progress).
//!
//! Invariant: a job's cancellation token fires once, for good, when the server says a cancel was requested or
//! that the lease is lost (the job was rescued and may already run elsewhere); both are sticky, so a handler
//! can check them at any time after the fact.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offload_core::api::{HeartbeatRequest, MAX_PROGRESS_MESSAGE_LEN};
use offload_core::{JobId, LeaseToken, Progress, Timestamp};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Client;
use crate::error::{Error, Result};

/// One attempt of a job, as a handler receives it: `async fn(Job<T>) -> Result<R, JobError>`.
///
/// `T` is the payload's type, decoded with `serde` (a payload that does not decode fails the job for good);
/// the default, [`serde_json::Value`], takes any payload.
pub struct Job<T = serde_json::Value> {
    /// The job's id (stable across attempts: a good de-duplication key downstream).
    pub id: JobId,
    /// The queue it came from.
    pub queue: String,
    /// Its name (the handler was chosen by it); `None` for a nameless job run by the fallback handler.
    pub name: Option<String>,
    /// The decoded payload.
    pub payload: T,
    /// This attempt's number, 1 for the first.
    pub attempt: u32,
    /// Attempts allowed; when `attempt == max_attempts` a retryable failure makes the job dead.
    pub max_attempts: u32,
    /// The job's labels.
    pub tags: BTreeMap<String, String>,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// The lease length of an attempt; the worker heartbeats well within it.
    pub timeout: Duration,
    pub(crate) ctx: Arc<JobCtx>,
}

impl<T> Job<T> {
    /// True on the last attempt the job has (a retryable failure now makes it dead).
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// A token that fires when the handler should stop: a user asked to cancel the job, or the lease is lost
    /// (the job was given to another worker). Clone it into sub-tasks, or `select!` on
    /// [`CancellationToken::cancelled`].
    pub fn cancellation(&self) -> &CancellationToken {
        &self.ctx.token
    }

    /// Waits until the handler should stop (see [`Job::cancellation`]).
    pub async fn cancelled(&self) {
        self.ctx.token.cancelled().await;
    }

    /// True once the handler should stop.
    pub fn is_cancelled(&self) -> bool {
        self.ctx.token.is_cancelled()
    }

    /// True once the server said a user asked to cancel the job. Whatever the handler returns afterwards ends
    /// the job `cancelled`, except a success (the work was done).
    pub fn cancel_requested(&self) -> bool {
        self.ctx.cancel_requested.load(Ordering::Acquire)
    }

    /// True once the server refused this attempt's lease: the job was rescued (and may run elsewhere); nothing
    /// this attempt reports will be accepted.
    pub fn lease_lost(&self) -> bool {
        self.ctx.lease_lost.load(Ordering::Acquire)
    }

    /// Reports progress (0 to 100, with an optional short message) to the server now; it shows on the job and
    /// also extends the lease. One request per call: report at milestones, not in a tight loop. An answer that
    /// a cancel was requested fires [`Job::cancellation`].
    pub async fn progress(&self, percent: u8, message: Option<&str>) -> Result<()> {
        let message = message.map(|m| cut(m, MAX_PROGRESS_MESSAGE_LEN).to_owned());
        self.ctx.beat(Some(percent.min(100)), message).await
    }

    /// The same job with another payload (for handlers that decode in stages).
    pub fn with_payload<U>(self, payload: U) -> Job<U> {
        Job {
            id: self.id,
            queue: self.queue,
            name: self.name,
            payload,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            tags: self.tags,
            created_at: self.created_at,
            timeout: self.timeout,
            ctx: self.ctx,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("name", &self.name)
            .field("payload", &self.payload)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("tags", &self.tags)
            .field("created_at", &self.created_at)
            .field("timeout", &self.timeout)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    &s[..s.floor_char_boundary(max)]
}

/// What a running job shares with the worker: the way back to the server and the stop signals.
pub(crate) struct JobCtx {
    pub(crate) token: CancellationToken,
    pub(crate) cancel_requested: AtomicBool,
    pub(crate) lease_lost: AtomicBool,
    /// When the last claim or heartbeat that may have renewed the lease returned (see
    /// [`crate::retry::lease_deadline`]).
    renewed: Mutex<Instant>,
    pub(crate) backend: Backend,
}

/// Where heartbeats and progress go.
pub(crate) enum Backend {
    /// A real server.
    Live {
        client: Client,
        id: JobId,
        lease_token: LeaseToken,
    },
    /// The `testing` module: progress is recorded, nothing is sent.
    Test { progress: Mutex<Vec<Progress>> },
}

impl JobCtx {
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            token: CancellationToken::new(),
            cancel_requested: AtomicBool::new(false),
            lease_lost: AtomicBool::new(false),
            renewed: Mutex::new(Instant::now()),
            backend,
        }
    }

    /// When the lease, `timeout` long, has certainly expired, judging by the last renewal.
    pub(crate) fn lease_deadline(&self, timeout: Duration) -> Instant {
        let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        crate::retry::lease_deadline(renewed, timeout)
    }

    /// Marks a requested cancel and fires the token.
    pub(crate) fn request_cancel(&self) {
        self.cancel_requested.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// Sends a heartbeat (with progress, if any) and applies the answer: a requested cancel or a lost lease
    /// fires the token. Errors are returned to the caller, who decides whether to try again.
    pub(crate) async fn beat(&self, percent: Option<u8>, message: Option<String>) -> Result<()> {
        match &self.backend {
            Backend::Live {
                client,
                id,
                lease_token,
            } => {
                let request = HeartbeatRequest {
                    lease_token: *lease_token,
                    progress: percent,
                    message: percent.and(message),
                };
                let answer = client.heartbeat(*id, &request).await;
                // Whatever the answer, the server may have renewed the lease until now.
                *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                match answer {
                    Ok(answer) => {
                        if answer.cancel_requested {
                            self.request_cancel();
                        }
                        Ok(())
                    }
                    Err(e) => {
                        if lost(&e) {
                            self.lease_lost.store(true, Ordering::Release);
                            self.token.cancel();
                        }
                        Err(e)
                    }
                }
            }
            Backend::Test { progress } => {
                if let Some(percent) = percent {
                    progress
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Progress { percent, message });
                }
                Ok(())
            }
        }
    }
}

/// True when the server says this attempt is over for us: stale token, or the job is gone.
pub(crate) fn lost(e: &Error) -> bool {
    e.is_lease_mismatch() || e.is_not_found()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let s = "é".repeat(600);
        let c = cut(&s, MAX_PROGRESS_MESSAGE_LEN);
        assert!(c.len() <= MAX_PROGRESS_MESSAGE_LEN && c.len() >= MAX_PROGRESS_MESSAGE_LEN - 1);
        assert_eq!(cut("ok", 5), "ok");
    }
}
