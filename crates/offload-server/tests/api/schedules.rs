//! `/v1/schedules`: create or replace, list, read with next fire times and recent ticks, pause, resume,
//! trigger, delete, and every class of bad input (status, code and field; nothing stored).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use offload_core::Job;
use offload_core::cron::{ScheduleInfo, ScheduleList, Triggered};
use offload_core::spec::Limits;
use offload_server::ServerConfig;
use serde_json::json;

use crate::common::{Reply, TestApp, json_request};

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

impl TestApp {
    async fn put(&self, path: &str, body: impl Into<Body>) -> Reply {
        self.call(json_request(Method::PUT, path, body)).await
    }

    async fn schedule_names(&self) -> Vec<String> {
        let list: ScheduleList = self.get("/v1/schedules").await.parse();
        list.schedules.into_iter().map(|s| s.name).collect()
    }
}

const NIGHTLY: &str = r#"{"cron":"30 2 * * *","timezone":"Europe/Berlin",
    "job":{"queue":"reports","name":"nightly-report","payload":{"kind":"full"},"priority":3}}"#;

#[tokio::test]
async fn put_creates_then_replaces_and_get_shows_the_next_fire_times() {
    let app = TestApp::new().await;
    let reply = app.put("/v1/schedules/nightly", NIGHTLY).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let created: ScheduleInfo = reply.parse();
    assert_eq!(
        (
            created.name.as_str(),
            created.cron.as_str(),
            created.timezone.as_str()
        ),
        ("nightly", "30 2 * * *", "Europe/Berlin")
    );
    let body = reply.json();
    assert_eq!(body["overlap"], "skip", "documented default");
    assert_eq!(body["catch_up"], "latest", "documented default");
    assert_eq!(body["jitter"], 0);
    assert_eq!(body["paused"], false);
    assert_eq!(body["source"], "api");
    assert_eq!(body["job"]["queue"], "reports");
    assert_eq!(body["job"]["payload"], json!({"kind": "full"}));
    assert_eq!(body["job"]["max_attempts"], 25);
    assert!(body.get("catch_up_window").is_none());
    assert_eq!(created.next_fire_times.len(), 5);
    assert_eq!(Some(created.next_fire_times[0]), created.next_fire_at);
    assert!(created.next_fire_times.windows(2).all(|w| w[0] < w[1]));
    assert!(app.engine.now() < created.next_fire_times[0]);

    let replaced = app
        .put(
            "/v1/schedules/nightly",
            r#"{"name":"nightly","cron":"30 2 * * *","timezone":"Europe/Berlin","job":{"queue":"reports"},
                "overlap":"buffer_one","catch_up":"all","catch_up_window":"2h","jitter":"5m","paused":true}"#,
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{replaced:?}");
    let body = replaced.json();
    assert_eq!(
        (
            &body["overlap"],
            &body["catch_up"],
            &body["catch_up_window"],
            &body["jitter"],
            &body["paused"]
        ),
        (
            &json!("buffer_one"),
            &json!("all"),
            &json!(7_200_000),
            &json!(300_000),
            &json!(true)
        )
    );
    assert_eq!(
        body["next_fire_at"],
        serde_json::to_value(created.next_fire_at).unwrap(),
        "same cadence, same next fire time"
    );

    let got: ScheduleInfo = app.get("/v1/schedules/nightly").await.parse();
    assert_eq!(got.job.queue, "reports");
    assert!(got.paused);
    assert_eq!(got.recent_ticks.as_deref(), Some(&[][..]));
    assert_eq!(got.next_fire_times.len(), 5);
}

