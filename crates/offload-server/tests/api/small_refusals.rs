//! Small refusals that must be clean 4xx problems: an encoded body, an impossible UTC offset.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use crate::common::TestApp;

#[tokio::test]
async fn an_encoded_body_is_unsupported_not_malformed() {
    let app = TestApp::new().await;
    for encoding in ["gzip", "br", "deflate, gzip"] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/jobs")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_ENCODING, encoding)
            // The gzip magic bytes: what a compressed body starts with.
            .body(Body::from(vec![0x1f, 0x8b, 0x08, 0x00]))
            .unwrap();
        let reply = app.call(request).await;
        let problem = reply.assert_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(encoding),
            "{reply:?}"
        );
    }
    // `identity` is no encoding at all.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "identity")
        .body(Body::from(r#"{"queue":"plain"}"#))
        .unwrap();
    assert_eq!(app.call(request).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn run_at_offsets_beyond_23_59_are_refused() {
    let app = TestApp::new().await;
    for run_at in ["2027-01-01T00:00:00+25:00", "2027-01-01T00:00:00-24:00"] {
        let reply = app
            .post(
                "/v1/jobs",
                format!(r#"{{"queue":"offsets","run_at":"{run_at}"}}"#),
            )
            .await;
        let problem = reply.assert_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("run_at"),
        );
        assert!(
            problem["detail"].as_str().unwrap().contains("offset"),
            "{reply:?}"
        );
    }
    assert!(app.list_ids("queue=offsets").await.is_empty());
    let job = app
        .enqueue(r#"{"queue":"offsets","run_at":"2027-01-01T12:00:00+23:30"}"#)
        .await;
    assert_eq!(job.run_at.to_string(), "2026-12-31T12:30:00Z");
}
