//! Parsers of the values users type on the command line, and the error for a usage mistake.
//!
//! Invariant: parsing only. Values that clap can check (durations, instants, tags, job ids) are checked while
//! parsing, so commands receive typed values and a bad value is a usage error (exit status 2) before any
//! request is sent.

use std::fmt;

use offload_core::{DurationSpec, JobId, Timestamp};

/// A problem with what the user typed, found before or without asking the server. Exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses a job id (a UUID).
pub(crate) fn parse_job_id(text: &str) -> Result<JobId, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "`{text}` is not a job id; ids are UUIDs such as 01900000-0000-7000-8000-000000000001"
        )
    })
}

/// Parses `30s`, `5m`, `1h30m` or integer milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<DurationSpec, String> {
    DurationSpec::parse(text).map_err(|e| e.to_string())
}

/// Parses an RFC 3339 instant with an offset.
pub(crate) fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    text.trim()
        .parse::<Timestamp>()
        .map_err(|_| format!("`{text}` is not an RFC 3339 instant; use e.g. 2026-06-01T12:00:00Z or 2026-06-01T14:00:00+02:00"))
}

/// Parses a `KEY=VALUE` tag; the value may be empty and may itself contain `=`.
pub(crate) fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not a tag; use KEY=VALUE")),
    }
}

/// Parses a tag filter `KEY:VALUE` (also accepting `KEY=VALUE`) into the server's `KEY:VALUE` form.
pub(crate) fn parse_tag_filter(text: &str) -> Result<String, String> {
    let split = text.split_once(':').or_else(|| text.split_once('='));
    match split {
        Some((key, value)) if !key.is_empty() => Ok(format!("{key}:{value}")),
        _ => Err(format!("`{text}` is not a tag filter; use KEY:VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_at_the_first_separator() {
        assert_eq!(parse_tag("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(
            parse_tag("url=http://x/?a=b"),
            Ok(("url".into(), "http://x/?a=b".into()))
        );
        assert_eq!(parse_tag("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=x").is_err());
        assert_eq!(parse_tag_filter("env:prod").as_deref(), Ok("env:prod"));
        assert_eq!(parse_tag_filter("env=prod").as_deref(), Ok("env:prod"));
        assert_eq!(
            parse_tag_filter("url:http://x").as_deref(),
            Ok("url:http://x")
        );
        assert!(parse_tag_filter("env").is_err());
    }
}
