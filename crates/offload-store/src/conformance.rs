//! The shared conformance suite: the executable definition of the [`Store`] contract.
//!
//! Every store crate runs the same functions against its own implementation, in its `tests/`:
//!
//! ```text
//! async fn factory(clock: Arc<ManualClock>) -> offload_store::conformance::TestStore { /* a fresh store */ }
//! offload_store::conformance_tests!(factory);
//! ```
//!
//! [`conformance_tests!`](crate::conformance_tests) expands to one `#[tokio::test]` per function of this module
//! (the caller needs `tokio` with the `macros` and `rt-multi-thread` features among its dev-dependencies).
//! Each test gets a fresh, empty store whose clock is a [`ManualClock`]: time only moves when a test moves it,
//! so lease expiry, due jobs, pruning and leader expiry are tested without sleeping.
//!
//! Invariant: a test here checks behaviour users rely on through the [`Store`] trait only, never a store's
//! internals; a store-specific property (file format, pragmas) belongs in that store's own tests.

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use offload_core::api::MAX_ERROR_LEN;
use offload_core::state::{Failure, FailureCause, add, lease_deadline};
use offload_core::{
    AttemptOutcome, Backoff, ClaimedJob, Clock, DurationSpec, JobId, JobState, LeaseToken,
    ManualClock, NewJob, Progress, RunAt, SignedDuration, Timestamp,
};
use serde_json::value::RawValue;

use crate::{
    DynStore, Finish, FinishItem, FinishOutcome, Inserted, JobClaimParams, JobFinishParams,
    JobHeartbeatParams, JobInsertParams, JobListParams, JobPruneParams, JobRescueParams,
    JobStageParams, LeaderElectParams, LeaderResignParams, QueueSetPausedParams, StoreError,
};

/// What a store crate's factory returns: a fresh, empty store, plus whatever must live as long as it
/// (a temporary directory, a throw-away database).
pub struct TestStore {
    /// The store under test.
    pub store: DynStore,
    /// Dropped after the test.
    pub guard: Box<dyn Any + Send + Sync>,
}

impl TestStore {
    /// A store that needs nothing kept alive beside it.
    pub fn new(store: DynStore) -> Self {
        Self {
            store,
            guard: Box::new(()),
        }
    }

    /// A store that needs `guard` kept alive until the test ends.
    pub fn with_guard(store: DynStore, guard: impl Any + Send + Sync) -> Self {
        Self {
            store,
            guard: Box::new(guard),
        }
    }
}

/// One test's world: the store and the clock it reads.
pub struct Harness {
    /// The store under test.
    pub store: DynStore,
    /// The store's clock; move it with [`Harness::advance`].
    pub clock: Arc<ManualClock>,
    _guard: Box<dyn Any + Send + Sync>,
}

/// The instant every test starts at.
pub fn t0() -> Timestamp {
    Timestamp::from_second(1_767_225_600).expect("2026-01-01T00:00:00Z is a valid instant")
}

impl Harness {
    /// Builds a harness from a store factory (called with a fresh clock standing at [`t0`]).
    pub async fn start<F, Fut>(factory: F) -> Self
    where
        F: FnOnce(Arc<ManualClock>) -> Fut,
        Fut: Future<Output = TestStore>,
    {
        let clock = Arc::new(ManualClock::new(t0()));
        let TestStore { store, guard } = factory(clock.clone()).await;
        Self {
            store,
            clock,
            _guard: guard,
        }
    }

