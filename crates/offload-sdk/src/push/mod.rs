//! Receiving pushed jobs: verify that a request really is an Offload delivery before acting on it.
//!
//! Offload signs every push delivery with the [Standard Webhooks](https://www.standardwebhooks.com/) scheme:
//! - `webhook-id`: the message id, stable across retries of one job (use it to de-duplicate);
//! - `webhook-timestamp`: when it was signed, in Unix seconds;
//! - `webhook-signature`: one or more space-separated `v1,<base64 HMAC-SHA256>` signatures of
//!   `{webhook-id}.{webhook-timestamp}.{body}`, one per active server secret (several during a rotation).
//!
//! [`Verifier`] checks a delivery against your secret(s) (`whsec_<base64>`, as Offload shows them), refusing
//! timestamps outside a tolerance (5 minutes by default) so a captured request cannot be replayed later.
//! Signatures are compared in constant time. With the `axum` feature, [`Delivery`] is an extractor that does
//! all of it before your handler runs:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, http::StatusCode, routing::post};
//! use offload_sdk::push::{Delivery, Verifier};
//!
//! #[derive(serde::Deserialize)]
//! struct Welcome { user: u64 }
//!
//! async fn welcome(delivery: Delivery<Welcome>) -> StatusCode {
//!     println!("welcome user {} (message {})", delivery.payload.user, delivery.id);
//!     StatusCode::OK // any 2xx completes the job; 5xx makes Offload retry it
//! }
//!
//! # fn app() -> Result<Router, offload_sdk::push::SecretError> {
//! let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let app: Router = Router::new().route("/jobs/welcome", post(welcome)).with_state(verifier);
//! # Ok(app) }
//! # }
//! ```
//!
//! Without axum, call [`Verifier::verify`] with the request's headers and raw body bytes (verify the bytes as
//! received: re-encoded JSON would not match the signature).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The message id header.
pub const HEADER_ID: &str = "webhook-id";
/// The signing time header (Unix seconds).
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The signatures header.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How far a delivery's timestamp may be from the receiver's clock, by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The prefix of secrets as Offload shows them.
const SECRET_PREFIX: &str = "whsec_";
/// The only signature version of the scheme.
const VERSION: &str = "v1";
/// Signatures looked at per header at most (a rotation has two or three; more is an attack on our CPU).
const MAX_SIGNATURES: usize = 16;

/// A secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Not base64 (after the optional `whsec_` prefix).
    #[error("the secret is not valid base64 after its `whsec_` prefix")]
    NotBase64,
    /// Empty.
    #[error("the secret is empty")]
    Empty,
    /// No secret at all was given.
    #[error("no secret given")]
    None,
}

/// Why a request is not accepted as an Offload delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is not printable ASCII, or the timestamp is not an integer.
    #[error("invalid header {0}")]
    InvalidHeader(&'static str),
    /// The timestamp is older than the tolerance allows (a replay, or a badly wrong clock).
    #[error("the delivery's timestamp is too old")]
    TooOld,
    /// The timestamp is further in the future than the tolerance allows.
    #[error("the delivery's timestamp is too far in the future")]
    TooNew,
    /// No `v1` signature matches any of the secrets: a forged or altered request, or the wrong secret.
    #[error("no valid signature")]
    BadSignature,
}

/// What a verified delivery says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `webhook-id`: the same for every delivery of one job, so a receiver can de-duplicate.
    pub id: String,
    /// The `webhook-timestamp`, in Unix seconds.
    pub timestamp: i64,
}

