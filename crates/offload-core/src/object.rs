//! Request types read from JSON objects only.
//!
//! serde's derived `Deserialize` for a struct also reads a JSON array, field by field in declaration order, so
//! `"backoff": []` would silently mean "all defaults" and `"throttle": [5, "1s"]` a throttle. The API documents
//! these values as objects; a type that implements [`FromObject`] and deserializes through [`object`] refuses
//! anything else with "invalid type: ..., expected ... as a JSON object".
//!
//! Invariant: [`object`] hands the type's own field rules (defaults, unknown fields refused) a map, never a
//! sequence.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{MapAccess, Visitor};

/// A type read from the entries of a JSON object (usually by its `#[serde(remote = "Self")]` derive).
pub(crate) trait FromObject<'de>: Sized {
    /// What the value is, for error messages ("a backoff").
    const WHAT: &'static str;

    /// Reads the value from an object's entries.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Deserializes `T` from a JSON object, refusing arrays and scalars.
pub(crate) fn object<'de, D: Deserializer<'de>, T: FromObject<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    struct ObjectVisitor<T>(PhantomData<T>);

    impl<'de, T: FromObject<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} as a JSON object", T::WHAT)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::from_map(map)
        }
    }

    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

/// Implements `Deserialize` (objects only) and `Serialize` for a type whose derives carry
/// `#[serde(remote = "Self")]`.
macro_rules! object_only {
    ($ty:ty, $what:literal) => {
        impl<'de> $crate::object::FromObject<'de> for $ty {
            const WHAT: &'static str = $what;

            fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
                <$ty>::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::object::object(deserializer)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$ty>::serialize(self, serializer)
            }
        }
    };
}
pub(crate) use object_only;

#[cfg(test)]
mod tests {
    use crate::backoff::Backoff;
    use crate::flow::debounce::DebounceSpec;
    use crate::flow::limits::ThrottleSpec;

    #[test]
    fn objects_are_read_and_arrays_refused() {
        let backoff: Backoff = serde_json::from_str(r#"{"base":"2s"}"#).unwrap();
        assert_eq!(backoff.base.0, std::time::Duration::from_secs(2));
        let again: Backoff =
            serde_json::from_value(serde_json::to_value(backoff).unwrap()).unwrap();
        assert_eq!(again, backoff);
        let err = serde_json::from_str::<Backoff>("[]").unwrap_err();
        assert!(
            err.to_string().contains("a backoff as a JSON object"),
            "{err}"
        );
        assert!(serde_json::from_str::<Backoff>(r#"{"base":"1s","bsae":1}"#).is_err());
        assert!(serde_json::from_str::<ThrottleSpec>(r#"[5, "1s"]"#).is_err());
        assert!(serde_json::from_str::<ThrottleSpec>(r#"{"limit":5,"period":"1s"}"#).is_ok());
        assert!(serde_json::from_str::<DebounceSpec>(r#"["k", "1s"]"#).is_err());
    }
}
