//! How the dashboard writes values for people: times, ages, durations and JSON. Pure functions, so they are
//! unit-tested; templates escape whatever these return.

use std::time::Duration;

use offload_core::Timestamp;

/// An instant as `2026-01-01 12:00:03 UTC` (to the second).
pub(crate) fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An instant as the full RFC 3339 text (for tooltips and machines).
pub(crate) fn exact(t: Timestamp) -> String {
    t.to_string()
}

/// A duration for people: `850ms`, `4.2s`, `3m 20s`, `5h 02m`, `3d 4h`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// The time from `from` to `to`, zero if negative.
pub(crate) fn span(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// `from` relative to `now`: `3m 20s ago` or `in 5s`.
pub(crate) fn relative(t: Timestamp, now: Timestamp) -> String {
    if t <= now {
        format!("{} ago", duration(span(t, now)))
    } else {
        format!("in {}", duration(span(now, t)))
    }
}

/// JSON text indented for reading, keys in their original order (unlike a round trip through a map).
/// Text that is not JSON is returned as it is.
pub(crate) fn pretty_json(raw: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(raw).is_err() {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Empty containers stay on one line.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or(' '));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// The first line of `text`, cut to `max` characters with an ellipsis.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max && line.len() == text.len() {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(4200)), "4.2s");
        assert_eq!(duration(Duration::from_secs(200)), "3m 20s");
        assert_eq!(duration(Duration::from_secs(5 * 3600 + 120)), "5h 02m");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 4h"
        );
    }

    #[test]
    fn relative_times() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let before: Timestamp = "2026-01-01T00:06:40Z".parse().unwrap();
        let after: Timestamp = "2026-01-01T00:10:05Z".parse().unwrap();
        assert_eq!(relative(before, now), "3m 20s ago");
        assert_eq!(relative(after, now), "in 5.0s");
        assert_eq!(time(now), "2026-01-01 00:10:00 UTC");
    }

    #[test]
    fn pretty_json_keeps_key_order_and_strings() {
        let raw = r#"{"z":1,"a":[1, 2,{}],"s":"x, {y}: \"q\"","e":[]}"#;
        assert_eq!(
            pretty_json(raw),
            "{\n  \"z\": 1,\n  \"a\": [\n    1,\n    2,\n    {}\n  ],\n  \"s\": \"x, {y}: \\\"q\\\"\",\n  \"e\": []\n}"
        );
        assert_eq!(pretty_json("42"), "42");
        assert_eq!(pretty_json("not json {"), "not json {");
    }

    #[test]
    fn excerpts_cut_long_or_multiline_text() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("abcdefghijkl", 5), "abcde…");
        assert_eq!(excerpt("line one\nline two", 20), "line one…");
    }
}
