//! Log lines of jobs and runs over the API: append and read in order with pages, the lease token's attempt,
//! and refusals that name their field.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::TestApp;

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

async fn append(app: &TestApp, path: &str, body: Value) -> Value {
    let reply = app.post(path, body.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.json()
}

fn messages(page: &Value) -> Vec<(u64, String)> {
    page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["seq"].as_u64().unwrap(),
                l["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn job_lines_are_appended_and_read_in_pages() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"q","payload":{}}"#).await;
    let path = format!("/v1/jobs/{}/logs", job.id);
    let body = json!({"lines": [
        {"message": "one"},
        {"message": "two", "level": "warn", "at": "2026-01-01T00:00:00Z"},
        {"message": "three", "level": "error"},
    ]});
    assert_eq!(
        append(&app, &path, body).await,
        json!({"first_seq": 1, "last_seq": 3})
    );

    let page = app.get(&format!("{path}?limit=2")).await.json();
    assert_eq!(
        messages(&page),
        [(1, "one".to_owned()), (2, "two".to_owned())]
    );
    assert_eq!(page["next_after"], 2);
    assert_eq!(page["lines"][0]["level"], "info");
    assert_eq!(page["lines"][1]["level"], "warn");
    assert_eq!(page["lines"][1]["at"], "2026-01-01T00:00:00Z");
    assert!(page["lines"][0].get("attempt").is_none());
    let rest = app.get(&format!("{path}?after=2&limit=2")).await.json();
    assert_eq!(messages(&rest), [(3, "three".to_owned())]);
    assert!(rest.get("next_after").is_none(), "{rest}");

    let claimed = app.claim_one("q").await;
    let held = json!({"lease_token": claimed.lease_token, "lines": [{"message": "held"}]});
    assert_eq!(append(&app, &path, held).await["first_seq"], 4);
    let page = app.get(&format!("{path}?after=3")).await.json();
    assert_eq!(page["lines"][0]["attempt"], 1);

    let stale = json!({"lease_token": uuid::Uuid::now_v7(), "lines": [{"message": "x"}]});
    app.post(&path, stale.to_string()).await.assert_problem(
        StatusCode::CONFLICT,
        "lease_mismatch",
        Some("lease_token"),
    );
    let unknown = format!("/v1/jobs/{}/logs", uuid::Uuid::now_v7());
    app.post(&unknown, json!({"lines": [{"message": "x"}]}).to_string())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    app.get(&unknown)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    app.get("/v1/jobs/nope/logs")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);

    let other = app.enqueue(r#"{"queue":"q2","payload":{}}"#).await;
    let other_path = format!("/v1/jobs/{}/logs", other.id);
    append(&app, &other_path, json!({"lines": [{"message": "x"}]})).await;
    let reply = app.delete(&format!("/v1/jobs/{}", other.id)).await;
    assert!(reply.status.is_success(), "{reply:?}");
    app.get(&other_path)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn bad_appends_and_reads_are_named() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"q","payload":{}}"#).await;
    let path = format!("/v1/jobs/{}/logs", job.id);
    let too_long = "x".repeat(4097);
    let too_many: Vec<Value> = (0..101).map(|_| json!({"message": "x"})).collect();
    for (body, field) in [
        (json!({"lines": []}), "lines"),
        (json!({"lines": too_many}), "lines"),
        (json!({}), "lines"),
        (
            json!({"lines": [{"message": "ok"}, {"message": too_long}]}),
            "lines[1].message",
        ),
        (
            json!({"lines": [{"message": "a\u{0}b"}]}),
            "lines[0].message",
        ),
        (
            json!({"lines": [{"message": "a", "level": "fatal"}]}),
            "lines[0].level",
        ),
        (
            json!({"lines": [{"message": "a", "colour": "red"}]}),
            "lines[0].colour",
        ),
        (json!({"lines": [{"message": "a"}], "extra": 1}), "extra"),
    ] {
        let reply = app.post(&path, body.to_string()).await;
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    assert!(
        messages(&app.get(&path).await.json()).is_empty(),
        "a refused append stores nothing"
    );
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=-1", "after"),
        ("before=1", "before"),
    ] {
        let reply = app.get(&format!("{path}?{query}")).await;
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
}

#[tokio::test]
async fn run_lines_are_appended_and_read() {
    let app = crate::functions::started_app().await;
    app.register("flow", json!({"triggers": [{"event": "app/start"}]}))
        .await;
    let sent = app
        .send_event(json!({"name": "app/start", "data": {}}))
        .await;
    let run = sent["runs"][0][0].as_str().expect("a run").to_owned();
    let path = format!("/v1/runs/{run}/logs");
    append(&app, &path, json!({"lines": [{"message": "<step> ran"}]})).await;
    let page = app.get(&path).await.json();
    assert_eq!(messages(&page), [(1, "<step> ran".to_owned())]);
    let token = json!({"lease_token": uuid::Uuid::now_v7(), "lines": [{"message": "x"}]});
    app.post(&path, token.to_string()).await.assert_problem(
        UNPROCESSABLE,
        "invalid_field",
        Some("lease_token"),
    );
    let unknown = format!("/v1/runs/{}/logs", uuid::Uuid::now_v7());
    app.get(&unknown)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
}
