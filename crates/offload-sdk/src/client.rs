//! The HTTP client: one method per API endpoint.
//!
//! Invariant: every request goes through [`Client::send`], which adds the token, applies the per-request time
//! limit and turns every non-2xx answer into an [`Error`], so the endpoint methods only say what to send and what
//! to decode. One `reqwest::Client` (one connection pool) is shared by all clones of a [`Client`].

use std::sync::Arc;
use std::time::Duration;

use offload_core::api::{
    AbortRequest, ClaimRequest, ClaimResponse, CompleteBatchRequest, CompleteRequest,
    EnqueueBatchRequest, EnqueueBatchResponse, FailBatchRequest, FailRequest, FinishBatchResponse,
    Health, HeartbeatRequest, HeartbeatResponse, JobPage, ListJobsQuery, Problem, QueueInfo,
    QueueList, SnoozeRequest,
};
use offload_core::spec::EnqueueRequest;
use offload_core::{Job, JobId};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, TransportError};
use crate::spec::JobSpec;

/// Time limit of one ordinary request (everything but the long-poll part of a claim).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit for establishing a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time a claim gets beyond its long-poll `wait`, so the server's empty answer arrives before the limit.
const CLAIM_MARGIN: Duration = Duration::from_secs(15);

/// A client of one Offload server.
///
/// Cheap to clone: clones share one connection pool, so create one per server and clone it into tasks.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    server: Arc<str>,
    auth: Auth,
    timeout: Duration,
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Bearer(HeaderValue),
    Invalid,
}

/// The answer of [`Client::enqueue`].
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// The job: the new one, or the existing one on a replay.
    pub job: Job,
    /// True when the idempotency key matched an existing job and nothing new was stored (HTTP 200, not 201).
    pub replayed: bool,
    /// True when the debounce key matched a waiting job, which took this payload and start (HTTP 200, and
    /// `"debounced": true` in the body); nothing new was stored.
    pub debounced: bool,
}

/// The flag a debounced enqueue's answer adds to the job.
#[derive(serde::Deserialize)]
struct DebouncedFlag {
    #[serde(default)]
    debounced: bool,
}

