//! How the dashboard writes values for people: times, ages, durations, sizes, job ids and stored values.
//! Pure functions, so they are unit-tested; templates escape whatever these return.
//!
//! Invariant: a stored value (payload, result, error, message) reaches a page only through [`pretty_json`]
//! or [`clip`], which take time linear in the value and return at most the bytes asked for.

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

/// A stored value as a page shows it: at most a bounded start of it, and how long the whole value is when
/// the start is all that is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    /// What the page renders (escaped by the template).
    pub(crate) text: String,
    /// The stored value's size in bytes, set when `text` is only its start.
    pub(crate) cut_from: Option<usize>,
}

impl Shown {
    /// The stored value's size for people (`1.0 MiB`), when the page shows only its start.
    pub(crate) fn cut_size(&self) -> Option<String> {
        self.cut_from.map(size)
    }
}

/// A byte count for people: `512 bytes`, `64 KiB`, `1.5 MiB`.
pub(crate) fn size(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{:.0} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

/// The largest char boundary of `text` at or below `max`.
fn boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// At most the first `max` bytes of `text` (cut at a character boundary).
pub(crate) fn clip(text: &str, max: usize) -> Shown {
    let end = boundary(text, max);
    Shown {
        text: text[..end].to_owned(),
        cut_from: (end < text.len()).then_some(text.len()),
    }
}

/// JSON text indented for reading, keys in their original order (unlike a round trip through a map), cut
/// after `max` bytes of output. Text that is not JSON is clipped as it is.
///
/// Time and memory are linear in `raw` and the output never exceeds `max` bytes, however deep the value
/// nests: indentation grows with depth, so an uncut rendering of a value nested `n` deep would take `n²`
/// bytes. The check that `raw` is JSON skips values without building them (no recursion, no depth limit).
pub(crate) fn pretty_json(raw: &str, max: usize) -> Shown {
    if serde_json::from_str::<serde::de::IgnoredAny>(raw).is_err() {
        return clip(raw, max);
    }
    let mut out = String::with_capacity(raw.len().saturating_mul(2).min(max));
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        let room = max.saturating_sub(out.len());
        out.extend(std::iter::repeat_n(' ', depth.saturating_mul(2).min(room)));
    };
    while out.len() < max
        && let Some(c) = chars.next()
    {
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
    // Whitespace after the value is not shown anyway.
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    let rest = chars.next().is_some();
    if out.len() > max || rest {
        out.truncate(boundary(&out, max));
        return Shown {
            text: out,
            cut_from: Some(raw.len()),
        };
    }
    Shown {
        text: out,
        cut_from: None,
    }
}

/// The last 12 characters of a job id: enough to tell jobs apart in a list or a title.
pub(crate) fn short_id(id: &str) -> String {
    let start = id.char_indices().rev().nth(11).map_or(0, |(i, _)| i);
    id[start..].to_owned()
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

/// Why a due job does not start yet, in words.
pub(crate) fn waiting_for(w: &offload_core::flow::admission::WaitingFor, now: Timestamp) -> String {
    use offload_core::flow::admission::WaitingFor;
    match w {
        WaitingFor::Concurrency => "the queue's concurrency limit".to_owned(),
        WaitingFor::GroupConcurrency => "its group's concurrency limit".to_owned(),
        WaitingFor::Throttle { until } => {
            format!(
                "the throttle, until {} ({})",
                time(*until),
                relative(*until, now)
            )
        }
    }
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
            pretty_json(raw, 1024).text,
            "{\n  \"z\": 1,\n  \"a\": [\n    1,\n    2,\n    {}\n  ],\n  \"s\": \"x, {y}: \\\"q\\\"\",\n  \"e\": []\n}"
        );
        assert_eq!(pretty_json(raw, 1024).cut_from, None);
        assert_eq!(pretty_json("42", 1024).text, "42");
        assert_eq!(pretty_json("not json {", 1024).text, "not json {");
    }

    #[test]
    fn deep_json_is_cut_not_squared() {
        let depth = 100_000;
        let raw = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let shown = pretty_json(&raw, 64 * 1024);
        assert_eq!(shown.text.len(), 64 * 1024);
        assert_eq!(shown.cut_from, Some(2 * depth));
        assert!(shown.text.starts_with("[\n  [\n    [\n"));
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        let raw = format!("\"{}\"", "é".repeat(1000));
        let shown = pretty_json(&raw, 101);
        assert_eq!(
            shown.text.len(),
            101,
            "the quote and fifty two-byte characters"
        );
        assert_eq!(shown.cut_from, Some(raw.len()));
        let whole = pretty_json(&raw, raw.len());
        assert_eq!((whole.text.len(), whole.cut_from), (raw.len(), None));
        assert_eq!(clip("héllo", 2).text, "h");
        assert_eq!(
            clip("héllo", 3),
            Shown {
                text: "hé".into(),
                cut_from: Some(6)
            }
        );
        assert_eq!(clip("hello", 5).cut_from, None);
        assert_eq!(clip("not json", 3).text, "not");
        assert_eq!(pretty_json("not json", 3).cut_from, Some(8));
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(64 * 1024), "64 KiB");
        assert_eq!(size(1024 * 1024 + 512 * 1024), "1.5 MiB");
    }

    #[test]
    fn short_ids_are_the_last_twelve_characters() {
        assert_eq!(
            short_id("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            "0c1d2e3f4a5b"
        );
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn excerpts_cut_long_or_multiline_text() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("abcdefghijkl", 5), "abcde…");
        assert_eq!(excerpt("line one\nline two", 20), "line one…");
    }
}
