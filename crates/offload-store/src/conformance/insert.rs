//! Inserting jobs and reading them back: every field round-trips, batches are all-or-nothing, idempotency keys
//! replay or conflict.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use offload_core::state::add;
use offload_core::{Backoff, DurationSpec, JobId, JobState, NewJob, RunAt};

use crate::{Inserted, JobInsertParams, StoreError};

use super::{Harness, job, raw, secs, state_counts, t0};

fn keyed(queue: &str, key: &str, fingerprint: &str) -> NewJob {
    NewJob {
        idempotency_key: Some(key.into()),
        request_fingerprint: Some(fingerprint.into()),
        ..job(queue)
    }
}

/// Every field of a new job comes back from `job_get` as it went in, and the insert reports the resolved state.
pub async fn insert_and_get_round_trip_every_field(h: Harness) {
    let at = add(h.now(), secs(3600));
    let mut tags = BTreeMap::new();
    tags.insert("tenant".to_owned(), "acme".to_owned());
    tags.insert("kind".to_owned(), "weekly report".to_owned());
    let new = NewJob {
        name: Some("send_report".into()),
        payload: raw(r#"{"b": 2,  "a": [1, 2.50, "x"]}"#),
        run_at: RunAt::At(at),
        priority: -7,
        max_attempts: 9,
        backoff: Backoff {
            base: DurationSpec(Duration::from_millis(1500)),
            cap: DurationSpec(secs(600)),
            jitter: 0.25,
        },
        timeout: secs(45),
        idempotency_key: Some("report-42".into()),
        request_fingerprint: Some("fp".into()),
        tags: tags.clone(),
        ..job("reports")
    };
    let id = new.id;
    let inserted = h.insert(vec![new]).await;
    assert_eq!(
        inserted,
        vec![Inserted {
            id,
            state: JobState::Scheduled,
            run_at: at,
            created_at: t0(),
            duplicate: false,
            debounced: false,
        }]
    );

    let got = h.get(id).await;
    assert_eq!(got.id, id);
    assert_eq!(got.queue, "reports");
    assert_eq!(got.name.as_deref(), Some("send_report"));
    assert_eq!(got.state, JobState::Scheduled);
    assert_eq!(
        got.payload.get(),
        r#"{"b": 2,  "a": [1, 2.50, "x"]}"#,
        "payload kept byte for byte"
    );
    assert_eq!(got.priority, -7);
    assert_eq!(got.attempt, 0);
    assert_eq!(got.max_attempts, 9);
    assert_eq!(got.backoff.base, DurationSpec(Duration::from_millis(1500)));
    assert_eq!(got.backoff.cap, DurationSpec(secs(600)));
    assert_eq!(got.backoff.jitter, 0.25);
    assert_eq!(got.timeout, DurationSpec(secs(45)));
    assert_eq!(got.run_at, at);
    assert_eq!(got.created_at, t0());
    assert_eq!(got.attempted_at, None);
    assert_eq!(got.finished_at, None);
    assert_eq!(got.lease_expires_at, None);
    assert_eq!(got.worker_id, None);
    assert_eq!(got.idempotency_key.as_deref(), Some("report-42"));
    assert_eq!(got.tags, tags);
    assert_eq!(got.progress, None);
    assert!(got.result.is_none());
    assert_eq!(got.last_error, None);
    assert!(!got.cancel_requested);
    assert_eq!(
        got.attempts,
        Some(vec![]),
        "single-job reads carry the (empty) history"
    );

    let delayed = NewJob {
        run_at: RunAt::After(secs(90)),
        ..job("reports")
    };
    let now_job = job("reports");
    let out = h.insert(vec![delayed, now_job]).await;
    assert_eq!(
        (out[0].state, out[0].run_at),
        (JobState::Scheduled, add(t0(), secs(90)))
    );
    assert_eq!((out[1].state, out[1].run_at), (JobState::Available, t0()));
    assert!(
        h.store.job_get(JobId::new()).await.unwrap().is_none(),
        "unknown id reads as None"
    );
}

/// A batch is stored whole or not at all: one conflicting idempotency key stores nothing of the batch.
pub async fn batch_insert_is_all_or_nothing(h: Harness) {
    let first = keyed("q", "k", "fp-1");
    let first_id = first.id;
    h.insert(vec![first]).await;

    let fresh = job("q");
    let fresh_id = fresh.id;
    let clash = keyed("q", "k", "fp-2");
    let err = h
        .store
        .job_insert(JobInsertParams {
            jobs: vec![fresh, clash],
        })
        .await
        .unwrap_err();
    match err {
        StoreError::IdempotencyConflict { key, existing } => {
            assert_eq!((key.as_str(), existing), ("k", first_id))
        }
        e => panic!("expected an idempotency conflict, got {e:?}"),
    }
    assert!(
        h.store.job_get(fresh_id).await.unwrap().is_none(),
        "nothing of the failed batch is stored"
    );
    assert_eq!(
        h.counts("q").await,
        state_counts(&[(JobState::Available, 1)])
    );

    let batch: Vec<NewJob> = (0..300).map(|_| job("q")).collect();
    let out = h.insert(batch).await;
    assert_eq!(out.len(), 300);
    assert_eq!(
        h.counts("q").await,
        state_counts(&[(JobState::Available, 301)])
    );
}

/// The same key and request returns the first job; the same key with another request is a conflict; within
/// one batch, a repeated new key behaves the same way.
pub async fn idempotent_replay_and_conflict(h: Harness) {
    let first = keyed("q", "order-1", "fp");
    let id = first.id;
    let out = h.insert(vec![first]).await;
    assert!(!out[0].duplicate);

    let replay = h.insert(vec![keyed("q", "order-1", "fp")]).await;
    assert_eq!(
        replay,
        vec![Inserted {
            duplicate: true,
            debounced: false,
            ..out[0].clone()
        }]
    );

    let err = h
        .store
        .job_insert(JobInsertParams {
            jobs: vec![keyed("q", "order-1", "other")],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::IdempotencyConflict { existing, .. } if existing == id),
        "{err:?}"
    );

    // A replay reports the job's current state.
    let claimed = h.claim("q", 1).await;
    assert_eq!(claimed[0].id, id);
    let replay = h.insert(vec![keyed("q", "order-1", "fp")]).await;
    assert_eq!(
        (replay[0].id, replay[0].state, replay[0].duplicate),
        (id, JobState::Running, true)
    );

    // Twice the same new key in one batch.
    let a = keyed("q", "order-2", "fp");
    let a_id = a.id;
    let out = h.insert(vec![a, keyed("q", "order-2", "fp")]).await;
    assert_eq!((out[0].id, out[0].duplicate), (a_id, false));
    assert_eq!((out[1].id, out[1].duplicate), (a_id, true));

    let b = keyed("q", "order-3", "fp");
    let b_id = b.id;
    let err = h
        .store
        .job_insert(JobInsertParams {
            jobs: vec![b, keyed("q", "order-3", "fp-other")],
        })
        .await;
    assert!(
        matches!(err, Err(StoreError::IdempotencyConflict { .. })),
        "{err:?}"
    );
    assert!(h.store.job_get(b_id).await.unwrap().is_none());

    // Concurrent replays all get the one job.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .job_insert(JobInsertParams {
                    jobs: vec![keyed("q", "order-4", "fp")],
                })
                .await
                .unwrap()
        }));
    }
    let ids: HashSet<JobId> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap()[0].id)
        .collect();
    assert_eq!(ids.len(), 1, "one job for one key");
}

