//! A push job's target: where the server sends the job, and the checks a target passes before it is stored.
//!
//! Invariant: a [`Target`] inside a [`crate::NewJob`] went through [`Target::validate`]: its URLs parse as
//! absolute `http`/`https` URLs without credentials (and are stored normalized), its method is one of
//! [`METHODS`] in upper case, its header names are lower-case HTTP tokens that Offload does not set itself,
//! its header values are sendable, and its timeout lies in `[MIN_TARGET_TIMEOUT, MAX_TARGET_TIMEOUT]`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::DurationSpec;
use crate::spec::ValidationError;

/// Methods a target may use; the payload is always sent as the JSON body.
pub const METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];
/// Longest target or callback URL, in bytes.
pub const MAX_URL_LEN: usize = 4096;
/// Most headers on one target.
pub const MAX_TARGET_HEADERS: usize = 32;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 8192;
/// Shortest request timeout a target may ask for.
pub const MIN_TARGET_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest request timeout a target may ask for: long enough for serverless functions that run up to their
/// platforms' limits (15 minutes and more).
pub const MAX_TARGET_TIMEOUT: Duration = Duration::from_secs(3600);

/// Headers a target may not set: hop-by-hop headers (they describe one connection, not the message), headers
/// the HTTP client computes, and the ones Offload sets itself (`webhook-*`, `offload-*`, checked by prefix).
pub const FORBIDDEN_HEADERS: [&str; 13] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "http2-settings",
];
/// Header name prefixes reserved for the headers Offload sets on every delivery.
pub const RESERVED_HEADER_PREFIXES: [&str; 2] = ["webhook-", "offload-"];

/// Where a push job is delivered: the server sends its payload to `url` and the HTTP status decides the
/// attempt's outcome. Also the shape of a target in the job view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Absolute `http` or `https` URL the payload is sent to.
    pub url: String,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers (e.g. `authorization`); names are kept in lower case.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request timeout of one delivery (1 s to 1 h); absent: the server's `[push] default_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// Receives a signed POST with the job's result once the job succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Receives a signed POST with the job's last error once the job is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_callback_url: Option<String>,
}

fn default_method() -> String {
    "POST".to_owned()
}

impl Target {
    /// A target that POSTs to `url` with no extra headers and the server's default timeout.
    pub fn post(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: default_method(),
            headers: BTreeMap::new(),
            timeout: None,
            callback_url: None,
            failure_callback_url: None,
        }
    }

    /// Checks every field and returns the normalized target. Errors name the field under `target.`.
    pub fn validate(self) -> Result<Target, ValidationError> {
        let url = check_url("target.url", &self.url)?;
        let method = self.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(ValidationError::invalid(
                "target.method",
                format!("must be one of {}", METHODS.join(", ")),
            ));
        }
        if self.headers.len() > MAX_TARGET_HEADERS {
            return Err(ValidationError::invalid(
                "target.headers",
                format!("at most {MAX_TARGET_HEADERS} headers"),
            ));
        }
        let mut headers = BTreeMap::new();
        for (name, value) in self.headers {
            let field = format!("target.headers.{name}");
            let lower = check_header(&field, &name, &value)?;
            if headers.insert(lower, value).is_some() {
                return Err(ValidationError::invalid(
                    field,
                    "is given twice (header names are case-insensitive)",
                ));
            }
        }
        if let Some(timeout) = self.timeout
            && !(MIN_TARGET_TIMEOUT..=MAX_TARGET_TIMEOUT).contains(&timeout.0)
        {
            return Err(ValidationError::invalid(
                "target.timeout",
                format!(
                    "must be between {} and {}",
                    DurationSpec(MIN_TARGET_TIMEOUT),
                    DurationSpec(MAX_TARGET_TIMEOUT)
                ),
            ));
        }
        let callback_url = self
            .callback_url
            .map(|u| check_url("target.callback_url", &u))
            .transpose()?;
        let failure_callback_url = self
            .failure_callback_url
            .map(|u| check_url("target.failure_callback_url", &u))
            .transpose()?;
        Ok(Target {
            url,
            method,
            headers,
            timeout: self.timeout,
            callback_url,
            failure_callback_url,
        })
    }

    /// Every URL of the target with its field name: the target's own and its callbacks'.
    pub fn urls(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            Some(("target.url", self.url.as_str())),
            self.callback_url
                .as_deref()
                .map(|u| ("target.callback_url", u)),
            self.failure_callback_url
                .as_deref()
                .map(|u| ("target.failure_callback_url", u)),
        ]
        .into_iter()
        .flatten()
    }

    /// The destination deliveries are counted against for the per-destination concurrency cap:
    /// `scheme://host:port` of the URL (the port made explicit).
    pub fn destination(&self) -> String {
        destination(&self.url)
    }
}

/// `scheme://host:port` of a URL (`""` if it does not parse, which a validated target never does).
pub fn destination(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => String::new(),
    }
}

/// The address a URL's host names without any DNS look-up: an IP literal, or a loopback address for
/// `localhost` and `*.localhost` (which RFC 6761 reserves for loopback). `None` for other host names, whose
/// addresses are only known when they are resolved at delivery time.
pub fn known_address(url: &str) -> Option<IpAddr> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost"))
                .then_some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        }
    }
}

