//! One delivery: build the signed request, send it, read at most 64 KiB of the answer, and let
//! [`offload_core::push::classify`] decide what it means.
//!
//! Invariants: redirects are never followed; no proxy is used (a proxy would resolve names past the address
//! policy); every connection goes to an address the policy allowed (names through [`PolicyResolver`], IP
//! literals checked here, since the client does not resolve them); `webhook-id` is the job id, the same for
//! every attempt of the job.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use offload_core::Timestamp;
use offload_core::push::target::known_address;
use offload_core::push::{Classified, Delivery, MAX_RESPONSE_BODY, Response, classify};
use offload_store::PushJob;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};

use super::PushConfig;
use super::policy::AddressPolicy;
use super::resolve::{PolicyResolver, RefusedAddress, check_literal};
use super::sign::Signer;

/// How long connecting (TCP and TLS) may take, within the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Sends deliveries: the HTTP client, the policy and the signer.
#[derive(Debug, Clone)]
pub(crate) struct Deliverer {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    signer: Signer,
    default_timeout: Duration,
}

/// Why the delivery client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the push delivery client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

impl Deliverer {
    /// A deliverer for `config` (which must have at least one signing secret).
    pub(crate) fn new(config: &PushConfig) -> Result<Self, ClientError> {
        super::install_crypto_provider();
        let policy = Arc::new(config.policy.clone());
        let client = reqwest::Client::builder()
            .user_agent(concat!("offload/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(PolicyResolver {
                policy: policy.clone(),
            })
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(config.per_destination as usize)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            policy,
            signer: Signer::new(config.signing_secrets.clone()),
            default_timeout: config.default_timeout,
        })
    }

    /// Delivers one claimed push job and classifies the answer.
    pub(crate) async fn deliver(&self, push: &PushJob) -> Classified {
        let job = &push.job;
        let target = &push.target;
        let now = || Timestamp::now();
        if let Some(ip) = url_ip(&target.url)
            && let Err(refused) = check_literal(&self.policy, ip)
        {
            return classify(Delivery::Refused(&refused.0), now());
        }
        let id = job.id.to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let body = Bytes::copy_from_slice(job.payload.get().as_bytes());
        let mut headers = HeaderMap::with_capacity(target.headers.len() + 9);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &target.headers {
            // Validated on enqueue; a header that still does not fit is left out rather than failing the job.
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        let signature = self.signer.sign(&id, timestamp, &body);
        let ours = [
            ("webhook-id", id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
            ("offload-job-id", id),
            ("offload-queue", job.queue.clone()),
            ("offload-attempt", job.attempt.to_string()),
            ("offload-max-attempts", job.max_attempts.to_string()),
        ];
        for (name, value) in ours {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        if let Some(name) = job.name.as_deref()
            && let Ok(v) = HeaderValue::from_str(name)
        {
            headers.insert(HeaderName::from_static("offload-job-name"), v);
        }
        let method =
            reqwest::Method::from_bytes(target.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let timeout = target.timeout.map_or(self.default_timeout, |t| t.0);
        let sent = self
            .client
            .request(method, &target.url)
            .headers(headers)
            .timeout(timeout)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return classify_error(&e),
        };
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header(RETRY_AFTER);
        let location = header(LOCATION);
        let (body, truncated) = read_head(response).await;
        classify(
            Delivery::Response(Response {
                status,
                retry_after: retry_after.as_deref(),
                location: location.as_deref(),
                body: &body,
                truncated,
            }),
            now(),
        )
    }
}

/// The IP of a URL whose host is an IP literal. (`localhost` names go through the resolver, like every name.)
fn url_ip(url: &str) -> Option<std::net::IpAddr> {
    let parsed = reqwest::Url::parse(url).ok()?;
    match parsed.host()? {
        url::Host::Domain(_) => None,
        _ => known_address(url),
    }
}

/// The first [`MAX_RESPONSE_BODY`] bytes of the body, and whether there was more. A body that breaks off
/// (reset, timeout) keeps what arrived: the status already decided the outcome.
async fn read_head(mut response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BODY - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return (body, true);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) | Err(_) => return (body, false),
        }
    }
}

/// A failed request: refused by the policy, timed out, or a connection failure (with its causes).
fn classify_error(e: &reqwest::Error) -> Classified {
    let now = Timestamp::now();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<RefusedAddress>() {
            return classify(Delivery::Refused(&refused.0), now);
        }
        source = s.source();
    }
    if e.is_timeout() {
        return classify(Delivery::Timeout, now);
    }
    classify(Delivery::Connect(&causes(e)), now)
}

/// The error's causes joined with `: ` (without reqwest's outer "error sending request for url ...").
fn causes(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
