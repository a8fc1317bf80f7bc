//! Events as users send them (`POST /v1/events`), and their validation into a [`NewEvent`].
//!
//! Invariant: a [`NewEvent`] only exists if its name follows the documented pattern, its `data` is a JSON object
//! within the size limit, and its `id` (the de-duplication key) is well-formed; a batch is valid only if every
//! event is, so a batch is stored all or nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::names::{RESERVED_EVENT_PREFIX, is_reserved_event_name, validate_event_name};
use super::raw::Json;
use crate::spec::{ValidationError, ValidationKind};

/// Most events in one `{"events": [...]}` request.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;
/// Largest `data` of one event, in bytes of JSON text, when the configuration does not say (512 KiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 512 * 1024;
/// Longest event id.
pub const MAX_EVENT_ID_LEN: usize = 256;

/// An event's identity in the store (distinct from the user's de-duplication `id`). UUIDv7, so events sort by
/// arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for EventId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// One event exactly as the API accepts it. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// The event's name, e.g. `app/user.signup`.
    pub name: String,
    /// A JSON object (default `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Json>,
    /// De-duplication key: an event whose id was seen within retention is answered with the first event and
    /// starts nothing again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it happened (default: when the server received it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<Timestamp>,
}

/// A validated event, ready to store and fan out.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event's name.
    pub name: String,
    /// A JSON object, as sent.
    pub data: Json,
    /// The de-duplication key, if any.
    pub id: Option<String>,
    /// When it happened.
    pub ts: Timestamp,
}

impl NewEvent {
    /// The event as filters and match paths see it: `{"name", "data", "id", "ts"}`.
    pub fn as_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "data": serde_json::from_str::<serde_json::Value>(self.data.get()).unwrap_or_default(),
            "id": self.id,
            "ts": self.ts.to_string(),
        })
    }
}

impl EventRequest {
    /// Validates the event; `now` is the default `ts`, `max_data_bytes` the configured size limit.
    pub fn validate(
        self,
        now: Timestamp,
        max_data_bytes: usize,
    ) -> Result<NewEvent, ValidationError> {
        validate_event_name(&self.name).map_err(|m| ValidationError::invalid("name", m))?;
        if is_reserved_event_name(&self.name) {
            return Err(ValidationError::invalid(
                "name",
                format!(
                    "names starting with `{RESERVED_EVENT_PREFIX}` are reserved for the server"
                ),
            ));
        }
        let data = match self.data {
            Some(data) => {
                if data.get().len() > max_data_bytes {
                    return Err(ValidationError {
                        field: "data".into(),
                        message: format!(
                            "is {} bytes; the limit is {max_data_bytes} bytes",
                            data.get().len()
                        ),
                        kind: ValidationKind::TooLarge,
                    });
                }
                if !data.get().trim_start().starts_with('{') {
                    return Err(ValidationError::invalid("data", "must be a JSON object"));
                }
                data
            }
            None => empty_object(),
        };
        if let Some(id) = &self.id
            && (id.is_empty() || id.len() > MAX_EVENT_ID_LEN || id.chars().any(char::is_control))
        {
            return Err(ValidationError::invalid(
                "id",
                format!("must be 1 to {MAX_EVENT_ID_LEN} bytes without control characters"),
            ));
        }
        Ok(NewEvent {
            name: self.name,
            data,
            id: self.id,
            ts: self.ts.unwrap_or(now),
        })
    }
}

/// Validates a batch all or nothing; errors carry the index (`events[3].name`).
pub fn validate_batch(
    events: Vec<EventRequest>,
    now: Timestamp,
    max_data_bytes: usize,
) -> Result<Vec<NewEvent>, ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::invalid(
            "events",
            "must hold at least one event",
        ));
    }
    if events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ValidationError::invalid(
            "events",
            format!("must hold at most {MAX_EVENTS_PER_REQUEST} events"),
        ));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            e.validate(now, max_data_bytes)
                .map_err(|err| err.within(&format!("events[{i}]")))
        })
        .collect()
}

fn empty_object() -> Json {
    Json::from_text("{}").unwrap_or_else(|_| unreachable!("`{{}}` is valid JSON"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(value: serde_json::Value) -> EventRequest {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn an_event_gets_defaults_and_its_json_shape() {
        let now: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let e = request(json!({"name": "app/user.signup"}))
            .validate(now, 1024)
            .unwrap();
        assert_eq!(e.data.get(), "{}");
        assert_eq!(e.ts, now);
        let e = request(json!({"name": "app/user.signup", "data": {"user_id": 7}, "id": "u7"}))
            .validate(now, 1024)
            .unwrap();
        assert_eq!(e.as_json()["data"]["user_id"], json!(7));
        assert_eq!(e.as_json()["id"], json!("u7"));
    }

    #[test]
    fn refusals_name_their_field() {
        let now = Timestamp::UNIX_EPOCH;
        let cases = [
            (json!({"name": "bad name"}), "name"),
            (json!({"name": "offload/function.invoked"}), "name"),
            (json!({"name": "a", "data": [1]}), "data"),
            (json!({"name": "a", "data": "x"}), "data"),
            (json!({"name": "a", "id": ""}), "id"),
            (
                json!({"name": "a", "data": {"big": "x".repeat(2000)}}),
                "data",
            ),
        ];
        for (value, field) in cases {
            let err = request(value.clone()).validate(now, 1024).unwrap_err();
            assert_eq!(err.field, field, "{value}");
        }
        let too_big = request(json!({"name": "a", "data": {"big": "x".repeat(2000)}}));
        assert_eq!(
            too_big.validate(now, 1024).unwrap_err().kind,
            ValidationKind::TooLarge
        );
        assert!(serde_json::from_value::<EventRequest>(json!({"name": "a", "user": 1})).is_err());
    }

    #[test]
    fn batches_are_all_or_nothing_with_the_index_named() {
        let now = Timestamp::UNIX_EPOCH;
        let ok = vec![request(json!({"name": "a"})), request(json!({"name": "b"}))];
        assert_eq!(validate_batch(ok, now, 1024).unwrap().len(), 2);
        let bad = vec![
            request(json!({"name": "a"})),
            request(json!({"name": "-b"})),
        ];
        assert_eq!(
            validate_batch(bad, now, 1024).unwrap_err().field,
            "events[1].name"
        );
        assert_eq!(
            validate_batch(vec![], now, 1024).unwrap_err().field,
            "events"
        );
        let many = (0..1001).map(|_| request(json!({"name": "a"}))).collect();
        assert_eq!(validate_batch(many, now, 1024).unwrap_err().field, "events");
    }
}
