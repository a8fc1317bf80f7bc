//! Debounce on enqueue: while a job with the same key waits to start, a new enqueue replaces its payload and
//! moves its start to `now + period`, never later than its first enqueue + `max_wait`.
//!
//! Invariant: a debounced job's start never moves earlier than it was, nor later than `first + max_wait`, so
//! a steady stream of enqueues delays the job by at most `max_wait`.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::duration::DurationSpec;
use crate::spec::ValidationError;
use crate::state::add;

/// Longest debounce key, in bytes.
pub const MAX_DEBOUNCE_KEY_LEN: usize = 256;

/// Debounce as users write it on enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct DebounceSpec {
    /// Jobs of one queue with the same key debounce each other.
    pub key: String,
    /// Quiet time after the last enqueue before the job starts (at least 1 ms).
    pub period: DurationSpec,
    /// Longest delay after the first enqueue (default: no cap beyond the queue's maximum delay); at least
    /// `period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<DurationSpec>,
}

crate::object::object_only!(DebounceSpec, "a debounce");

impl DebounceSpec {
    /// Checks the key and the durations; errors name the field (`debounce.max_wait`).
    pub fn validate(&self, max_delay: Duration) -> Result<(), ValidationError> {
        let field = |f: &str| format!("debounce.{f}");
        if self.key.is_empty()
            || self.key.len() > MAX_DEBOUNCE_KEY_LEN
            || self.key.chars().any(char::is_control)
        {
            return Err(ValidationError::invalid(
                field("key"),
                format!("must be 1 to {MAX_DEBOUNCE_KEY_LEN} bytes without control characters"),
            ));
        }
        if self.period.0 < Duration::from_millis(1) {
            return Err(ValidationError::invalid(
                field("period"),
                "must be at least 1ms",
            ));
        }
        if self.period.0 > max_delay {
            return Err(ValidationError::invalid(
                field("period"),
                format!("must be at most {}", DurationSpec(max_delay)),
            ));
        }
        if let Some(max_wait) = self.max_wait {
            if max_wait < self.period {
                return Err(ValidationError::invalid(
                    field("max_wait"),
                    "must not be shorter than `period`",
                ));
            }
            if max_wait.0 > max_delay {
                return Err(ValidationError::invalid(
                    field("max_wait"),
                    format!("must be at most {}", DurationSpec(max_delay)),
                ));
            }
        }
        Ok(())
    }

    /// When a debounced job starts after an enqueue at `now`: `now + period`, capped at `first + max_wait`
    /// (`first`: the job's first enqueue), and never earlier than `current` (its start so far).
    pub fn start_at(&self, first: Timestamp, current: Timestamp, now: Timestamp) -> Timestamp {
        let wanted = add(now, self.period.0);
        let capped = match self.max_wait {
            Some(max_wait) => wanted.min(add(first, max_wait.0)),
            None => wanted,
        };
        capped.max(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    fn spec(period_ms: u64, max_wait_ms: Option<u64>) -> DebounceSpec {
        DebounceSpec {
            key: "reindex".into(),
            period: DurationSpec(Duration::from_millis(period_ms)),
            max_wait: max_wait_ms.map(|m| DurationSpec(Duration::from_millis(m))),
        }
    }

    #[test]
    fn each_enqueue_moves_the_start_to_now_plus_period() {
        let d = spec(500, None);
        assert_eq!(d.start_at(t(0), t(500), t(300)), t(800));
    }

    #[test]
    fn max_wait_caps_a_steady_stream() {
        let d = spec(500, Some(2000));
        let mut start = t(500);
        for ms in (0..5000).step_by(50) {
            start = d.start_at(t(0), start, t(ms));
        }
        assert_eq!(start, t(2000));
    }

    #[test]
    fn bad_debounces_are_refused_with_the_field_named() {
        let year = Duration::from_secs(365 * 86400);
        assert_eq!(
            spec(0, None).validate(year).unwrap_err().field,
            "debounce.period"
        );
        assert_eq!(
            spec(500, Some(100)).validate(year).unwrap_err().field,
            "debounce.max_wait"
        );
        let mut empty = spec(500, None);
        empty.key.clear();
        assert_eq!(empty.validate(year).unwrap_err().field, "debounce.key");
        assert!(spec(500, Some(500)).validate(year).is_ok());
    }
}