#[tokio::test]
async fn pause_resume_trigger_and_delete() {
    let app = TestApp::new().await;
    app.put("/v1/schedules/nightly", NIGHTLY).await;

    let paused: ScheduleInfo = app
        .send(Method::POST, "/v1/schedules/nightly/pause")
        .await
        .parse();
    assert!(paused.paused);
    let resumed: ScheduleInfo = app
        .send(Method::POST, "/v1/schedules/nightly/resume")
        .await
        .parse();
    assert!(!resumed.paused);

    let reply = app
        .send(Method::POST, "/v1/schedules/nightly/trigger")
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let triggered: Triggered = reply.parse();
    let job: Job = app.job(triggered.job_id).await;
    assert_eq!(job.queue, "reports");
    assert_eq!(job.name.as_deref(), Some("nightly-report"));
    assert_eq!(job.payload.get(), r#"{"kind":"full"}"#);
    let by = job.schedule.expect("the job names its schedule");
    assert_eq!(
        (by.name.as_str(), by.fire_at),
        ("nightly", triggered.fire_at)
    );
    let body = app
        .get(&format!("/v1/jobs/{}", triggered.job_id))
        .await
        .json();
    assert_eq!(
        body["schedule"]["name"], "nightly",
        "visible in the job view"
    );

    let got: ScheduleInfo = app.get("/v1/schedules/nightly").await.parse();
    let ticks = got.recent_ticks.unwrap();
    assert_eq!(ticks.len(), 1);
    assert_eq!(ticks[0].job_id, Some(triggered.job_id));
    assert!(ticks[0].manual);
    let tick = &app.get("/v1/schedules/nightly").await.json()["recent_ticks"][0];
    assert_eq!(
        (&tick["outcome"], &tick["manual"]),
        (&json!("fired"), &json!(true))
    );

    let reply = app.delete("/v1/schedules/nightly").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{reply:?}");
    assert!(app.schedule_names().await.is_empty());
    app.job(triggered.job_id).await; // jobs outlive their schedule
    for (method, path) in [
        (Method::GET, "/v1/schedules/nightly"),
        (Method::DELETE, "/v1/schedules/nightly"),
        (Method::POST, "/v1/schedules/nightly/pause"),
        (Method::POST, "/v1/schedules/nightly/resume"),
        (Method::POST, "/v1/schedules/nightly/trigger"),
    ] {
        let problem = app.send(method.clone(), path).await.assert_problem(
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        );
        assert!(
            problem["detail"].as_str().unwrap().contains("nightly"),
            "{method} {path}: {problem}"
        );
    }
}

#[tokio::test]
async fn list_pages_in_name_order() {
    let app = TestApp::new().await;
    for name in ["c", "a", "b"] {
        let reply = app.put(&format!("/v1/schedules/{name}"), NIGHTLY).await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let first: ScheduleList = app.get("/v1/schedules?limit=2").await.parse();
    let names: Vec<&str> = first.schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(first.schedules[0].next_fire_at.is_some());
    assert!(
        first.schedules[0].next_fire_times.is_empty() && first.schedules[0].recent_ticks.is_none()
    );
    let cursor = first.next_cursor.expect("a full page has a cursor");
    let rest: ScheduleList = app
        .get(&format!("/v1/schedules?limit=2&cursor={cursor}"))
        .await
        .parse();
    assert_eq!(rest.schedules.len(), 1);
    assert_eq!(rest.schedules[0].name, "c");
    assert!(rest.next_cursor.is_none());

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("cursor=%20", "cursor"),
        ("sort=name", "sort"),
    ] {
        app.get(&format!("/v1/schedules?{query}"))
            .await
            .assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
}

#[tokio::test]
async fn every_bad_input_is_refused_naming_its_field_and_nothing_is_stored() {
    let app = TestApp::with_config(ServerConfig {
        limits: Limits {
            max_payload_bytes: 64,
            ..Limits::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let cases: Vec<(&str, serde_json::Value, StatusCode, &str, Option<&str>)> = vec![
        (
            "ok-name",
            json!({"cron": "61 * * * *", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"cron": "* 24 * * *", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"cron": "0 0 31 13 *", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"cron": "* * *", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"cron": "@reboot", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"cron": "0 0 30 2 *", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"cron": "", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"cron": 5, "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cron"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "timezone": "Mars/Olympus_Mons", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("timezone"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "jitter": "2m", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("jitter"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "jitter": "-1s", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("jitter"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "catch_up_window": "1h", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("catch_up_window"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "overlap": "sometimes", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("overlap"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "catch_up": "everything", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("catch_up"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *"}),
            UNPROCESSABLE,
            "invalid_field",
            Some("job"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "job": {}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("job.queue"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "job": {"queue": "has space"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("job.queue"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "job": {"queue": "q", "max_attempts": 0}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("job.max_attempts"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "job": {"queue": "q", "timeout": "1ms"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("job.timeout"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "job": {"queue": "q", "delay": "1s"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("job.delay"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "job": {"queue": "q", "payload": {"text": "x".repeat(100)}}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Some("job.payload"),
        ),
        (
            "ok-name",
            json!({"cron": "* * * * *", "cronn": 1, "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("cronn"),
        ),
        (
            "ok-name",
            json!({"name": "other", "cron": "* * * * *", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("name"),
        ),
        (
            "has%20space",
            json!({"cron": "* * * * *", "job": {"queue": "q"}}),
            UNPROCESSABLE,
            "invalid_field",
            Some("name"),
        ),
    ];
    for (name, body, status, code, field) in cases {
        let reply = app
            .put(&format!("/v1/schedules/{name}"), body.to_string())
            .await;
        let problem = reply.assert_problem(status, code, field);
        if field == Some("cron") && body["cron"] == "* 24 * * *" {
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.contains("hour field `24`"),
                "names the part: {detail}"
            );
        }
    }
    app.put("/v1/schedules/x", "{").await.assert_problem(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        None,
    );
    let no_type = Request::builder()
        .method(Method::PUT)
        .uri("/v1/schedules/x")
        .body(Body::from(r#"{"cron":"* * * * *","job":{"queue":"q"}}"#))
        .unwrap();
    app.call(no_type).await.assert_problem(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
    );
    app.put("/v1/schedules", NIGHTLY).await.assert_problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    app.get("/v1/schedules/has%20space").await.assert_problem(
        UNPROCESSABLE,
        "invalid_field",
        Some("name"),
    );
    assert!(app.schedule_names().await.is_empty(), "nothing was stored");
}
