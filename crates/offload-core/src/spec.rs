//! What users send to create jobs, and its validation into a [`NewJob`].
//!
//! Invariant: a [`NewJob`] only exists if every field passed these checks, so nothing invalid reaches a store
//! and no store needs to re-check. Every refusal names the field it is about.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::backoff::Backoff;
use crate::duration::DurationSpec;
use crate::id::JobId;
use crate::job::{NewJob, RunAt};
use crate::push::Target;
use crate::push::callback::RESERVED_QUEUE_PREFIX;

/// Limits applied to every job; operators can change them in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest payload, in bytes of JSON text (default 1 MiB).
    pub max_payload_bytes: usize,
    /// Longest delay or furthest `run_at` (default 365 days).
    pub max_delay: DurationSpec,
    /// Largest `max_attempts` (default 1000).
    pub max_attempts: u32,
    /// Longest lease (`timeout`) of one attempt (default 24 hours).
    pub max_timeout: DurationSpec,
    /// Attempts when the job does not say (default 25).
    pub default_max_attempts: u32,
    /// Lease length when the job does not say (default 5 minutes).
    pub default_timeout: DurationSpec,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            max_delay: DurationSpec(Duration::from_secs(365 * 24 * 3600)),
            max_attempts: 1000,
            max_timeout: DurationSpec(Duration::from_secs(24 * 3600)),
            default_max_attempts: 25,
            default_timeout: DurationSpec(Duration::from_secs(300)),
        }
    }
}

impl Limits {
    /// Checks queue limits against this server's bounds: a throttle's period is at most `max_delay` (a longer
    /// one would hold jobs beyond any start the server accepts). The limits' own rules are
    /// [`crate::flow::limits::QueueLimits::validate`].
    pub fn check_queue_limits(
        &self,
        limits: &crate::flow::limits::QueueLimits,
    ) -> Result<(), ValidationError> {
        match &limits.throttle {
            Some(t) if t.period.0 > self.max_delay.0 => Err(ValidationError::invalid(
                "throttle.period",
                format!("must be at most {}", self.max_delay),
            )),
            _ => Ok(()),
        }
    }
}

/// Longest queue name.
pub const MAX_QUEUE_LEN: usize = 128;
/// The characters of a queue (and schedule) name, as a regular expression for the OpenAPI document: exactly
/// what [`validate_queue_name`] accepts besides the length.
pub const QUEUE_NAME_PATTERN: &str = "^[A-Za-z0-9._:-]+$";
/// Longest job name, in characters.
pub const MAX_NAME_LEN: usize = 256;
/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Most tags on one job.
pub const MAX_TAGS: usize = 32;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY_LEN: usize = 64;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Short texts (names, keys, worker ids) hold no control character (`char::is_control`: U+0000 to U+001F and
/// U+007F to U+009F); this is that rule as a regular expression for the OpenAPI document.
pub const NO_CONTROL_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// Shortest lease a job may ask for.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A request to enqueue one job, exactly as the API accepts it. Unknown fields are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnqueueRequest {
    /// Queue to put the job on (required).
    pub queue: String,
    /// Job kind, which workers dispatch on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any JSON value; `null` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub payload: Option<Box<RawValue>>,
    /// First run at this instant (RFC 3339). Exclusive with `delay`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::time::deserialize_opt"
    )]
    pub run_at: Option<Timestamp>,
    /// First run after this delay. Exclusive with `run_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DurationSpec>,
    /// Higher runs first (default 0).
    #[serde(
        default,
        deserialize_with = "crate::whole::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub priority: Option<i32>,
    /// Attempts allowed before the job is dead.
    #[serde(
        default,
        deserialize_with = "crate::whole::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_attempts: Option<u32>,
    /// Retry delay policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Lease length of one attempt; a worker must heartbeat within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// De-duplication key (also accepted as the `Idempotency-Key` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Labels for filtering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Makes it a push job: the server delivers it to this target instead of handing it to pull workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The tenant, user or account the job belongs to (1 to 128 bytes): queue limits per group and fair
    /// claims use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// While a job of this queue with the same debounce key waits to start, this enqueue replaces its payload
    /// and moves its start to now + `period` (never later than its first enqueue + `max_wait`) instead of
    /// adding a job. Exclusive with `run_at` and `delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<crate::flow::debounce::DebounceSpec>,
}

/// Why a request was refused; `field` is the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// JSON path of the field, e.g. `queue` or `jobs[3].delay`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// The kind of refusal, which decides the HTTP status.
    pub kind: ValidationKind,
}

/// Classes of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationKind {
    /// The value is not acceptable (422).
    Invalid,
    /// The value is larger than the configured limit (413).
    TooLarge,
}

