//! Extractors whose rejection is an [`AppError`], so a bad body, query or path gets the same problem+json
//! answer as any other refusal.
//!
//! Invariant: no input makes these panic. Bodies are read up to the route's [`axum::extract::DefaultBodyLimit`]
//! only, and parsed from bytes (invalid UTF-8 is a syntax error, not a panic); JSON errors name the field by its
//! JSON path (`jobs[3].delay`), query errors by the parameter.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use offload_core::JobId;
use offload_core::spec::validate_queue_name;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A JSON body: requires a JSON `Content-Type`, reads the body within the route's limit, and deserializes
/// it with the path of any offending field.
#[derive(Debug)]
pub(crate) struct Json<T>(pub(crate) T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !has_json_content_type(req.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        if let Some(encoding) = content_encoding(req.headers()) {
            return Err(AppError::UnsupportedEncoding(encoding));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::TooLarge {
                    field: None,
                    message: "the request body exceeds this route's size limit".into(),
                }
            } else if timed_out(&rejection) {
                AppError::RequestTimeout
            } else {
                AppError::MalformedJson("the request body could not be read".into())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// True when reading the body failed because the client stopped sending it (the connection's body-read
/// deadline, see `crate::serve`).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The body's `Content-Encoding` when it is anything but `identity`: bodies are read as they come, never
/// decompressed, so an encoded body is refused (415) rather than parsed as if it were JSON.
fn content_encoding(headers: &HeaderMap) -> Option<String> {
    let values = headers.get_all(header::CONTENT_ENCODING);
    let encodings = values
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|e| e.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
        .collect::<Vec<_>>();
    (!encodings.is_empty()).then(|| encodings.join(", "))
}

/// `application/json` or any `application/*+json`, with or without parameters such as `charset`.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.as_bytes();
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case(b"json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// Deserializes a whole JSON document: syntax errors (including invalid UTF-8, truncation and trailing
/// characters) are `malformed_json`, wrong or missing fields `invalid_field` naming the field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = json_message(&inner);
        match inner.classify() {
            serde_json::error::Category::Data => field_error(&path, message),
            // A string or key that is JSON but not Unicode: the JSON rule's refusal, naming the field.
            _ if is_lone_surrogate(&message) => field_error(
                &path,
                offload_core::json_rule::JsonRuleError::LoneSurrogate.to_string(),
            ),
            _ => AppError::MalformedJson(inner.to_string()),
        }
    })?;
    de.end()
        .map_err(|e| AppError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// serde_json's refusals of a `\uD800`-`\uDFFF` escape outside a surrogate pair in a string it decodes.
fn is_lone_surrogate(message: &str) -> bool {
    message == "lone leading surrogate in hex escape" || message == "unexpected end of hex escape"
}

/// serde_json's message without the " at line L column C" it appends (the field path says where).
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => full,
    }
}

/// An `invalid_field` from a deserializer error at `path` (`.` is the root). A missing or repeated field is
/// reported at the field's own path, not its parent's.
fn field_error(path: &str, message: String) -> AppError {
    let parent = if path == "." { None } else { Some(path) };
    let named = ["missing field `", "duplicate field `"]
        .into_iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.strip_suffix('`'));
    let field = match (parent, named) {
        (Some(parent), Some(name)) => Some(format!("{parent}.{name}")),
        (None, Some(name)) => Some(name.to_owned()),
        (parent, None) => parent.map(str::to_owned),
    };
    AppError::InvalidField { field, message }
}

/// A query string deserialized into `T`; errors name the parameter.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| field_error(&e.path().to_string(), e.inner().to_string()))
    }
}

/// The `{id}` of a job route. An id that is not a UUID names no job: 404, like an unknown one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobIdPath(pub(crate) JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let not_a_job_id = || {
            AppError::NotFound("the `id` in the path is not a job id (job ids are UUIDs)".into())
        };
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_a_job_id())?;
        raw.parse().map(JobIdPath).map_err(|_| not_a_job_id())
    }
}

/// The `{queue}` of a queue route, validated like a job's queue.
#[derive(Debug, Clone)]
pub(crate) struct QueuePath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for QueuePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(queue) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::invalid("queue", "is not valid UTF-8"))?;
        validate_queue_name(&queue).map_err(|m| AppError::invalid("queue", m))?;
        Ok(QueuePath(queue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields exist to be deserialized
    struct Outer {
        jobs: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields exist to be deserialized
    struct Inner {
        queue: String,
        n: Option<u8>,
    }

    fn field_of(json: &[u8]) -> (Option<String>, String) {
        match parse_json::<Outer>(json).unwrap_err() {
            AppError::InvalidField { field, message } => (field, message),
            other => panic!("expected invalid_field, got {other:?}"),
        }
    }

    #[test]
    fn data_errors_name_the_json_path() {
        assert_eq!(
            field_of(br#"{"jobs":[{"queue":"a"},{"queue":1}]}"#)
                .0
                .as_deref(),
            Some("jobs[1].queue")
        );
        assert_eq!(
            field_of(br#"{"jobs":[{"queue":"a","n":300}]}"#)
                .0
                .as_deref(),
            Some("jobs[0].n")
        );
        assert_eq!(
            field_of(br#"{"jobs":[{}]}"#).0.as_deref(),
            Some("jobs[0].queue")
        );
        assert_eq!(field_of(br#"{}"#).0.as_deref(), Some("jobs"));
        let (field, message) = field_of(br#"{"jobs":[],"jbos":1}"#);
        assert_eq!(field.as_deref(), Some("jbos"));
        assert!(message.contains("unknown field"), "{message}");
        assert!(!message.contains("line"), "{message}");
    }

    #[test]
    fn syntax_errors_are_malformed() {
        let cases: [&[u8]; 6] = [
            b"",
            b"{",
            b"{\"jobs\":[]} x",
            b"{\"jobs\":[{\"queue\":\"\xff\"}]}",
            b"\xef\xbb\xbf{}",
            b"nul",
        ];
        for body in cases {
            assert!(
                matches!(parse_json::<Outer>(body), Err(AppError::MalformedJson(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!(
            "{{\"jobs\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse_json::<Outer>(deep.as_bytes()).is_err());
        // Raw values (payloads, results) are skipped over iteratively, never built into a tree: depth is harmless.
        let raw = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_json::<Box<serde_json::value::RawValue>>(raw.as_bytes()).is_ok());
    }

    #[test]
    fn json_content_types() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            has_json_content_type(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/problem+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!with("application/+json"));
        assert!(!with("json"));
        assert!(!has_json_content_type(&HeaderMap::new()));
    }
}