/// Checks Offload's signatures with one or more secrets. Cheap to clone (the keys are shared).
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<[Vec<u8>]>,
    tolerance: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Verifier")
            .field("secrets", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Verifier {
    /// A verifier for one secret, `whsec_<base64>` (the prefix is optional).
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        Self::with_secrets([secret])
    }

    /// A verifier that accepts a signature by any of `secrets`: during a rotation, the old and the new one.
    pub fn with_secrets<I, S>(secrets: I) -> Result<Self, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = secrets
            .into_iter()
            .map(|s| decode_secret(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretError::None);
        }
        Ok(Self {
            keys: keys.into(),
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// Accepts timestamps up to `tolerance` away from the local clock (default [`DEFAULT_TOLERANCE`]).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a delivery from its headers and raw body, against the local clock.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, VerifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.verify_at(headers, body, now)
    }

    /// [`Verifier::verify`] with the current time given, in Unix seconds.
    pub fn verify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .ok_or(VerifyError::MissingHeader(name))?
                .to_str()
                .map_err(|_| VerifyError::InvalidHeader(name))
        };
        self.verify_parts(
            header(HEADER_ID)?,
            header(HEADER_TIMESTAMP)?,
            header(HEADER_SIGNATURE)?,
            body,
            now,
        )
    }

    /// Verifies a delivery from the three header values and the raw body, for frameworks with other header
    /// types; `now` in Unix seconds.
    pub fn verify_parts(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyError> {
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::InvalidHeader(HEADER_TIMESTAMP))?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(ts) > tolerance {
            return Err(VerifyError::TooOld);
        }
        if ts.saturating_sub(now) > tolerance {
            return Err(VerifyError::TooNew);
        }
        let candidates: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == VERSION)
            .take(MAX_SIGNATURES)
            .filter_map(|(_, sig)| BASE64.decode(sig).ok())
            .collect();
        for key in self.keys.iter() {
            let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::BadSignature)?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            // `verify_slice` compares in constant time.
            if candidates
                .iter()
                .any(|sig| mac.clone().verify_slice(sig).is_ok())
            {
                return Ok(Verified {
                    id: id.to_owned(),
                    timestamp: ts,
                });
            }
        }
        Err(VerifyError::BadSignature)
    }
}

/// Verifies one delivery with one secret, against the local clock: the whole check in one call.
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<Verified, VerifyError> {
    Verifier::new(secret)
        .map_err(|_| VerifyError::BadSignature)?
        .verify(headers, body)
}

fn decode_secret(secret: &str) -> Result<Vec<u8>, SecretError> {
    let secret = secret.trim();
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
    if key.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(key)
}

#[cfg(feature = "axum")]
mod extract;

