//! Bearer-token authentication of `/v1` routes.
//!
//! Invariant: when tokens are configured, no request under `/v1` reaches a handler (or learns whether its
//! route exists) without `Authorization: Bearer <token>` naming one of them. Tokens are compared as SHA-256
//! digests in constant time, so neither the content nor the length of a token leaks through timing.
//! `/metrics` needs a token too (it names every queue); `/healthz` stays open for load balancers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// The accepted tokens, as digests.
pub(crate) struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    /// `None` when no token is configured (authentication off). Empty tokens are dropped: they never match.
    pub(crate) fn new(tokens: &[String]) -> Option<Self> {
        if tokens.is_empty() {
            return None;
        }
        Some(Self {
            digests: tokens
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| digest(t.as_bytes()))
                .collect(),
        })
    }

    /// True when `presented` is one of the tokens. Looks at every token, whatever matches.
    pub(crate) fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        self.digests.iter().fold(false, |found, known| {
            found | constant_time_eq(known, &presented)
        })
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Middleware: refuses `/v1` requests without an accepted bearer token (401, `WWW-Authenticate: Bearer`).
pub(crate) async fn require_bearer(
    State(tokens): State<Arc<Tokens>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let protected = path == "/v1" || path.starts_with("/v1/") || path == crate::metrics::PATH;
    if protected {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| bearer_token(value.as_bytes()))
            .is_some_and(|token| tokens.accepts(token));
        if !presented {
            return AppError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    let token = token.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        let tokens = Tokens::new(&["alpha".to_owned(), String::new(), "beta".to_owned()]).unwrap();
        assert!(tokens.accepts(b"alpha"));
        assert!(tokens.accepts(b"beta"));
        assert!(!tokens.accepts(b""));
        assert!(!tokens.accepts(b"alph"));
        assert!(!tokens.accepts(b"alphaa"));
        assert!(Tokens::new(&[]).is_none());
    }

    #[test]
    fn parses_bearer_values() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }
}
