//! How stored values map to domain values where every store encodes them alike: durations as whole
//! milliseconds, timestamps cut to whole microseconds, job states as their names, a push target as its JSON
//! beside its destination, a retry policy as two durations and a jitter, a queue's limits as JSON (NULL for
//! none).
//!
//! Invariant: reading never panics; a stored value that does not fit the domain becomes
//! [`StoreError::corrupt`]. Each store keeps only what its column types make different.

use std::time::Duration;

use offload_core::flow::limits::QueueLimits;
use offload_core::push::Target;
use offload_core::{Backoff, DurationSpec, JobState, Timestamp};

use crate::{Result, StoreError};

/// `t` cut to whole microseconds, the precision every store keeps timestamps with.
pub fn stored_precision(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// A queue's stored limits (`NULL`: none).
pub fn limits(json: Option<&str>) -> Result<QueueLimits> {
    match json {
        None => Ok(QueueLimits::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| StoreError::corrupt(format!("queue limits {text:?}: {e}"))),
    }
}

/// A queue's limits as stored: `None` when they limit nothing, which keeps the queue on the fast claim path.
pub fn limits_to_db(limits: &QueueLimits) -> Result<Option<String>> {
    if limits.is_unlimited() {
        return Ok(None);
    }
    serde_json::to_string(limits)
        .map(Some)
        .map_err(|e| StoreError::Internal(format!("cannot encode queue limits: {e}")))
}

/// A duration as stored: whole milliseconds, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A stored duration (whole milliseconds; negative ones are corrupt).
pub fn duration(ms: i64) -> Result<Duration> {
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| StoreError::corrupt(format!("negative duration {ms}")))
}

/// A stored job state (its name).
pub fn state(text: &str) -> Result<JobState> {
    text.parse().map_err(StoreError::corrupt)
}

/// A stored count or attempt number, whatever integer type the column has.
pub fn u32_of<T: TryInto<u32> + std::fmt::Display + Copy>(v: T, what: &str) -> Result<u32> {
    v.try_into()
        .map_err(|_| StoreError::corrupt(format!("{what} {v} out of range")))
}

/// A stored target (its JSON text; NULL for pull jobs).
pub fn target(text: Option<&str>) -> Result<Option<Target>> {
    text.map(|t| serde_json::from_str(t).map_err(|e| StoreError::corrupt(format!("target: {e}"))))
        .transpose()
}

/// A stored retry policy: base and cap in whole milliseconds, and the jitter.
pub fn backoff(base_ms: i64, cap_ms: i64, jitter: f64) -> Result<Backoff> {
    Ok(Backoff {
        base: DurationSpec(duration(base_ms)?),
        cap: DurationSpec(duration(cap_ms)?),
        jitter,
    })
}

/// A target as stored: its JSON and its destination; both NULL for pull jobs.
pub fn target_to_db(target: Option<&Target>) -> Result<(Option<String>, Option<String>)> {
    match target {
        None => Ok((None, None)),
        Some(t) => {
            let json = serde_json::to_string(t)
                .map_err(|e| StoreError::Internal(format!("target: {e}")))?;
            Ok((Some(json), Some(t.destination())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_and_times_keep_microseconds() {
        assert_eq!(
            duration(millis(Duration::from_millis(1500))).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(duration(-1).is_err());
        assert_eq!(millis(Duration::MAX), i64::MAX);
        let t = stored_precision("2026-01-01T00:00:00.123456789Z".parse().unwrap());
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.123456Z");
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        assert_eq!(state("running").unwrap(), JobState::Running);
        assert!(state("sleepy").is_err());
        assert_eq!(u32_of(7i64, "attempt").unwrap(), 7);
        assert!(u32_of(-1i32, "attempt").is_err());
        assert!(u32_of(i64::MAX, "attempt").is_err());
        assert!(target(Some("{")).is_err());
        assert_eq!(target(None).unwrap(), None);
        assert!(backoff(-1, 10, 0.0).is_err());
        let b = backoff(1000, 60_000, 0.5).unwrap();
        assert_eq!(b.cap.0, Duration::from_secs(60));
    }
}
