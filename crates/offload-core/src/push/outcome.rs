//! What a delivery's answer means for the job: the outcome rules of push delivery, as one pure function.
//!
//! | answer | outcome | retried |
//! | --- | --- | --- |
//! | 2xx | succeeded; status and body (first 64 KiB) are the result | - |
//! | 3xx | failed: redirects are not followed | no |
//! | 408, 429, 5xx | failed | yes, after `Retry-After` if given, else the job's backoff |
//! | other 4xx | failed | no |
//! | timeout, connection or TLS error | failed | yes, with the job's backoff |
//! | address refused by the outbound policy | failed | no |
//!
//! Invariant: [`classify`] decides every delivery; the dispatcher only carries out its decision.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::state::{Failure, FailureCause};

/// Most bytes of a response body kept (in the result on success, in the error on failure).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How one delivery attempt ended, as the HTTP client saw it.
#[derive(Debug, Clone, Copy)]
pub enum Delivery<'a> {
    /// The endpoint answered with a status.
    Response(Response<'a>),
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection could not be made or broke (DNS, refused, reset, TLS); the text says which.
    Connect(&'a str),
    /// The outbound address policy refused every address of the target; the text says why.
    Refused(&'a str),
}

/// The parts of an HTTP answer the outcome depends on.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// Status code.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<&'a str>,
    /// The `Location` header, if any (reported for redirects).
    pub location: Option<&'a str>,
    /// The first [`MAX_RESPONSE_BODY`] bytes of the body.
    pub body: &'a [u8],
    /// True when the body was longer than what `body` holds.
    pub truncated: bool,
}

/// The decision for one delivery.
#[derive(Debug, Clone)]
pub struct Classified {
    /// Complete (with this result) or fail the attempt.
    pub outcome: PushOutcome,
    /// The `result` label of `offload_push_deliveries_total`: `2xx`, `3xx`, `4xx`, `5xx`, `timeout`,
    /// `connect` or `refused`.
    pub label: &'static str,
}

/// How the attempt ends.
#[derive(Debug, Clone)]
pub enum PushOutcome {
    /// The job succeeded; the result records the answer (`{"status", "body", "truncated"}`).
    Succeeded(Box<RawValue>),
    /// The attempt failed; the retry policy decides what follows.
    Failed(Failure),
}

/// Decides what a delivery means. `now` is the instant the answer arrived (for `Retry-After` dates).
pub fn classify(delivery: Delivery<'_>, now: Timestamp) -> Classified {
    match delivery {
        Delivery::Response(r) => classify_response(&r, now),
        Delivery::Timeout => failed("timeout", "request timed out".to_owned(), true, None),
        Delivery::Connect(why) => {
            failed("connect", format!("connection failed: {why}"), true, None)
        }
        Delivery::Refused(why) => failed(
            "refused",
            format!("refused by the outbound address policy: {why}"),
            false,
            None,
        ),
    }
}

fn classify_response(r: &Response<'_>, now: Timestamp) -> Classified {
    let status = r.status;
    match status {
        200..=299 => Classified {
            outcome: PushOutcome::Succeeded(result_record(r)),
            label: "2xx",
        },
        300..=399 => {
            let location = r.location.map(|l| format!(" to {l}")).unwrap_or_default();
            failed(
                "3xx",
                format!(
                    "HTTP {status}: redirect{location} not followed (give the final URL as the target){}",
                    body_suffix(r)
                ),
                false,
                None,
            )
        }
        408 | 429 => failed(
            "4xx",
            format!("HTTP {status}{}", body_suffix(r)),
            true,
            retry_after(r, now),
        ),
        400..=499 => failed(
            "4xx",
            format!("HTTP {status}{}", body_suffix(r)),
            false,
            None,
        ),
        // 5xx, and anything outside the defined classes, is the endpoint's trouble: retry.
        _ => failed(
            "5xx",
            format!("HTTP {status}{}", body_suffix(r)),
            true,
            retry_after(r, now),
        ),
    }
}

fn failed(
    label: &'static str,
    error: String,
    retryable: bool,
    retry_after: Option<Duration>,
) -> Classified {
    Classified {
        outcome: PushOutcome::Failed(Failure {
            error,
            retry_after,
            retryable,
            cause: FailureCause::Worker,
        }),
        label,
    }
}

fn retry_after(r: &Response<'_>, now: Timestamp) -> Option<Duration> {
    r.retry_after.and_then(|v| parse_retry_after(v, now))
}

/// `: <body>` for an error message (nothing for an empty body), with a note when the body was cut.
fn body_suffix(r: &Response<'_>) -> String {
    if r.body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(r.body);
    let mut end = text.len().min(MAX_RESPONSE_BODY);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if r.truncated || end < text.len() {
        format!(" [body cut at {MAX_RESPONSE_BODY} bytes]")
    } else {
        String::new()
    };
    format!(": {}{cut}", &text[..end])
}

/// The result of a successful delivery.
#[derive(Serialize)]
struct Record<'a> {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Body<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// A response body in a result: the JSON itself when the whole body is JSON, otherwise its text.
#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Json(&'a RawValue),
    Text(std::borrow::Cow<'a, str>),
}

/// `{"status": 200, "body": ..., "truncated": true}`: `body` is absent for an empty body, the JSON value
/// when the complete body is JSON that meets the JSON rule inside the record (`crate::json_rule`: at most
/// [`MAX_DEPTH`](crate::json_rule::MAX_DEPTH) deep with the record, no lone surrogate), its text otherwise (invalid UTF-8 replaced); `truncated` is present only
/// when the body was longer than [`MAX_RESPONSE_BODY`] bytes.
fn result_record(r: &Response<'_>) -> Box<RawValue> {
    let text = String::from_utf8_lossy(r.body);
    let body = if r.body.is_empty() {
        None
    } else if !r.truncated
        && crate::json_rule::check_within(&text, crate::json_rule::MAX_DEPTH - 1).is_ok()
        && let Ok(json) = serde_json::from_str::<&RawValue>(text.trim())
    {
        Some(Body::Json(json))
    } else {
        Some(Body::Text(text.clone()))
    };
    let record = Record {
        status: r.status,
        body,
        truncated: r.truncated,
    };
    let json =
        serde_json::to_string(&record).unwrap_or_else(|_| format!(r#"{{"status":{}}}"#, r.status));
    RawValue::from_string(json).unwrap_or_else(|_| {
        RawValue::from_string(format!(r#"{{"status":{}}}"#, r.status)).expect("a number is JSON")
    })
}

/// Reads a `Retry-After` value: delay seconds (`"120"`) or an HTTP date (`"Wed, 21 Oct 2026 07:28:00 GMT"`,
/// also the obsolete RFC 850 and asctime forms). A date in the past means now; values above
/// [`MAX_RETRY_AFTER`] are cut to it; anything else is ignored (`None`).
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        let at = Timestamp::try_from(at).ok()?;
        let ahead = now.duration_until(at);
        Duration::try_from(ahead).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn response(status: u16, body: &[u8]) -> Response<'_> {
        Response {
            status,
            retry_after: None,
            location: None,
            body,
            truncated: false,
        }
    }

    fn decide(d: Delivery<'_>) -> (&'static str, Option<Failure>, Option<String>) {
        let c = classify(d, now());
        match c.outcome {
            PushOutcome::Succeeded(r) => (c.label, None, Some(r.get().to_owned())),
            PushOutcome::Failed(f) => (c.label, Some(f), None),
        }
    }

    #[test]
    fn two_hundreds_succeed_with_status_and_body() {
        let (label, failure, result) =
            decide(Delivery::Response(response(200, br#"{"ok": true}"#)));
        assert_eq!((label, failure), ("2xx", None));
        assert_eq!(result.unwrap(), r#"{"status":200,"body":{"ok": true}}"#);
        let (_, _, result) = decide(Delivery::Response(response(204, b"")));
        assert_eq!(result.unwrap(), r#"{"status":204}"#);
        let (_, _, result) = decide(Delivery::Response(response(201, b"created \"x\"")));
        assert_eq!(result.unwrap(), r#"{"status":201,"body":"created \"x\""}"#);
        let cut = Response {
            truncated: true,
            ..response(200, b"{\"partial\": ")
        };
        let (_, _, result) = decide(Delivery::Response(cut));
        assert_eq!(
            result.unwrap(),
            r#"{"status":200,"body":"{\"partial\": ","truncated":true}"#
        );
    }

    #[test]
    fn bodies_that_break_the_json_rule_are_kept_as_text() {
        let limit = crate::json_rule::MAX_DEPTH;
        // The record adds one level: a body at the limit minus one is still JSON in the result.
        let fits = format!("{}{}", "[".repeat(limit - 1), "]".repeat(limit - 1));
        let (_, _, result) = decide(Delivery::Response(response(200, fits.as_bytes())));
        assert_eq!(
            result.unwrap(),
            format!(r#"{{"status":200,"body":{fits}}}"#)
        );
        for body in [
            format!("{}{}", "[".repeat(limit), "]".repeat(limit)),
            format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)),
            r#"{"a":"\ud800"}"#.to_owned(),
            r#"{"\ud800":1}"#.to_owned(),
        ] {
            let (_, _, result) = decide(Delivery::Response(response(200, body.as_bytes())));
            let result = result.unwrap();
            assert_eq!(crate::json_rule::check(&result), Ok(()), "{result:.80}");
            let value: serde_json::Value = serde_json::from_str(&result).unwrap();
            assert_eq!(value["body"].as_str(), Some(body.as_str()), "kept as text");
        }
    }

    #[test]
    fn retry_classes_and_final_failures() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            let (_, f, _) = decide(Delivery::Response(response(status, b"busy")));
            let f = f.unwrap();
            assert!(f.retryable, "{status}");
            assert_eq!(f.error, format!("HTTP {status}: busy"));
        }
        for status in [400, 401, 403, 404, 409, 410, 422] {
            let (label, f, _) = decide(Delivery::Response(response(status, b"")));
            assert_eq!(label, "4xx");
            let f = f.unwrap();
            assert!(!f.retryable, "{status}");
            assert_eq!(f.error, format!("HTTP {status}"));
        }
        for status in [301, 302, 303, 307, 308] {
            let r = Response {
                location: Some("https://elsewhere.example/x"),
                ..response(status, b"")
            };
            let (label, f, _) = decide(Delivery::Response(r));
            let f = f.unwrap();
            assert_eq!(label, "3xx");
            assert!(!f.retryable);
            assert!(
                f.error.contains("https://elsewhere.example/x"),
                "{}",
                f.error
            );
        }
        let (label, f, _) = decide(Delivery::Timeout);
        assert_eq!(label, "timeout");
        assert!(f.unwrap().retryable);
        let (label, f, _) = decide(Delivery::Connect("connection reset by peer"));
        assert_eq!(label, "connect");
        let f = f.unwrap();
        assert!(f.retryable && f.error.contains("connection reset"));
        let (label, f, _) = decide(Delivery::Refused("10.0.0.1 is a private address"));
        assert_eq!(label, "refused");
        assert!(!f.unwrap().retryable);
    }

    #[test]
    fn retry_after_is_honoured_on_retryable_answers_only() {
        let r = Response {
            retry_after: Some("120"),
            ..response(503, b"")
        };
        let (_, f, _) = decide(Delivery::Response(r));
        assert_eq!(f.unwrap().retry_after, Some(Duration::from_secs(120)));
        let r = Response {
            retry_after: Some("Mon, 01 Jun 2026 12:05:00 GMT"),
            ..response(429, b"")
        };
        let (_, f, _) = decide(Delivery::Response(r));
        assert_eq!(f.unwrap().retry_after, Some(Duration::from_secs(300)));
        let r = Response {
            retry_after: Some("120"),
            ..response(400, b"")
        };
        assert_eq!(decide(Delivery::Response(r)).1.unwrap().retry_after, None);
    }

    #[test]
    fn retry_after_forms() {
        let p = |v: &str| parse_retry_after(v, now());
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(p(" 42 "), Some(Duration::from_secs(42)));
        assert_eq!(
            p("Mon, 01 Jun 2026 12:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            p("Monday, 01-Jun-26 12:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p("Mon Jun  1 12:00:30 2026"), Some(Duration::from_secs(30)));
        assert_eq!(
            p("Sun, 31 May 2026 12:00:00 GMT"),
            Some(Duration::ZERO),
            "past dates mean now"
        );
        assert_eq!(p("99999999999999999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(p("-5"), None);
        assert_eq!(p("soon"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn error_bodies_are_kept_up_to_the_limit() {
        let big = vec![b'x'; MAX_RESPONSE_BODY];
        let r = Response {
            truncated: true,
            ..response(500, &big)
        };
        let (_, f, _) = decide(Delivery::Response(r));
        let error = f.unwrap().error;
        assert!(error.starts_with("HTTP 500: xxx"));
        assert!(error.ends_with("[body cut at 65536 bytes]"));
        assert!(error.len() < MAX_RESPONSE_BODY + 100);
        assert!(error.len() <= crate::api::MAX_ERROR_LEN);
        // Invalid UTF-8 grows when replaced; the text is still cut to the limit.
        let bad = vec![0xff; MAX_RESPONSE_BODY];
        let (_, f, _) = decide(Delivery::Response(response(500, &bad)));
        assert!(f.unwrap().error.len() <= crate::api::MAX_ERROR_LEN);
    }
}
