//! Log lines that workers and function code attach to a job or a run, shown beside it in the dashboard.
//!
//! A line is `{seq, at, level, message, attempt?}`. `seq` numbers an owner's lines from 1 in the order they
//! were appended, and is the only order lines are read in (`at` is when the caller says the line was written,
//! which buffered callers send later). Lines are appended in batches of 1 to [`MAX_LINES_PER_APPEND`], all or
//! nothing, and each owner keeps its newest [`MAX_LINES_KEPT`] lines: an append beyond drops the oldest, so a
//! chatty job never fails because of its logs and its storage stays bounded. Lines go with their job or run
//! (delete, prune).
//!
//! Invariant: a [`NewLogLine`] only exists if it passed [`validate_lines`] (message at most
//! [`MAX_MESSAGE_BYTES`] bytes of UTF-8 without NUL), so stores never re-check.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::id::LeaseToken;
use crate::spec::ValidationError;

/// Longest message, in bytes of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Most lines in one append.
pub const MAX_LINES_PER_APPEND: usize = 100;
/// Lines each job and each run keeps; older ones are dropped by later appends.
pub const MAX_LINES_KEPT: u64 = 1000;
/// Most lines in one read.
pub const MAX_READ_LIMIT: u32 = 1000;
/// Lines in one read when the caller does not say.
pub const DEFAULT_READ_LIMIT: u32 = 100;

/// How important a line is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LogLevel {
    /// Detail for debugging.
    Debug,
    /// The default.
    #[default]
    Info,
    /// Something unexpected that did not stop the work.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The API name (`debug`, `info`, `warn`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            other => Err(format!("unknown log level `{other}`")),
        }
    }
}

/// One line as a client sends it. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLineRequest {
    /// The text: at most 4096 bytes of UTF-8, no NUL character.
    pub message: String,
    /// `debug`, `info` (default), `warn` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    /// When the line was written (RFC 3339); default: when the server receives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub at: Option<Timestamp>,
}

/// `POST /v1/jobs/{id}/logs` and `POST /v1/runs/{id}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogAppendRequest {
    /// 1 to 100 lines, kept in this order.
    pub lines: Vec<LogLineRequest>,
    /// Jobs only, optional: the claim's lease token. When given, it must be the running attempt's (else
    /// `lease_mismatch`) and the lines record that attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<LeaseToken>,
}

/// A validated line, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogLine {
    /// When it was written; `None`: the store's now.
    pub at: Option<Timestamp>,
    /// Its level.
    pub level: LogLevel,
    /// Its text (checked).
    pub message: String,
}

/// A stored line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// Position among the owner's lines, from 1; the cursor for `after`.
    pub seq: u64,
    /// When it was written.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// Its level.
    pub level: LogLevel,
    /// Its text.
    pub message: String,
    /// The job attempt that wrote it (lines sent with a lease token); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

/// Answer of an append: the numbers the lines got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogAppended {
    /// The first appended line's `seq`.
    pub first_seq: u64,
    /// The last appended line's `seq`.
    pub last_seq: u64,
}

/// A page of lines, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPage {
    /// The lines with `seq` greater than `after`, oldest first.
    pub lines: Vec<LogLine>,
    /// When the page is full: the `after` of the next page (the last line's `seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// Checks the lines of an append: 1 to [`MAX_LINES_PER_APPEND`] of them, each message at most
/// [`MAX_MESSAGE_BYTES`] bytes without NUL. Errors name the field (`lines`, `lines[3].message`).
pub fn validate_lines(lines: Vec<LogLineRequest>) -> Result<Vec<NewLogLine>, ValidationError> {
    if lines.is_empty() || lines.len() > MAX_LINES_PER_APPEND {
        return Err(ValidationError::invalid(
            "lines",
            format!("must hold 1 to {MAX_LINES_PER_APPEND} lines"),
        ));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            check_message(&line.message)
                .map_err(|m| ValidationError::invalid(format!("lines[{i}].message"), m))?;
            Ok(NewLogLine {
                at: line.at,
                level: line.level.unwrap_or_default(),
                message: line.message,
            })
        })
        .collect()
}