    /// The store's current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock
            .advance(SignedDuration::try_from(by).expect("test durations are small"));
    }

    /// Inserts jobs; panics on failure.
    pub async fn insert(&self, jobs: Vec<NewJob>) -> Vec<Inserted> {
        self.store
            .job_insert(JobInsertParams { jobs })
            .await
            .expect("insert")
    }

    /// Claims up to `max_jobs` from `queue` as `worker`.
    pub async fn claim_as(&self, queue: &str, worker: &str, max_jobs: u32) -> Vec<ClaimedJob> {
        let p = JobClaimParams {
            queue: queue.into(),
            worker_id: worker.into(),
            max_jobs,
        };
        self.store.job_claim(p).await.expect("claim")
    }

    /// Claims up to `max_jobs` from `queue` as worker `w1`.
    pub async fn claim(&self, queue: &str, max_jobs: u32) -> Vec<ClaimedJob> {
        self.claim_as(queue, "w1", max_jobs).await
    }

    /// Reports one attempt's end.
    pub async fn finish(
        &self,
        id: JobId,
        lease_token: LeaseToken,
        finish: Finish,
    ) -> FinishOutcome {
        let p = JobFinishParams {
            items: vec![FinishItem {
                id,
                lease_token,
                finish,
            }],
        };
        let mut out = self.store.job_finish(p).await.expect("finish call");
        assert_eq!(out.len(), 1, "one answer per item");
        out.remove(0)
    }

    /// Completes a claimed job with `result`.
    pub async fn complete(&self, job: &ClaimedJob, result: Option<&str>) -> FinishOutcome {
        self.finish(
            job.id,
            job.lease_token,
            Finish::Complete {
                result: result.map(raw),
            },
        )
        .await
    }

    /// Fails a claimed job.
    pub async fn fail(
        &self,
        job: &ClaimedJob,
        error: &str,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> FinishOutcome {
        let failure = Failure {
            error: error.into(),
            retry_after,
            retryable,
            cause: FailureCause::Worker,
        };
        self.finish(job.id, job.lease_token, Finish::Fail(failure))
            .await
    }

    /// Stages due jobs.
    pub async fn stage(&self) -> crate::StageReport {
        self.store
            .job_stage_due(JobStageParams { limit: 10_000 })
            .await
            .expect("stage")
    }

    /// Reads a job that must exist.
    pub async fn get(&self, id: JobId) -> offload_core::Job {
        self.store
            .job_get(id)
            .await
            .expect("get")
            .expect("job exists")
    }

    /// The counts of one queue as `queue_list` reports them (empty when the queue is not listed).
    pub async fn counts(&self, queue: &str) -> BTreeMap<JobState, u64> {
        let queues = self.store.queue_list().await.expect("queue_list");
        queues
            .into_iter()
            .find(|q| q.name == queue)
            .map(|q| q.counts)
            .unwrap_or_default()
    }
}

/// Raw JSON text.
pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid JSON in a test")
}

/// A valid job with plain defaults: available now, priority 0, 3 attempts, backoff 1s..60s without jitter,
/// 30s timeout.
pub fn job(queue: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        queue: queue.into(),
        name: None,
        payload: raw(r#"{"n":1}"#),
        run_at: RunAt::Now,
        priority: 0,
        max_attempts: 3,
        backoff: Backoff {
            base: DurationSpec(Duration::from_secs(1)),
            cap: DurationSpec(Duration::from_secs(60)),
            jitter: 0.0,
        },
        timeout: Duration::from_secs(30),
        idempotency_key: None,
        request_fingerprint: None,
        tags: BTreeMap::new(),
    }
}

