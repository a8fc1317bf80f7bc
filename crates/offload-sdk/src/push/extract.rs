//! The axum extractor: a verified delivery, with its payload decoded, or a refusal before the handler runs.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::{Verifier, VerifyError};

/// A verified Offload delivery with its JSON payload decoded into `T` (`serde_json::Value` for any JSON,
/// `Box<serde_json::value::RawValue>` for the text as received). Needs a [`Verifier`] in the router's state (directly, or through
/// [`FromRef`]). The body is read within the route's body limit (axum's default is 2 MiB).
#[derive(Debug, Clone)]
pub struct Delivery<T = serde_json::Value> {
    /// The `webhook-id`: stable across retries of one job, for de-duplication.
    pub id: String,
    /// When Offload signed it, in Unix seconds.
    pub timestamp: i64,
    /// The decoded payload.
    pub payload: T,
    /// Every header of the request (Offload's job headers among them).
    pub headers: HeaderMap,
}

/// Why a request was not accepted as a delivery. Answers `401` for a failed verification (a request that did
/// not come from Offload), `400` for a body that is not the expected JSON, `413` for a body over the limit.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// The signature or timestamp check failed.
    Unverified(VerifyError),
    /// The body could not be read (too large, or the connection broke).
    Body(StatusCode),
    /// The body is not JSON of the expected shape.
    Payload(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Unverified(e) => write!(f, "not a verified Offload delivery: {e}"),
            Rejection::Body(status) => write!(f, "cannot read the body: {status}"),
            Rejection::Payload(e) => write!(f, "unexpected payload: {e}"),
        }
    }
}

impl std::error::Error for Rejection {}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = match &self {
            Rejection::Unverified(_) => StatusCode::UNAUTHORIZED,
            Rejection::Body(status) => *status,
            Rejection::Payload(_) => StatusCode::BAD_REQUEST,
        };
        (status, self.to_string()).into_response()
    }
}

impl<S, T> FromRequest<S> for Delivery<T>
where
    S: Send + Sync,
    Verifier: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Verifier::from_ref(state);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| Rejection::Body(e.status()))?;
        let verified = verifier
            .verify(&headers, &body)
            .map_err(Rejection::Unverified)?;
        let payload = decode(&body)?;
        Ok(Delivery {
            id: verified.id,
            timestamp: verified.timestamp,
            payload,
            headers,
        })
    }
}

/// Decodes the body as JSON.
fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, Rejection> {
    serde_json::from_slice(body).map_err(|e| Rejection::Payload(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::routing::post;
    use tower::ServiceExt;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[derive(Debug, serde::Deserialize)]
    struct Welcome {
        user: u64,
    }

    async fn welcome(delivery: Delivery<Welcome>) -> String {
        format!("{} {}", delivery.id, delivery.payload.user)
    }

    fn app() -> Router {
        Router::new()
            .route("/hook", post(welcome))
            .with_state(Verifier::new(SECRET).unwrap())
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn request(secret: &str, ts: i64, signed: &str, sent: &str) -> HttpRequest<Body> {
        let sig = standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign("msg_7", ts, signed.as_bytes())
            .unwrap();
        HttpRequest::post("/hook")
            .header("content-type", "application/json")
            .header("webhook-id", "msg_7")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(Body::from(sent.to_owned()))
            .unwrap()
    }

    async fn answer(req: HttpRequest<Body>) -> (StatusCode, String) {
        let res = app().oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_signed_delivery_reaches_the_handler_decoded() {
        let body = r#"{"user": 42}"#;
        assert_eq!(
            answer(request(SECRET, now(), body, body)).await,
            (StatusCode::OK, "msg_7 42".to_owned())
        );
    }

    #[tokio::test]
    async fn forged_stale_and_malformed_deliveries_are_refused() {
        let body = r#"{"user": 42}"#;
        let (status, text) = answer(request(SECRET, now(), body, r#"{"user": 43}"#)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert!(text.contains("no valid signature"), "{text}");
        let wrong = "whsec_c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1zYW1l";
        assert_eq!(
            answer(request(wrong, now(), body, body)).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, text) = answer(request(SECRET, now() - 3600, body, body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(text.contains("too old"), "{text}");
        let unsigned = HttpRequest::post("/hook").body(Body::from(body)).unwrap();
        assert_eq!(answer(unsigned).await.0, StatusCode::UNAUTHORIZED);
        // Signed, but not the payload the handler expects.
        let other = r#"{"account": 1}"#;
        let (status, text) = answer(request(SECRET, now(), other, other)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    }
}
