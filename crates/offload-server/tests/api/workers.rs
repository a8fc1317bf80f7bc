//! Pull workers' routes: claim, heartbeat, complete, fail, and their batch forms.

use axum::http::StatusCode;
use offload_core::api::ClaimResponse;
use offload_core::spec::Limits;
use offload_core::{JobId, JobState, LeaseToken};
use offload_server::ServerConfig;

use crate::common::TestApp;

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

#[tokio::test]
async fn claim_hands_out_jobs_with_leases() {
    let app = TestApp::new().await;
    for i in 0..3 {
        app.enqueue(&format!(
            r#"{{"queue":"work","name":"n{i}","payload":{{"i":{i}}},"priority":{i}}}"#
        ))
        .await;
    }
    let reply = app
        .post(
            "/v1/queues/work/claim",
            r#"{"worker_id":"w1","max_jobs":2,"wait":"0s"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let claim: ClaimResponse = reply.parse();
    assert_eq!(claim.jobs.len(), 2);
    assert_eq!(
        claim.jobs[0].payload.get(),
        r#"{"i":2}"#,
        "highest priority first"
    );
    assert_eq!(claim.jobs[0].attempt, 1);
    assert_ne!(claim.jobs[0].lease_token, claim.jobs[1].lease_token);
    let job = app.job(claim.jobs[0].id).await;
    assert_eq!(
        (job.state, job.worker_id.as_deref()),
        (JobState::Running, Some("w1"))
    );

    let rest: ClaimResponse = app
        .post(
            "/v1/queues/work/claim",
            r#"{"worker_id":"w1","max_jobs":5}"#,
        )
        .await
        .parse();
    assert_eq!(rest.jobs.len(), 1);
    let empty: ClaimResponse = app
        .post("/v1/queues/work/claim", r#"{"worker_id":"w1"}"#)
        .await
        .parse();
    assert!(empty.jobs.is_empty());
}

#[tokio::test]
async fn bad_claims_are_named() {
    let app = TestApp::new().await;
    let long_worker = format!(r#"{{"worker_id":"{}"}}"#, "w".repeat(257));
    for (body, field) in [
        (r#"{"worker_id":"w","max_jobs":0}"#, "max_jobs"),
        (r#"{"worker_id":"w","max_jobs":1001}"#, "max_jobs"),
        (r#"{"worker_id":"w","max_jobs":-1}"#, "max_jobs"),
        (r#"{"worker_id":"w","wait":"61s"}"#, "wait"),
        (r#"{"worker_id":"w","wait":"-1s"}"#, "wait"),
        (r#"{"worker_id":"w","wait":"later"}"#, "wait"),
        (r#"{"worker_id":""}"#, "worker_id"),
        (r#"{"worker_id":"a\nb"}"#, "worker_id"),
        (long_worker.as_str(), "worker_id"),
        (r#"{}"#, "worker_id"),
        (r#"{"worker_id":"w","max_job":2}"#, "max_job"),
    ] {
        let reply = app.post("/v1/queues/q/claim", body.to_owned()).await;
        assert_eq!(reply.status, UNPROCESSABLE, "{body}: {reply:?}");
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    let long_queue = "q".repeat(129);
    for queue in ["bad%20queue", "b%C3%A4d", long_queue.as_str()] {
        let reply = app
            .post(&format!("/v1/queues/{queue}/claim"), r#"{"worker_id":"w"}"#)
            .await;
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("queue"));
    }
    app.post("/v1/queues/q/claim", "{").await.assert_problem(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        None,
    );
}

#[tokio::test]
async fn draining_server_refuses_claims() {
    let app = TestApp::new().await;
    app.enqueue(r#"{"queue":"q"}"#).await;
    app.engine.stop_claiming();
    let reply = app.post("/v1/queues/q/claim", r#"{"worker_id":"w"}"#).await;
    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", None);
    // Enqueues still work while draining.
    app.enqueue(r#"{"queue":"q"}"#).await;
}

#[tokio::test]
async fn heartbeat_extends_the_lease_and_records_progress() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"hb","timeout":"10s"}"#).await;
    let claimed = app.claim_one("hb").await;
    let path = format!("/v1/jobs/{}/heartbeat", job.id);
    let token = claimed.lease_token.0;

    let reply = app
        .post(
            &path,
            format!(r#"{{"lease_token":"{token}","progress":40,"message":"half"}}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["cancel_requested"], false);
    assert!(reply.json()["lease_expires_at"].is_string());
    let progress = app.job(job.id).await.progress.expect("progress recorded");
    assert_eq!(
        (progress.percent, progress.message.as_deref()),
        (40, Some("half"))
    );
    assert_eq!(
        app.post(&path, format!(r#"{{"lease_token":"{token}"}}"#))
            .await
            .status,
        StatusCode::OK
    );

    let long = "m".repeat(1025);
    for (body, field) in [
        (
            format!(r#"{{"lease_token":"{token}","progress":101}}"#),
            "progress",
        ),
        (
            format!(r#"{{"lease_token":"{token}","progress":256}}"#),
            "progress",
        ),
        (
            format!(r#"{{"lease_token":"{token}","progress":-1}}"#),
            "progress",
        ),
        (
            format!(r#"{{"lease_token":"{token}","progress":5,"message":"{long}"}}"#),
            "message",
        ),
        (
            format!(r#"{{"lease_token":"{token}","message":"no percent"}}"#),
            "message",
        ),
        (r#"{"lease_token":"nope"}"#.to_owned(), "lease_token"),
        (r#"{}"#.to_owned(), "lease_token"),
    ] {
        let reply = app.post(&path, body.clone()).await;
        assert_eq!(reply.status, UNPROCESSABLE, "{body}: {reply:?}");
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }

    let stale = format!(
        r#"{{"lease_token":"{}","progress":90}}"#,
        LeaseToken::new().0
    );
    app.post(&path, stale).await.assert_problem(
        StatusCode::CONFLICT,
        "lease_mismatch",
        Some("lease_token"),
    );
    assert_eq!(
        app.job(job.id).await.progress.unwrap().percent,
        40,
        "a stale heartbeat changes nothing"
    );

    let unknown = format!("/v1/jobs/{}/heartbeat", JobId::new());
    let reply = app
        .post(&unknown, format!(r#"{{"lease_token":"{token}"}}"#))
        .await;
    reply.assert_problem(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn complete_and_fail() {
    let app = TestApp::new().await;
    let job = app
        .enqueue(r#"{"queue":"cf","max_attempts":2,"backoff":{"base":"1h","cap":"2h"}}"#)
        .await;
    let claimed = app.claim_one("cf").await;
    let token = claimed.lease_token.0;

    // A stale token is refused and changes nothing.
    let stale = LeaseToken::new().0;
    let reply = app
        .post(
            &format!("/v1/jobs/{}/complete", job.id),
            format!(r#"{{"lease_token":"{stale}"}}"#),
        )
        .await;
    reply.assert_problem(StatusCode::CONFLICT, "lease_mismatch", Some("lease_token"));
    let reply = app
        .post(
            &format!("/v1/jobs/{}/fail", job.id),
            format!(r#"{{"lease_token":"{stale}","error":"x"}}"#),
        )
        .await;
    reply.assert_problem(StatusCode::CONFLICT, "lease_mismatch", Some("lease_token"));
    let unchanged = app.job(job.id).await;
    assert_eq!(
        (unchanged.state, unchanged.attempt, unchanged.last_error),
        (JobState::Running, 1, None)
    );

    // Fail with attempts left: retrying after the backoff.
    let reply = app
        .post(
            &format!("/v1/jobs/{}/fail", job.id),
            format!(r#"{{"lease_token":"{token}","error":"flaky"}}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.json(),
        serde_json::json!({"id": job.id.to_string(), "state": "retrying"})
    );
    let after = app.job(job.id).await;
    assert_eq!(after.last_error.as_deref(), Some("flaky"));
    // The old token is stale now.
    let reply = app
        .post(
            &format!("/v1/jobs/{}/complete", job.id),
            format!(r#"{{"lease_token":"{token}"}}"#),
        )
        .await;
    reply.assert_problem(StatusCode::CONFLICT, "lease_mismatch", Some("lease_token"));

    // Complete with a result.
    let job = app.enqueue(r#"{"queue":"ok"}"#).await;
    let claimed = app.claim_one("ok").await;
    let body = format!(
        r#"{{"lease_token":"{}","result":{{"sent": true}}}}"#,
        claimed.lease_token.0
    );
    let reply = app
        .post(&format!("/v1/jobs/{}/complete", job.id), body)
        .await;
    assert_eq!(
        reply.json(),
        serde_json::json!({"id": job.id.to_string(), "state": "succeeded"})
    );
    assert_eq!(
        app.job(job.id).await.result.unwrap().get(),
        r#"{"sent": true}"#
    );

    // Not retryable: dead at once, even with attempts left.
    let job = app.enqueue(r#"{"queue":"fatal"}"#).await;
    let claimed = app.claim_one("fatal").await;
    let body = format!(
        r#"{{"lease_token":"{}","error":"bad input","retryable":false}}"#,
        claimed.lease_token.0
    );
    assert_eq!(
        app.post(&format!("/v1/jobs/{}/fail", job.id), body)
            .await
            .json()["state"],
        "dead"
    );

    // retry_after overrides the backoff; a zero delay makes the job available again.
    let job = app
        .enqueue(r#"{"queue":"again","backoff":{"base":"1h","cap":"2h"}}"#)
        .await;
    let claimed = app.claim_one("again").await;
    let body = format!(
        r#"{{"lease_token":"{}","error":"rate limited","retry_after":0}}"#,
        claimed.lease_token.0
    );
    assert_eq!(
        app.post(&format!("/v1/jobs/{}/fail", job.id), body)
            .await
            .json()["state"],
        "available"
    );

    let unknown = JobId::new();
    let body = format!(r#"{{"lease_token":"{token}"}}"#);
    app.post(&format!("/v1/jobs/{unknown}/complete"), body)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn bad_finish_bodies_are_named() {
    let limits = Limits {
        max_payload_bytes: 50,
        ..Limits::default()
    };
    let app = TestApp::with_config(ServerConfig {
        limits,
        ..ServerConfig::default()
    })
    .await;
    let job = app.enqueue(r#"{"queue":"q"}"#).await;
    let claimed = app.claim_one("q").await;
    let token = claimed.lease_token.0;
    let complete = format!("/v1/jobs/{}/complete", job.id);
    let fail = format!("/v1/jobs/{}/fail", job.id);

    let big = format!(
        r#"{{"lease_token":"{token}","result":"{}"}}"#,
        "r".repeat(60)
    );
    app.post(&complete, big).await.assert_problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        Some("result"),
    );
    let cases = [
        (
            &complete,
            format!(r#"{{"lease_token":"{token}","reslt":1}}"#),
            "reslt",
        ),
        (&fail, format!(r#"{{"lease_token":"{token}"}}"#), "error"),
        (
            &fail,
            format!(r#"{{"lease_token":"{token}","error":"e","retry_after":"-5s"}}"#),
            "retry_after",
        ),
        (
            &fail,
            format!(r#"{{"lease_token":"{token}","error":"e","retry_after":"400d"}}"#),
            "retry_after",
        ),
        (
            &fail,
            format!(r#"{{"lease_token":"{token}","error":"e","retryable":"no"}}"#),
            "retryable",
        ),
    ];
    for (path, body, field) in cases {
        let reply = app.post(path, body.clone()).await;
        assert_eq!(reply.status, UNPROCESSABLE, "{body}: {reply:?}");
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    assert_eq!(
        app.job(job.id).await.state,
        JobState::Running,
        "refused reports change nothing"
    );

    // An over-long error is kept, cut (on a server whose body limit leaves room for it).
    let app = TestApp::new().await;
    app.enqueue(r#"{"queue":"q"}"#).await;
    let claimed = app.claim_one("q").await;
    let (fail, token) = (
        format!("/v1/jobs/{}/fail", claimed.id),
        claimed.lease_token.0,
    );
    let body = format!(
        r#"{{"lease_token":"{token}","error":"{}","retryable":false}}"#,
        "é".repeat(offload_core::api::MAX_ERROR_LEN)
    );
    assert_eq!(app.post(&fail, body).await.status, StatusCode::OK);
    let kept = app.job(claimed.id).await.last_error.unwrap();
    let max = offload_core::api::MAX_ERROR_LEN;
    assert!(kept.len() <= max && kept.len() > max - 4, "{}", kept.len());
}

#[tokio::test]
async fn batch_complete_and_fail_answer_per_item() {
    let app = TestApp::new().await;
    for _ in 0..3 {
        app.enqueue(r#"{"queue":"b","max_attempts":1}"#).await;
    }
    let claim: ClaimResponse = app
        .post("/v1/queues/b/claim", r#"{"worker_id":"w","max_jobs":3}"#)
        .await
        .parse();
    let [a, b, c] = &claim.jobs[..] else {
        panic!("three jobs")
    };
    let unknown = JobId::new();
    let stale = LeaseToken::new();

    // `/v1/jobs/complete` is its own route, not `/v1/jobs/{id}` with id "complete".
    let body = format!(
        r#"{{"jobs":[{{"id":"{}","lease_token":"{}","result":1}},{{"id":"{}","lease_token":"{}"}},
                     {{"id":"{unknown}","lease_token":"{}"}}]}}"#,
        a.id, a.lease_token.0, b.id, stale.0, stale.0
    );
    let reply = app.post("/v1/jobs/complete", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.json(),
        serde_json::json!({"jobs": [
            {"id": a.id.to_string(), "ok": true, "state": "succeeded"},
            {"id": b.id.to_string(), "ok": false, "code": "lease_mismatch"},
            {"id": unknown.to_string(), "ok": false, "code": "not_found"},
        ]})
    );
    assert_eq!(
        app.job(b.id).await.state,
        JobState::Running,
        "the stale item changed nothing"
    );

    let body = format!(
        r#"{{"jobs":[{{"id":"{}","lease_token":"{}","error":"e1"}},{{"id":"{}","lease_token":"{}","error":"e2"}}]}}"#,
        b.id, b.lease_token.0, c.id, c.lease_token.0
    );
    let reply = app.post("/v1/jobs/fail", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let states: Vec<_> = reply.json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].clone())
        .collect();
    assert_eq!(states, vec!["dead", "dead"]);

    // Bad items refuse the whole batch, named by index.
    let body = format!(
        r#"{{"jobs":[{{"id":"{}","lease_token":"{}","error":"e","retry_after":"-1s"}}]}}"#,
        a.id, stale.0
    );
    app.post("/v1/jobs/fail", body).await.assert_problem(
        UNPROCESSABLE,
        "invalid_field",
        Some("jobs[0].retry_after"),
    );
    let body = format!(
        r#"{{"jobs":[{{"id":"{}","lease_token":"{}"}},{{"id":"x","lease_token":"{}"}}]}}"#,
        a.id, stale.0, stale.0
    );
    app.post("/v1/jobs/complete", body).await.assert_problem(
        UNPROCESSABLE,
        "invalid_field",
        Some("jobs[1].id"),
    );
    app.post("/v1/jobs/complete", r#"{"jobs":[]}"#)
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("jobs"));
}

#[tokio::test]
async fn batch_results_are_held_to_the_payload_limit() {
    let limits = Limits {
        max_payload_bytes: 10,
        ..Limits::default()
    };
    let app = TestApp::with_config(ServerConfig {
        limits,
        ..ServerConfig::default()
    })
    .await;
    let job = app.enqueue(r#"{"queue":"q"}"#).await;
    let claimed = app.claim_one("q").await;
    let body = format!(
        r#"{{"jobs":[{{"id":"{}","lease_token":"{}","result":"0123456789"}}]}}"#,
        job.id, claimed.lease_token.0
    );
    app.post("/v1/jobs/complete", body).await.assert_problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        Some("jobs[0].result"),
    );
    assert_eq!(app.job(job.id).await.state, JobState::Running);
}