#[cfg(feature = "axum")]
pub use extract::{Delivery, Rejection};

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_767_225_600;

    /// Signs as Offload does, with the reference implementation.
    fn signed(secret: &str, id: &str, ts: i64, body: &[u8]) -> HeaderMap {
        let sig = standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign(id, ts, body)
            .unwrap();
        headers(id, &ts.to_string(), &sig)
    }

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_ID, HeaderValue::from_str(id).unwrap());
        h.insert(HEADER_TIMESTAMP, HeaderValue::from_str(ts).unwrap());
        h.insert(HEADER_SIGNATURE, HeaderValue::from_str(sig).unwrap());
        h
    }

    #[test]
    fn what_the_reference_implementation_signs_verifies() {
        let body = br#"{"user": 42, "name": "Ada \u00e9"}"#;
        let h = signed(SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, body);
        let v = Verifier::new(SECRET).unwrap();
        assert_eq!(
            v.verify_at(&h, body, NOW),
            Ok(Verified {
                id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".into(),
                timestamp: NOW
            })
        );
        // The prefix is optional, as in the reference implementation.
        let bare = Verifier::new(SECRET.trim_start_matches("whsec_")).unwrap();
        assert!(bare.verify_at(&h, body, NOW).is_ok());
    }

    #[test]
    fn tampered_bodies_wrong_secrets_and_altered_headers_are_refused() {
        let body = br#"{"user":42}"#;
        let h = signed(SECRET, "msg_1", NOW, body);
        let v = Verifier::new(SECRET).unwrap();
        assert_eq!(
            v.verify_at(&h, br#"{"user":43}"#, NOW),
            Err(VerifyError::BadSignature)
        );
        let other = Verifier::new("whsec_c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1zYW1l").unwrap();
        assert_eq!(
            other.verify_at(&h, body, NOW),
            Err(VerifyError::BadSignature)
        );
        let mut moved = h.clone();
        moved.insert(HEADER_ID, HeaderValue::from_static("msg_2"));
        assert_eq!(
            v.verify_at(&moved, body, NOW),
            Err(VerifyError::BadSignature)
        );
        let sig = h[HEADER_SIGNATURE].to_str().unwrap().to_owned();
        let retimed = headers("msg_1", &(NOW + 1).to_string(), &sig);
        assert_eq!(
            v.verify_at(&retimed, body, NOW),
            Err(VerifyError::BadSignature)
        );
        let unknown_version = headers("msg_1", &NOW.to_string(), &sig.replacen("v1,", "v2,", 1));
        assert_eq!(
            v.verify_at(&unknown_version, body, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let body = b"{}";
        let v = Verifier::new(SECRET).unwrap();
        let old = signed(SECRET, "m", NOW - 301, body);
        assert_eq!(v.verify_at(&old, body, NOW), Err(VerifyError::TooOld));
        let edge = signed(SECRET, "m", NOW - 300, body);
        assert!(v.verify_at(&edge, body, NOW).is_ok());
        let future = signed(SECRET, "m", NOW + 301, body);
        assert_eq!(v.verify_at(&future, body, NOW), Err(VerifyError::TooNew));
        let strict = v.clone().tolerance(Duration::from_secs(10));
        let h = signed(SECRET, "m", NOW - 11, body);
        assert_eq!(strict.verify_at(&h, body, NOW), Err(VerifyError::TooOld));
        // And against the real clock.
        let fresh = signed(SECRET, "m", now(), body);
        assert!(verify(SECRET, &fresh, body).is_ok());
        assert_eq!(verify(SECRET, &old, body), Err(VerifyError::TooOld));
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn rotation_accepts_any_active_secret_and_any_listed_signature() {
        let new = "whsec_bmV3LXNlY3JldC1hZnRlci10aGUtcm90YXRpb24=";
        let body = b"[1,2,3]";
        let old_sig = standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .sign("m", NOW, body)
            .unwrap();
        let new_sig = standardwebhooks::Webhook::new(new)
            .unwrap()
            .sign("m", NOW, body)
            .unwrap();
        // The sender lists both signatures during a rotation.
        let both = headers("m", &NOW.to_string(), &format!("{new_sig} {old_sig}"));
        assert!(
            Verifier::new(SECRET)
                .unwrap()
                .verify_at(&both, body, NOW)
                .is_ok()
        );
        assert!(
            Verifier::new(new)
                .unwrap()
                .verify_at(&both, body, NOW)
                .is_ok()
        );
        // The receiver holds both secrets while the sender still signs with the old one only.
        let receiver = Verifier::with_secrets([new, SECRET]).unwrap();
        let old_only = headers("m", &NOW.to_string(), &old_sig);
        assert!(receiver.verify_at(&old_only, body, NOW).is_ok());
        // Garbage entries around a good one do not matter.
        let noisy = headers(
            "m",
            &NOW.to_string(),
            &format!("v1,%%% x {old_sig} v1a,abc"),
        );
        assert!(receiver.verify_at(&noisy, body, NOW).is_ok());
    }

    #[test]
    fn what_we_verify_the_reference_implementation_verifies_too() {
        // A signature computed by hand to the spec's letter must pass both.
        let body = br#"{"a":1}"#;
        let key = decode_secret(SECRET).unwrap();
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(format!("m.{}.", now()).as_bytes());
        mac.update(body);
        let sig = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        let h = headers("m", &now().to_string(), &sig);
        assert!(Verifier::new(SECRET).unwrap().verify(&h, body).is_ok());
        assert!(
            standardwebhooks::Webhook::new(SECRET)
                .unwrap()
                .verify(body, &h)
                .is_ok()
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let v = Verifier::new(SECRET).unwrap();
        let mut h = signed(SECRET, "m", NOW, b"{}");
        h.remove(HEADER_SIGNATURE);
        assert_eq!(
            v.verify_at(&h, b"{}", NOW),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
        let h = headers("m", "yesterday", "v1,abc");
        assert_eq!(
            v.verify_at(&h, b"{}", NOW),
            Err(VerifyError::InvalidHeader(HEADER_TIMESTAMP))
        );
    }

    #[test]
    fn bad_secrets_are_refused_and_never_printed() {
        assert_eq!(
            Verifier::new("whsec_not base64!").err(),
            Some(SecretError::NotBase64)
        );
        assert_eq!(Verifier::new("whsec_").err(), Some(SecretError::Empty));
        assert_eq!(
            Verifier::with_secrets(Vec::<String>::new()).err(),
            Some(SecretError::None)
        );
        let shown = format!("{:?}", Verifier::new(SECRET).unwrap());
        assert!(!shown.contains("MfKQ"), "{shown}");
    }
}
