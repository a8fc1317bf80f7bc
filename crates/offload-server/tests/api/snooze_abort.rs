//! Workers' snooze (run again later without using up an attempt) and abort (end the job cancelled).

use axum::http::StatusCode;
use offload_core::api::MAX_ERROR_LEN;
use offload_core::spec::Limits;
use offload_core::{AttemptOutcome, DurationSpec, JobId, JobState, LeaseToken};
use offload_server::ServerConfig;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn snooze_brings_the_job_back_without_using_up_an_attempt() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"sz","max_attempts":1}"#).await;
    let claimed = app.claim_one("sz").await;
    let path = format!("/v1/jobs/{}/snooze", job.id);

    let stale = LeaseToken::new().0;
    app.post(
        &path,
        format!(r#"{{"lease_token":"{stale}","delay":"1m"}}"#),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "lease_mismatch", Some("lease_token"));

    let token = claimed.lease_token.0;
    let reply = app
        .post(
            &path,
            format!(r#"{{"lease_token":"{token}","delay":"1h"}}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.json(),
        json!({"id": job.id.to_string(), "state": "scheduled"})
    );
    let after = app.job(job.id).await;
    assert_eq!((after.attempt, after.max_attempts), (1, 2));
    let due_in = after
        .run_at
        .duration_since(after.attempts.as_ref().unwrap()[0].finished_at.unwrap());
    assert_eq!(due_in, offload_core::SignedDuration::from_hours(1));
    assert_eq!(after.attempts.unwrap()[0].outcome, AttemptOutcome::Snoozed);
    app.post(
        &path,
        format!(r#"{{"lease_token":"{token}","delay":"1m"}}"#),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "lease_mismatch", Some("lease_token"));

    // A zero delay: available again at once, for a second attempt the job would not otherwise have had.
    let job = app.enqueue(r#"{"queue":"sz0","max_attempts":1}"#).await;
    let claimed = app.claim_one("sz0").await;
    let body = format!(r#"{{"lease_token":"{}","delay":0}}"#, claimed.lease_token.0);
    let reply = app.post(&format!("/v1/jobs/{}/snooze", job.id), body).await;
    assert_eq!(reply.json()["state"], "available", "{reply:?}");
    let again = app.claim_one("sz0").await;
    assert_eq!(
        (again.id, again.attempt, again.max_attempts),
        (job.id, 2, 2)
    );

    // A requested cancel wins.
    let job = app.enqueue(r#"{"queue":"szc"}"#).await;
    let claimed = app.claim_one("szc").await;
    app.post(&format!("/v1/jobs/{}/cancel", job.id), "").await;
    let body = format!(
        r#"{{"lease_token":"{}","delay":"1m"}}"#,
        claimed.lease_token.0
    );
    let reply = app.post(&format!("/v1/jobs/{}/snooze", job.id), body).await;
    assert_eq!(reply.json()["state"], "cancelled", "{reply:?}");
}

#[tokio::test]
async fn abort_ends_the_job_cancelled_with_its_reason() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"ab","max_attempts":5}"#).await;
    let claimed = app.claim_one("ab").await;
    let path = format!("/v1/jobs/{}/abort", job.id);
    let stale = LeaseToken::new().0;
    app.post(&path, format!(r#"{{"lease_token":"{stale}"}}"#))
        .await
        .assert_problem(StatusCode::CONFLICT, "lease_mismatch", Some("lease_token"));

    let token = claimed.lease_token.0;
    let body = format!(r#"{{"lease_token":"{token}","reason":"user deleted"}}"#);
    let reply = app.post(&path, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.json(),
        json!({"id": job.id.to_string(), "state": "cancelled"})
    );
    let after = app.job(job.id).await;
    assert_eq!(after.state, JobState::Cancelled);
    assert_eq!(after.last_error.as_deref(), Some("user deleted"));
    let attempt = &after.attempts.unwrap()[0];
    assert_eq!(
        (attempt.outcome, attempt.error.as_deref()),
        (AttemptOutcome::Cancelled, Some("user deleted"))
    );
    // The attempt is over: a late completion is refused.
    app.post(
        &format!("/v1/jobs/{}/complete", job.id),
        format!(r#"{{"lease_token":"{token}"}}"#),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "lease_mismatch", Some("lease_token"));

    // Without a reason, and with an over-long one (cut like a failure's error).
    let job = app.enqueue(r#"{"queue":"ab2"}"#).await;
    let claimed = app.claim_one("ab2").await;
    let body = format!(r#"{{"lease_token":"{}"}}"#, claimed.lease_token.0);
    app.post(&format!("/v1/jobs/{}/abort", job.id), body).await;
    assert_eq!(
        app.job(job.id).await.last_error.as_deref(),
        Some("cancelled by the worker")
    );
    let job = app.enqueue(r#"{"queue":"ab3"}"#).await;
    let claimed = app.claim_one("ab3").await;
    let body =
        json!({"lease_token": claimed.lease_token, "reason": "r".repeat(MAX_ERROR_LEN + 10)});
    app.post(&format!("/v1/jobs/{}/abort", job.id), body.to_string())
        .await;
    assert_eq!(
        app.job(job.id).await.last_error.map(|e| e.len()),
        Some(MAX_ERROR_LEN)
    );

    let unknown = JobId::new();
    app.post(
        &format!("/v1/jobs/{unknown}/abort"),
        format!(r#"{{"lease_token":"{token}"}}"#),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn bad_snooze_and_abort_bodies_are_named() {
    let limits = Limits {
        max_delay: DurationSpec::parse("1h").unwrap(),
        ..Limits::default()
    };
    let app = TestApp::with_config(ServerConfig {
        limits,
        ..ServerConfig::default()
    })
    .await;
    let job = app.enqueue(r#"{"queue":"bad"}"#).await;
    let claimed = app.claim_one("bad").await;
    let token = claimed.lease_token.0;
    let snooze = format!("/v1/jobs/{}/snooze", job.id);
    let abort = format!("/v1/jobs/{}/abort", job.id);
    for (path, body, field) in [
        (&snooze, format!(r#"{{"lease_token":"{token}"}}"#), "delay"),
        (
            &snooze,
            format!(r#"{{"lease_token":"{token}","delay":"2h"}}"#),
            "delay",
        ),
        (
            &snooze,
            format!(r#"{{"lease_token":"{token}","delay":"-1s"}}"#),
            "delay",
        ),
        (&snooze, r#"{"delay":"1s"}"#.to_owned(), "lease_token"),
        (
            &snooze,
            format!(r#"{{"lease_token":"{token}","delay":"1s","x":1}}"#),
            "x",
        ),
        (&abort, r#"{"reason":"x"}"#.to_owned(), "lease_token"),
        (
            &abort,
            format!(r#"{{"lease_token":"{token}","reason":7}}"#),
            "reason",
        ),
    ] {
        let reply = app.post(path, body.clone()).await;
        reply.assert_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some(field),
        );
    }
    assert_eq!(
        app.job(job.id).await.state,
        JobState::Running,
        "nothing changed"
    );
}
