//! Field paths into an event, such as `data.user_id` or `data.items.0.sku`.
//!
//! Invariant: a [`FieldPath`] is parsed once, when the function or the wait that uses it is registered, and
//! looking a path up never fails: a missing field is `None`, never an error, so an event of an unexpected shape
//! simply does not match.

use std::fmt;

use serde_json::Value;

/// Longest path, in bytes.
pub const MAX_PATH_LEN: usize = 256;
/// Most segments in a path.
pub const MAX_PATH_SEGMENTS: usize = 16;

/// A dot-separated path into an event's JSON (`name`, `id`, `ts` or anything below `data`). A segment of digits
/// indexes an array; any other segment names an object's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    text: String,
}

impl FieldPath {
    /// Parses `text`, refusing empty segments, overlong paths and roots other than `data`, `name`, `id`, `ts`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.len() > MAX_PATH_LEN {
            return Err(format!("must be at most {MAX_PATH_LEN} bytes"));
        }
        let segments: Vec<&str> = text.split('.').collect();
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(format!("must have at most {MAX_PATH_SEGMENTS} segments"));
        }
        if segments.iter().any(|s| s.is_empty()) {
            return Err(format!(
                "`{text}` has an empty segment; write e.g. `data.user_id`"
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        match segments[0] {
            "data" | "name" | "id" | "ts" => {}
            other => {
                return Err(format!(
                    "must start with `data`, `name`, `id` or `ts` (found `{other}`)"
                ));
            }
        }
        Ok(Self {
            text: text.to_owned(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path in `event` (the event as JSON: `{"name", "data", "id", "ts"}`), or `None` when a
    /// segment is missing or the value is JSON `null`.
    pub fn lookup<'a>(&self, event: &'a Value) -> Option<&'a Value> {
        let mut at = event;
        for segment in self.text.split('.') {
            at = match at {
                Value::Object(map) => map.get(segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        (!at.is_null()).then_some(at)
    }

    /// The value at this path as a match key: its canonical JSON text (object keys sorted, no white space), so
    /// two servers, and a database index, compare the same values as equal. `None` when missing or `null`.
    pub fn match_key(&self, event: &Value) -> Option<String> {
        self.lookup(event).map(canonical_json)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Canonical JSON text of `value`: `serde_json` without the `preserve_order` feature keeps object keys sorted,
/// and compact output has no white space; numbers keep serde_json's shortest round-trip form.
pub fn canonical_json(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_reach_nested_fields_and_array_items() {
        let event =
            json!({"name": "app/order.paid", "data": {"user": {"id": 7}, "items": [{"sku": "A"}]}});
        let path = FieldPath::parse("data.user.id").unwrap();
        assert_eq!(path.lookup(&event), Some(&json!(7)));
        assert_eq!(
            FieldPath::parse("data.items.0.sku").unwrap().lookup(&event),
            Some(&json!("A"))
        );
        assert_eq!(
            FieldPath::parse("name").unwrap().lookup(&event),
            Some(&json!("app/order.paid"))
        );
    }

    #[test]
    fn missing_fields_and_null_are_none_never_errors() {
        let event = json!({"data": {"a": null, "b": [1]}});
        for path in [
            "data.a", "data.zz", "data.b.5", "data.b.x", "data.a.b", "id",
        ] {
            assert_eq!(
                FieldPath::parse(path).unwrap().lookup(&event),
                None,
                "{path}"
            );
        }
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        for bad in ["", "data..x", ".data", "data.", "user.id", "payload"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
        let deep = vec!["x"; 17].join(".");
        assert!(FieldPath::parse(&format!("data.{deep}")).is_err());
    }

    #[test]
    fn match_keys_are_canonical() {
        let a = json!({"data": {"k": {"b": 1, "a": [true, "x"]}}});
        let b: Value = serde_json::from_str(r#"{"data":{"k":{ "a":[true,"x"], "b":1 }}}"#).unwrap();
        let path = FieldPath::parse("data.k").unwrap();
        assert_eq!(path.match_key(&a), path.match_key(&b));
        assert_eq!(path.match_key(&a).unwrap(), r#"{"a":[true,"x"],"b":1}"#);
        // A number and a string of the same digits are different keys.
        let n = json!({"data": {"id": 1}});
        let s = json!({"data": {"id": "1"}});
        let id = FieldPath::parse("data.id").unwrap();
        assert_ne!(id.match_key(&n), id.match_key(&s));
    }
}
