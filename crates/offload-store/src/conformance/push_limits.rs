//! Push limits: the per-destination cap counts every dispatcher's running push jobs, and every way a running
//! push job ends gives its slot back.

use offload_core::JobState;

use crate::{Finish, JobRescueParams};

use super::push::push_job;
use super::{Harness, secs};

/// The cap counts the push jobs other dispatchers run; the claimer's own cap is the one applied.
pub async fn push_cap_counts_every_dispatcher(h: Harness) {
    let url = "https://hooks.example/in";
    h.insert((0..6).map(|_| push_job("q", url)).collect()).await;
    assert_eq!(h.claim_push_as("d1", 10, 2).await.len(), 2);
    assert!(
        h.claim_push_as("d2", 10, 2).await.is_empty(),
        "d1 runs the destination's two slots"
    );
    assert_eq!(
        h.claim_push_as("d2", 10, 3).await.len(),
        1,
        "a claimer with a cap of 3 takes the third slot"
    );
    assert!(
        h.claim_push_as("d1", 10, 2).await.is_empty(),
        "three run, more than d1's cap"
    );
    assert_eq!(h.claim_push_as("d3", 10, 5).await.len(), 2);
    assert_eq!(
        h.counts("q").await.get(&JobState::Running).copied(),
        Some(5)
    );
}

/// Complete, fail (retrying or dead), snooze, a worker's cancel, a requested cancel once the attempt ends, and
/// the rescue of an expired lease each free the destination's slot; a cancel request alone does not.
pub async fn push_slots_free_on_every_end(h: Harness) {
    let url = "https://hooks.example/in";
    let ways = [
        "complete",
        "retrying",
        "dead",
        "snooze",
        "cancel",
        "requested",
        "rescue",
    ];
    h.insert((0..=ways.len()).map(|_| push_job("q", url)).collect())
        .await;
    for way in ways {
        let mut claimed = h.claim_push_as("d1", 10, 1).await;
        assert_eq!(claimed.len(), 1, "{way}: the slot is free");
        let c = claimed.remove(0).job;
        assert!(
            h.claim_push_as("d2", 10, 1).await.is_empty(),
            "{way}: the slot is taken"
        );
        match way {
            "complete" => drop(h.complete(&c, None).await.unwrap()),
            "retrying" | "dead" => {
                let retryable = way == "retrying";
                let failed = h.fail(&c, "HTTP 500", retryable, Some(secs(600)));
                let state = failed.await.unwrap().state;
                let expected = match retryable {
                    true => JobState::Retrying,
                    false => JobState::Dead,
                };
                assert_eq!(state, expected);
            }
            "snooze" => {
                let snooze = Finish::Snooze { delay: secs(600) };
                h.finish(c.id, c.lease_token, snooze).await.unwrap();
            }
            "cancel" => {
                let cancel = Finish::Cancel {
                    reason: "stop".into(),
                };
                h.finish(c.id, c.lease_token, cancel).await.unwrap();
            }
            "requested" => {
                h.store.job_cancel(c.id).await.unwrap();
                assert!(
                    h.claim_push_as("d2", 10, 1).await.is_empty(),
                    "a cancel request leaves the delivery running"
                );
                let cancel = Finish::Cancel {
                    reason: "cancelled during delivery".into(),
                };
                let done = h.finish(c.id, c.lease_token, cancel).await.unwrap();
                assert_eq!(done.state, JobState::Cancelled);
            }
            _ => {
                h.advance(secs(31));
                let report = h
                    .store
                    .job_rescue_expired(JobRescueParams { limit: 100 })
                    .await
                    .unwrap();
                assert_eq!(report.rescued.len(), 1);
            }
        }
        assert_ne!(h.get(c.id).await.state, JobState::Running, "{way}");
    }
    assert_eq!(
        h.claim_push_as("d2", 10, 1).await.len(),
        1,
        "the last job starts"
    );
}
