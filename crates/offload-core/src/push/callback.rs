//! Callbacks: when a push job with a `callback_url` succeeds (or one with a `failure_callback_url` dies), the
//! store creates a new push job that POSTs the outcome there, in the same transaction as the job's end.
//!
//! Invariant: a callback job is an ordinary push job on the reserved queue [`CALLBACK_QUEUE`], tagged with
//! the job it reports on, so it is retried like any job and visible in the API. Callbacks never have
//! callbacks of their own. Which callback a job gets is decided here, not by stores.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::backoff::Backoff;
use crate::id::JobId;
use crate::job::{JobState, NewJob, RunAt};
use crate::push::Target;

/// The queue callback jobs are put on. Queue names starting with `offload.` are reserved for the server.
pub const CALLBACK_QUEUE: &str = "offload.callbacks";
/// Prefix of the queue names reserved for the server.
pub const RESERVED_QUEUE_PREFIX: &str = "offload.";
/// Tag naming the job a callback reports on.
pub const CALLBACK_OF_TAG: &str = "callback_of";
/// Attempts a callback gets.
pub const CALLBACK_MAX_ATTEMPTS: u32 = 25;
/// Lease of one callback attempt.
pub const CALLBACK_LEASE: Duration = Duration::from_secs(300);

/// What a store knows about a push job as it reaches a final state.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    /// The job.
    pub id: JobId,
    /// Its queue.
    pub queue: &'a str,
    /// Its name, if any.
    pub name: Option<&'a str>,
    /// Its target.
    pub target: &'a Target,
    /// The state it just reached.
    pub state: JobState,
    /// Attempts made.
    pub attempt: u32,
    /// The result it completed with (succeeded).
    pub result: Option<&'a RawValue>,
    /// Its last error (dead).
    pub error: Option<&'a str>,
    /// When it ended.
    pub finished_at: Timestamp,
}

/// The body a callback sends.
#[derive(Serialize)]
struct Payload<'a> {
    job_id: JobId,
    queue: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    state: JobState,
    attempt: u32,
    finished_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The callback job for a push job that just ended, if it asked for one: `callback_url` when it succeeded,
/// `failure_callback_url` when it died. Cancelled jobs and callbacks themselves get none.
///
/// The callback POSTs `{"job_id", "queue", "name", "state", "attempt", "finished_at", "result" | "error"}`,
/// signed like every delivery, with the original target's timeout and no extra headers (the signature is
/// its credential; the original headers may belong to another host).
pub fn callback_job(ended: &Ended<'_>) -> Option<NewJob> {
    if ended.queue == CALLBACK_QUEUE {
        return None;
    }
    let (url, kind) = match ended.state {
        JobState::Succeeded => (ended.target.callback_url.as_deref()?, "callback"),
        JobState::Dead => (
            ended.target.failure_callback_url.as_deref()?,
            "failure_callback",
        ),
        _ => return None,
    };
    let payload = Payload {
        job_id: ended.id,
        queue: ended.queue,
        name: ended.name,
        state: ended.state,
        attempt: ended.attempt,
        finished_at: ended.finished_at,
        // The callback's payload holds the result one level down: a result at the JSON rule's depth limit is
        // left out rather than stored deeper than the rule allows.
        result: ended.result.filter(|r| {
            ended.state == JobState::Succeeded
                && crate::json_rule::check_within(r.get(), crate::json_rule::MAX_DEPTH - 1).is_ok()
        }),
        error: ended.error.filter(|_| ended.state == JobState::Dead),
    };
    let payload = serde_json::to_string(&payload)
        .ok()
        .and_then(|p| RawValue::from_string(p).ok())?;
    let mut tags = BTreeMap::new();
    tags.insert(CALLBACK_OF_TAG.to_owned(), ended.id.to_string());
    Some(NewJob {
        id: JobId::new(),
        queue: CALLBACK_QUEUE.to_owned(),
        name: Some(kind.to_owned()),
        payload,
        run_at: RunAt::Now,
        priority: 0,
        max_attempts: CALLBACK_MAX_ATTEMPTS,
        backoff: Backoff::default(),
        timeout: CALLBACK_LEASE,
        idempotency_key: None,
        request_fingerprint: None,
        tags,
        target: Some(Target {
            timeout: ended.target.timeout,
            ..Target::post(url)
        }),
        group: None,
        debounce: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            callback_url: Some("https://app.example/done".into()),
            failure_callback_url: Some("https://app.example/failed".into()),
            headers: [("authorization".to_owned(), "Bearer x".to_owned())].into(),
            ..Target::post("https://app.example/work")
        }
    }

    fn ended<'a>(target: &'a Target, state: JobState, result: Option<&'a RawValue>) -> Ended<'a> {
        Ended {
            id: JobId::new(),
            queue: "emails",
            name: Some("welcome"),
            target,
            state,
            attempt: 2,
            result,
            error: Some("HTTP 500: boom"),
            finished_at: "2026-06-01T12:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn success_calls_back_with_the_result() {
        let t = target();
        let result = RawValue::from_string(r#"{"status":200}"#.into()).unwrap();
        let e = ended(&t, JobState::Succeeded, Some(&result));
        let job = callback_job(&e).unwrap();
        assert_eq!(job.queue, CALLBACK_QUEUE);
        assert_eq!(job.name.as_deref(), Some("callback"));
        let target = job.target.unwrap();
        assert_eq!(target.url, "https://app.example/done");
        assert!(
            target.headers.is_empty(),
            "the original headers are not forwarded"
        );
        assert_eq!(job.tags.get(CALLBACK_OF_TAG), Some(&e.id.to_string()));
        let payload: serde_json::Value = serde_json::from_str(job.payload.get()).unwrap();
        assert_eq!(payload["job_id"], e.id.to_string());
        assert_eq!(payload["state"], "succeeded");
        assert_eq!(payload["result"]["status"], 200);
        assert!(payload.get("error").is_none());
        assert_eq!(payload["attempt"], 2);
    }

    #[test]
    fn death_calls_the_failure_callback_with_the_error() {
        let t = target();
        let job = callback_job(&ended(&t, JobState::Dead, None)).unwrap();
        assert_eq!(job.name.as_deref(), Some("failure_callback"));
        assert_eq!(job.target.unwrap().url, "https://app.example/failed");
        let payload: serde_json::Value = serde_json::from_str(job.payload.get()).unwrap();
        assert_eq!(payload["state"], "dead");
        assert_eq!(payload["error"], "HTTP 500: boom");
    }

    #[test]
    fn no_callback_when_none_asked_cancelled_or_a_callback_itself() {
        let plain = Target::post("https://app.example/work");
        assert!(callback_job(&ended(&plain, JobState::Succeeded, None)).is_none());
        assert!(callback_job(&ended(&plain, JobState::Dead, None)).is_none());
        let t = target();
        assert!(callback_job(&ended(&t, JobState::Cancelled, None)).is_none());
        let mut e = ended(&t, JobState::Succeeded, None);
        e.queue = CALLBACK_QUEUE;
        assert!(callback_job(&e).is_none());
    }
}
