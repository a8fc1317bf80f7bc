//! Jobs to enqueue with typed payloads: [`JobSpec`] serializes any `serde` value and carries every option of
//! the API, so producers never build JSON by hand.
//!
//! Invariant: a spec always turns into exactly the [`EnqueueRequest`] the server validates; the SDK adds no
//! rule of its own (the server's answer, with its problem `code` and `field`, is the one place a job is judged).
//! A payload that cannot be serialized is kept as an error and reported by the enqueue call, so the builder
//! itself never fails.

use std::collections::BTreeMap;
use std::time::Duration;

use offload_core::flow::debounce::DebounceSpec;
use offload_core::spec::EnqueueRequest;
use offload_core::{Backoff, DurationSpec, Timestamp};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// A job to enqueue: queue, payload and options. Build with [`JobSpec::new`] and the option methods, then pass
/// it to [`crate::Client::enqueue_job`] or, many at once, [`crate::Client::enqueue_jobs`].
///
/// ```
/// use offload_sdk::JobSpec;
/// use std::time::Duration;
///
/// #[derive(serde::Serialize)]
/// struct Welcome { user: u64 }
///
/// let job = JobSpec::new("emails", &Welcome { user: 42 })
///     .name("welcome")
///     .delay(Duration::from_secs(30))
///     .max_attempts(5)
///     .tag("tenant", "acme")
///     .group("acme");
/// let request = job.to_request()?;
/// assert_eq!(request.group.as_deref(), Some("acme"));
/// assert_eq!(request.payload.unwrap().get(), r#"{"user":42}"#);
/// # Ok::<(), offload_sdk::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct JobSpec {
    request: EnqueueRequest,
    /// Why the payload could not be serialized, reported when the spec is sent.
    payload_error: Option<String>,
}

impl JobSpec {
    /// A job on `queue` whose payload is `payload` serialized as JSON.
    pub fn new<T: Serialize + ?Sized>(queue: impl Into<String>, payload: &T) -> Self {
        let (payload, payload_error) = match serde_json::value::to_raw_value(payload) {
            Ok(raw) => (Some(raw), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self {
            request: EnqueueRequest {
                queue: queue.into(),
                payload,
                ..EnqueueRequest::default()
            },
            payload_error,
        }
    }

    /// A job on `queue` whose payload is JSON text as is (no re-encoding).
    pub fn raw(queue: impl Into<String>, payload: Box<RawValue>) -> Self {
        Self {
            request: EnqueueRequest {
                queue: queue.into(),
                payload: Some(payload),
                ..EnqueueRequest::default()
            },
            payload_error: None,
        }
    }

    /// The job kind, which workers dispatch on ([`crate::worker::WorkerBuilder::handler`]).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.request.name = Some(name.into());
        self
    }

    /// First run at this instant (replaces any [`JobSpec::delay`]).
    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.request.run_at = Some(at);
        self.request.delay = None;
        self
    }

    /// First run after this delay from the moment the server stores the job (replaces any
    /// [`JobSpec::run_at`]).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.request.delay = Some(DurationSpec(delay));
        self.request.run_at = None;
        self
    }

    /// Higher runs first (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.request.priority = Some(priority);
        self
    }

    /// Attempts allowed before the job is dead (server default when not set).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.request.max_attempts = Some(max_attempts);
        self
    }

    /// Retry delay policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.request.backoff = Some(backoff);
        self
    }

    /// Lease length of one attempt: a worker must heartbeat within it (the SDK's worker does so by itself).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.timeout = Some(DurationSpec(timeout));
        self
    }

    /// De-duplication key: the same key with the same request returns the first job.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.request.idempotency_key = Some(key.into());
        self
    }

    /// Adds a label (a later value for the same key wins).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request
            .tags
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    /// The tenant, user or account the job belongs to (1 to 128 bytes): queue limits per group and fair claims
    /// use it.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.request.group = Some(group.into());
        self
    }

    /// Debounce: while a job of the queue with `key` waits to start, this enqueue replaces its payload and moves
    /// its start to now + `period` (never later than its first enqueue + `max_wait`) instead of adding a job;
    /// the answer says `debounced`. Replaces any `delay` or `run_at`.
    pub fn debounce(
        mut self,
        key: impl Into<String>,
        period: Duration,
        max_wait: Option<Duration>,
    ) -> Self {
        self.request.run_at = None;
        self.request.delay = None;
        self.request.debounce = Some(DebounceSpec {
            key: key.into(),
            period: DurationSpec(period),
            max_wait: max_wait.map(DurationSpec),
        });
        self
    }

    /// The wire request, or [`Error::Encode`] when the payload could not be serialized.
    pub fn to_request(&self) -> Result<EnqueueRequest> {
        self.check()?;
        Ok(self.request.clone())
    }

    /// The wire request by reference, after the same check as [`JobSpec::to_request`].
    pub(crate) fn request(&self) -> Result<&EnqueueRequest> {
        self.check()?;
        Ok(&self.request)
    }

    fn check(&self) -> Result<()> {
        match &self.payload_error {
            Some(message) => Err(Error::Encode {
                what: format!("the payload of a job for queue {}", self.request.queue),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl From<EnqueueRequest> for JobSpec {
    /// Wraps a request built by hand, so both forms go through the same calls.
    fn from(request: EnqueueRequest) -> Self {
        Self {
            request,
            payload_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_option_reaches_the_request() {
        let at: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let backoff = Backoff {
            base: DurationSpec(Duration::from_secs(2)),
            cap: DurationSpec(Duration::from_secs(60)),
            jitter: 0.1,
        };
        let r = JobSpec::new("q", &serde_json::json!({"a": [1, 2]}))
            .name("n")
            .delay(Duration::from_secs(5))
            .run_at(at)
            .priority(-3)
            .max_attempts(7)
            .backoff(backoff)
            .timeout(Duration::from_secs(90))
            .idempotency_key("k")
            .tag("a", "1")
            .tag("b", "2")
            .tag("a", "3")
            .to_request()
            .unwrap();
        assert_eq!(r.queue, "q");
        assert_eq!(r.payload.unwrap().get(), r#"{"a":[1,2]}"#);
        assert_eq!(r.name.as_deref(), Some("n"));
        assert_eq!((r.run_at, r.delay), (Some(at), None), "the last one wins");
        assert_eq!(r.priority, Some(-3));
        assert_eq!(r.max_attempts, Some(7));
        assert_eq!(r.backoff, Some(backoff));
        assert_eq!(r.timeout, Some(DurationSpec(Duration::from_secs(90))));
        assert_eq!(r.idempotency_key.as_deref(), Some("k"));
        let tags = r.tags.unwrap();
        assert_eq!((tags["a"].as_str(), tags["b"].as_str()), ("3", "2"));
    }

    #[test]
    fn unserializable_payloads_are_reported_when_sent() {
        let mut bad = HashMap::new();
        bad.insert((1, 2), "map keys must be strings");
        let spec = JobSpec::new("q", &bad).name("n");
        let err = spec.to_request().unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        assert!(err.to_string().contains("queue q"), "{err}");
    }

    #[test]
    fn raw_payloads_are_kept_as_written() {
        let raw = RawValue::from_string(r#"{ "b":1,  "a":2 }"#.into()).unwrap();
        let r = JobSpec::raw("q", raw).to_request().unwrap();
        assert_eq!(r.payload.unwrap().get(), r#"{ "b":1,  "a":2 }"#);
    }
}