/// Parses and normalizes a target or callback URL.
fn check_url(field: &str, text: &str) -> Result<String, ValidationError> {
    if text.len() > MAX_URL_LEN {
        return Err(ValidationError::invalid(
            field,
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    let url = url::Url::parse(text)
        .map_err(|e| ValidationError::invalid(field, format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ValidationError::invalid(
            field,
            "must start with http:// or https://",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ValidationError::invalid(field, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ValidationError::invalid(
            field,
            "must not carry credentials; send them in `target.headers` (e.g. `authorization`)",
        ));
    }
    Ok(url.into())
}

/// Checks one header; returns its name in lower case.
fn check_header(field: &str, name: &str, value: &str) -> Result<String, ValidationError> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(ValidationError::invalid(
            field,
            "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)",
        ));
    }
    let lower = name.to_ascii_lowercase();
    if FORBIDDEN_HEADERS.contains(&lower.as_str()) {
        return Err(ValidationError::invalid(
            field,
            "is a hop-by-hop or connection header the server sets itself",
        ));
    }
    if RESERVED_HEADER_PREFIXES
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Err(ValidationError::invalid(
            field,
            "is reserved: `webhook-*` and `offload-*` headers are set by the server",
        ));
    }
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(ValidationError::invalid(
            field,
            format!("value must be at most {MAX_HEADER_VALUE_LEN} bytes"),
        ));
    }
    // RFC 9110 field values: visible characters, spaces and tabs (no CR, LF or other control characters).
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ValidationError::invalid(
            field,
            "value must not contain control characters (line breaks included)",
        ));
    }
    Ok(lower)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(json: &str) -> Result<Target, ValidationError> {
        serde_json::from_str::<Target>(json).unwrap().validate()
    }

    #[test]
    fn defaults_and_normalization() {
        let t = target(r#"{"url":"HTTPS://Example.COM:443/hook?a=1","method":"put","headers":{"X-Token":"abc"}}"#)
            .unwrap();
        assert_eq!(t.url, "https://example.com/hook?a=1");
        assert_eq!(t.method, "PUT");
        assert_eq!(t.headers.get("x-token").map(String::as_str), Some("abc"));
        assert_eq!(t.timeout, None);
        assert_eq!(t.destination(), "https://example.com:443");
        let t = target(r#"{"url":"http://localhost:3000/api/jobs"}"#).unwrap();
        assert_eq!(t.method, "POST");
        assert_eq!(t.destination(), "http://localhost:3000");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (r#"{"url":"not a url"}"#, "target.url"),
            (r#"{"url":"ftp://example.com/x"}"#, "target.url"),
            (r#"{"url":"file:///etc/passwd"}"#, "target.url"),
            (r#"{"url":"http://user:pw@example.com/"}"#, "target.url"),
            (
                r#"{"url":"http://example.com","method":"GET"}"#,
                "target.method",
            ),
            (
                r#"{"url":"http://example.com","headers":{"bad name":"x"}}"#,
                "target.headers.bad name",
            ),
            (
                r#"{"url":"http://example.com","headers":{"Transfer-Encoding":"chunked"}}"#,
                "target.headers.Transfer-Encoding",
            ),
            (
                r#"{"url":"http://example.com","headers":{"Connection":"close"}}"#,
                "target.headers.Connection",
            ),
            (
                r#"{"url":"http://example.com","headers":{"Host":"evil"}}"#,
                "target.headers.Host",
            ),
            (
                r#"{"url":"http://example.com","headers":{"webhook-id":"x"}}"#,
                "target.headers.webhook-id",
            ),
            (
                r#"{"url":"http://example.com","headers":{"x-a":"line\r\nbreak"}}"#,
                "target.headers.x-a",
            ),
            (
                r#"{"url":"http://example.com","headers":{"X-A":"1","x-a":"2"}}"#,
                "target.headers.x-a",
            ),
            (
                r#"{"url":"http://example.com","timeout":"500ms"}"#,
                "target.timeout",
            ),
            (
                r#"{"url":"http://example.com","timeout":"2h"}"#,
                "target.timeout",
            ),
            (
                r#"{"url":"http://example.com","callback_url":"nope"}"#,
                "target.callback_url",
            ),
            (
                r#"{"url":"http://example.com","failure_callback_url":"mailto:a@b.c"}"#,
                "target.failure_callback_url",
            ),
        ];
        for (json, field) in cases {
            let err = target(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }

    #[test]
    fn long_timeouts_are_allowed() {
        let t = target(r#"{"url":"http://example.com","timeout":"15m"}"#).unwrap();
        assert_eq!(t.timeout, Some(DurationSpec(Duration::from_secs(900))));
        assert!(target(r#"{"url":"http://example.com","timeout":"1h"}"#).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<Target>(r#"{"url":"http://x","retries":3}"#).is_err());
    }

    #[test]
    fn known_addresses_without_dns() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(known_address("http://10.0.0.1/x"), ip("10.0.0.1"));
        assert_eq!(known_address("http://[::1]:8080/"), ip("::1"));
        assert_eq!(
            known_address("http://169.254.169.254/latest"),
            ip("169.254.169.254")
        );
        // The WHATWG parser reads the odd IPv4 spellings as the address they mean.
        assert_eq!(known_address("http://2130706433/"), ip("127.0.0.1"));
        assert_eq!(known_address("http://0x7f.1/"), ip("127.0.0.1"));
        assert_eq!(known_address("http://LOCALHOST:3000/"), ip("127.0.0.1"));
        assert_eq!(known_address("http://api.localhost/"), ip("127.0.0.1"));
        assert_eq!(known_address("https://example.com/"), None);
    }
}
