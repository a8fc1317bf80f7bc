//! User actions on jobs: cancel, manual retry and delete, each allowed only from the states that permit it.

use offload_core::{AttemptOutcome, JobId, JobState, NewJob, RunAt};

use crate::StoreError;

use super::{Harness, job, secs, t0};

/// Cancel: waiting jobs at once; running jobs by request (their next failure ends them as cancelled, a
/// completion still wins); finished jobs refuse.
pub async fn cancel_rules(h: Harness) {
    let out = h
        .insert(vec![
            job("q"),
            NewJob {
                run_at: RunAt::After(secs(60)),
                ..job("q")
            },
            job("q"),
            job("q"),
        ])
        .await;
    let (available, scheduled) = (out[0].id, out[1].id);

    let cancelled = h.store.job_cancel(available).await.unwrap();
    assert_eq!(
        (cancelled.state, cancelled.finished_at),
        (JobState::Cancelled, Some(t0()))
    );
    assert_eq!(
        h.store.job_cancel(scheduled).await.unwrap().state,
        JobState::Cancelled
    );
    assert_eq!(
        h.store.job_cancel(available).await.unwrap().state,
        JobState::Cancelled,
        "cancelling twice is fine"
    );

    let cs = h.claim("q", 2).await;
    let requested = h.store.job_cancel(cs[0].id).await.unwrap();
    assert_eq!(
        (requested.state, requested.cancel_requested),
        (JobState::Running, true)
    );
    let done = h.fail(&cs[0], "stopped", true, None).await.unwrap();
    assert_eq!(done.state, JobState::Cancelled);
    assert_eq!(
        h.get(cs[0].id).await.attempts.unwrap()[0].outcome,
        AttemptOutcome::Cancelled
    );

    h.store.job_cancel(cs[1].id).await.unwrap();
    assert_eq!(
        h.complete(&cs[1], None).await.unwrap().state,
        JobState::Succeeded,
        "a completion wins"
    );
    let err = h.store.job_cancel(cs[1].id).await.unwrap_err();
    assert!(matches!(err, StoreError::Transition(_)), "{err:?}");
    assert!(matches!(
        h.store.job_cancel(JobId::new()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Manual retry puts dead and cancelled jobs back to available, keeping their history.
pub async fn manual_retry_of_dead_and_cancelled(h: Harness) {
    let out = h
        .insert(vec![
            NewJob {
                max_attempts: 1,
                ..job("q")
            },
            job("q"),
        ])
        .await;
    let c = h.claim("q", 1).await.remove(0);
    assert_eq!(c.id, out[0].id);
    h.fail(&c, "fatal", true, None).await.unwrap();
    h.store.job_cancel(out[1].id).await.unwrap();

    h.advance(secs(10));
    let got = h.store.job_retry(out[0].id).await.unwrap();
    assert_eq!(got.state, JobState::Available);
    assert_eq!(
        (got.attempt, got.max_attempts),
        (1, 2),
        "one more attempt allowed"
    );
    assert_eq!(got.finished_at, None);
    assert_eq!(got.attempts.as_ref().map(Vec::len), Some(1), "history kept");
    assert_eq!(
        h.store.job_retry(out[1].id).await.unwrap().state,
        JobState::Available
    );

    let claimed = h.claim("q", 10).await;
    assert_eq!(claimed.len(), 2);
    let again = claimed.iter().find(|c| c.id == out[0].id).unwrap();
    assert_eq!(again.attempt, 2);

    let err = h.store.job_retry(out[1].id).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Transition(_)),
        "running jobs are not retried: {err:?}"
    );
    assert!(matches!(
        h.store.job_retry(JobId::new()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Delete is refused while running; otherwise the job and its history are gone.
pub async fn delete_rules(h: Harness) {
    let out = h.insert(vec![job("q"), job("q")]).await;
    let c = h.claim("q", 1).await.remove(0);
    assert!(matches!(
        h.store.job_delete(c.id).await,
        Err(StoreError::Transition(_))
    ));
    h.fail(&c, "e", false, None).await.unwrap();
    h.store.job_delete(c.id).await.unwrap();
    assert!(h.store.job_get(c.id).await.unwrap().is_none());
    assert!(matches!(
        h.store.job_delete(c.id).await,
        Err(StoreError::NotFound(_))
    ));

    let other = if out[0].id == c.id {
        out[1].id
    } else {
        out[0].id
    };
    h.store.job_delete(other).await.unwrap();
    let queues = h.store.queue_list().await.unwrap();
    assert!(
        queues.is_empty(),
        "a queue without jobs that was never paused is not listed: {queues:?}"
    );
}
