//! Integer fields as JSON carries them: `6` or `6.0`.
//!
//! JSON has one number type, and JSON Schema's `integer` (what the OpenAPI document declares) is any number
//! without a fractional part, so clients that write every number as a float (JavaScript's `6.0` from a
//! computation, some serializers) send valid requests. Invariant: a value is taken exactly when it is a whole
//! number that fits the field's type; `6.5`, `-1` for an unsigned field and out-of-range values are refused.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{self, Unexpected, Visitor};

/// `deserialize_with` for an optional integer field: absent or `null` is `None`.
pub(crate) fn option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    deserializer.deserialize_option(Whole(PhantomData))
}

/// `deserialize_with` for a required integer field: `null` is refused like any other non-integer.
pub(crate) fn required<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    option(deserializer)?.ok_or_else(|| de::Error::invalid_type(Unexpected::Unit, &"an integer"))
}

struct Whole<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for Whole<T>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer of type {}", std::any::type_name::<T>())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::try_from(v)
            .map(Some)
            .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::try_from(v)
            .map(Some)
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // Whole floats inside ±2^63 convert exactly; anything else is not an integer of any field's type.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() < LIMIT {
            #[allow(clippy::cast_possible_truncation)]
            // whole and within i64's range, checked above
            let whole = v as i64;
            return T::try_from(whole)
                .map(Some)
                .map_err(|_| E::invalid_value(Unexpected::Float(v), &self));
        }
        Err(E::invalid_type(Unexpected::Float(v), &self))
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "super::option")]
        small: Option<u8>,
        #[serde(default, deserialize_with = "super::option")]
        signed: Option<i32>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Required {
        #[serde(deserialize_with = "super::required")]
        n: u32,
    }

    #[test]
    fn a_required_field_takes_whole_numbers_and_refuses_null() {
        let n = |json: &str| serde_json::from_str::<Required>(json).map(|r| r.n).ok();
        assert_eq!(n(r#"{"n":7}"#), Some(7));
        assert_eq!(n(r#"{"n":7.0}"#), Some(7));
        assert_eq!(n(r#"{"n":null}"#), None);
        assert_eq!(n(r#"{"n":7.5}"#), None);
        assert_eq!(n("{}"), None);
    }

    fn parse(json: &str) -> Result<(Option<u8>, Option<i32>), String> {
        serde_json::from_str::<Fields>(json)
            .map(|f| (f.small, f.signed))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_in_either_notation_are_taken() {
        assert_eq!(parse(r#"{"small":6,"signed":-3}"#), Ok((Some(6), Some(-3))));
        assert_eq!(
            parse(r#"{"small":6.0,"signed":-3.0}"#),
            Ok((Some(6), Some(-3)))
        );
        assert_eq!(parse(r#"{"small":1e2}"#), Ok((Some(100), None)));
        assert_eq!(parse(r#"{"small":null}"#), Ok((None, None)));
        assert_eq!(parse("{}"), Ok((None, None)));
    }

    #[test]
    fn fractions_out_of_range_and_other_types_are_refused() {
        for json in [
            r#"{"small":6.5}"#,
            r#"{"small":256}"#,
            r#"{"small":256.0}"#,
            r#"{"small":-1}"#,
            r#"{"small":"6"}"#,
            r#"{"small":true}"#,
            r#"{"signed":1e300}"#,
            r#"{"signed":2147483648}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }
}