impl ValidationError {
    /// An invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            kind: ValidationKind::Invalid,
        }
    }

    /// Prefixes the field path, for errors found inside a batch (`jobs[3]`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

/// Checks a queue name: 1 to 128 characters of ASCII letters, digits and `-_.:`, so it is safe in URLs,
/// logs and metric labels.
pub fn validate_queue_name(queue: &str) -> Result<(), String> {
    if queue.is_empty() {
        return Err("must not be empty".into());
    }
    if queue.len() > MAX_QUEUE_LEN {
        return Err(format!("must be at most {MAX_QUEUE_LEN} characters"));
    }
    if !queue
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err("may only contain ASCII letters, digits, '-', '_', '.' and ':'".into());
    }
    Ok(())
}

/// Checks a short text: 1 to `max` characters (as JSON Schema's `maxLength` counts them), none of them a
/// control character.
pub fn check_short_text(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    check_short_text(value, max).map_err(|m| ValidationError::invalid(field, m))
}

impl EnqueueRequest {
    /// Validates the request into a job. `header_key` is the `Idempotency-Key` header, if any; `now` bounds
    /// how far in the future `run_at` may be.
    pub fn validate(
        self,
        limits: &Limits,
        header_key: Option<&str>,
        now: Timestamp,
    ) -> Result<NewJob, ValidationError> {
        validate_queue_name(&self.queue).map_err(|m| ValidationError::invalid("queue", m))?;
        if self.queue.starts_with(RESERVED_QUEUE_PREFIX) {
            return Err(ValidationError::invalid(
                "queue",
                format!(
                    "names starting with `{RESERVED_QUEUE_PREFIX}` are reserved for the server"
                ),
            ));
        }
        if let Some(name) = &self.name {
            check_text("name", name, MAX_NAME_LEN)?;
        }
        if let Some(payload) = &self.payload
            && payload.get().len() > limits.max_payload_bytes
        {
            return Err(ValidationError {
                field: "payload".into(),
                message: format!(
                    "is {} bytes; the limit is {} bytes",
                    payload.get().len(),
                    limits.max_payload_bytes
                ),
                kind: ValidationKind::TooLarge,
            });
        }
        if let Some(payload) = &self.payload {
            crate::json_rule::validate("payload", payload.get())?;
        }
        let run_at = match (self.run_at, self.delay) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::invalid(
                    "delay",
                    "give either `run_at` or `delay`, not both",
                ));
            }
            (Some(at), None) => {
                let latest = crate::state::add(now, limits.max_delay.0);
                if at > latest {
                    return Err(ValidationError::invalid(
                        "run_at",
                        format!("must be at most {} in the future", limits.max_delay),
                    ));
                }
                RunAt::At(at)
            }
            (None, Some(delay)) => {
                if delay > limits.max_delay {
                    return Err(ValidationError::invalid(
                        "delay",
                        format!("must be at most {}", limits.max_delay),
                    ));
                }
                if delay.0.is_zero() {
                    RunAt::Now
                } else {
                    RunAt::After(delay.0)
                }
            }
            (None, None) => RunAt::Now,
        };
        let max_attempts = self.max_attempts.unwrap_or(limits.default_max_attempts);
        if max_attempts == 0 || max_attempts > limits.max_attempts {
            return Err(ValidationError::invalid(
                "max_attempts",
                format!("must be between 1 and {}", limits.max_attempts),
            ));
        }
        let backoff = self.backoff.unwrap_or_default();
        if !(0.0..=1.0).contains(&backoff.jitter) {
            return Err(ValidationError::invalid(
                "backoff.jitter",
                "must be between 0.0 and 1.0",
            ));
        }
        if backoff.base > backoff.cap {
            return Err(ValidationError::invalid(
                "backoff.base",
                "must not be longer than backoff.cap",
            ));
        }
        if backoff.cap > limits.max_delay {
            return Err(ValidationError::invalid(
                "backoff.cap",
                format!("must be at most {}", limits.max_delay),
            ));
        }
        let timeout = self.timeout.unwrap_or(limits.default_timeout);
        if timeout.0 < MIN_TIMEOUT || timeout > limits.max_timeout {
            return Err(ValidationError::invalid(
                "timeout",
                format!("must be between 1s and {}", limits.max_timeout),
            ));
        }
        let idempotency_key = match (self.idempotency_key.as_deref(), header_key) {
            (Some(body), Some(header)) if body != header => {
                return Err(ValidationError::invalid(
                    "idempotency_key",
                    "differs from the Idempotency-Key header; give one or make them equal",
                ));
            }
            (Some(key), _) | (None, Some(key)) => {
                check_text("idempotency_key", key, MAX_IDEMPOTENCY_KEY_LEN)?;
                Some(key.to_owned())
            }
            (None, None) => None,
        };
        let tags = self.tags.clone().unwrap_or_default();
        if tags.len() > MAX_TAGS {
            return Err(ValidationError::invalid(
                "tags",
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        for (k, v) in &tags {
            check_text(&format!("tags.{k}"), k, MAX_TAG_KEY_LEN)?;
            if v.chars().count() > MAX_TAG_VALUE_LEN {
                return Err(ValidationError::invalid(
                    format!("tags.{k}"),
                    format!("value must be at most {MAX_TAG_VALUE_LEN} characters"),
                ));
            }
        }
        let target = self.target.clone().map(Target::validate).transpose()?;
        if let Some(group) = &self.group {
            crate::flow::limits::validate_group(group)
                .map_err(|m| ValidationError::invalid("group", m))?;
        }
        if let Some(debounce) = &self.debounce {
            if self.run_at.is_some() || self.delay.is_some() {
                return Err(ValidationError::invalid(
                    "debounce",
                    "a debounced job starts `period` after the last enqueue; give no `run_at` or `delay`",
                ));
            }
            debounce.validate(limits.max_delay.0)?;
        }
        let run_at = match &self.debounce {
            Some(debounce) => RunAt::After(debounce.period.0),
            None => run_at,
        };
        let request_fingerprint = idempotency_key.as_ref().map(|_| self.fingerprint());
        let payload = match self.payload {
            Some(p) => p,
            None => RawValue::from_string("null".to_owned()).expect("null is JSON"),
        };
        Ok(NewJob {
            id: JobId::new(),
            queue: self.queue,
            name: self.name,
            payload,
            run_at,
            priority: self.priority.unwrap_or(0),
            max_attempts,
            backoff,
            timeout: timeout.0,
            idempotency_key,
            request_fingerprint,
            tags,
            target,
            group: self.group,
            debounce: self.debounce,
        })
    }

    /// A digest of everything in the request except the idempotency key, with the payload normalised (key
    /// order and white space do not matter), so a replay of the same request is recognised as such.
    fn fingerprint(&self) -> String {
        // A payload too deeply nested for serde_json's value parser is compared by its exact text instead.
        let payload: serde_json::Value = match &self.payload {
            None => serde_json::Value::Null,
            Some(p) => serde_json::from_str(p.get())
                .unwrap_or_else(|_| serde_json::json!({ "raw_text": p.get() })),
        };
        let mut canonical = serde_json::json!({
            "queue": self.queue,
            "name": self.name,
            "payload": payload,
            "run_at": self.run_at,
            "delay": self.delay,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "backoff": self.backoff,
            "timeout": self.timeout,
            "tags": self.tags,
        });
        // Only when present, so the fingerprints of jobs without a target stay what they always were.
        if let Some(map) = canonical.as_object_mut() {
            if let Some(target) = &self.target {
                map.insert("target".to_owned(), serde_json::json!(target));
            }
            if let Some(group) = &self.group {
                map.insert("group".to_owned(), serde_json::json!(group));
            }
            if let Some(debounce) = &self.debounce {
                map.insert("debounce".to_owned(), serde_json::json!(debounce));
            }
        }
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn parse(json: &str) -> EnqueueRequest {
        serde_json::from_str(json).unwrap()
    }

    fn check(json: &str) -> Result<NewJob, ValidationError> {
        parse(json).validate(&Limits::default(), None, now())
    }

    #[test]
    fn minimal_job_gets_documented_defaults() {
        let job = check(r#"{"queue":"emails"}"#).unwrap();
        assert_eq!(job.queue, "emails");
        assert_eq!(job.payload.get(), "null");
        assert_eq!(job.run_at, RunAt::Now);
        assert_eq!((job.priority, job.max_attempts), (0, 25));
        assert_eq!(job.timeout, Duration::from_secs(300));
        assert!(job.request_fingerprint.is_none());
    }

    #[test]
    fn unknown_top_level_fields_are_refused() {
        let err =
            serde_json::from_str::<EnqueueRequest>(r#"{"queue":"q","qeue":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("qeue"), "{err}");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (r#"{"queue":""}"#, "queue"),
            (r#"{"queue":"has space"}"#, "queue"),
            (r#"{"queue":"q","name":""}"#, "name"),
            (
                r#"{"queue":"q","delay":"1s","run_at":"2026-06-01T12:00:00Z"}"#,
                "delay",
            ),
            (r#"{"queue":"q","delay":"400d"}"#, "delay"),
            (r#"{"queue":"q","run_at":"2099-01-01T00:00:00Z"}"#, "run_at"),
            (r#"{"queue":"q","max_attempts":0}"#, "max_attempts"),
            (r#"{"queue":"q","max_attempts":1001}"#, "max_attempts"),
            (r#"{"queue":"q","timeout":"10ms"}"#, "timeout"),
            (r#"{"queue":"q","timeout":"2d"}"#, "timeout"),
            (
                r#"{"queue":"q","backoff":{"base":"1m","cap":"1s"}}"#,
                "backoff.base",
            ),
            (
                r#"{"queue":"q","backoff":{"jitter":1.5}}"#,
                "backoff.jitter",
            ),
            (r#"{"queue":"q","idempotency_key":""}"#, "idempotency_key"),
            (r#"{"queue":"q","tags":{"":"x"}}"#, "tags."),
            (r#"{"queue":"offload.callbacks"}"#, "queue"),
            (
                r#"{"queue":"q","target":{"url":"gopher://x"}}"#,
                "target.url",
            ),
            (
                r#"{"queue":"q","target":{"url":"http://x","timeout":"0s"}}"#,
                "target.timeout",
            ),
        ];
        for (json, field) in cases {
            let err = check(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
            assert_eq!(err.kind, ValidationKind::Invalid);
        }
    }

    #[test]
    fn target_is_validated_and_kept() {
        let job = check(
            r#"{"queue":"q","target":{"url":"https://App.example/hook","method":"patch","headers":{"X-Key":"k"},"timeout":"15m"}}"#,
        )
        .unwrap();
        let target = job.target.unwrap();
        assert_eq!(target.url, "https://app.example/hook");
        assert_eq!(target.method, "PATCH");
        assert_eq!(target.headers.get("x-key").map(String::as_str), Some("k"));
        assert_eq!(target.timeout, Some(DurationSpec(Duration::from_secs(900))));
        assert!(check(r#"{"queue":"q"}"#).unwrap().target.is_none());
    }

    #[test]
    fn fingerprint_of_a_job_without_target_is_unchanged() {
        // Computed before targets existed: stored idempotency keys must keep matching their replays.
        let job = check(r#"{"queue":"q","idempotency_key":"k","payload":{"a":1}}"#).unwrap();
        let canonical = serde_json::json!({
            "queue": "q", "name": null, "payload": {"a": 1}, "run_at": null, "delay": null, "priority": null,
            "max_attempts": null, "backoff": null, "timeout": null, "tags": null,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        let expected: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        assert_eq!(job.request_fingerprint.as_deref(), Some(expected.as_str()));
        let with_target = check(
            r#"{"queue":"q","idempotency_key":"k","payload":{"a":1},"target":{"url":"http://x"}}"#,
        )
        .unwrap();
        assert_ne!(with_target.request_fingerprint, job.request_fingerprint);
    }

    #[test]
    fn oversized_payload_is_too_large() {
        let limits = Limits {
            max_payload_bytes: 10,
            ..Limits::default()
        };
        let err = parse(r#"{"queue":"q","payload":"0123456789abc"}"#)
            .validate(&limits, None, now())
            .unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.kind),
            ("payload", ValidationKind::TooLarge)
        );
    }

    #[test]
    fn delay_and_run_at_resolve() {
        assert_eq!(
            check(r#"{"queue":"q","delay":"30s"}"#).unwrap().run_at,
            RunAt::After(Duration::from_secs(30))
        );
        assert_eq!(
            check(r#"{"queue":"q","delay":0}"#).unwrap().run_at,
            RunAt::Now
        );
        let at: Timestamp = "2026-06-02T00:00:00Z".parse().unwrap();
        assert_eq!(
            check(r#"{"queue":"q","run_at":"2026-06-02T00:00:00Z"}"#)
                .unwrap()
                .run_at,
            RunAt::At(at)
        );
    }

    #[test]
    fn idempotency_fingerprint_ignores_formatting_but_not_content() {
        let a = check(r#"{"queue":"q","idempotency_key":"k","payload":{"a":1,"b":2}}"#).unwrap();
        let b = check(r#"{"queue":"q","idempotency_key":"k","payload":{ "b":2, "a":1 }}"#).unwrap();
        let c = check(r#"{"queue":"q","idempotency_key":"k","payload":{"a":1,"b":3}}"#).unwrap();
        assert_eq!(a.request_fingerprint, b.request_fingerprint);
        assert_ne!(a.request_fingerprint, c.request_fingerprint);
    }

    #[test]
    fn header_key_is_used_and_must_agree_with_body() {
        let req = parse(r#"{"queue":"q"}"#);
        let job = req.validate(&Limits::default(), Some("h"), now()).unwrap();
        assert_eq!(job.idempotency_key.as_deref(), Some("h"));
        let req = parse(r#"{"queue":"q","idempotency_key":"b"}"#);
        assert_eq!(
            req.validate(&Limits::default(), Some("h"), now())
                .unwrap_err()
                .field,
            "idempotency_key"
        );
    }
}
