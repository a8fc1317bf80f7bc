//! Push jobs: claimed only by the dispatcher, capped per destination, with callbacks and grouped failure reports.

use std::collections::BTreeMap;
use std::time::Duration;

use offload_core::state::{Failure, FailureCause, add, lease_deadline};
use offload_core::{DurationSpec, JobId, JobState, NewJob, Timestamp};

use offload_core::push::{CALLBACK_QUEUE, Target};

use crate::{
    Finish, FinishItem, JobClaimPushParams, JobFinishParams, JobListParams, JobRescueParams,
    PUSH_FAILURE_ERROR_CHARS, PushFailure, PushFailuresParams, PushJob, QueueSetPausedParams,
};

use super::{Harness, job, raw, secs, state_counts, t0};

/// A push job: like [`job`], delivered to `url`.
pub fn push_job(queue: &str, url: &str) -> NewJob {
    NewJob {
        target: Some(Target::post(url)),
        ..job(queue)
    }
}

impl Harness {
    /// Claims push jobs as the dispatcher `d1`.
    pub async fn claim_push(&self, max_jobs: u32, per_destination: u32) -> Vec<PushJob> {
        self.claim_push_as("d1", max_jobs, per_destination).await
    }

    /// Claims push jobs as the dispatcher `worker` (another server's, when not `d1`).
    pub async fn claim_push_as(
        &self,
        worker: &str,
        max_jobs: u32,
        per_destination: u32,
    ) -> Vec<PushJob> {
        let p = JobClaimPushParams {
            worker_id: worker.into(),
            max_jobs,
            per_destination,
        };
        self.store.job_claim_push(p).await.expect("claim push")
    }

    /// Pauses or resumes `queue`.
    pub async fn set_paused(&self, queue: &str, paused: bool) {
        self.store
            .queue_set_paused(QueueSetPausedParams {
                queue: queue.into(),
                paused,
            })
            .await
            .expect("pause");
    }

    /// Jobs of the callback queue, oldest first.
    pub async fn callbacks(&self) -> Vec<offload_core::Job> {
        let mut jobs = self
            .store
            .job_list(JobListParams {
                queue: Some(CALLBACK_QUEUE.into()),
                limit: 100,
                ..JobListParams::default()
            })
            .await
            .expect("list callbacks");
        jobs.reverse();
        jobs
    }
}

