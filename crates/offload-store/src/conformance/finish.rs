//! Heartbeats and the end of an attempt: results, retries with backoff, snoozes, cancels and the lease fence that
//! keeps a late worker from overwriting a rescued job.

use std::time::Duration;

use offload_core::api::MAX_ERROR_LEN;
use offload_core::state::{Failure, FailureCause, add, lease_deadline};
use offload_core::{AttemptOutcome, JobId, JobState, LeaseToken, NewJob, Progress};

use crate::{Finish, FinishItem, JobFinishParams, JobHeartbeatParams, JobRescueParams, StoreError};

use super::{Harness, job, secs, state_counts, t0};

/// A heartbeat extends the lease from now, records progress, refuses stale tokens and reports a cancel request.
pub async fn heartbeat_extends_lease_and_reports_cancel(h: Harness) {
    h.insert(vec![job("q")]).await;
    let c = h.claim("q", 1).await.remove(0);
    h.advance(secs(20));
    let progress = Progress {
        percent: 40,
        message: Some("halfway-ish".into()),
    };
    let beat = h
        .store
        .job_heartbeat(JobHeartbeatParams {
            id: c.id,
            lease_token: c.lease_token,
            progress: Some(progress.clone()),
        })
        .await
        .unwrap();
    assert_eq!(beat.lease_expires_at, lease_deadline(h.now(), secs(30)));
    assert!(!beat.cancel_requested);
    let got = h.get(c.id).await;
    assert_eq!(got.progress, Some(progress.clone()));
    assert_eq!(got.lease_expires_at, Some(beat.lease_expires_at));

    // Without progress, the last progress stays.
    h.store
        .job_heartbeat(JobHeartbeatParams {
            id: c.id,
            lease_token: c.lease_token,
            progress: None,
        })
        .await
        .unwrap();
    assert_eq!(h.get(c.id).await.progress, Some(progress));

    let stale = h.store.job_heartbeat(JobHeartbeatParams {
        id: c.id,
        lease_token: LeaseToken::new(),
        progress: None,
    });
    assert!(matches!(stale.await, Err(StoreError::LeaseMismatch)));
    let unknown = h.store.job_heartbeat(JobHeartbeatParams {
        id: JobId::new(),
        lease_token: c.lease_token,
        progress: None,
    });
    assert!(matches!(unknown.await, Err(StoreError::NotFound(_))));

    h.store.job_cancel(c.id).await.unwrap();
    let beat = h
        .store
        .job_heartbeat(JobHeartbeatParams {
            id: c.id,
            lease_token: c.lease_token,
            progress: None,
        })
        .await
        .unwrap();
    assert!(beat.cancel_requested);
}

