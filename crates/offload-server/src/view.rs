//! The job shown in answer to `POST /v1/jobs`, built without reading the job back and without copying its
//! payload.
//!
//! The store takes the validated [`NewJob`] (payload included) by value, and reports only what it decided
//! ([`Inserted`]: state, due time, creation time). So the part of the answer that comes from the request is
//! written *before* the insert, straight into the response buffer, and the store's part is appended after.
//! Invariant: the result is exactly a [`offload_core::Job`] document (without `attempts`), as `GET` would
//! show the new job; the crate's tests compare the two.

use std::collections::BTreeMap;

use offload_core::push::Target;
use offload_core::{Backoff, DurationSpec, JobId, JobState, NewJob, Timestamp};
use offload_store::Inserted;
use serde::Serialize;
use serde_json::value::RawValue;

/// The fields of [`offload_core::Job`] that a new job takes from its request.
#[derive(Serialize)]
struct Head<'a> {
    id: JobId,
    queue: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    payload: &'a RawValue,
    priority: i32,
    attempt: u32,
    max_attempts: u32,
    backoff: &'a Backoff,
    timeout: DurationSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
    tags: &'a BTreeMap<String, String>,
    cancel_requested: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debounce_key: Option<&'a str>,
}

/// The fields the store decides.
#[derive(Serialize)]
struct Tail {
    state: JobState,
    run_at: Timestamp,
    created_at: Timestamp,
}

/// A job view whose request part is already written.
pub(crate) struct PendingJobView {
    /// `{"id":…,…,"cancel_requested":false` (an unclosed JSON object).
    buf: Vec<u8>,
}

impl PendingJobView {
    /// Writes the request part of the view of `job`.
    pub(crate) fn new(job: &NewJob) -> serde_json::Result<Self> {
        let head = Head {
            id: job.id,
            queue: &job.queue,
            name: job.name.as_deref(),
            payload: &job.payload,
            priority: job.priority,
            attempt: 0,
            max_attempts: job.max_attempts,
            backoff: &job.backoff,
            timeout: DurationSpec(job.timeout),
            idempotency_key: job.idempotency_key.as_deref(),
            tags: &job.tags,
            cancel_requested: false,
            target: job.target.as_ref(),
            group: job.group.as_deref(),
            debounce_key: job.debounce.as_ref().map(|d| d.key.as_str()),
        };
        let mut buf = Vec::with_capacity(job.payload.get().len() + 256 + job.queue.len());
        serde_json::to_writer(&mut buf, &head)?;
        // Reopen the object so the store's fields can be appended.
        if buf.pop() != Some(b'}') {
            return Err(serde::ser::Error::custom(
                "a struct did not serialize as a JSON object",
            ));
        }
        Ok(Self { buf })
    }

    /// Completes the view with what the store decided; returns the JSON document.
    pub(crate) fn finish(mut self, inserted: &Inserted) -> serde_json::Result<Vec<u8>> {
        let tail = Tail {
            state: inserted.state,
            run_at: inserted.run_at,
            created_at: inserted.created_at,
        };
        self.buf.push(b',');
        let at = self.buf.len();
        serde_json::to_writer(&mut self.buf, &tail)?;
        // `{"state":…}` becomes `"state":…}`: drop the tail's opening brace (its fields follow the comma).
        self.buf.remove(at);
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use offload_core::Job;
    use offload_core::spec::{EnqueueRequest, Limits};

    use super::*;

    #[test]
    fn view_is_a_job_document() {
        let now: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        let request: EnqueueRequest = serde_json::from_str(
            r#"{"queue":"q","name":"n","payload":{"b": [1, 2], "a":"\u00e9"},"priority":3,"tags":{"k":"v"},
                "idempotency_key":"key","target":{"url":"https://app.example/hook","headers":{"X-A":"1"}},
                "group":"acme","debounce":{"key":"k","period":"1s"}}"#,
        )
        .unwrap();
        let job = request.validate(&Limits::default(), None, now).unwrap();
        let inserted = Inserted {
            id: job.id,
            state: JobState::Available,
            run_at: now,
            created_at: now,
            duplicate: false,
            debounced: false,
        };
        let bytes = PendingJobView::new(&job)
            .unwrap()
            .finish(&inserted)
            .unwrap();
        let view: Job = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(view.id, job.id);
        assert_eq!(
            view.payload.get(),
            r#"{"b": [1, 2], "a":"\u00e9"}"#,
            "payload kept byte for byte"
        );
        assert_eq!(
            (view.state, view.run_at, view.created_at),
            (JobState::Available, now, now)
        );
        assert_eq!((view.priority, view.attempt, view.max_attempts), (3, 0, 25));
        assert_eq!(view.idempotency_key.as_deref(), Some("key"));
        assert_eq!(view.tags.get("k").map(String::as_str), Some("v"));
        assert!(view.attempts.is_none());
        assert_eq!(view.target, job.target);
        assert_eq!(view.group.as_deref(), Some("acme"));
        assert_eq!(view.debounce_key.as_deref(), Some("k"));
        // Every field of a Job document, no more: a round trip through Job is the identity.
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value, serde_json::to_value(&view).unwrap());
    }
}
