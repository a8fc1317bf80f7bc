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
        ("/v1/queues/{queue}", "get"),
        ("/v1/queues/{queue}", "patch"),
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
        ("/v1/functions", "get"),
        ("/v1/functions/{id}", "get"),
        ("/v1/functions/{id}", "put"),
        ("/v1/functions/{id}", "delete"),
        ("/v1/apps/{app}", "put"),
        ("/v1/events", "post"),
        ("/v1/events", "get"),
        ("/v1/events/{id}", "get"),
        ("/v1/runs", "get"),
        ("/v1/runs/{id}", "get"),
        ("/v1/runs/{id}/steps", "get"),
        ("/v1/runs/{id}/steps", "post"),
        ("/v1/runs/{id}/cancel", "post"),
        ("/v1/runs/{id}/retry", "post"),
        ("/v1/jobs/{id}/logs", "post"),
        ("/v1/jobs/{id}/logs", "get"),
        ("/v1/runs/{id}/logs", "post"),
        ("/v1/runs/{id}/logs", "get"),
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

/// The bounds the validators check are in the document, so generated clients and fuzzers send what the
/// server takes and nothing else.
#[test]
fn document_declares_the_bounds_the_server_enforces() {
    let doc = serde_json::to_value(offload_server::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let param = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))["schema"]
            .clone()
    };
    for path in ["/v1/jobs", "/v1/schedules"] {
        let limit = param(path, "get", "limit");
        assert_eq!(
            (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
            (Some(1), Some(500)),
            "{path}"
        );
    }
    let range = |schema: &str, field: &str| {
        let s = &schemas[schema]["properties"][field];
        (s["minimum"].as_u64(), s["maximum"].as_u64())
    };
    assert_eq!(
        range("EnqueueRequest", "max_attempts"),
        (Some(1), Some(1000))
    );
    assert_eq!(
        range("JobTemplateSpec", "max_attempts"),
        (Some(1), Some(1000))
    );
    assert_eq!(range("ClaimRequest", "max_jobs"), (Some(1), Some(1000)));
    assert_eq!(range("HeartbeatRequest", "progress"), (Some(0), Some(100)));

    let queue = &schemas["EnqueueRequest"]["properties"]["queue"];
    assert_eq!(
        (queue["minLength"].as_u64(), queue["maxLength"].as_u64()),
        (Some(1), Some(128))
    );
    assert!(
        queue["pattern"]
            .as_str()
            .unwrap()
            .contains("(?!offload\\.)"),
        "{queue}"
    );
    for (path, name) in [
        ("/v1/queues/{queue}/claim", "queue"),
        ("/v1/schedules/{name}", "name"),
    ] {
        let method = if name == "queue" { "post" } else { "get" };
        let schema = param(path, method, name);
        assert_eq!(schema["maxLength"], 128, "{path}");
        assert_eq!(
            schema["pattern"],
            offload_core::spec::QUEUE_NAME_PATTERN,
            "{path}"
        );
    }
    let worker_id = &schemas["ClaimRequest"]["properties"]["worker_id"];
    assert_eq!(
        (
            worker_id["minLength"].as_u64(),
            worker_id["maxLength"].as_u64()
        ),
        (Some(1), Some(256))
    );
    assert_eq!(
        schemas["ScheduleSpec"]["properties"]["cron"]["format"],
        "cron"
    );

    // Durations state their bounds in milliseconds; optional ones stay nullable.
    let duration_max = |schema: &str, field: &str| {
        let branches = schemas[schema]["properties"][field]["oneOf"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            branches.iter().any(|b| b["type"] == "null"),
            "{schema}.{field} is optional"
        );
        let ms = branches
            .iter()
            .find(|b| b["type"] == "integer")
            .unwrap()
            .clone();
        (ms["minimum"].as_u64(), ms["maximum"].as_u64())
    };
    assert_eq!(
        duration_max("ClaimRequest", "wait"),
        (Some(0), Some(60_000))
    );
    assert_eq!(
        duration_max("EnqueueRequest", "timeout"),
        (Some(1000), Some(86_400_000))
    );
    assert_eq!(
        duration_max("EnqueueRequest", "delay"),
        (Some(0), Some(365 * 86_400_000))
    );

    // Flow control: limits of at least 1, each nullable in a patch; periods of at least 1 ms; groups of at
    // most 128 bytes; unknown fields refused.
    let patch = &schemas["QueueLimitsPatch"];
    assert_eq!(patch["additionalProperties"], false, "{patch}");
    for field in ["concurrency", "group_concurrency"] {
        assert_eq!(range("QueueLimitsPatch", field).0, Some(1), "{field}");
        let types = patch["properties"][field]["type"].as_array().unwrap();
        assert!(types.iter().any(|t| t == "null"), "{field} is nullable");
    }
    assert_eq!(range("ThrottleSpec", "limit").0, Some(1));
    assert_eq!(range("ThrottleSpec", "burst").0, Some(1));
    let period = schemas["ThrottleSpec"]["properties"]["period"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "integer")
        .unwrap()["minimum"]
        .clone();
    assert_eq!(period, 1);
    assert_eq!(
        duration_max("DebounceSpec", "max_wait"),
        (Some(1), Some(365 * 86_400_000))
    );
    let group = &schemas["EnqueueRequest"]["properties"]["group"];
    assert_eq!(group["maxLength"], 128, "{group}");
    assert!(group["description"].as_str().unwrap().contains("bytes"));
    assert_eq!(param("/v1/jobs", "get", "group")["maxLength"], 128);
    assert_eq!(
        param("/v1/queues/{queue}", "patch", "queue")["pattern"],
        offload_core::spec::QUEUE_NAME_PATTERN
    );

    // Bearer auth is optional: a loopback server without tokens takes requests without one.
    let security = &doc["paths"]["/v1/jobs"]["post"]["security"];
    assert_eq!(security, &serde_json::json!([{}, {"bearer": []}]));
}

/// The served document states the server's configured limits, not the defaults.
#[tokio::test]
async fn served_document_follows_the_configured_limits() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let store = offload_store_sqlite::SqliteStore::open(offload_store_sqlite::SqliteOptions::new(
        dir.path().join("db.sqlite"),
    ))
    .await
    .unwrap();
    let engine = offload_engine::Engine::new(std::sync::Arc::new(store), Default::default());
    let config = ServerConfig {
        limits: offload_core::spec::Limits {
            max_attempts: 7,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let response = offload_server::router(engine, config)
        .oneshot(
            axum::http::Request::get("/openapi.json")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let max_attempts =
        &served["components"]["schemas"]["EnqueueRequest"]["properties"]["max_attempts"];
    assert_eq!(max_attempts["maximum"], 7, "{max_attempts}");
}
