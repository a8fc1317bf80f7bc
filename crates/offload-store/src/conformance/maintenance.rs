//! Maintenance: pruning removes finished jobs past their state's retention and nothing else.

use offload_core::JobState;

use crate::JobPruneParams;

use super::{Harness, job, secs, state_counts};

/// Pruning deletes finished jobs past their state's retention, never unfinished ones, at most `limit`.
pub async fn prune_honours_retention_per_state(h: Harness) {
    let out = h.insert((0..6).map(|_| job("q")).collect()).await;
    let cs = h.claim("q", 3).await;
    h.complete(&cs[0], None).await.unwrap();
    h.fail(&cs[1], "e", false, None).await.unwrap();
    h.store.job_cancel(out[5].id).await.unwrap();
    // cs[2] stays running; out[3], out[4] stay available.

    let prune = |limit| JobPruneParams {
        succeeded: secs(60),
        dead: secs(600),
        cancelled: secs(3600),
        limit,
    };
    h.advance(secs(59));
    assert_eq!(h.store.job_prune(prune(100)).await.unwrap(), 0);
    h.advance(secs(1));
    assert_eq!(
        h.store.job_prune(prune(100)).await.unwrap(),
        1,
        "succeeded after 60s"
    );
    assert!(h.store.job_get(cs[0].id).await.unwrap().is_none());
    assert!(h.store.job_get(cs[1].id).await.unwrap().is_some());

    h.advance(secs(3600));
    assert_eq!(
        h.store.job_prune(prune(1)).await.unwrap(),
        1,
        "limit respected"
    );
    assert_eq!(h.store.job_prune(prune(100)).await.unwrap(), 1);
    assert!(h.store.job_get(cs[1].id).await.unwrap().is_none());
    assert!(h.store.job_get(out[5].id).await.unwrap().is_none());
    assert_eq!(
        h.counts("q").await,
        state_counts(&[(JobState::Running, 1), (JobState::Available, 2)]),
        "unfinished jobs are kept"
    );
}
