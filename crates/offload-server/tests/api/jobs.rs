//! Reading and managing jobs: get, list (filters, pagination), cancel, retry, delete.

use axum::http::{Method, StatusCode};
use offload_core::{Job, JobId, JobState};

use crate::common::TestApp;

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

/// A job that ran once and failed for good.
async fn dead_job(app: &TestApp) -> JobId {
    let job = app.enqueue(r#"{"queue":"dead","max_attempts":1}"#).await;
    let claimed = app.claim_one("dead").await;
    let reply = app
        .post(
            &format!("/v1/jobs/{}/fail", job.id),
            format!(
                r#"{{"lease_token":"{}","error":"boom"}}"#,
                claimed.lease_token.0
            ),
        )
        .await;
    assert_eq!(reply.json()["state"], "dead", "{reply:?}");
    job.id
}

#[tokio::test]
async fn get_shows_the_attempt_history() {
    let app = TestApp::new().await;
    let id = dead_job(&app).await;
    let job = app.job(id).await;
    assert_eq!((job.state, job.attempt), (JobState::Dead, 1));
    let attempts = job.attempts.expect("single reads carry attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error.as_deref(), Some("boom"));
    assert_eq!(attempts[0].worker_id.as_deref(), Some("w1"));
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = TestApp::new().await;
    let unknown = JobId::new();
    for (method, path) in [
        (Method::GET, format!("/v1/jobs/{unknown}")),
        (Method::DELETE, format!("/v1/jobs/{unknown}")),
        (Method::POST, format!("/v1/jobs/{unknown}/cancel")),
        (Method::POST, format!("/v1/jobs/{unknown}/retry")),
    ] {
        app.send(method, &path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    }
    for bad in [
        "not-a-uuid",
        "123",
        "%FF%FE",
        "0190a1b2-zzzz-7000-8000-000000000000",
    ] {
        let reply = app.get(&format!("/v1/jobs/{bad}")).await;
        let problem = reply.assert_problem(StatusCode::NOT_FOUND, "not_found", None);
        assert!(
            problem["detail"].as_str().unwrap().contains("`id`"),
            "{problem}"
        );
        let reply = app
            .send(Method::POST, &format!("/v1/jobs/{bad}/cancel"))
            .await;
        reply.assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    }
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        let job = app
            .enqueue(&format!(
                r#"{{"queue":"list","name":"n{i}","tags":{{"parity":"{tag}"}}}}"#
            ))
            .await;
        ids.push(job.id.to_string());
    }
    app.enqueue(r#"{"queue":"other","delay":"1h"}"#).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    assert_eq!(app.list_ids("queue=list").await, newest_first);
    assert_eq!(
        app.list_ids("queue=list&name=n3").await,
        vec![ids[3].clone()]
    );
    assert_eq!(
        app.list_ids("tag=parity:odd").await,
        vec![ids[3].clone(), ids[1].clone()]
    );
    assert_eq!(app.list_ids("state=scheduled").await.len(), 1);
    assert_eq!(app.list_ids("state=available&queue=list").await.len(), 5);
    assert!(app.list_ids("queue=nothing").await.is_empty());

    // Pages of two: a full page has a cursor; following it walks every job once.
    let mut seen = Vec::new();
    let mut query = "queue=list&limit=2".to_owned();
    loop {
        let page = app.get(&format!("/v1/jobs?{query}")).await.json();
        let items = page["items"].as_array().unwrap();
        seen.extend(items.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        assert!(
            items.iter().all(|j| j.get("attempts").is_none()),
            "lists carry no histories"
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(items.len(), 2);
                query = format!("queue=list&limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
}

#[tokio::test]
async fn bad_list_parameters_are_named() {
    let app = TestApp::new().await;
    for (query, field) in [
        ("state=bogus", "state"),
        ("state=", "state"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("cursor=xyz", "cursor"),
        ("tag=nocolon", "tag"),
        ("tag=:value", "tag"),
        ("queue=bad%20name", "queue"),
        ("colour=red", "colour"),
        ("queue=a&queue=b", "queue"),
    ] {
        let reply = app.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(reply.status, UNPROCESSABLE, "{query}: {reply:?}");
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
}

#[tokio::test]
async fn cancel_retry_and_delete() {
    let app = TestApp::new().await;

    // Cancel a waiting job at once; a second cancel is a no-op.
    let job = app.enqueue(r#"{"queue":"c","delay":"1h"}"#).await;
    let reply = app
        .send(Method::POST, &format!("/v1/jobs/{}/cancel", job.id))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.parse::<Job>().state, JobState::Cancelled);
    assert_eq!(
        app.send(Method::POST, &format!("/v1/jobs/{}/cancel", job.id))
            .await
            .status,
        StatusCode::OK
    );

    // Retry puts a cancelled or dead job back; retrying an available job is refused.
    let reply = app
        .send(Method::POST, &format!("/v1/jobs/{}/retry", job.id))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.parse::<Job>().state, JobState::Available);
    let reply = app
        .send(Method::POST, &format!("/v1/jobs/{}/retry", job.id))
        .await;
    let problem = reply.assert_problem(StatusCode::CONFLICT, "invalid_state", None);
    assert!(
        problem["detail"].as_str().unwrap().contains("available"),
        "{problem}"
    );

    let dead = dead_job(&app).await;
    let reply = app
        .send(Method::POST, &format!("/v1/jobs/{dead}/retry"))
        .await;
    assert_eq!(reply.parse::<Job>().state, JobState::Available, "{reply:?}");

    // Succeeded jobs cannot be cancelled.
    let done = app.enqueue(r#"{"queue":"done"}"#).await;
    let claimed = app.claim_one("done").await;
    let body = format!(r#"{{"lease_token":"{}"}}"#, claimed.lease_token.0);
    assert_eq!(
        app.post(&format!("/v1/jobs/{}/complete", done.id), body)
            .await
            .status,
        StatusCode::OK
    );
    let reply = app
        .send(Method::POST, &format!("/v1/jobs/{}/cancel", done.id))
        .await;
    reply.assert_problem(StatusCode::CONFLICT, "invalid_state", None);

    // Delete: 204, then gone.
    let reply = app.delete(&format!("/v1/jobs/{}", job.id)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{reply:?}");
    assert!(reply.body.is_empty());
    app.get(&format!("/v1/jobs/{}", job.id))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn running_jobs_cannot_be_deleted_and_cancel_is_a_request() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"run"}"#).await;
    let claimed = app.claim_one("run").await;

    let problem = app
        .delete(&format!("/v1/jobs/{}", job.id))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_state", None);
    assert!(
        problem["detail"].as_str().unwrap().contains("running"),
        "{problem}"
    );
    assert_eq!(app.job(job.id).await.state, JobState::Running);

    let reply = app
        .send(Method::POST, &format!("/v1/jobs/{}/cancel", job.id))
        .await;
    let cancelled: Job = reply.parse();
    assert_eq!(
        (cancelled.state, cancelled.cancel_requested),
        (JobState::Running, true)
    );
    let heartbeat = app
        .post(
            &format!("/v1/jobs/{}/heartbeat", job.id),
            format!(r#"{{"lease_token":"{}"}}"#, claimed.lease_token.0),
        )
        .await;
    assert_eq!(heartbeat.json()["cancel_requested"], true, "{heartbeat:?}");
}