/// A push job keeps its target through insert, get and list; workers' claims never see it, the push claim
/// only sees push jobs, with their target and destination.
pub async fn push_jobs_are_only_claimed_by_the_dispatcher(h: Harness) {
    let mut headers = BTreeMap::new();
    headers.insert("authorization".to_owned(), "Bearer abc".to_owned());
    let target = Target {
        method: "PUT".into(),
        headers,
        timeout: Some(DurationSpec(secs(900))),
        callback_url: Some("https://app.example/done".into()),
        failure_callback_url: Some("https://app.example/failed".into()),
        ..Target::post("https://app.example/work")
    };
    let push = NewJob {
        target: Some(target.clone()),
        ..job("mixed")
    };
    let pull = job("mixed");
    let (push_id, pull_id) = (push.id, pull.id);
    h.insert(vec![push, pull]).await;

    assert_eq!(h.get(push_id).await.target, Some(target.clone()));
    assert_eq!(h.get(pull_id).await.target, None);
    let listed = h
        .store
        .job_list(JobListParams {
            queue: Some("mixed".into()),
            limit: 10,
            ..JobListParams::default()
        })
        .await
        .unwrap();
    let listed_push = listed.iter().find(|j| j.id == push_id).unwrap();
    assert_eq!(listed_push.target, Some(target.clone()));

    let pulled = h.claim("mixed", 10).await;
    assert_eq!(
        pulled.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![pull_id],
        "a worker never gets a push job"
    );
    let pushed = h.claim_push(10, 10).await;
    assert_eq!(pushed.len(), 1, "the dispatcher never gets a pull job");
    let p = &pushed[0];
    assert_eq!((p.job.id, p.job.attempt), (push_id, 1));
    assert_eq!(p.job.queue, "mixed");
    assert_eq!(p.job.payload.get(), r#"{"n":1}"#);
    assert_eq!(p.job.lease_expires_at, lease_deadline(t0(), secs(30)));
    assert_eq!(p.target, target);
    assert_eq!(p.destination, "https://app.example:443");
    assert_eq!(h.get(push_id).await.state, JobState::Running);
    assert_eq!(
        h.get(push_id).await.worker_id.as_deref(),
        Some("d1"),
        "the dispatcher is the attempt's worker"
    );
    assert!(h.claim_push(10, 10).await.is_empty());
    // The push job's attempt ends like any other.
    let done = h
        .finish(
            p.job.id,
            p.job.lease_token,
            Finish::Complete {
                result: Some(raw(r#"{"status":200}"#)),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(
        h.counts("mixed").await,
        state_counts(&[(JobState::Running, 1), (JobState::Succeeded, 1)])
    );
}

/// Push claims follow priority then due time across queues, skip paused queues, and never start a job of a
/// destination that already runs `per_destination` push jobs, whichever dispatcher holds them.
pub async fn push_claims_cap_each_destination(h: Harness) {
    let a = "http://a.example/hook";
    let b = "http://b.example:8080/hook";
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(NewJob {
            priority: 10 - i,
            ..push_job("qa", a)
        });
    }
    for _ in 0..3 {
        jobs.push(push_job("qb", b));
    }
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    h.insert(jobs).await;

    let held = h.claim_push(1, 2).await;
    assert_eq!(held[0].job.id, ids[0]);
    let first = h.claim_push_as("d2", 10, 2).await;
    let got: Vec<JobId> = first.iter().map(|p| p.job.id).collect();
    assert_eq!(
        got,
        vec![ids[1], ids[5], ids[6]],
        "one more of a (d1 runs one), two of b, in priority order"
    );
    assert!(
        h.claim_push(10, 2).await.is_empty(),
        "every destination is at its cap"
    );
    h.complete(&first[1].job, None).await.unwrap();
    let more = h.claim_push(10, 2).await;
    assert_eq!(
        more.iter().map(|p| p.job.id).collect::<Vec<_>>(),
        vec![ids[7]],
        "the completed b job freed its slot"
    );

    h.set_paused("qa", true).await;
    assert!(
        h.claim_push(10, 10).await.is_empty(),
        "a paused queue hands out nothing"
    );
    h.set_paused("qa", false).await;
    let rest = h.claim_push(10, 10).await;
    assert_eq!(
        rest.iter().map(|p| p.job.id).collect::<Vec<_>>(),
        ids[2..5].to_vec()
    );
    assert_eq!(
        h.counts("qa").await,
        state_counts(&[(JobState::Running, 5)])
    );
}

/// A push job that succeeds gets its `callback_url` job, one that dies (by failure or lease expiry) its
/// `failure_callback_url` job, in the same transaction; a retry or a job without callbacks gets none.
pub async fn push_callbacks_are_created_with_the_end(h: Harness) {
    let target = Target {
        callback_url: Some("https://hooks.example/done".into()),
        failure_callback_url: Some("https://hooks.example/failed".into()),
        ..Target::post("https://app.example/work")
    };
    let with = |max_attempts| NewJob {
        name: Some("welcome".into()),
        max_attempts,
        target: Some(target.clone()),
        ..job("emails")
    };
    h.insert(vec![
        with(3),
        push_job("emails", "https://app.example/work"),
    ])
    .await;
    let claimed = h.claim_push(10, 10).await;
    assert_eq!(claimed.len(), 2);
    for p in &claimed {
        h.complete(&p.job, Some(r#"{"status":200,"body":"ok"}"#))
            .await
            .unwrap();
    }
    let callbacks = h.callbacks().await;
    assert_eq!(callbacks.len(), 1, "only the job with a callback_url");
    let cb = &callbacks[0];
    let source = claimed
        .iter()
        .find(|p| p.target.callback_url.is_some())
        .unwrap();
    assert_eq!(cb.state, JobState::Available);
    assert_eq!(cb.name.as_deref(), Some("callback"));
    assert_eq!(
        cb.target.as_ref().map(|t| t.url.as_str()),
        Some("https://hooks.example/done")
    );
    assert_eq!(cb.tags.get("callback_of"), Some(&source.job.id.to_string()));
    let payload: serde_json::Value = serde_json::from_str(cb.payload.get()).unwrap();
    assert_eq!(payload["job_id"], source.job.id.to_string());
    assert_eq!(payload["state"], "succeeded");
    assert_eq!(payload["name"], "welcome");
    assert_eq!(payload["result"]["body"], "ok");

    // Callbacks wait in their (paused) queue until the end, so that claims leave them out.
    h.set_paused(CALLBACK_QUEUE, true).await;
    // A retryable failure with attempts left: no callback yet. The last attempt's failure: the failure one.
    h.insert(vec![with(2)]).await;
    let p = h.claim_push(1, 10).await.remove(0);
    h.fail(&p.job, "HTTP 503", true, Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(h.callbacks().await.len(), 1);
    let p = h.claim_push(1, 10).await.remove(0);
    assert_eq!(p.job.attempt, 2);
    assert_eq!(
        h.fail(&p.job, "HTTP 500: boom", true, None)
            .await
            .unwrap()
            .state,
        JobState::Dead
    );
    let callbacks = h.callbacks().await;
    assert_eq!(callbacks.len(), 2);
    let failed = &callbacks[1];
    assert_eq!(failed.name.as_deref(), Some("failure_callback"));
    assert_eq!(
        failed.target.as_ref().map(|t| t.url.as_str()),
        Some("https://hooks.example/failed")
    );
    let payload: serde_json::Value = serde_json::from_str(failed.payload.get()).unwrap();
    assert_eq!(payload["state"], "dead");
    assert_eq!(payload["error"], "HTTP 500: boom");
    assert_eq!(payload["attempt"], 2);

    // Dying by lease expiry also calls back.
    h.insert(vec![with(1)]).await;
    let p = h.claim_push(1, 10).await.remove(0);
    h.advance(secs(31));
    let report = h
        .store
        .job_rescue_expired(JobRescueParams { limit: 100 })
        .await
        .unwrap();
    assert_eq!(report.rescued[0].id, p.job.id);
    let callbacks = h.callbacks().await;
    assert_eq!(callbacks.len(), 3);
    let payload: serde_json::Value = serde_json::from_str(callbacks[2].payload.get()).unwrap();
    assert_eq!(payload["error"], "lease expired");

    // Callbacks are push jobs: the dispatcher claims them, and they have no callbacks of their own.
    h.set_paused(CALLBACK_QUEUE, false).await;
    let cbs = h.claim_push(10, 10).await;
    assert_eq!(cbs.len(), 3);
    for cb in &cbs {
        assert_eq!(cb.job.queue, CALLBACK_QUEUE);
        h.complete(&cb.job, None).await.unwrap();
    }
    assert_eq!(h.callbacks().await.len(), 3);
    assert_eq!(
        h.counts(CALLBACK_QUEUE).await,
        state_counts(&[(JobState::Succeeded, 3)])
    );
}

/// `push_failures`, panicking on failure.
async fn push_failures(
    h: &Harness,
    since: Timestamp,
    limit: u32,
    count_limit: u32,
) -> Vec<PushFailure> {
    h.store
        .push_failures(PushFailuresParams {
            since,
            limit,
            count_limit,
        })
        .await
        .expect("push_failures")
}

/// Destinations and their counts.
fn failure_counts(failures: &[PushFailure]) -> Vec<(&str, u64)> {
    failures
        .iter()
        .map(|f| (f.destination.as_str(), f.failures))
        .collect()
}

/// Failed push attempts are reported per destination, the latest failure first, with how many failed since
/// `since`; pull jobs' failures, successes and expired leases are not push failures.
pub async fn push_failures_are_grouped_by_destination(h: Harness) {
    let (a, b) = ("http://a.example/hook", "https://b.example/hook");
    let (da, db) = ("http://a.example:80", "https://b.example:443");
    assert!(push_failures(&h, t0(), 10, 100).await.is_empty());
    let ids: Vec<JobId> = h
        .insert(vec![
            push_job("q", a),
            push_job("q", a),
            push_job("q", b),
            job("q"),
        ])
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let pull = h.claim("q", 1).await.remove(0);
    let pushed = h.claim_push(10, 10).await;
    let claimed = |id: JobId| pushed.iter().find(|p| p.job.id == id).unwrap().job.clone();
    h.advance(secs(10));
    h.fail(&claimed(ids[0]), "HTTP 500: oops", true, None)
        .await
        .unwrap();
    h.fail(&pull, "HTTP 500: a pull worker's words", true, None)
        .await
        .unwrap();
    h.advance(secs(10));
    h.fail(&claimed(ids[1]), "request timed out", true, None)
        .await
        .unwrap();
    h.advance(secs(10));
    h.fail(&claimed(ids[2]), "HTTP 404", false, None)
        .await
        .unwrap();

    assert_eq!(
        push_failures(&h, t0(), 10, 100).await,
        vec![
            PushFailure {
                destination: db.into(),
                failures: 1,
                last_failed_at: add(t0(), secs(30)),
                job_id: ids[2],
                attempt: 1,
                error: Some("HTTP 404".into()),
            },
            PushFailure {
                destination: da.into(),
                failures: 2,
                last_failed_at: add(t0(), secs(20)),
                job_id: ids[1],
                attempt: 1,
                error: Some("request timed out".into()),
            },
        ],
        "newest failure first"
    );
    // Only failures that ended at or after `since` count; a destination with none is left out.
    assert_eq!(
        failure_counts(&push_failures(&h, add(t0(), secs(20)), 10, 100).await),
        vec![(db, 1), (da, 1)]
    );
    assert_eq!(
        failure_counts(&push_failures(&h, add(t0(), secs(21)), 10, 100).await),
        vec![(db, 1)]
    );
    // At most `limit` destinations; counting stops at `count_limit`.
    assert_eq!(
        failure_counts(&push_failures(&h, t0(), 1, 100).await),
        vec![(db, 1)]
    );
    assert_eq!(
        failure_counts(&push_failures(&h, t0(), 10, 1).await),
        vec![(db, 1), (da, 1)]
    );
    assert!(push_failures(&h, t0(), 0, 100).await.is_empty());

    // A retry that fails again is its destination's latest failure; one that succeeds changes nothing.
    h.advance(secs(60));
    h.stage().await;
    let again = h.claim_push(10, 10).await;
    assert_eq!(again.len(), 2);
    let retried = |id: JobId| again.iter().find(|p| p.job.id == id).unwrap().job.clone();
    h.fail(
        &retried(ids[0]),
        "connection failed: connection refused",
        true,
        None,
    )
    .await
    .unwrap();
    h.complete(&retried(ids[1]), None).await.unwrap();
    let now = h.now();
    let a_failures = push_failures(&h, t0(), 10, 100).await;
    assert_eq!(failure_counts(&a_failures), vec![(da, 3), (db, 1)]);
    assert_eq!(
        (
            a_failures[0].job_id,
            a_failures[0].attempt,
            a_failures[0].last_failed_at,
            a_failures[0].error.as_deref()
        ),
        (
            ids[0],
            2,
            now,
            Some("connection failed: connection refused")
        )
    );

    // An expired lease is not a delivery failure.
    h.insert(vec![push_job("q", b)]).await;
    let lost = h.claim_push(10, 10).await;
    assert_eq!(lost.len(), 1);
    h.advance(secs(31));
    h.store
        .job_rescue_expired(JobRescueParams { limit: 100 })
        .await
        .unwrap();
    assert_eq!(
        failure_counts(&push_failures(&h, t0(), 10, 100).await),
        vec![(da, 3), (db, 1)]
    );
}

/// The latest failure of failures that ended at one instant is the one of the greater job id; errors are
/// cut to [`PUSH_FAILURE_ERROR_CHARS`] characters; a deleted job's failures are gone with it.
pub async fn push_failures_break_ties_and_cut_errors(h: Harness) {
    let url = "https://hooks.example/in";
    let destination = "https://hooks.example:443";
    let mut ids: Vec<JobId> = h
        .insert(vec![push_job("q", url), push_job("q", url)])
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    ids.sort();
    let pushed = h.claim_push(10, 10).await;
    assert_eq!(pushed.len(), 2);
    let long = "é".repeat(PUSH_FAILURE_ERROR_CHARS as usize + 500);
    let error_of = |id: JobId| {
        if id == ids[1] {
            long.clone()
        } else {
            "HTTP 502".to_owned()
        }
    };
    // Both in one call: both end at the same instant.
    let items = pushed
        .iter()
        .map(|p| FinishItem {
            id: p.job.id,
            lease_token: p.job.lease_token,
            finish: Finish::Fail(Failure {
                error: error_of(p.job.id),
                retry_after: None,
                retryable: false,
                cause: FailureCause::Worker,
            }),
        })
        .collect();
    for outcome in h.store.job_finish(JobFinishParams { items }).await.unwrap() {
        outcome.unwrap();
    }
    let failures = push_failures(&h, t0(), 10, 100).await;
    assert_eq!(failures.len(), 1);
    let f = &failures[0];
    assert_eq!((f.destination.as_str(), f.failures), (destination, 2));
    assert_eq!(f.job_id, ids[1], "ties go to the greater job id");
    let error = f.error.clone().unwrap();
    assert_eq!(error.chars().count(), PUSH_FAILURE_ERROR_CHARS as usize);
    assert!(error.chars().all(|c| c == 'é'));

    h.store.job_delete(ids[1]).await.unwrap();
    let failures = push_failures(&h, t0(), 10, 100).await;
    assert_eq!(failure_counts(&failures), vec![(destination, 1)]);
    assert_eq!(
        (failures[0].job_id, failures[0].error.as_deref()),
        (ids[0], Some("HTTP 502"))
    );
    h.store.job_delete(ids[0]).await.unwrap();
    assert!(push_failures(&h, t0(), 10, 100).await.is_empty());
}
