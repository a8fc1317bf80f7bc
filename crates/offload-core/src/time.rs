//! Instants as users send them: RFC 3339 timestamps such as `2026-06-01T12:00:00Z` or
//! `2026-06-01T14:00:00+02:00`.
//!
//! Invariant: an accepted instant's UTC offset is within what RFC 3339 allows, `-23:59` to `+23:59` (its
//! `time-hour` is 00 to 23). jiff alone accepts offsets up to `±25:59:59`, which no real zone uses and strict
//! parsers elsewhere refuse, so `+25:00` is refused here rather than silently moving the instant by a day.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

/// Largest offset hour RFC 3339 allows.
pub const MAX_OFFSET_HOURS: u32 = 23;

/// Parses an RFC 3339 timestamp whose offset is at most [`MAX_OFFSET_HOURS`] hours from UTC.
pub fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    let instant: Timestamp = text
        .parse()
        .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))?;
    match offset_hours(text) {
        Some(hours) if hours > MAX_OFFSET_HOURS => Err(format!(
            "`{text}` has a UTC offset of {hours} hours; offsets are -23:59 to +23:59"
        )),
        _ => Ok(instant),
    }
}

/// The hours of the numeric UTC offset of a timestamp's text (`None` for `Z` or when there is none).
fn offset_hours(text: &str) -> Option<u32> {
    let text = text.split('[').next()?;
    let time = &text[text.find(['T', 't', ' '])?..];
    let sign = time.rfind(['+', '-', '\u{2212}'])?;
    let after = &time[sign..];
    let digits = after.trim_start_matches(['+', '-', '\u{2212}']);
    digits.get(..2)?.parse().ok()
}

/// Serde: an optional [`parse_timestamp`] instant, for request fields such as `run_at`.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Timestamp>, D::Error> {
    let text = Option::<std::borrow::Cow<'de, str>>::deserialize(de)?;
    text.map(|t| parse_timestamp(&t).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_up_to_23_59_are_accepted() {
        for (text, utc) in [
            ("2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z"),
            ("2026-06-01T14:00:00+02:00", "2026-06-01T12:00:00Z"),
            ("2026-06-01T12:00:00.5-05:30", "2026-06-01T17:30:00.5Z"),
            ("2026-06-01T23:59:00+23:59", "2026-06-01T00:00:00Z"),
            ("2026-06-01T00:00:00-23:59", "2026-06-01T23:59:00Z"),
        ] {
            assert_eq!(parse_timestamp(text).unwrap().to_string(), utc, "{text}");
        }
    }

    #[test]
    fn offsets_beyond_23_59_and_junk_are_refused() {
        for text in [
            "2026-06-01T12:00:00+25:00",
            "2026-06-01T12:00:00-24:00",
            "2026-06-01T12:00:00+24:30",
        ] {
            let err = parse_timestamp(text).unwrap_err();
            assert!(err.contains("offset"), "{text}: {err}");
        }
        assert!(parse_timestamp("tomorrow").is_err());
        assert!(
            parse_timestamp("2026-06-01T12:00:00").is_err(),
            "an offset is required"
        );
    }

    #[test]
    fn deserializes_optional_fields() {
        #[derive(Deserialize)]
        struct R {
            #[serde(default, deserialize_with = "deserialize_opt")]
            at: Option<Timestamp>,
        }
        let r: R = serde_json::from_str(r#"{"at":"2026-06-01T12:00:00Z"}"#).unwrap();
        assert!(r.at.is_some());
        assert!(serde_json::from_str::<R>(r#"{}"#).unwrap().at.is_none());
        assert!(
            serde_json::from_str::<R>(r#"{"at":null}"#)
                .unwrap()
                .at
                .is_none()
        );
        let err = serde_json::from_str::<R>(r#"{"at":"2026-06-01T12:00:00+25:00"}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("offsets are"), "{err}");
    }
}
