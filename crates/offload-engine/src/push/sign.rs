//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! one `v1,` entry per active secret (space-separated), so receivers can rotate secrets without downtime.
//!
//! Secrets are written `whsec_<base64>` (the part after the prefix is the key, base64-decoded), the format
//! of the Standard Webhooks libraries, which verify what this module signs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes a secret may have.
pub const MIN_SECRET_BYTES: usize = 16;
/// Key bytes of a generated secret.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// A signing secret; its `Debug` form hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    text: String,
    key: Vec<u8>,
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error(
        "a signing secret must be `whsec_` followed by base64 (as the Standard Webhooks libraries write them)"
    )]
    Format,
    /// Too short to be safe.
    #[error("a signing secret must hold at least {MIN_SECRET_BYTES} bytes of key")]
    TooShort,
}

impl SigningSecret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Format)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Format)?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    /// A new random secret from the operating system's generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        getrandom::fill(&mut key)?;
        Ok(Self {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(&key)),
            key,
        })
    }

    /// The secret as written (`whsec_...`), to give to receivers.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(whsec_***)")
    }
}

/// Signs deliveries with every active secret.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    secrets: Vec<SigningSecret>,
}

impl Signer {
    /// A signer for these secrets (at least one).
    pub(crate) fn new(secrets: Vec<SigningSecret>) -> Self {
        Self { secrets }
    }

    /// The `webhook-signature` value for a message.
    pub(crate) fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let mut out = String::with_capacity(self.secrets.len() * 48);
        for secret in &self.secrets {
            // HMAC accepts keys of any length; this cannot fail.
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.key)
                .expect("HMAC takes keys of any length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("v1,");
            out.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_secrets() {
        let s = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(s.expose(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(format!("{s:?}"), "SigningSecret(whsec_***)");
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjU"),
            Err(SecretError::Format)
        );
        assert_eq!(
            SigningSecret::parse("whsec_not base64!"),
            Err(SecretError::Format)
        );
        assert_eq!(
            SigningSecret::parse("whsec_c2hvcnQ="),
            Err(SecretError::TooShort)
        );
        let g = SigningSecret::generate().unwrap();
        assert_eq!(SigningSecret::parse(g.expose()).unwrap(), g);
        assert_ne!(SigningSecret::generate().unwrap(), g);
    }

    #[test]
    fn matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signer = Signer::new(vec![secret]);
        let sig = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn signs_with_every_secret() {
        let a = SigningSecret::generate().unwrap();
        let b = SigningSecret::generate().unwrap();
        let both = Signer::new(vec![a.clone(), b.clone()]).sign("m", 1, b"{}");
        let only_a = Signer::new(vec![a]).sign("m", 1, b"{}");
        let only_b = Signer::new(vec![b]).sign("m", 1, b"{}");
        assert_eq!(both, format!("{only_a} {only_b}"));
    }
}