/// Completing records the result, ends the lease and the attempt; a second report is refused.
pub async fn complete_records_result_and_history(h: Harness) {
    h.insert(vec![job("q")]).await;
    let c = h.claim_as("q", "w-7", 1).await.remove(0);
    h.advance(secs(5));
    let done = h
        .complete(&c, Some(r#"{"sent": true,  "n": 3}"#))
        .await
        .unwrap();
    assert_eq!(
        (done.id, done.queue.as_str(), done.state),
        (c.id, "q", JobState::Succeeded)
    );
    assert_eq!(done.started_at, t0(), "the attempt's start is reported");

    let got = h.get(c.id).await;
    assert_eq!(got.state, JobState::Succeeded);
    assert_eq!(
        got.result.as_ref().map(|r| r.get()),
        Some(r#"{"sent": true,  "n": 3}"#)
    );
    assert_eq!(got.finished_at, Some(h.now()));
    assert_eq!(got.lease_expires_at, None);
    let attempts = got.attempts.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].attempt, 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempts[0].worker_id.as_deref(), Some("w-7"));
    assert_eq!(attempts[0].started_at, t0());
    assert_eq!(attempts[0].finished_at, Some(h.now()));

    assert!(matches!(
        h.complete(&c, None).await,
        Err(StoreError::LeaseMismatch)
    ));
    assert!(matches!(
        h.fail(&c, "late", true, None).await,
        Err(StoreError::LeaseMismatch)
    ));
}

/// A failure retries after the backoff, and the last allowed attempt's failure is final.
pub async fn failure_retries_with_backoff_then_dies(h: Harness) {
    h.insert(vec![NewJob {
        max_attempts: 2,
        ..job("q")
    }])
    .await;
    let c = h.claim("q", 1).await.remove(0);
    let done = h.fail(&c, "boom 1", true, None).await.unwrap();
    assert_eq!(done.state, JobState::Retrying);
    let got = h.get(c.id).await;
    assert_eq!(
        got.run_at,
        add(h.now(), secs(1)),
        "first retry after the base delay"
    );
    assert_eq!(got.last_error.as_deref(), Some("boom 1"));
    assert_eq!(got.finished_at, None);
    assert!(
        h.claim("q", 1).await.is_empty(),
        "not claimable during the backoff"
    );

    h.advance(secs(1));
    assert_eq!(h.stage().await.staged, vec![("q".to_owned(), 1)]);
    let c = h.claim("q", 1).await.remove(0);
    assert_eq!(c.attempt, 2);
    let done = h.fail(&c, "boom 2", true, None).await.unwrap();
    assert_eq!(done.state, JobState::Dead);
    let got = h.get(c.id).await;
    assert_eq!(
        (got.state, got.attempt, got.finished_at),
        (JobState::Dead, 2, Some(h.now()))
    );
    assert_eq!(got.last_error.as_deref(), Some("boom 2"));
}

/// A non-retryable failure is final at once; `retry_after` overrides the backoff; a zero delay is due at once.
pub async fn non_retryable_and_retry_after(h: Harness) {
    h.insert(vec![job("q"), job("q"), job("q")]).await;
    let cs = h.claim("q", 3).await;
    assert_eq!(
        h.fail(&cs[0], "bad input", false, None)
            .await
            .unwrap()
            .state,
        JobState::Dead
    );

    assert_eq!(
        h.fail(&cs[1], "rate limited", true, Some(secs(90)))
            .await
            .unwrap()
            .state,
        JobState::Retrying
    );
    assert_eq!(h.get(cs[1].id).await.run_at, add(h.now(), secs(90)));

    assert_eq!(
        h.fail(&cs[2], "flaky", true, Some(Duration::ZERO))
            .await
            .unwrap()
            .state,
        JobState::Available
    );
    let again = h.claim("q", 10).await;
    assert_eq!(
        again.len(),
        1,
        "retry due at once is claimable without staging"
    );
    assert_eq!((again[0].id, again[0].attempt), (cs[2].id, 2));

    // Very long errors are cut to the documented limit.
    let long = "x".repeat(MAX_ERROR_LEN + 100);
    assert_eq!(
        h.fail(&again[0], &long, false, None).await.unwrap().state,
        JobState::Dead
    );
    assert_eq!(
        h.get(again[0].id).await.last_error.map(|e| e.len()),
        Some(MAX_ERROR_LEN)
    );
}

/// The history keeps every ended attempt with its outcome, error and worker, plus the running one.
pub async fn attempts_history_is_recorded(h: Harness) {
    h.insert(vec![job("q")]).await;
    let c1 = h.claim_as("q", "alpha", 1).await.remove(0);
    h.advance(secs(2));
    h.fail(&c1, "first failure", true, None).await.unwrap();
    h.advance(secs(1));
    h.stage().await;
    let c2 = h.claim_as("q", "beta", 1).await.remove(0);

    let running = h.get(c1.id).await.attempts.unwrap();
    assert_eq!(running.len(), 2);
    assert_eq!(running[1].outcome, AttemptOutcome::Running);
    assert_eq!(running[1].worker_id.as_deref(), Some("beta"));

    h.advance(secs(4));
    h.complete(&c2, None).await.unwrap();
    let attempts = h.get(c1.id).await.attempts.unwrap();
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| {
            (
                a.attempt,
                a.outcome,
                a.worker_id.as_deref(),
                a.error.as_deref(),
                a.started_at,
                a.finished_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                1,
                AttemptOutcome::Failed,
                Some("alpha"),
                Some("first failure"),
                t0(),
                Some(add(t0(), secs(2)))
            ),
            (
                2,
                AttemptOutcome::Succeeded,
                Some("beta"),
                None,
                add(t0(), secs(3)),
                Some(add(t0(), secs(7)))
            ),
        ]
    );
}

