//! The client against a small fake server on 127.0.0.1:0: status handling, headers, query encoding, time limits.
//! (Tests against the real server live with the binary.)

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use offload_sdk::api::{ClaimRequest, HeartbeatRequest, ListJobsQuery};
use offload_sdk::{Client, EnqueueRequest, Error, JobId, JobState, LeaseToken, TransportKind};
use serde_json::{Value, json};

fn job_json(id: &str, queue: &str) -> Value {
    json!({
        "id": id, "queue": queue, "state": "available", "payload": {"a": 1}, "priority": 0, "attempt": 0,
        "max_attempts": 25, "backoff": {"base": 1000, "cap": 3600000, "jitter": 0.2}, "timeout": 300000,
        "run_at": "2026-06-01T12:00:00Z", "created_at": "2026-06-01T12:00:00Z", "tags": {}
    })
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("urn:offload:problem:{code}"), "title": "t", "status": status.as_u16(),
        "code": code, "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

const ID: &str = "01900000-0000-7000-8000-000000000001";

async fn enqueue(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some("Bearer t0ken")
    {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
    }
    let queue = body["queue"].as_str().unwrap_or_default();
    if queue.is_empty() {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "queue: must not be empty",
        );
    }
    let status = if body["idempotency_key"] == "seen" {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, Json(job_json(ID, queue))).into_response()
}

async fn list(RawQuery(query): RawQuery) -> Json<Value> {
    // The query comes back as the cursor, so the test sees how it was encoded.
    Json(json!({ "items": [job_json(ID, "q")], "next_cursor": query.unwrap_or_default() }))
}

async fn claim(Path(queue): Path<String>, Json(body): Json<Value>) -> Json<Value> {
    assert_eq!(queue, "a/b");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(body["wait"], 1000);
    Json(json!({ "jobs": [] }))
}

async fn heartbeat() -> Response {
    problem(
        StatusCode::CONFLICT,
        "lease_mismatch",
        "the lease token is stale",
    )
}

async fn serve() -> String {
    let app = Router::new()
        .route("/v1/jobs", post(enqueue).get(list))
        .route("/v1/jobs/{id}", delete(|| async { StatusCode::NO_CONTENT }))
        .route("/v1/jobs/{id}/heartbeat", post(heartbeat))
        .route("/v1/queues/{queue}/claim", post(claim))
        .route(
            "/healthz",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "<html>down</html>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn enqueue_reports_new_jobs_replays_and_problems() {
    let base = serve().await;
    let client = Client::new(&base).unwrap().with_token("t0ken");
    let mut req = EnqueueRequest {
        queue: "emails".into(),
        ..EnqueueRequest::default()
    };
    let first = client.enqueue(&req).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(
        (first.job.queue.as_str(), first.job.state),
        ("emails", JobState::Available)
    );
    assert_eq!(first.job.payload.get(), r#"{"a":1}"#);

    req.idempotency_key = Some("seen".into());
    assert!(client.enqueue(&req).await.unwrap().replayed);

    req.queue = String::new();
    let err = client.enqueue(&req).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(422), Some("invalid_field"))
    );
    assert_eq!(err.to_string(), "queue: must not be empty (invalid_field)");

    let anonymous = Client::new(&base).unwrap();
    let err = anonymous.enqueue(&req).await.unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"));
}

#[tokio::test]
async fn list_query_is_encoded_and_empty_fields_are_left_out() {
    let client = Client::new(&serve().await).unwrap();
    let query = ListJobsQuery {
        queue: Some("q".into()),
        state: Some(JobState::Dead),
        tag: Some("env:prod & co".into()),
        limit: Some(5),
        ..ListJobsQuery::default()
    };
    let page = client.list_jobs(&query).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.next_cursor.as_deref(),
        Some("queue=q&state=dead&tag=env%3Aprod+%26+co&limit=5")
    );
}

#[tokio::test]
async fn a_long_poll_claim_outlives_the_ordinary_time_limit() {
    let client = Client::new(&serve().await)
        .unwrap()
        .with_timeout(Duration::from_millis(100));
    let claim = ClaimRequest {
        worker_id: "w".into(),
        max_jobs: Some(2),
        wait: Some(Duration::from_secs(1).into()),
    };
    let answer = client.claim("a/b", &claim).await.unwrap();
    assert!(answer.jobs.is_empty());
}

#[tokio::test]
async fn stale_heartbeats_deletes_and_non_problem_errors() {
    let client = Client::new(&serve().await).unwrap();
    let id: JobId = ID.parse().unwrap();
    let beat = HeartbeatRequest {
        lease_token: LeaseToken::new(),
        progress: None,
        message: None,
    };
    assert!(
        client
            .heartbeat(id, &beat)
            .await
            .unwrap_err()
            .is_lease_mismatch()
    );
    client.delete_job(id).await.unwrap();
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, Error::Decode { status: 503, .. }), "{err}");
    assert!(err.to_string().contains("<html>down</html>"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_named_in_plain_words() {
    // Bind then drop a listener so the port is (almost certainly) closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let err = Client::new(&base).unwrap().list_queues().await.unwrap_err();
    match &err {
        Error::Transport(t) => assert_eq!(t.kind(), TransportKind::Connect),
        other => panic!("{other}"),
    }
    assert_eq!(
        err.to_string(),
        format!("cannot reach the server at {base}: connection refused")
    );
}