impl Client {
    /// A client of the server at `base_url`, e.g. `http://127.0.0.1:7070` (a path prefix is kept).
    pub fn new(base_url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(base_url.trim())
            .map_err(|e| invalid(&format!("{e}; expected e.g. http://127.0.0.1:7070")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("must start with http:// or https://"));
        }
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(invalid("has no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        let server: Arc<str> = base.as_str().trim_end_matches('/').into();
        // Where reqwest is built with rustls but no default provider (as in Offload's own workspace), it
        // needs a process default: rustls' ring provider, unless the program installed one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("offload-sdk/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // An API client has no reason to follow redirects, and not following them keeps the token where the
            // user sent it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Transport(TransportError::new(&server, e)))?;
        Ok(Self {
            http,
            base,
            server,
            auth: Auth::None,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sends `Authorization: Bearer <token>` on every request. Surrounding white space is ignored; a token
    /// that cannot be sent in a header makes every request fail with [`Error::InvalidToken`].
    pub fn with_token(mut self, token: impl AsRef<str>) -> Self {
        self.auth = match HeaderValue::from_str(&format!("Bearer {}", token.as_ref().trim())) {
            Ok(mut value) => {
                value.set_sensitive(true);
                Auth::Bearer(value)
            }
            Err(_) => Auth::Invalid,
        };
        self
    }

    /// Sets the time limit of each request (default [`DEFAULT_TIMEOUT`]). A long-polling claim always gets at
    /// least its `wait` plus a margin.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's base URL, without a trailing slash.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `POST /v1/jobs`: stores a job. With an idempotency key already used by the same request, returns the
    /// existing job and `replayed: true`; used by a different request, fails with code `idempotency_conflict`.
    pub async fn enqueue(&self, request: &EnqueueRequest) -> Result<Enqueued> {
        let rb = self.request(Method::POST, &["v1", "jobs"])?.json(request);
        let (status, body) = self.send(rb).await?;
        let job = decode(status, &body)?;
        let debounced =
            status == StatusCode::OK && decode::<DebouncedFlag>(status, &body)?.debounced;
        Ok(Enqueued {
            job,
            replayed: status == StatusCode::OK && !debounced,
            debounced,
        })
    }

    /// `POST /v1/jobs/batch`: stores all jobs in one transaction, or none.
    pub async fn enqueue_batch(
        &self,
        request: &EnqueueBatchRequest,
    ) -> Result<EnqueueBatchResponse> {
        self.call(
            self.request(Method::POST, &["v1", "jobs", "batch"])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/jobs` from a [`JobSpec`]: a typed payload with any of the API's options. Answers as
    /// [`Client::enqueue`]; a payload that cannot be serialized fails with [`Error::Encode`] before anything is
    /// sent.
    pub async fn enqueue_job(&self, job: &JobSpec) -> Result<Enqueued> {
        self.enqueue(job.request()?).await
    }

    /// `POST /v1/jobs/batch` from [`JobSpec`]s: all stored in one transaction, or none. The answer lists the
    /// jobs in the order given.
    pub async fn enqueue_jobs(&self, jobs: &[JobSpec]) -> Result<EnqueueBatchResponse> {
        /// Borrows every request, so a large batch is not copied before it is encoded.
        #[derive(serde::Serialize)]
        struct Batch<'a> {
            jobs: Vec<&'a EnqueueRequest>,
        }
        let jobs = jobs
            .iter()
            .map(JobSpec::request)
            .collect::<Result<Vec<_>>>()?;
        self.call(
            self.request(Method::POST, &["v1", "jobs", "batch"])?
                .json(&Batch { jobs }),
        )
        .await
    }

    /// `GET /v1/jobs/{id}`: one job with its attempt history.
    pub async fn get_job(&self, id: JobId) -> Result<Job> {
        self.call(self.request(Method::GET, &["v1", "jobs", &id.to_string()])?)
            .await
    }

    /// `GET /v1/jobs`: one page of jobs, newest first. Pass the page's `next_cursor` as `cursor` for the next.
    pub async fn list_jobs(&self, query: &ListJobsQuery) -> Result<JobPage> {
        self.call(self.request(Method::GET, &["v1", "jobs"])?.query(query))
            .await
    }

    /// `POST /v1/jobs/{id}/cancel`: cancels a waiting job at once, or asks the worker of a running one to stop.
    pub async fn cancel_job(&self, id: JobId) -> Result<Job> {
        self.call(self.request(Method::POST, &["v1", "jobs", &id.to_string(), "cancel"])?)
            .await
    }

    /// `POST /v1/jobs/{id}/retry`: makes a dead or cancelled job available again.
    pub async fn retry_job(&self, id: JobId) -> Result<Job> {
        self.call(self.request(Method::POST, &["v1", "jobs", &id.to_string(), "retry"])?)
            .await
    }

    /// `DELETE /v1/jobs/{id}`: removes a job and its history.
    pub async fn delete_job(&self, id: JobId) -> Result<()> {
        self.send(self.request(Method::DELETE, &["v1", "jobs", &id.to_string()])?)
            .await
            .map(drop)
    }

    /// `POST /v1/queues/{queue}/claim`: claims up to `max_jobs` jobs, long-polling up to `wait` when none is
    /// available. The answer may be empty.
    pub async fn claim(&self, queue: &str, request: &ClaimRequest) -> Result<ClaimResponse> {
        let wait = request.wait.map_or(Duration::ZERO, |w| w.0);
        let rb = self
            .request(Method::POST, &["v1", "queues", queue, "claim"])?
            .json(request);
        let (status, body) = self
            .send_with_timeout(rb, self.timeout.max(wait + CLAIM_MARGIN))
            .await?;
        decode(status, &body)
    }

    /// `POST /v1/jobs/{id}/heartbeat`: extends the lease and tells whether a cancel was requested. A stale
    /// token fails with code `lease_mismatch` ([`Error::is_lease_mismatch`]).
    pub async fn heartbeat(
        &self,
        id: JobId,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse> {
        self.call(
            self.request(Method::POST, &["v1", "jobs", &id.to_string(), "heartbeat"])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/jobs/{id}/complete`: reports success, with an optional JSON result.
    pub async fn complete(&self, id: JobId, request: &CompleteRequest) -> Result<()> {
        let rb = self
            .request(Method::POST, &["v1", "jobs", &id.to_string(), "complete"])?
            .json(request);
        self.send(rb).await.map(drop)
    }

    /// `POST /v1/jobs/{id}/fail`: reports a failure; the server retries the job or ends it as dead (or as
    /// cancelled, when a cancel was requested).
    pub async fn fail(&self, id: JobId, request: &FailRequest) -> Result<()> {
        let rb = self
            .request(Method::POST, &["v1", "jobs", &id.to_string(), "fail"])?
            .json(request);
        self.send(rb).await.map(drop)
    }

    /// `POST /v1/jobs/{id}/snooze`: runs the job again after `delay` without using up an attempt (a requested
    /// cancel still wins: the job then ends cancelled).
    pub async fn snooze(&self, id: JobId, request: &SnoozeRequest) -> Result<()> {
        let rb = self
            .request(Method::POST, &["v1", "jobs", &id.to_string(), "snooze"])?
            .json(request);
        self.send(rb).await.map(drop)
    }

    /// `POST /v1/jobs/{id}/abort`: the worker ends the job as cancelled, with no further attempt.
    pub async fn abort(&self, id: JobId, request: &AbortRequest) -> Result<()> {
        let rb = self
            .request(Method::POST, &["v1", "jobs", &id.to_string(), "abort"])?
            .json(request);
        self.send(rb).await.map(drop)
    }

    /// `POST /v1/jobs/complete`: many completions in one request; each item is accepted or refused on its own.
    pub async fn complete_batch(
        &self,
        request: &CompleteBatchRequest,
    ) -> Result<FinishBatchResponse> {
        self.call(
            self.request(Method::POST, &["v1", "jobs", "complete"])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/jobs/fail`: many failures in one request; each item is accepted or refused on its own.
    pub async fn fail_batch(&self, request: &FailBatchRequest) -> Result<FinishBatchResponse> {
        self.call(
            self.request(Method::POST, &["v1", "jobs", "fail"])?
                .json(request),
        )
        .await
    }

    /// `GET /v1/queues`: every queue with its job counts.
    pub async fn list_queues(&self) -> Result<QueueList> {
        self.call(self.request(Method::GET, &["v1", "queues"])?)
            .await
    }

    /// `GET /v1/queues/{queue}`: the queue with its counts, limits and live usage; code `not_found` when the
    /// server knows no such queue.
    pub async fn get_queue(&self, queue: &str) -> Result<QueueInfo> {
        self.call(self.request(Method::GET, &["v1", "queues", queue])?)
            .await
    }

    /// `PATCH /v1/queues/{queue}`: changes the queue's limits (absent fields keep their value, `null` removes
    /// a limit) and answers the queue with its usage.
    pub async fn set_queue_limits(
        &self,
        queue: &str,
        patch: &serde_json::Value,
    ) -> Result<QueueInfo> {
        self.call(
            self.request(Method::PATCH, &["v1", "queues", queue])?
                .json(patch),
        )
        .await
    }

    /// `POST /v1/queues/{queue}/pause`: the queue hands out no more jobs until resumed.
    pub async fn pause_queue(&self, queue: &str) -> Result<QueueInfo> {
        self.call(self.request(Method::POST, &["v1", "queues", queue, "pause"])?)
            .await
    }

    /// `POST /v1/queues/{queue}/resume`: the queue hands out jobs again.
    pub async fn resume_queue(&self, queue: &str) -> Result<QueueInfo> {
        self.call(self.request(Method::POST, &["v1", "queues", queue, "resume"])?)
            .await
    }

    /// `GET /healthz`: whether the server and its store answer.
    pub async fn health(&self) -> Result<Health> {
        self.call(self.request(Method::GET, &["healthz"])?).await
    }

    /// The URL of `segments` under the base URL; each segment is percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidUrl {
                url: self.server.to_string(),
                reason: "has no path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    pub(crate) fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder> {
        let rb = self.http.request(method, self.url(segments)?);
        match &self.auth {
            Auth::None => Ok(rb),
            Auth::Bearer(value) => Ok(rb.header(AUTHORIZATION, value.clone())),
            Auth::Invalid => Err(Error::InvalidToken),
        }
    }

    pub(crate) async fn call<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let (status, body) = self.send(rb).await?;
        decode(status, &body)
    }

    pub(crate) async fn send(&self, rb: RequestBuilder) -> Result<(StatusCode, Vec<u8>)> {
        self.send_with_timeout(rb, self.timeout).await
    }

    /// Sends the request and reads the whole body (so the connection goes back to the pool); non-2xx answers
    /// become errors.
    async fn send_with_timeout(
        &self,
        rb: RequestBuilder,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let transport = |e| Error::Transport(TransportError::new(&self.server, e));
        let response = rb.timeout(timeout).send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(error_from(status, &body))
        }
    }
}

pub(crate) fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        status: status.as_u16(),
        message: format!("cannot read the body ({e}); {}", describe_body(body)),
    })
}

/// Turns an error answer into [`Error::Api`] when it carries a problem document, else [`Error::Decode`].
fn error_from(status: StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => Error::Api {
            status: status.as_u16(),
            problem: Box::new(problem),
        },
        Err(_) => Error::Decode {
            status: status.as_u16(),
            message: format!(
                "{} without a problem document; {}",
                status.canonical_reason().unwrap_or("error"),
                describe_body(body)
            ),
        },
    }
}

/// A short, single-line description of a body for error messages.
fn describe_body(body: &[u8]) -> String {
    const MAX: usize = 120;
    if body.is_empty() {
        return "the body is empty".to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let mut short: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX {
        short.push('…');
    }
    format!("the body starts with `{}`", short.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_prefix_and_encode_segments() {
        let c = Client::new("http://127.0.0.1:7070").unwrap();
        assert_eq!(
            c.url(&["v1", "jobs"]).unwrap().as_str(),
            "http://127.0.0.1:7070/v1/jobs"
        );
        assert_eq!(c.server(), "http://127.0.0.1:7070");
        let c = Client::new("http://example.test/offload/").unwrap();
        assert_eq!(
            c.url(&["v1", "queues", "a/b c", "claim"]).unwrap().as_str(),
            "http://example.test/offload/v1/queues/a%2Fb%20c/claim"
        );
        assert_eq!(c.server(), "http://example.test/offload");
    }

    #[test]
    fn bad_base_urls_are_refused_with_a_reason() {
        for url in [
            "127.0.0.1:7070",
            "localhost:7070",
            "ftp://x",
            "http://x/?a=1",
            "",
        ] {
            let err = Client::new(url).unwrap_err();
            assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err}");
        }
    }

    #[test]
    fn tokens_with_control_characters_fail_every_request() {
        let c = Client::new("http://127.0.0.1:1")
            .unwrap()
            .with_token("a\u{1}b");
        assert!(matches!(
            c.request(Method::GET, &["healthz"]),
            Err(Error::InvalidToken)
        ));
        let c = Client::new("http://127.0.0.1:1")
            .unwrap()
            .with_token(" secret\n");
        assert!(c.request(Method::GET, &["healthz"]).is_ok());
    }

    #[test]
    fn error_bodies_without_a_problem_are_described() {
        let err = error_from(StatusCode::BAD_GATEWAY, b"<html>\nBad gateway</html>");
        let text = err.to_string();
        assert!(
            text.contains("HTTP 502") && text.contains("<html> Bad gateway"),
            "{text}"
        );
        let problem = br#"{"type":"urn:offload:problem:not_found","title":"Not found","status":404,"code":"not_found","detail":"job 1 does not exist"}"#;
        let err = error_from(StatusCode::NOT_FOUND, problem);
        assert_eq!(err.to_string(), "job 1 does not exist (not_found)");
        assert!(err.is_not_found());
    }
}