/// Each item of a finish batch stands alone: a stale or unknown item does not stop the others.
pub async fn finish_batch_items_stand_alone(h: Harness) {
    h.insert(vec![job("q"), job("q")]).await;
    let cs = h.claim("q", 2).await;
    let items = vec![
        FinishItem {
            id: cs[0].id,
            lease_token: cs[0].lease_token,
            finish: Finish::Complete { result: None },
        },
        FinishItem {
            id: cs[1].id,
            lease_token: LeaseToken::new(),
            finish: Finish::Complete { result: None },
        },
        FinishItem {
            id: JobId::new(),
            lease_token: cs[1].lease_token,
            finish: Finish::Complete { result: None },
        },
        FinishItem {
            id: cs[0].id,
            lease_token: cs[0].lease_token,
            finish: Finish::Complete { result: None },
        },
        FinishItem {
            id: cs[1].id,
            lease_token: cs[1].lease_token,
            finish: Finish::Fail(Failure {
                error: "e".into(),
                retry_after: None,
                retryable: false,
                cause: FailureCause::Worker,
            }),
        },
    ];
    let out = h.store.job_finish(JobFinishParams { items }).await.unwrap();
    assert_eq!(out.len(), 5);
    assert_eq!(out[0].as_ref().unwrap().state, JobState::Succeeded);
    assert!(matches!(out[1], Err(StoreError::LeaseMismatch)));
    assert!(matches!(out[2], Err(StoreError::NotFound(_))));
    assert!(
        matches!(out[3], Err(StoreError::LeaseMismatch)),
        "an attempt ends once"
    );
    assert_eq!(out[4].as_ref().unwrap().state, JobState::Dead);
    assert_eq!(h.get(cs[0].id).await.attempts.unwrap().len(), 1);

    // Many concurrent finishers of different jobs all succeed.
    h.insert((0..50).map(|_| job("q")).collect()).await;
    let cs = h.claim("q", 50).await;
    let mut tasks = Vec::new();
    for c in cs {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let items = vec![FinishItem {
                id: c.id,
                lease_token: c.lease_token,
                finish: Finish::Complete { result: None },
            }];
            store
                .job_finish(JobFinishParams { items })
                .await
                .unwrap()
                .remove(0)
                .unwrap()
                .state
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), JobState::Succeeded);
    }
    assert_eq!(
        h.counts("q").await,
        state_counts(&[(JobState::Succeeded, 51), (JobState::Dead, 1)])
    );
}

/// An expired lease is ended as a "lease expired" attempt and retried; the old worker's reports are refused
/// after the rescue and after the job is claimed again.
pub async fn rescue_expired_lease_fences_the_old_worker(h: Harness) {
    h.insert(vec![job("q")]).await;
    let old = h.claim_as("q", "slow", 1).await.remove(0);
    h.advance(secs(29));
    let report = h
        .store
        .job_rescue_expired(JobRescueParams { limit: 100 })
        .await
        .unwrap();
    assert!(report.rescued.is_empty(), "lease not yet expired");

    h.advance(secs(1));
    let report = h
        .store
        .job_rescue_expired(JobRescueParams { limit: 100 })
        .await
        .unwrap();
    assert_eq!(report.rescued.len(), 1, "a lease ending now has expired");
    assert_eq!(
        (report.rescued[0].id, report.rescued[0].state),
        (old.id, JobState::Retrying)
    );
    let got = h.get(old.id).await;
    assert_eq!(got.state, JobState::Retrying);
    let attempts = got.attempts.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::LeaseExpired);
    assert_eq!(attempts[0].error.as_deref(), Some("lease expired"));
    assert_eq!(attempts[0].worker_id.as_deref(), Some("slow"));

    assert!(matches!(
        h.complete(&old, None).await,
        Err(StoreError::LeaseMismatch)
    ));
    h.advance(secs(1));
    h.stage().await;
    let new = h.claim_as("q", "fast", 1).await.remove(0);
    assert_eq!((new.id, new.attempt), (old.id, 2));
    assert_ne!(new.lease_token, old.lease_token);
    assert!(matches!(
        h.complete(&old, None).await,
        Err(StoreError::LeaseMismatch)
    ));
    let stale = h.store.job_heartbeat(JobHeartbeatParams {
        id: old.id,
        lease_token: old.lease_token,
        progress: None,
    });
    assert!(matches!(stale.await, Err(StoreError::LeaseMismatch)));
    assert_eq!(
        h.complete(&new, None).await.unwrap().state,
        JobState::Succeeded
    );

    // The last attempt's lease expiring is final.
    h.insert(vec![NewJob {
        max_attempts: 1,
        ..job("q")
    }])
    .await;
    let c = h.claim("q", 1).await.remove(0);
    h.advance(secs(31));
    let report = h
        .store
        .job_rescue_expired(JobRescueParams { limit: 100 })
        .await
        .unwrap();
    assert_eq!(
        report
            .rescued
            .iter()
            .map(|f| (f.id, f.state))
            .collect::<Vec<_>>(),
        vec![(c.id, JobState::Dead)]
    );
}

