//! The store's own life: wake-ups for subscribers, and `close` making every later call fail as unavailable.

use std::time::Duration;

use offload_core::{NewJob, RunAt};

use crate::{JobClaimParams, JobInsertParams, JobListParams, JobStageParams, StoreError};

use super::push::push_job;
use super::{Harness, job, secs};

/// A store that offers wake-ups announces a queue that got an available pull job (after saying it is
/// listening), and available push jobs as [`crate::Wakeup::Push`]; delayed jobs are not announced at insert. Stores without wake-ups return `None`.
pub async fn available_jobs_wake_subscribers(h: Harness) {
    let Some(mut rx) = h.store.subscribe_available() else {
        return;
    };
    async fn next(rx: &mut tokio::sync::broadcast::Receiver<crate::Wakeup>) -> crate::Wakeup {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a wake-up within 10 s")
            .expect("wake-ups keep flowing")
    }
    assert_eq!(
        next(&mut rx).await,
        crate::Wakeup::All,
        "listening starts with a wake-all"
    );
    h.insert(vec![NewJob {
        run_at: RunAt::After(secs(60)),
        ..job("later")
    }])
    .await;
    h.insert(vec![job("mail"), job("mail")]).await;
    let got = next(&mut rx).await;
    assert_eq!(
        got,
        crate::Wakeup::Queue("mail".into()),
        "the delayed job's queue is not announced"
    );
    // Push jobs wake the push dispatcher, not the queue's pull claimers.
    h.insert(vec![push_job("hooks", "https://example.com/hook")])
        .await;
    assert_eq!(next(&mut rx).await, crate::Wakeup::Push);
}

/// After `close`, operations fail with `Unavailable`.
pub async fn close_makes_the_store_unavailable(h: Harness) {
    let out = h.insert(vec![job("q")]).await;
    h.store.ping().await.unwrap();
    h.store.close().await;
    let unavailable = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Unavailable(_)));
    assert!(unavailable(h.store.ping().await));
    assert!(unavailable(
        h.store
            .job_insert(JobInsertParams {
                jobs: vec![job("q")]
            })
            .await
            .map(drop)
    ));
    assert!(unavailable(h.store.job_get(out[0].id).await.map(drop)));
    assert!(unavailable(
        h.store
            .job_list(JobListParams {
                limit: 5,
                ..Default::default()
            })
            .await
            .map(drop)
    ));
    let claim = JobClaimParams {
        queue: "q".into(),
        worker_id: "w".into(),
        max_jobs: 1,
    };
    assert!(unavailable(h.store.job_claim(claim).await.map(drop)));
    assert!(unavailable(h.store.queue_list().await.map(drop)));
    assert!(unavailable(
        h.store
            .job_stage_due(JobStageParams { limit: 1 })
            .await
            .map(drop)
    ));
}
