//! Events over the API: a matching event starts one run per function, a duplicate id starts nothing, events
//! are listed and read with their runs, and bad events are refused with their field, all or nothing.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::TestApp;

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

#[tokio::test]
async fn an_event_starts_a_run_and_a_duplicate_id_starts_nothing() {
    let app = TestApp::new().await;
    app.register(
        "welcome",
        json!({"triggers": [{"event": "app/user.signup"}]}),
    )
    .await;
    app.register(
        "pro-only",
        json!({"triggers": [{"event": "app/user.signup", "if": {"data.plan": "pro"}}]}),
    )
    .await;
    let event =
        json!({"name": "app/user.signup", "data": {"user": 7, "plan": "free"}, "id": "signup-7"});
    let reply = app.post("/v1/events", event.to_string()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let first = reply.json();
    let runs = first["runs"][0].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1, "only the unfiltered function runs: {first}");
    let run = app.run(runs[0].as_str().unwrap()).await;
    assert_eq!(run["function_id"], "welcome");
    assert_eq!(run["state"], "queued");
    assert_eq!(run["event"]["data"]["user"], 7);

    // The same id again: 200 with the first event's id and runs, nothing new.
    let reply = app.post("/v1/events", event.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json(), first);
    let listed = app.get("/v1/runs?function=welcome").await.json();
    assert_eq!(listed["runs"].as_array().unwrap().len(), 1, "{listed}");

    // The event, with its runs.
    let id = first["ids"][0].as_str().unwrap();
    let view = app.get(&format!("/v1/events/{id}")).await.json();
    assert_eq!(view["name"], "app/user.signup");
    assert_eq!(view["user_id"], "signup-7");
    assert_eq!(view["runs"], json!(runs));
    let listed = app.get("/v1/events?name=app/user.signup").await.json();
    assert_eq!(listed["events"][0]["id"], id);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let app = TestApp::new().await;
    app.register("count", json!({"triggers": [{"event": "app/tick"}]}))
        .await;
    let reply = app
        .post(
            "/v1/events",
            json!({"events": [{"name": "app/tick"}, {"name": "app/tick"}]}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.json()["ids"].as_array().unwrap().len(), 2);
    app.post(
        "/v1/events",
        json!({"events": [{"name": "app/tick"}, {"name": "-bad"}]}).to_string(),
    )
    .await
    .assert_problem(UNPROCESSABLE, "invalid_field", Some("events[1].name"));
    let listed = app.get("/v1/runs?function=count").await.json();
    assert_eq!(listed["runs"].as_array().unwrap().len(), 2, "{listed}");
}

#[tokio::test]
async fn bad_events_are_refused_with_their_field() {
    let app = TestApp::new().await;
    let cases = [
        (json!({"name": "bad name"}), "name"),
        (json!({"name": "offload/function.invoked"}), "name"),
        (json!({"name": "a", "data": [1]}), "data"),
        (json!({"name": "a", "user": 1}), "user"),
        (
            json!({"events": [{"name": "a", "colour": 1}]}),
            "events[0].colour",
        ),
        (json!({"events": []}), "events"),
    ];
    for (body, field) in cases {
        app.post("/v1/events", body.to_string())
            .await
            .assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    let many: Vec<_> = (0..1001).map(|_| json!({"name": "a"})).collect();
    app.post("/v1/events", json!({"events": many}).to_string())
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("events"));
    let big = "x".repeat(offload_core::function::event::DEFAULT_MAX_EVENT_BYTES);
    app.post(
        "/v1/events",
        json!({"name": "a", "data": {"big": big}}).to_string(),
    )
    .await
    .assert_problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        Some("data"),
    );
    let deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    app.post("/v1/events", format!("{{\"name\":\"a\",\"data\":{deep}}}"))
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("data"));
    app.get("/v1/events/not-an-id")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(app.get("/v1/events").await.json()["events"], json!([]));
}

#[tokio::test]
async fn list_filters_no_record_could_match_are_refused_with_their_parameter() {
    let app = TestApp::new().await;
    for (path, field) in [
        ("/v1/events?name=%C3%97%C3%B8", "name"),
        ("/v1/functions?app=bad%20app", "app"),
        ("/v1/runs?function=bad%20id", "function"),
        ("/v1/runs?state=", "state"),
        ("/v1/runs?state=asleep", "state"),
    ] {
        app.get(path)
            .await
            .assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    for path in [
        "/v1/events?name=app/user.signup",
        "/v1/functions?app=shop",
        "/v1/runs?function=charge&state=waiting",
    ] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn events_and_cancelled_runs_are_counted() {
    let app = crate::metrics::app().await;
    app.register(
        "metrics-fn",
        json!({"triggers": [{"event": "metrics/fn.test"}]}),
    )
    .await;
    let event = json!({"name": "metrics/fn.test", "id": "metrics-once"});
    let sent = app.send_event(event.clone()).await;
    app.send_event(event).await;
    let run_id = sent["runs"][0][0].as_str().unwrap();
    let reply = app.post(&format!("/v1/runs/{run_id}/cancel"), "").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    let scrape = crate::metrics::scrape(&app).await;
    let events = |outcome| {
        crate::metrics::number(
            &scrape,
            "offload_events_received_total",
            &[("name", "metrics/fn.test"), ("outcome", outcome)],
        )
    };
    assert_eq!(events("stored"), 1.0);
    assert_eq!(events("duplicate"), 1.0);
    let cancelled = crate::metrics::number(
        &scrape,
        "offload_runs_finished_total",
        &[("function", "metrics-fn"), ("state", "cancelled")],
    );
    assert_eq!(cancelled, 1.0);
}

#[tokio::test]
async fn flow_controls_are_checked_and_a_skipped_function_is_shown_on_the_event() {
    let app = TestApp::new().await;
    for (spec, field) in [
        (
            json!({"triggers": [{"event": "a"}], "rate_limit": {"limit": 0, "period": "1m"}}),
            "rate_limit.limit",
        ),
        (
            json!({"triggers": [{"event": "a"}],
                "concurrency": [{"limit": 1, "key": "data.a"}, {"limit": 1, "key": "data.b"}]}),
            "concurrency[1].key",
        ),
    ] {
        app.put_json("/v1/functions/f", spec).await.assert_problem(
            UNPROCESSABLE,
            "invalid_field",
            Some(field),
        );
    }
    app.register(
        "digest",
        json!({"triggers": [{"event": "app/ping"}],
            "rate_limit": {"limit": 1, "period": "1h", "key": "data.user"},
            "concurrency": [{"limit": 3}]}),
    )
    .await;
    let queue = app.get("/v1/queues/digest").await.json();
    assert_eq!(queue["limits"]["concurrency"], 3, "{queue}");
    let ping = json!({"name": "app/ping", "data": {"user": 1}}).to_string();
    let first = app.post("/v1/events", ping.clone()).await.json();
    assert_eq!(first["runs"][0].as_array().unwrap().len(), 1, "{first}");
    let second = app.post("/v1/events", ping).await.json();
    assert_eq!(second["runs"][0], json!([]), "{second}");
    let id = second["ids"][0].as_str().unwrap();
    let view = app.get(&format!("/v1/events/{id}")).await.json();
    assert_eq!(
        view["skipped"],
        json!([{"function_id": "digest", "reason": "rate_limit"}])
    );
    let view = app
        .get(&format!("/v1/events/{}", first["ids"][0].as_str().unwrap()))
        .await
        .json();
    assert!(view.get("skipped").is_none(), "{view}");
}
