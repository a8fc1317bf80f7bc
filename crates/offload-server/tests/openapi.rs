//! The OpenAPI document: a snapshot of the whole document (so every change to the API shows up in review),
//! and checks that it describes the routes the server actually serves.

use offload_server::ServerConfig;

#[test]
fn document_matches_snapshot() {
    let doc = serde_json::to_value(offload_server::openapi()).unwrap();
    insta::assert_json_snapshot!("openapi", doc);
}

#[test]
fn document_is_openapi_3_1_and_lists_every_v1_route() {
    let doc = serde_json::to_value(offload_server::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/batch", "post"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}", "delete"),
        ("/v1/jobs/{id}/cancel", "post"),
        ("/v1/jobs/{id}/retry", "post"),
        ("/v1/jobs/{id}/heartbeat", "post"),
        ("/v1/jobs/{id}/complete", "post"),
        ("/v1/jobs/{id}/fail", "post"),
        ("/v1/jobs/{id}/snooze", "post"),
        ("/v1/jobs/{id}/abort", "post"),
        ("/v1/jobs/complete", "post"),
        ("/v1/jobs/fail", "post"),
        ("/v1/queues", "get"),
        ("/v1/queues/{queue}/claim", "post"),
        ("/v1/queues/{queue}/pause", "post"),
        ("/v1/queues/{queue}/resume", "post"),
        ("/v1/schedules", "get"),
        ("/v1/schedules/{name}", "get"),
        ("/v1/schedules/{name}", "put"),
        ("/v1/schedules/{name}", "delete"),
        ("/v1/schedules/{name}/pause", "post"),
        ("/v1/schedules/{name}/resume", "post"),
        ("/v1/schedules/{name}/trigger", "post"),
        ("/healthz", "get"),
    ];
    for (path, method) in expected {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"]["4XX"]["content"]["application/problem+json"].is_object(),
            "{method} {path} does not document its problem responses"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        expected.len(),
        "undocumented or unexpected operations"
    );
    // Every referenced schema exists.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
}

#[tokio::test]
async fn server_serves_the_same_document() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let store = offload_store_sqlite::SqliteStore::open(offload_store_sqlite::SqliteOptions::new(
        dir.path().join("db.sqlite"),
    ))
    .await
    .unwrap();
    let engine = offload_engine::Engine::new(std::sync::Arc::new(store), Default::default());
    let config = ServerConfig {
        api_tokens: vec!["secret".into()],
        ..ServerConfig::default()
    };
    let app = offload_server::router(engine, config);
    let response = app
        .oneshot(
            axum::http::Request::get("/openapi.json")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    // Open even when tokens are configured: the document holds no data.
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        served,
        serde_json::to_value(offload_server::openapi()).unwrap()
    );
}