fn check_message(message: &str) -> Result<(), String> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(format!("must be at most {MAX_MESSAGE_BYTES} bytes"));
    }
    if message.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    Ok(())
}

/// Checks a read's page size (`None`: [`DEFAULT_READ_LIMIT`]).
pub fn read_limit(limit: Option<u32>) -> Result<u32, ValidationError> {
    match limit.unwrap_or(DEFAULT_READ_LIMIT) {
        n @ 1..=MAX_READ_LIMIT => Ok(n),
        _ => Err(ValidationError::invalid(
            "limit",
            format!("must be between 1 and {MAX_READ_LIMIT}"),
        )),
    }
}

/// The oldest `seq` an owner keeps once its newest line is `last_seq`: lines below it are dropped.
pub fn oldest_kept(last_seq: u64) -> u64 {
    last_seq.saturating_sub(MAX_LINES_KEPT) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> LogLineRequest {
        LogLineRequest {
            message: message.into(),
            level: None,
            at: None,
        }
    }

    #[test]
    fn level_defaults_to_info_and_round_trips() {
        let lines = validate_lines(vec![line("a")]).unwrap();
        assert_eq!(lines[0].level, LogLevel::Info);
        for level in [
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ] {
            assert_eq!(level.as_str().parse::<LogLevel>(), Ok(level));
            assert_eq!(
                serde_json::to_string(&level).unwrap(),
                format!("\"{}\"", level.as_str())
            );
        }
        assert!("fatal".parse::<LogLevel>().is_err());
    }

    #[test]
    fn batch_size_is_bounded() {
        assert_eq!(validate_lines(vec![]).unwrap_err().field, "lines");
        let many = vec![line("x"); MAX_LINES_PER_APPEND + 1];
        assert_eq!(validate_lines(many).unwrap_err().field, "lines");
        let most = vec![line("x"); MAX_LINES_PER_APPEND];
        assert_eq!(validate_lines(most).unwrap().len(), MAX_LINES_PER_APPEND);
    }

    #[test]
    fn messages_are_bounded_and_without_nul() {
        let longest = "é".repeat(MAX_MESSAGE_BYTES / 2);
        assert!(validate_lines(vec![line(&longest)]).is_ok());
        let err = validate_lines(vec![line("ok"), line(&format!("{longest}x"))]).unwrap_err();
        assert_eq!(err.field, "lines[1].message");
        let err = validate_lines(vec![line("a\0b")]).unwrap_err();
        assert_eq!(err.field, "lines[0].message");
        assert!(
            validate_lines(vec![line("")]).is_ok(),
            "a blank line is a line"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = r#"{"lines":[{"message":"a","colour":"red"}]}"#;
        assert!(serde_json::from_str::<LogAppendRequest>(bad).is_err());
        let bad = r#"{"lines":[],"extra":1}"#;
        assert!(serde_json::from_str::<LogAppendRequest>(bad).is_err());
        let bad = r#"{"lines":[{"message":"a","level":"fatal"}]}"#;
        assert!(serde_json::from_str::<LogAppendRequest>(bad).is_err());
        let good = r#"{"lines":[{"message":"a","level":"warn","at":"2026-01-01T00:00:00Z"}]}"#;
        let request: LogAppendRequest = serde_json::from_str(good).unwrap();
        assert_eq!(request.lines[0].level, Some(LogLevel::Warn));
    }

    #[test]
    fn read_limit_is_bounded() {
        assert_eq!(read_limit(None), Ok(DEFAULT_READ_LIMIT));
        assert_eq!(read_limit(Some(MAX_READ_LIMIT)), Ok(MAX_READ_LIMIT));
        assert_eq!(read_limit(Some(0)).unwrap_err().field, "limit");
        assert!(read_limit(Some(MAX_READ_LIMIT + 1)).is_err());
    }

    #[test]
    fn the_newest_lines_are_kept() {
        assert_eq!(oldest_kept(0), 1);
        assert_eq!(oldest_kept(1), 1);
        assert_eq!(oldest_kept(MAX_LINES_KEPT), 1);
        assert_eq!(oldest_kept(MAX_LINES_KEPT + 5), 6);
    }
}
