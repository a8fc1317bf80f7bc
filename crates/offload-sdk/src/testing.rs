//! Test helpers for your handlers: run one against a job value in memory and look at the outcome, with no
//! server (in the spirit of Oban's `perform_job` and River's `rivertest`).
//!
//! The payload goes through `serde` exactly as in production (encoded to JSON, decoded into the handler's
//! type), a panic is caught and reported as the worker would, progress reports are recorded, and
//! [`Performed::state`] tells which state the server would move the job to, using the server's own rules.
//!
//! ```
//! use offload_sdk::testing::TestJob;
//! use offload_sdk::{Job, JobError, JobState};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Charge { cents: u64 }
//!
//! async fn charge(job: Job<Charge>) -> Result<String, JobError> {
//!     if job.payload.cents == 0 {
//!         return Err(JobError::fatal("nothing to charge"));
//!     }
//!     job.progress(50, Some("authorized")).await.ok();
//!     Ok(format!("charged {}", job.payload.cents))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let done = TestJob::new(Charge { cents: 250 }).perform(charge).await;
//! assert_eq!(done.result::<String>(), "charged 250");
//! assert_eq!(done.progress[0].percent, 50);
//!
//! let refused = TestJob::new(Charge { cents: 0 }).perform(charge).await;
//! assert_eq!(refused.error(), Some(&JobError::fatal("nothing to charge")));
//! assert_eq!(refused.state(), JobState::Dead);
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offload_core::state::{Failure, FailureCause, RetryFacts, after_failure, after_snooze};
use offload_core::{Backoff, JobId, JobState, Progress, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::worker::{Backend, Ended, Job, JobCtx, JobError, RawJob, erase, execute};

/// A job to run a handler against: a payload plus what the handler may look at (attempt, name, tags...).
pub struct TestJob<T> {
    payload: T,
    queue: String,
    name: Option<String>,
    attempt: u32,
    max_attempts: u32,
    tags: BTreeMap<String, String>,
    timeout: Duration,
    backoff: Backoff,
    ctx: Arc<JobCtx>,
}

/// Steers a [`TestJob`] while its handler runs, from another task.
#[derive(Clone)]
pub struct TestControl(Arc<JobCtx>);

impl TestControl {
    /// Acts as if the server answered a heartbeat with "cancel requested": the job's cancellation token fires.
    pub fn request_cancel(&self) {
        self.0.request_cancel();
    }
}

impl<T: Serialize> TestJob<T> {
    /// A first attempt (of 25) of a job on queue `default` with this payload and a 5-minute timeout.
    pub fn new(payload: T) -> Self {
        Self {
            payload,
            queue: "default".into(),
            name: None,
            attempt: 1,
            max_attempts: 25,
            tags: BTreeMap::new(),
            timeout: Duration::from_secs(300),
            backoff: Backoff::default(),
            ctx: Arc::new(JobCtx::new(Backend::Test {
                progress: Mutex::new(Vec::new()),
            })),
        }
    }

    /// The queue the job came from.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// The job's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// This attempt's number (e.g. the last one, to test what happens then).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Attempts allowed.
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Adds a label.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The lease length the handler sees.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The retry policy [`Performed::state`] applies.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Starts the run with a cancel already requested (the handler's token has fired).
    pub fn cancel_requested(self) -> Self {
        self.ctx.request_cancel();
        self
    }

    /// A handle to request a cancel while the handler runs.
    pub fn control(&self) -> TestControl {
        TestControl(self.ctx.clone())
    }

    /// Runs `handler` on this job, as the worker would, and returns how it ended.
    pub async fn perform<P, R, F, Fut>(self, handler: F) -> Performed
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Job<P>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        let outcome = match serde_json::value::to_raw_value(&self.payload) {
            Err(e) => Outcome::Failed(JobError::fatal(format!(
                "the test payload cannot be encoded as JSON: {e}"
            ))),
            Ok(payload) => {
                let raw = RawJob {
                    id: JobId::new(),
                    queue: self.queue,
                    name: self.name,
                    payload,
                    attempt: self.attempt,
                    max_attempts: self.max_attempts,
                    tags: self.tags,
                    created_at: Timestamp::now(),
                    timeout: self.timeout,
                    ctx: self.ctx.clone(),
                };
                match execute(&erase(handler), raw).await {
                    Ended::Succeeded(result) => Outcome::Succeeded(
                        result.map(|r| serde_json::from_str(r.get()).unwrap_or(Value::Null)),
                    ),
                    Ended::Failed(e) => Outcome::Failed(e),
                    Ended::Panicked(message) => Outcome::Panicked(message),
                }
            }
        };
        let progress = match &self.ctx.backend {
            Backend::Test { progress } => {
                progress.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
            Backend::Live { .. } => Vec::new(),
        };
        Performed {
            outcome,
            progress,
            facts: RetryFacts {
                attempt: self.attempt,
                max_attempts: self.max_attempts,
                backoff: self.backoff,
                cancel_requested: self
                    .ctx
                    .cancel_requested
                    .load(std::sync::atomic::Ordering::Acquire),
            },
        }
    }
}

/// How a handler's run ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// It returned `Ok`; the result as the server would keep it (`None` for `()` or `null`).
    Succeeded(Option<Value>),
    /// It returned an error.
    Failed(JobError),
    /// It panicked (the worker reports a failed attempt, retried like [`JobError::Retry`]).
    Panicked(String),
}

/// The end of a test run: the outcome, and everything else worth asserting on.
#[derive(Debug, Clone)]
pub struct Performed {
    /// How the handler ended.
    pub outcome: Outcome,
    /// Progress reported through [`Job::progress`], in order.
    pub progress: Vec<Progress>,
    facts: RetryFacts,
}

impl Performed {
    /// True when the handler returned `Ok`.
    pub fn is_succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Succeeded(_))
    }

    /// The result, decoded into `R`. Panics (failing the test) when the handler did not succeed or the result
    /// does not decode.
    #[track_caller]
    pub fn result<R: DeserializeOwned>(&self) -> R {
        match &self.outcome {
            Outcome::Succeeded(result) => {
                serde_json::from_value(result.clone().unwrap_or(Value::Null))
                    .unwrap_or_else(|e| panic!("the result does not decode: {e}: {result:?}"))
            }
            other => panic!("the handler did not succeed: {other:?}"),
        }
    }

    /// The handler's error, when it returned one.
    pub fn error(&self) -> Option<&JobError> {
        match &self.outcome {
            Outcome::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The state the server would move the job to, by its own rules: e.g. a retryable error on the last
    /// attempt is `dead`, a snooze is `scheduled`, anything but a success after a cancel request is
    /// `cancelled`.
    pub fn state(&self) -> JobState {
        let now = Timestamp::UNIX_EPOCH;
        let failed = |error: &str, retry_after: Option<Duration>, retryable: bool| {
            let failure = Failure {
                error: error.to_owned(),
                retry_after,
                retryable,
                cause: FailureCause::Worker,
            };
            after_failure(&self.facts, &failure, now, 0.0).state
        };
        match &self.outcome {
            Outcome::Succeeded(_) => JobState::Succeeded,
            Outcome::Failed(JobError::Retry { error, after }) => failed(error, *after, true),
            Outcome::Failed(JobError::Fatal { error }) => failed(error, None, false),
            Outcome::Failed(JobError::Snooze { after }) => {
                after_snooze(&self.facts, *after, now).state
            }
            Outcome::Failed(JobError::Cancel { .. }) => JobState::Cancelled,
            Outcome::Panicked(message) => failed(message, None, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, serde::Deserialize)]
    struct Order {
        id: u64,
    }

    async fn ship(job: Job<Order>) -> Result<Value, JobError> {
        match job.payload.id {
            0 => Err(JobError::retry("warehouse busy")),
            1 => Err(JobError::snooze(Duration::from_secs(60))),
            2 => Err(JobError::cancel("order withdrawn")),
            3 => panic!("inventory corrupt for order {}", job.payload.id),
            4 => {
                job.cancelled().await;
                Err(JobError::retry("stopped"))
            }
            id => {
                Ok(serde_json::json!({ "shipped": id, "attempt": job.attempt, "tags": job.tags }))
            }
        }
    }

    #[tokio::test]
    async fn outcomes_and_the_states_they_lead_to() {
        let ok = TestJob::new(Order { id: 9 })
            .attempt(2)
            .tag("t", "x")
            .perform(ship)
            .await;
        assert!(ok.is_succeeded());
        assert_eq!(
            ok.result::<Value>(),
            serde_json::json!({"shipped": 9, "attempt": 2, "tags": {"t": "x"}})
        );
        assert_eq!(ok.state(), JobState::Succeeded);

        let busy = TestJob::new(Order { id: 0 }).perform(ship).await;
        assert_eq!(busy.error(), Some(&JobError::retry("warehouse busy")));
        assert_eq!(busy.state(), JobState::Retrying);
        let last = TestJob::new(Order { id: 0 })
            .attempt(3)
            .max_attempts(3)
            .perform(ship)
            .await;
        assert_eq!(last.state(), JobState::Dead);

        let snoozed = TestJob::new(Order { id: 1 })
            .attempt(3)
            .max_attempts(3)
            .perform(ship)
            .await;
        assert_eq!(
            snoozed.state(),
            JobState::Scheduled,
            "a snooze uses no attempt"
        );
        let cancelled = TestJob::new(Order { id: 2 }).perform(ship).await;
        assert_eq!(cancelled.state(), JobState::Cancelled);
    }

    #[tokio::test]
    async fn panics_and_bad_payloads_fail_the_attempt() {
        let panicked = TestJob::new(Order { id: 3 }).perform(ship).await;
        assert_eq!(
            panicked.outcome,
            Outcome::Panicked("inventory corrupt for order 3".into())
        );
        assert_eq!(panicked.state(), JobState::Retrying);

        let wrong = TestJob::new("not an order").perform(ship).await;
        assert!(
            matches!(wrong.error(), Some(JobError::Fatal { error }) if error.contains("does not match")),
            "{wrong:?}"
        );
        assert_eq!(wrong.state(), JobState::Dead);
    }

    #[tokio::test]
    async fn cancellation_reaches_the_handler() {
        let job = TestJob::new(Order { id: 4 });
        let control = job.control();
        let run = tokio::spawn(job.perform(ship));
        control.request_cancel();
        let done = run.await.unwrap();
        assert_eq!(done.error(), Some(&JobError::retry("stopped")));
        assert_eq!(
            done.state(),
            JobState::Cancelled,
            "a cancel request wins over a retry"
        );

        let already = TestJob::new(Order { id: 4 })
            .cancel_requested()
            .perform(ship)
            .await;
        assert_eq!(already.state(), JobState::Cancelled);
    }

    #[tokio::test]
    async fn progress_is_recorded_and_unit_results_are_none() {
        async fn steps(job: Job) -> Result<(), JobError> {
            job.progress(10, None).await.map_err(JobError::retry)?;
            job.progress(250, Some("done"))
                .await
                .map_err(JobError::retry)?;
            Ok(())
        }
        let done = TestJob::new(serde_json::json!({})).perform(steps).await;
        assert_eq!(done.outcome, Outcome::Succeeded(None));
        let seen: Vec<_> = done
            .progress
            .iter()
            .map(|p| (p.percent, p.message.as_deref()))
            .collect();
        assert_eq!(seen, vec![(10, None), (100, Some("done"))]);
    }
}
