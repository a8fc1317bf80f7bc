//! What can go wrong when talking to the server.
//!
//! Invariant: an error the server explained (a `problem+json` body) always reaches the caller as
//! [`Error::Api`] with the server's stable `code` and human `detail` intact, so callers branch on codes and show
//! details without parsing text.

use std::error::Error as _;
use std::fmt;
use std::io;

use offload_core::api::Problem;

/// Stable problem codes the client itself reacts to. The server may send others.
pub mod code {
    /// A request field is invalid; the problem's `field` names it.
    pub const INVALID_FIELD: &str = "invalid_field";
    /// No such job (or queue).
    pub const NOT_FOUND: &str = "not_found";
    /// The fencing token is stale: the job was rescued, finished or claimed again.
    pub const LEASE_MISMATCH: &str = "lease_mismatch";
    /// The idempotency key was used before with a different request.
    pub const IDEMPOTENCY_CONFLICT: &str = "idempotency_conflict";
}

/// A client result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error and explained it.
    #[error("{} ({})", problem.detail, problem.code)]
    Api {
        /// HTTP status of the answer.
        status: u16,
        /// The server's explanation (boxed: it keeps every `Result` of this crate small).
        problem: Box<Problem>,
    },
    /// The request got no complete answer: the server could not be reached, the connection broke, or it timed
    /// out.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server answered, but not with what this client expects (an unknown body shape, or an error status
    /// without a problem document, as a proxy or another program on that port would send).
    #[error("unexpected answer from the server (HTTP {status}): {message}")]
    Decode {
        /// HTTP status of the answer.
        status: u16,
        /// What was wrong with it.
        message: String,
    },
    /// The server URL given to [`crate::Client::new`] is not usable.
    #[error("invalid server URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The token given to [`crate::Client::with_token`] cannot be sent in an HTTP header.
    #[error("the API token contains characters that cannot be sent in an HTTP header")]
    InvalidToken,
    /// A value could not be serialized to JSON (a payload or a result); nothing was sent.
    #[error("cannot encode {what} as JSON: {message}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Why it failed.
        message: String,
    },
}

impl Error {
    /// The server's problem, when it sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The server's stable problem code, e.g. `lease_mismatch` (see [`code`]).
    pub fn code(&self) -> Option<&str> {
        self.problem().map(|p| p.code.as_str())
    }

    /// The server's human explanation.
    pub fn detail(&self) -> Option<&str> {
        self.problem().map(|p| p.detail.as_str())
    }

    /// The HTTP status, when the server answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the server says the lease token is stale (the job was rescued or already finished).
    pub fn is_lease_mismatch(&self) -> bool {
        self.code() == Some(code::LEASE_MISMATCH)
    }

    /// True when the job (or queue) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(code::NOT_FOUND)
            || (self.problem().is_some() && self.status() == Some(404))
    }

    /// True when the request never got an answer (worth retrying later).
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport(_))
    }
}

/// A request that got no complete answer.
#[derive(Debug)]
pub struct TransportError {
    server: String,
    kind: TransportKind,
    source: reqwest::Error,
}

/// What kind of transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// No connection could be made (refused, unknown host, unreachable).
    Connect,
    /// No answer within the request's time limit.
    Timeout,
    /// Anything else: connection reset, malformed HTTP.
    Other,
}

impl TransportError {
    pub(crate) fn new(server: &str, source: reqwest::Error) -> Self {
        let kind = if source.is_timeout() {
            TransportKind::Timeout
        } else if source.is_connect() {
            TransportKind::Connect
        } else {
            TransportKind::Other
        };
        Self {
            server: server.to_owned(),
            kind,
            source,
        }
    }

    /// What kind of failure it was.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The most specific reason in the error's chain, in plain words (`connection refused`).
    pub fn reason(&self) -> String {
        if self.kind == TransportKind::Timeout {
            return "timed out".to_owned();
        }
        let mut deepest: &dyn std::error::Error = &self.source;
        let mut cur = self.source.source();
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<io::Error>()
                && let Some(words) = io_words(io.kind())
            {
                return words.to_owned();
            }
            deepest = err;
            cur = err.source();
        }
        deepest.to_string()
    }
}

fn io_words(kind: io::ErrorKind) -> Option<&'static str> {
    Some(match kind {
        io::ErrorKind::ConnectionRefused => "connection refused",
        io::ErrorKind::ConnectionReset => "connection reset by the server",
        io::ErrorKind::ConnectionAborted => "connection aborted",
        io::ErrorKind::NotConnected => "not connected",
        io::ErrorKind::BrokenPipe => "connection closed by the server",
        io::ErrorKind::TimedOut => "timed out",
        io::ErrorKind::AddrNotAvailable => "address not available",
        io::ErrorKind::HostUnreachable => "host unreachable",
        io::ErrorKind::NetworkUnreachable => "network unreachable",
        io::ErrorKind::UnexpectedEof => "connection closed before a complete answer",
        _ => return None,
    })
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TransportKind::Connect => write!(
                f,
                "cannot reach the server at {}: {}",
                self.server,
                self.reason()
            ),
            TransportKind::Timeout => {
                write!(f, "no answer from the server at {} in time", self.server)
            }
            TransportKind::Other => write!(
                f,
                "request to the server at {} failed: {}",
                self.server,
                self.reason()
            ),
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, detail: &str) -> Error {
        Error::Api {
            status,
            problem: Box::new(Problem {
                kind: format!("urn:offload:problem:{code}"),
                title: "t".into(),
                status,
                code: code.into(),
                detail: detail.into(),
                field: None,
            }),
        }
    }

    #[test]
    fn api_errors_show_detail_and_code() {
        let err = api(422, "invalid_field", "queue: must not be empty");
        assert_eq!(err.to_string(), "queue: must not be empty (invalid_field)");
        assert_eq!(err.code(), Some("invalid_field"));
        assert_eq!(err.status(), Some(422));
        assert!(!err.is_lease_mismatch());
        assert!(api(409, "lease_mismatch", "x").is_lease_mismatch());
        assert!(api(404, "job_not_found", "x").is_not_found());
    }

    #[test]
    fn decode_errors_keep_the_status() {
        let err = Error::Decode {
            status: 502,
            message: "text/html body".into(),
        };
        assert_eq!(err.status(), Some(502));
        assert_eq!(err.code(), None);
    }
}
