//! The one error type of the API, rendered as `application/problem+json`.
//!
//! Invariant: every failure a request can meet (a rejected body, a refused field, an engine or store error,
//! an unknown route) becomes an [`AppError`], and [`AppError::meta`] is the only place that decides its HTTP
//! status and stable `code`. Internal details (database messages) are logged, never sent.
//!
//! The codes and statuses are listed in the crate documentation.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use offload_core::api::Problem;
use offload_core::spec::{ValidationError, ValidationKind};
use offload_engine::EngineError;
use offload_store::StoreError;

/// Result of handlers.
pub(crate) type Result<T, E = AppError> = std::result::Result<T, E>;

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum AppError {
    /// The body is not JSON.
    MalformedJson(String),
    /// A field or parameter is not acceptable; `field` names it when one is to blame.
    InvalidField {
        field: Option<String>,
        message: String,
    },
    /// A field's value (`payload`, `result`) or the whole body (`field: None`) is too large.
    TooLarge {
        field: Option<String>,
        message: String,
    },
    /// The body is not declared as JSON.
    UnsupportedMediaType,
    /// The body is compressed or otherwise encoded (the `Content-Encoding` given).
    UnsupportedEncoding(String),
    /// The client did not send the promised body in time.
    RequestTimeout,
    /// The request line is longer than the connection layer reads.
    UriTooLong,
    /// No such job (or route).
    NotFound(String),
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// Missing or unknown bearer token.
    Unauthorized,
    /// The engine or the store refused or failed.
    Engine(EngineError),
    /// A bug of ours; the message is logged, not sent.
    Internal(String),
}

/// Status, stable code and title of an error.
struct Meta {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
}

const fn meta(status: StatusCode, code: &'static str, title: &'static str) -> Meta {
    Meta {
        status,
        code,
        title,
    }
}

const INTERNAL: Meta = meta(
    StatusCode::INTERNAL_SERVER_ERROR,
    "internal",
    "Internal error",
);

