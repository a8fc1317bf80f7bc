//! Claiming: only due, available jobs of unpaused queues are handed out, in priority then due-time order, never
//! to two claimers.

use std::collections::HashSet;

use offload_core::state::{add, lease_deadline};
use offload_core::{AttemptOutcome, DurationSpec, JobId, JobState, LeaseToken, NewJob, RunAt};

use crate::{JobClaimParams, QueueSetPausedParams};

use super::{Harness, job, secs, state_counts, t0};

/// A delayed job is scheduled, cannot be claimed, and becomes available when staged after its due time.
pub async fn delayed_job_is_claimable_only_after_staging(h: Harness) {
    let out = h
        .insert(vec![NewJob {
            run_at: RunAt::After(secs(60)),
            ..job("q")
        }])
        .await;
    assert_eq!(out[0].state, JobState::Scheduled);
    assert!(h.claim("q", 10).await.is_empty());

    let report = h.stage().await;
    assert!(report.staged.is_empty());
    assert_eq!(report.next_due_at, Some(add(t0(), secs(60))));

    h.advance(secs(59));
    assert!(h.stage().await.staged.is_empty());
    assert!(h.claim("q", 10).await.is_empty());

    h.advance(secs(1));
    let report = h.stage().await;
    assert_eq!(report.staged, vec![("q".to_owned(), 1)]);
    assert_eq!(report.next_due_at, None);
    assert_eq!(h.get(out[0].id).await.state, JobState::Available);
    let claimed = h.claim("q", 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, out[0].id);
}

/// Claims hand out the highest priority first, then the oldest due time; each claim starts an attempt with a
/// fresh token and a lease of the job's timeout.
pub async fn claims_follow_priority_then_due_time(h: Harness) {
    let late = NewJob {
        run_at: RunAt::After(secs(30)),
        ..job("q")
    };
    let early = NewJob {
        run_at: RunAt::After(secs(10)),
        ..job("q")
    };
    let urgent = NewJob {
        run_at: RunAt::After(secs(20)),
        priority: 5,
        ..job("q")
    };
    let now = NewJob {
        timeout: secs(120),
        ..job("q")
    };
    let ids = [urgent.id, now.id, early.id, late.id];
    h.insert(vec![late, early, urgent, now]).await;
    h.advance(secs(60));
    h.stage().await;

    let claimed = h.claim_as("q", "worker-a", 10).await;
    let got: Vec<JobId> = claimed.iter().map(|c| c.id).collect();
    assert_eq!(got, ids);
    let tokens: HashSet<LeaseToken> = claimed.iter().map(|c| c.lease_token).collect();
    assert_eq!(tokens.len(), 4, "every attempt gets its own token");
    let c = &claimed[1];
    assert_eq!((c.attempt, c.max_attempts, c.queue.as_str()), (1, 3, "q"));
    assert_eq!(c.lease_expires_at, lease_deadline(h.now(), secs(120)));
    assert_eq!(c.timeout, DurationSpec(secs(120)));
    assert_eq!(c.payload.get(), r#"{"n":1}"#);
    assert_eq!(c.created_at, t0());
    assert_eq!(c.run_at, t0(), "a job due at once was due when enqueued");
    assert_eq!(
        claimed[2].run_at,
        add(t0(), secs(10)),
        "a delayed job was due at its run_at"
    );

    let got = h.get(c.id).await;
    assert_eq!(got.state, JobState::Running);
    assert_eq!(got.worker_id.as_deref(), Some("worker-a"));
    assert_eq!(got.attempted_at, Some(h.now()));
    assert_eq!(got.lease_expires_at, Some(c.lease_expires_at));
    let running = got.attempts.unwrap();
    assert_eq!(running.len(), 1, "the running attempt is shown");
    assert_eq!(running[0].outcome, AttemptOutcome::Running);
    assert_eq!(running[0].worker_id.as_deref(), Some("worker-a"));
    assert_eq!(running[0].started_at, h.now());
}

/// `max_jobs` bounds every claim; other queues are untouched.
pub async fn claims_respect_max_jobs_and_queue(h: Harness) {
    h.insert(
        (0..5)
            .map(|_| job("a"))
            .chain((0..2).map(|_| job("b")))
            .collect(),
    )
    .await;
    assert!(h.claim("a", 0).await.is_empty());
    assert_eq!(h.claim("a", 2).await.len(), 2);
    assert_eq!(h.claim("a", 10).await.len(), 3);
    assert!(h.claim("a", 10).await.is_empty());
    assert!(h.claim("nope", 10).await.is_empty());
    assert_eq!(h.claim("b", 10).await.len(), 2);
}

/// Many concurrent claimers never get the same job, and together get every job.
pub async fn concurrent_claimers_never_share_a_job(h: Harness) {
    const JOBS: usize = 1000;
    let ids: HashSet<JobId> = h
        .insert((0..JOBS).map(|_| job("q")).collect())
        .await
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let p = JobClaimParams {
                    queue: "q".into(),
                    worker_id: format!("w{worker}"),
                    max_jobs: 7,
                };
                let got = store.job_claim(p).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<JobId> = all.iter().copied().collect();
    assert_eq!(all.len(), JOBS, "no job handed out twice");
    assert_eq!(unique, ids, "every job handed out");
    assert_eq!(
        h.counts("q").await,
        state_counts(&[(JobState::Running, JOBS as u64)])
    );
}

/// A paused queue hands out nothing; resuming restores claims. Pausing an unknown queue creates it.
pub async fn paused_queue_hands_out_nothing(h: Harness) {
    h.insert(vec![job("q")]).await;
    let info = h
        .store
        .queue_set_paused(QueueSetPausedParams {
            queue: "q".into(),
            paused: true,
        })
        .await
        .unwrap();
    assert!(info.paused);
    assert_eq!(info.counts, state_counts(&[(JobState::Available, 1)]));
    assert!(h.claim("q", 10).await.is_empty());

    let info = h
        .store
        .queue_set_paused(QueueSetPausedParams {
            queue: "q".into(),
            paused: false,
        })
        .await
        .unwrap();
    assert!(!info.paused);
    assert_eq!(h.claim("q", 10).await.len(), 1);

    let info = h
        .store
        .queue_set_paused(QueueSetPausedParams {
            queue: "later".into(),
            paused: true,
        })
        .await
        .unwrap();
    assert_eq!((info.name.as_str(), info.paused), ("later", true));
    assert_eq!(info.counts, state_counts(&[]));
    let listed = h.store.queue_list().await.unwrap();
    assert!(
        listed.iter().any(|q| q.name == "later" && q.paused),
        "{listed:?}"
    );
    h.insert(vec![job("later")]).await;
    assert!(
        h.claim("later", 1).await.is_empty(),
        "paused before its first job"
    );
}
