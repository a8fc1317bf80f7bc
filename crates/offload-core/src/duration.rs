//! Durations as users write them: `"30s"`, `"5m"`, `"1h30m"` or an integer number of milliseconds.
//!
//! Parsing of the text form is jiff's "friendly" duration grammar (which also takes ISO 8601 such as
//! `"PT5M"`); this module adds the integer-milliseconds form and refuses negative durations, so no caller ever
//! sees a negative delay.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration accepted from users as text or integer milliseconds, and written back as integer
/// milliseconds (unambiguous for machines, and accepted again as input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationSpec(pub Duration);

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is not a duration.
    #[error("`{0}` is not a duration; use e.g. \"30s\", \"5m\", \"1h30m\" or integer milliseconds")]
    Syntax(String),
    /// The duration is below zero.
    #[error("must not be negative")]
    Negative,
}

impl DurationSpec {
    /// Parses the text form (`"30s"`, `"1h30m"`, `"250ms"`, `"PT5M"`) or a bare integer of milliseconds.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let text = text.trim();
        if let Ok(ms) = text.parse::<i64>() {
            return Self::from_millis(ms);
        }
        let parsed = match text.parse::<jiff::SignedDuration>() {
            Ok(d) => d,
            // Days (and weeks) are not fixed lengths in jiff's duration grammar; here a day is 24 hours.
            Err(_) => text
                .parse::<jiff::Span>()
                .and_then(|span| span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()))
                .map_err(|_| DurationError::Syntax(text.to_owned()))?,
        };
        if parsed.is_negative() {
            return Err(DurationError::Negative);
        }
        Ok(Self(parsed.unsigned_abs()))
    }

    /// Builds a duration from signed milliseconds, refusing negatives.
    pub fn from_millis(ms: i64) -> Result<Self, DurationError> {
        u64::try_from(ms)
            .map(|ms| Self(Duration::from_millis(ms)))
            .map_err(|_| DurationError::Negative)
    }

    /// Whole milliseconds, saturating at `u64::MAX`.
    pub fn as_millis(&self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl From<Duration> for DurationSpec {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = jiff::SignedDuration::try_from(self.0).unwrap_or(jiff::SignedDuration::MAX);
        write!(f, "{d:#}")
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.as_millis())
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"5m\", \"1h30m\" or integer milliseconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(DurationSpec(Duration::from_millis(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                DurationSpec::from_millis(v).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1e15 {
                    Ok(DurationSpec(Duration::from_millis(v as u64)))
                } else if v < 0.0 {
                    Err(E::custom(DurationError::Negative))
                } else {
                    Err(E::custom(
                        "a duration in milliseconds must be a whole number",
                    ))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                DurationSpec::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// In OpenAPI: a string in the duration syntax, or integer milliseconds (answers always use milliseconds).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for DurationSpec {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0))
                    .description(Some("milliseconds")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "a duration such as \"30s\", \"5m\", \"1h30m\", \"2d\" or \"PT5M\"",
                    ))
                    .examples(["30s"]),
            )
            .description(Some(
                "A non-negative duration: text or integer milliseconds.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for DurationSpec {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            ("250ms", 250),
            ("1500", 1_500),
            ("PT5M", 300_000),
            ("0s", 0),
            ("2d", 172_800_000),
        ];
        for (text, ms) in cases {
            assert_eq!(DurationSpec::parse(text).unwrap().as_millis(), ms, "{text}");
        }
    }

    #[test]
    fn refuses_negative_and_garbage() {
        assert_eq!(DurationSpec::parse("-5s"), Err(DurationError::Negative));
        assert_eq!(DurationSpec::parse("-1"), Err(DurationError::Negative));
        assert!(matches!(
            DurationSpec::parse("soon"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            DurationSpec::parse(""),
            Err(DurationError::Syntax(_))
        ));
        assert!(serde_json::from_str::<DurationSpec>("-3").is_err());
        assert!(serde_json::from_str::<DurationSpec>("1.5").is_err());
        assert!(serde_json::from_str::<DurationSpec>("true").is_err());
    }

    #[test]
    fn json_round_trips_as_milliseconds() {
        let d: DurationSpec = serde_json::from_str("\"2m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "120000");
        let again: DurationSpec = serde_json::from_str("120000").unwrap();
        assert_eq!(again, d);
    }
}