/// A snooze brings the job back after its delay without using up an attempt: it is recorded as `snoozed`,
/// `max_attempts` grows by one, and a zero delay makes it available at once.
pub async fn snooze_runs_again_later_without_using_up_an_attempt(h: Harness) {
    h.insert(vec![NewJob {
        max_attempts: 2,
        ..job("q")
    }])
    .await;
    let c1 = h.claim_as("q", "w-1", 1).await.remove(0);
    h.advance(secs(2));
    let snooze = Finish::Snooze { delay: secs(30) };
    let done = h
        .finish(c1.id, c1.lease_token, snooze.clone())
        .await
        .unwrap();
    assert_eq!((done.id, done.state), (c1.id, JobState::Scheduled));
    let got = h.get(c1.id).await;
    assert_eq!(
        (got.state, got.attempt, got.max_attempts, got.run_at),
        (JobState::Scheduled, 1, 3, add(h.now(), secs(30)))
    );
    assert_eq!((got.finished_at, got.lease_expires_at), (None, None));
    let attempts = got.attempts.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (
            attempts[0].outcome,
            attempts[0].worker_id.as_deref(),
            attempts[0].finished_at
        ),
        (AttemptOutcome::Snoozed, Some("w-1"), Some(h.now()))
    );
    assert_eq!(
        h.counts("q").await,
        state_counts(&[(JobState::Scheduled, 1)])
    );
    assert!(matches!(
        h.finish(c1.id, c1.lease_token, snooze).await,
        Err(StoreError::LeaseMismatch)
    ));
    assert!(h.claim("q", 1).await.is_empty(), "not before its delay");

    h.advance(secs(30));
    assert_eq!(h.stage().await.staged, vec![("q".to_owned(), 1)]);
    let c2 = h.claim("q", 1).await.remove(0);
    assert_eq!((c2.attempt, c2.max_attempts), (2, 3));
    let zero = Finish::Snooze {
        delay: Duration::ZERO,
    };
    assert_eq!(
        h.finish(c2.id, c2.lease_token, zero).await.unwrap().state,
        JobState::Available
    );
    let c3 = h.claim("q", 1).await.remove(0);
    assert_eq!(
        (c3.attempt, c3.max_attempts),
        (3, 4),
        "due at once, no staging"
    );
    assert_eq!(
        h.fail(&c3, "boom", true, None).await.unwrap().state,
        JobState::Retrying,
        "two snoozes left two real attempts"
    );
    h.advance(secs(60));
    h.stage().await;
    let c4 = h.claim("q", 1).await.remove(0);
    assert_eq!(
        h.fail(&c4, "boom", true, None).await.unwrap().state,
        JobState::Dead
    );
    let outcomes: Vec<_> = h
        .get(c1.id)
        .await
        .attempts
        .unwrap()
        .iter()
        .map(|a| (a.attempt, a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (1, AttemptOutcome::Snoozed),
            (2, AttemptOutcome::Snoozed),
            (3, AttemptOutcome::Failed),
            (4, AttemptOutcome::Failed),
        ]
    );

    // A requested cancel wins over a snooze.
    h.insert(vec![job("q")]).await;
    let c = h.claim("q", 1).await.remove(0);
    h.store.job_cancel(c.id).await.unwrap();
    let snooze = Finish::Snooze { delay: secs(30) };
    assert_eq!(
        h.finish(c.id, c.lease_token, snooze).await.unwrap().state,
        JobState::Cancelled
    );
    let got = h.get(c.id).await;
    assert_eq!(
        (got.max_attempts, got.finished_at),
        (3, Some(h.now())),
        "a cancelled job gets no extra attempt"
    );
}

/// A worker can end its job as cancelled: at once, with attempts left, keeping its reason; the job can be
/// retried by hand like any cancelled job.
pub async fn worker_cancel_ends_the_job(h: Harness) {
    h.insert(vec![job("q")]).await;
    let c = h.claim_as("q", "w-9", 1).await.remove(0);
    h.advance(secs(3));
    let cancel = Finish::Cancel {
        reason: "the account was closed".into(),
    };
    let done = h.finish(c.id, c.lease_token, cancel.clone()).await.unwrap();
    assert_eq!((done.id, done.state), (c.id, JobState::Cancelled));
    let got = h.get(c.id).await;
    assert_eq!(
        (got.state, got.finished_at, got.lease_expires_at),
        (JobState::Cancelled, Some(h.now()), None)
    );
    assert_eq!(got.last_error.as_deref(), Some("the account was closed"));
    let attempts = got.attempts.unwrap();
    assert_eq!(
        (
            attempts[0].outcome,
            attempts[0].error.as_deref(),
            attempts[0].worker_id.as_deref()
        ),
        (
            AttemptOutcome::Cancelled,
            Some("the account was closed"),
            Some("w-9")
        )
    );
    assert_eq!(
        h.counts("q").await,
        state_counts(&[(JobState::Cancelled, 1)])
    );
    assert!(matches!(
        h.finish(c.id, c.lease_token, cancel).await,
        Err(StoreError::LeaseMismatch)
    ));
    assert!(matches!(
        h.complete(&c, None).await,
        Err(StoreError::LeaseMismatch)
    ));

    let again = h.store.job_retry(c.id).await.unwrap();
    assert_eq!(again.state, JobState::Available);
    assert_eq!(h.claim("q", 1).await[0].attempt, 2);
}