/// A command whose key conflicts within itself stores none of its jobs and leaves the key free: the next
/// command with that key creates a new job, and concurrent commands with different requests for one key get
/// one job and conflicts, never two jobs.
pub async fn idempotency_conflict_keeps_nothing_of_the_command(h: Harness) {
    let plain = job("q");
    let plain_id = plain.id;
    let err = h
        .store
        .job_insert(JobInsertParams {
            jobs: vec![plain, keyed("q", "k", "fp-1"), keyed("q", "k", "fp-2")],
        })
        .await;
    assert!(
        matches!(err, Err(StoreError::IdempotencyConflict { ref key, .. }) if key == "k"),
        "{err:?}"
    );
    assert!(h.store.job_get(plain_id).await.unwrap().is_none());

    let fresh = keyed("q", "k", "fp-2");
    let fresh_id = fresh.id;
    let out = h.insert(vec![fresh]).await;
    assert_eq!((out[0].id, out[0].duplicate), (fresh_id, false));

    let mut tasks = Vec::new();
    for n in 0..6 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .job_insert(JobInsertParams {
                    jobs: vec![keyed("q", "contended", &format!("fp-{}", n % 2))],
                })
                .await
        }));
    }
    let mut ids = HashSet::new();
    for task in futures::future::join_all(tasks).await {
        match task.unwrap() {
            Ok(out) => {
                ids.insert(out[0].id);
            }
            Err(StoreError::IdempotencyConflict { existing, .. }) => {
                ids.insert(existing);
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ids.len(), 1, "one job for one key: {ids:?}");
    assert_eq!(
        h.counts("q").await,
        state_counts(&[(JobState::Available, 2)])
    );
}