fn keyed(queue: &str, key: &str, fingerprint: &str) -> NewJob {
    NewJob {
        idempotency_key: Some(key.into()),
        request_fingerprint: Some(fingerprint.into()),
        ..job(queue)
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn state_counts(pairs: &[(JobState, u64)]) -> BTreeMap<JobState, u64> {
    let mut all: BTreeMap<JobState, u64> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
    all.extend(pairs.iter().copied());
    all
}

// ---------------------------------------------------------------------------------------------------------
// Insert and read
// ---------------------------------------------------------------------------------------------------------

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
            duplicate: false
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

// ---------------------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------------
// Heartbeats and finishing
// ---------------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------------
// User actions
// ---------------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------------------------------------

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

/// The per-queue counts always equal the jobs' actual states after a mix of operations, and
/// `oldest_available_age_ms` tracks the oldest available job.
pub async fn queue_counts_match_actual_states(h: Harness) {
    h.insert((0..10).map(|_| job("a")).collect()).await;
    h.insert(
        (0..4)
            .map(|_| NewJob {
                run_at: RunAt::After(secs(30)),
                ..job("b")
            })
            .collect(),
    )
    .await;
    h.insert((0..3).map(|_| job("b")).collect()).await;
    let a = h.claim("a", 6).await;
    h.complete(&a[0], None).await.unwrap();
    h.fail(&a[1], "x", false, None).await.unwrap();
    h.fail(&a[2], "y", true, None).await.unwrap();
    h.store.job_cancel(a[3].id).await.unwrap();
    h.fail(&a[3], "z", true, None).await.unwrap();
    let b = h.claim("b", 1).await;
    h.store.job_delete(b[0].id).await.unwrap_err();
    h.complete(&b[0], None).await.unwrap();
    h.store.job_delete(b[0].id).await.unwrap();
    h.advance(secs(5));

    let queues = h.store.queue_list().await.unwrap();
    assert_eq!(
        queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"],
        "sorted by name"
    );
    for q in &queues {
        let mut actual: BTreeMap<JobState, u64> =
            JobState::ALL.into_iter().map(|s| (s, 0)).collect();
        let mut before = None;
        loop {
            let page = h
                .store
                .job_list(JobListParams {
                    queue: Some(q.name.clone()),
                    before,
                    limit: 3,
                    ..Default::default()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for j in &page {
                *actual.entry(j.state).or_default() += 1;
            }
        }
        assert_eq!(q.counts, actual, "counts of queue {}", q.name);
        assert!(!q.paused);
    }
    assert_eq!(
        queues[0].counts,
        state_counts(&[
            (JobState::Available, 4),
            (JobState::Running, 2),
            (JobState::Succeeded, 1),
            (JobState::Dead, 1),
            (JobState::Retrying, 1),
            (JobState::Cancelled, 1),
        ])
    );
    assert_eq!(queues[0].oldest_available_age_ms, Some(5_000));
    assert_eq!(queues[1].oldest_available_age_ms, Some(5_000));

    h.claim("b", 10).await;
    let b = h
        .store
        .queue_list()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.name == "b")
        .unwrap();
    assert_eq!(b.oldest_available_age_ms, None, "no available job");
    assert_eq!(
        b.counts,
        state_counts(&[(JobState::Scheduled, 4), (JobState::Running, 2)])
    );
}

/// `job_list` filters by queue, state, name and tag, newest first, and its keyset pages have no duplicates
/// and no gaps.
pub async fn job_list_filters_and_pages(h: Harness) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut tags = BTreeMap::new();
        tags.insert(
            "parity".to_owned(),
            if i % 2 == 0 { "even" } else { "odd" }.to_owned(),
        );
        let j = NewJob {
            name: Some(if i % 3 == 0 { "fizz" } else { "plain" }.into()),
            tags,
            ..job(if i % 5 == 0 { "five" } else { "main" })
        };
        ids.push(j.id);
        h.insert(vec![j]).await;
    }
    let claimed = h.claim("main", 4).await;
    let list = |p: JobListParams| {
        let store = h.store.clone();
        async move { store.job_list(p).await.unwrap() }
    };

    let mut newest_first = ids.clone();
    newest_first.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = list(JobListParams {
            before,
            limit: 7,
            ..Default::default()
        })
        .await;
        assert!(page.len() <= 7);
        assert!(
            page.iter().all(|j| j.attempts.is_none()),
            "lists carry no history"
        );
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen.extend(page.iter().map(|j| j.id));
    }
    assert_eq!(
        seen, newest_first,
        "pages are newest first without duplicates or gaps"
    );

    let five = list(JobListParams {
        queue: Some("five".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        five.iter().map(|j| j.id).collect::<Vec<_>>(),
        newest_first
            .iter()
            .copied()
            .filter(|id| { ids.iter().position(|x| x == id).unwrap() % 5 == 0 })
            .collect::<Vec<_>>()
    );

    let running = list(JobListParams {
        state: Some(JobState::Running),
        limit: 100,
        ..Default::default()
    })
    .await;
    let mut running_ids: Vec<JobId> = running.iter().map(|j| j.id).collect();
    let mut expected: Vec<JobId> = claimed.iter().map(|c| c.id).collect();
    running_ids.sort();
    expected.sort();
    assert_eq!(running_ids, expected);

    let main_available = list(JobListParams {
        queue: Some("main".into()),
        state: Some(JobState::Available),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(main_available.len(), 20 - 4);
    assert!(
        main_available
            .iter()
            .all(|j| j.queue == "main" && j.state == JobState::Available)
    );

    let fizz = list(JobListParams {
        name: Some("fizz".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(fizz.len(), 9);
    assert!(fizz.iter().all(|j| j.name.as_deref() == Some("fizz")));

    let odd = list(JobListParams {
        tag: Some(("parity".into(), "odd".into())),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(odd.len(), 12);
    assert!(
        odd.iter()
            .all(|j| j.tags.get("parity").map(String::as_str) == Some("odd"))
    );
    let none = list(JobListParams {
        tag: Some(("parity".into(), "prime".into())),
        limit: 100,
        ..Default::default()
    });
    assert!(none.await.is_empty());

    let combined = list(JobListParams {
        queue: Some("main".into()),
        name: Some("fizz".into()),
        tag: Some(("parity".into(), "even".into())),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(combined.len(), 2);
    assert!(combined[0].id > combined[1].id);
    assert!(
        combined
            .iter()
            .all(|j| j.queue == "main" && j.name.as_deref() == Some("fizz"))
    );
    assert!(
        list(JobListParams {
            limit: 0,
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

/// A leader lease is taken only when free or expired; the term grows with each change of hands; resigning
/// frees it at once.
pub async fn leader_election_takeover_and_resign(h: Harness) {
    let elect = |node: &str| {
        let p = LeaderElectParams {
            name: "maintenance".into(),
            node_id: node.into(),
            ttl: secs(30),
        };
        let store = h.store.clone();
        async move { store.leader_attempt_elect(p).await.unwrap() }
    };
    let a = elect("a").await;
    assert!(a.is_leader);
    assert_eq!(a.expires_at, add(t0(), secs(30)));
    let b = elect("b").await;
    assert!(!b.is_leader);
    assert_eq!(
        (b.term, b.expires_at),
        (a.term, a.expires_at),
        "reports the holder's lease"
    );

    h.advance(secs(20));
    let renewed = elect("a").await;
    assert!(renewed.is_leader);
    assert_eq!(
        (renewed.term, renewed.expires_at),
        (a.term, add(h.now(), secs(30))),
        "renewal keeps the term"
    );
    h.advance(secs(29));
    assert!(!elect("b").await.is_leader, "not before expiry");

    h.advance(secs(1));
    let b = elect("b").await;
    assert!(b.is_leader, "taken over at expiry");
    assert!(b.term > a.term);
    assert!(!elect("a").await.is_leader);

    let other = h.store.leader_attempt_elect(LeaderElectParams {
        name: "cron".into(),
        node_id: "a".into(),
        ttl: secs(30),
    });
    assert!(other.await.unwrap().is_leader, "leases are per name");

    h.store
        .leader_resign(LeaderResignParams {
            name: "maintenance".into(),
            node_id: "a".into(),
        })
        .await
        .unwrap();
    assert!(
        !elect("a").await.is_leader,
        "resigning a lease one does not hold changes nothing"
    );
    h.store
        .leader_resign(LeaderResignParams {
            name: "maintenance".into(),
            node_id: "b".into(),
        })
        .await
        .unwrap();
    let a2 = elect("a").await;
    assert!(a2.is_leader, "free at once after resign");
    assert!(a2.term > b.term);
}

/// A store that offers wake-ups announces a queue that got an available job (after saying it is listening);
/// delayed jobs are not announced at insert. Stores without wake-ups return `None`.
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
}

/// For [`conformance_tests!`](crate::conformance_tests) without `skip_if`: never skips.
pub fn never_skip() -> bool {
    false
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

/// Expands to one `#[tokio::test]` per conformance function, each on a fresh store from `$factory`
/// (an `async fn(Arc<ManualClock>) -> TestStore`).
///
/// With `skip_if = $skip` (a `fn() -> bool`), each test returns at once when `$skip()` is true: for stores
/// that need an external database the environment may not provide (the function says why it skips).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!($factory, skip_if = $crate::conformance::never_skip);
    };
    ($factory:path, skip_if = $skip:path) => {
        $crate::conformance_tests!(@each $factory, $skip;
            insert_and_get_round_trip_every_field,
            batch_insert_is_all_or_nothing,
            idempotent_replay_and_conflict,
            delayed_job_is_claimable_only_after_staging,
            claims_follow_priority_then_due_time,
            claims_respect_max_jobs_and_queue,
            concurrent_claimers_never_share_a_job,
            paused_queue_hands_out_nothing,
            heartbeat_extends_lease_and_reports_cancel,
            complete_records_result_and_history,
            failure_retries_with_backoff_then_dies,
            non_retryable_and_retry_after,
            attempts_history_is_recorded,
            finish_batch_items_stand_alone,
            rescue_expired_lease_fences_the_old_worker,
            cancel_rules,
            manual_retry_of_dead_and_cancelled,
            delete_rules,
            prune_honours_retention_per_state,
            queue_counts_match_actual_states,
            job_list_filters_and_pages,
            leader_election_takeover_and_resign,
            available_jobs_wake_subscribers,
            close_makes_the_store_unavailable,
        );
    };
    (@each $factory:path, $skip:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if $skip() {
                    return;
                }
                let harness = $crate::conformance::Harness::start($factory).await;
                $crate::conformance::$name(harness).await;
            }
        )*
    };
}
