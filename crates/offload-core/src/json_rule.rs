//! The one rule every JSON value the server accepts or stores must meet: payloads, results, schedule
//! templates, push response bodies kept as results, anything later kept as JSON.
//!
//! Invariant: a value passes [`check`] only if it nests at most [`MAX_DEPTH`] arrays and objects and every
//! `\u` escape in its strings and keys is a valid Unicode scalar (a high surrogate immediately followed by a
//! low one, never a lone surrogate). The check is one pass over the text, linear in its size, with no
//! recursion and no allocation, so it is safe on any input; it does not check syntax (the JSON parser that
//! produced the text did).

use crate::spec::ValidationError;

/// Deepest nesting of arrays and objects a stored JSON value may have: `[]` and `{}` have depth 1, a scalar
/// depth 0. serde_json's tree parser, used for schedule templates, refuses deeper values too.
pub const MAX_DEPTH: usize = 128;

/// Why a JSON value breaks the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonRuleError {
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error("is nested more than {MAX_DEPTH} arrays or objects deep")]
    TooDeep,
    /// A `\uD800`-`\uDFFF` escape that is not part of a surrogate pair: no Unicode character.
    #[error(
        "holds a lone surrogate escape (`\\uD800` to `\\uDFFF` not in a pair), which is not valid Unicode"
    )]
    LoneSurrogate,
}

/// Checks the JSON value in `field` (a JSON path such as `payload` or `result`): an `invalid_field` error
/// naming it when the value breaks the rule.
pub fn validate(field: &str, json: &str) -> Result<(), ValidationError> {
    check(json).map_err(|e| ValidationError::invalid(field, e.to_string()))
}

/// Checks `json` (JSON text) against the rule, with [`MAX_DEPTH`].
pub fn check(json: &str) -> Result<(), JsonRuleError> {
    check_within(json, MAX_DEPTH)
}

/// Checks `json` against the rule with a smaller depth budget, for a value that will be stored inside
/// another (`max_depth` is what is left of [`MAX_DEPTH`] at that place).
pub fn check_within(json: &str, max_depth: usize) -> Result<(), JsonRuleError> {
    let bytes = json.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(JsonRuleError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' => i = string_end(bytes, i + 1)?,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Scans a string whose content starts at `i`; returns the index of its closing quote (or the end of the
/// text), refusing lone surrogate escapes.
fn string_end(bytes: &[u8], mut i: usize) -> Result<usize, JsonRuleError> {
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok(i),
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let unit = hex4(bytes, i + 2);
                i += 6;
                match unit {
                    Some(0xD800..=0xDBFF) => {
                        let low = (bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u'))
                            .then(|| hex4(bytes, i + 2))
                            .flatten();
                        match low {
                            Some(0xDC00..=0xDFFF) => i += 6,
                            _ => return Err(JsonRuleError::LoneSurrogate),
                        }
                    }
                    Some(0xDC00..=0xDFFF) => return Err(JsonRuleError::LoneSurrogate),
                    _ => {}
                }
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Ok(i)
}

/// The four hex digits at `i` as a UTF-16 code unit.
fn hex4(bytes: &[u8], i: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(i..i + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_up_to_the_limit_passes() {
        for ok in ["1", "\"[[[\"", "[]", "{}", r#"{"a":[{"b":"]]]]"}]}"#] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        assert_eq!(check(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(check(&nested(MAX_DEPTH + 1)), Err(JsonRuleError::TooDeep));
        assert_eq!(check(&nested(200_000)), Err(JsonRuleError::TooDeep));
        let objects = format!("{}1{}", r#"{"k":"#.repeat(129), "}".repeat(129));
        assert_eq!(check(&objects), Err(JsonRuleError::TooDeep));
        // Many shallow values side by side are fine: depth, not count.
        let wide = format!("[{}[]]", "[],".repeat(10_000));
        assert_eq!(check(&wide), Ok(()));
        assert_eq!(check_within(&nested(3), 2), Err(JsonRuleError::TooDeep));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = format!("[\"{}\\\"{}\"]", "[".repeat(500), "{".repeat(500));
        assert_eq!(check(&text), Ok(()));
    }

    #[test]
    fn serde_json_tree_parsing_agrees_on_the_limit() {
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH - 1)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH + 1)).is_err());
    }

    #[test]
    fn lone_surrogates_are_refused_pairs_pass() {
        for ok in [
            r#""\ud83d\ude00""#,
            r#"{"\uD83D\uDE00":1}"#,
            r#""\u00e9\\ud800""#,
            r#""\\\ud83d\ude00""#,
            r#""é😀""#,
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            r#""\ud800""#,
            r#"{"\ud800":1}"#,
            r#""\udc00\ud800""#,
            r#""\ud800\u0041""#,
            r#""\ud800x""#,
            r#"["a","\\\ud800"]"#,
            r#""\uDFFF""#,
        ] {
            assert_eq!(check(bad), Err(JsonRuleError::LoneSurrogate), "{bad}");
        }
    }
}