impl AppError {
    /// An `invalid_field` naming `field`.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The one mapping from errors to HTTP status and stable code.
    fn meta(&self) -> Meta {
        match self {
            AppError::MalformedJson(_) => {
                meta(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON")
            }
            AppError::InvalidField { .. } => meta(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "Invalid field",
            ),
            AppError::TooLarge { .. } => meta(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            AppError::UnsupportedMediaType | AppError::UnsupportedEncoding(_) => meta(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            AppError::RequestTimeout => meta(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
            ),
            AppError::UriTooLong => meta(StatusCode::URI_TOO_LONG, "uri_too_long", "URI too long"),
            AppError::NotFound(_) => meta(StatusCode::NOT_FOUND, "not_found", "Not found"),
            AppError::MethodNotAllowed => meta(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            AppError::Unauthorized => {
                meta(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            }
            AppError::Engine(EngineError::ShuttingDown) => meta(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "Shutting down",
            ),
            AppError::Engine(EngineError::Store(e)) => match e {
                StoreError::NotFound(_) => meta(StatusCode::NOT_FOUND, "not_found", "Not found"),
                StoreError::IdempotencyConflict { .. } => meta(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    "Idempotency key conflict",
                ),
                StoreError::LeaseMismatch => {
                    meta(StatusCode::CONFLICT, "lease_mismatch", "Lease mismatch")
                }
                StoreError::Transition(_) | StoreError::RunState { .. } => {
                    meta(StatusCode::CONFLICT, "invalid_state", "Invalid state")
                }
                StoreError::Unavailable(_) => meta(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Unavailable",
                ),
                _ => INTERNAL,
            },
            AppError::Engine(_) | AppError::Internal(_) => INTERNAL,
        }
    }

    /// The HTTP status this error is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.meta().status
    }

    /// The stable code, for answers that report errors per item (batch completion).
    pub(crate) fn code(&self) -> &'static str {
        self.meta().code
    }

    /// True for errors that are the server's or the store's fault (5xx) rather than the request's.
    pub(crate) fn is_server_error(&self) -> bool {
        self.meta().status.is_server_error()
    }

    /// The human explanation and the offending field. Logs what must not be sent.
    fn detail(self) -> (String, Option<String>) {
        match self {
            AppError::MalformedJson(message) => (format!("the body is not valid JSON: {message}"), None),
            AppError::InvalidField { field: Some(field), message }
            | AppError::TooLarge { field: Some(field), message } => (format!("`{field}`: {message}"), Some(field)),
            AppError::InvalidField { field: None, message } | AppError::TooLarge { field: None, message } => {
                (message, None)
            }
            AppError::UnsupportedMediaType => {
                ("the body must be JSON, sent with `Content-Type: application/json`".to_owned(), None)
            }
            AppError::UnsupportedEncoding(encoding) => (
                format!("`Content-Encoding: {encoding}` is not supported; send the body uncompressed"),
                None,
            ),
            AppError::RequestTimeout => (
                "the request body did not arrive in time; nothing was done".to_owned(),
                None,
            ),
            AppError::UriTooLong => (
                format!(
                    "the request line is longer than {} bytes; send long filters in a body",
                    crate::serve::MAX_REQUEST_LINE
                ),
                None,
            ),
            AppError::NotFound(message) => (message, None),
            AppError::MethodNotAllowed => ("this route does not accept this method".to_owned(), None),
            AppError::Unauthorized => {
                ("send a valid API token as `Authorization: Bearer <token>`".to_owned(), None)
            }
            AppError::Engine(EngineError::Store(StoreError::IdempotencyConflict { key, existing })) => (
                format!("`idempotency_key` `{key}` is already used by job {existing}, created from a different request"),
                Some("idempotency_key".to_owned()),
            ),
            AppError::Engine(EngineError::Store(StoreError::LeaseMismatch)) => (
                "`lease_token` does not match the job's current attempt (the lease expired and the job was \
                 rescued, or the attempt already ended); nothing was changed"
                    .to_owned(),
                Some("lease_token".to_owned()),
            ),
            AppError::Engine(EngineError::Store(StoreError::Unavailable(message))) => {
                tracing::warn!(error = %message, "store unavailable");
                ("the store is unavailable; nothing was written, try again".to_owned(), None)
            }
            AppError::Engine(
                e @ (EngineError::ShuttingDown
                | EngineError::Store(
                    StoreError::NotFound(_) | StoreError::Transition(_) | StoreError::RunState { .. },
                )),
            ) => (e.to_string(), None),
            AppError::Engine(e) => {
                tracing::error!(error = %e, "engine error");
                ("internal error".to_owned(), None)
            }
            AppError::Internal(message) => {
                tracing::error!(error = %message, "internal error");
                ("internal error".to_owned(), None)
            }
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(v) => v.into(),
            e => AppError::Engine(e),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Engine(EngineError::Store(e))
    }
}

impl From<ValidationError> for AppError {
    fn from(e: ValidationError) -> Self {
        match e.kind {
            ValidationKind::TooLarge => AppError::TooLarge {
                field: Some(e.field),
                message: e.message,
            },
            ValidationKind::Invalid => AppError::InvalidField {
                field: Some(e.field),
                message: e.message,
            },
        }
    }
}

impl AppError {
    /// The status and problem+json body of this error.
    fn problem(self) -> (StatusCode, Option<Vec<u8>>) {
        let Meta {
            status,
            code,
            title,
        } = self.meta();
        let (detail, field) = self.detail();
        let problem = Problem {
            kind: format!("urn:offload:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail,
            field,
        };
        // Serializing strings cannot fail; answer the status alone if it ever does.
        (status, serde_json::to_vec(&problem).ok())
    }

    /// A complete HTTP/1.1 answer with this error that closes the connection, for the connection layer,
    /// which answers before any request reaches the router (a request line too long to read).
    pub(crate) fn http1_bytes(self) -> Vec<u8> {
        let (status, body) = self.problem();
        let body = body.unwrap_or_default();
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default(),
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let unauthorized = matches!(self, AppError::Unauthorized);
        let (status, body) = self.problem();
        let Some(body) = body else {
            return status.into_response();
        };
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body,
        )
            .into_response();
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
