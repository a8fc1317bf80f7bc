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

use offload_core::cron::{
    MissedTicks, Schedule, ScheduleRecord, ScheduleSource, ScheduleSpec, TickOutcome,
};
use offload_core::push::{CALLBACK_QUEUE, Target};
use offload_core::spec::Limits;

use crate::{
    DynStore, Finish, FinishItem, FinishOutcome, Inserted, JobClaimParams, JobClaimPushParams,
    JobFinishParams, JobHeartbeatParams, JobInsertParams, JobListParams, JobPruneParams,
    JobRescueParams, JobStageParams, LeaderElectParams, LeaderResignParams,
    PUSH_FAILURE_ERROR_CHARS, PushFailure, PushFailuresParams, PushJob, QueueSetPausedParams,
    QueueThroughputParams, SettingInitParams, StoreError,
};
use crate::{
    FireOutcome, ScheduleDeleteParams, ScheduleDueParams, ScheduleFire, ScheduleFireParams,
    ScheduleGetParams, ScheduleListParams, ScheduleSetPausedParams, ScheduleTriggerParams,
    ScheduleUpsertParams, ScheduleUpserted, TickRun,
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
        target: None,
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

/// Ids of a `job_list` page, panicking on failure.
async fn list_ids(h: &Harness, p: JobListParams) -> Vec<JobId> {
    h.store
        .job_list(p)
        .await
        .expect("job_list")
        .into_iter()
        .map(|j| j.id)
        .collect()
}

/// Throughput of `since`, panicking on failure.
async fn throughput(h: &Harness, since: Timestamp) -> Vec<(String, Timestamp, u64, u64)> {
    h.store
        .queue_throughput(QueueThroughputParams { since })
        .await
        .expect("queue_throughput")
        .into_iter()
        .map(|b| (b.queue, b.minute, b.succeeded, b.failed))
        .collect()
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

/// Lists find the few old jobs of a state among many newer ones, a name's or a tag's jobs wherever they are,
/// newest first, page after page; a deleted job is gone from every list.
pub async fn job_list_finds_rare_states_names_and_tags(h: Harness) {
    let tagged = |k: &str, v: &str| NewJob {
        tags: BTreeMap::from([(k.to_owned(), v.to_owned())]),
        ..job("q")
    };
    // Oldest: 3 jobs that will stay available, 2 of them named and tagged, behind 40 newer ones that finish.
    let mut old = vec![
        NewJob {
            name: Some("rare".into()),
            ..tagged("tenant", "acme")
        },
        job("q"),
        NewJob {
            name: Some("rare".into()),
            ..tagged("tenant", "acme")
        },
    ];
    for j in &mut old {
        j.priority = 0;
    }
    let old_ids: Vec<JobId> = old.iter().map(|j| j.id).collect();
    h.insert(old).await;
    let newer: Vec<NewJob> = (0..40)
        .map(|i| NewJob {
            priority: 1,
            ..tagged("tenant", if i % 2 == 0 { "other" } else { "acme" })
        })
        .collect();
    h.insert(newer).await;
    let claimed = h.claim("q", 40).await;
    assert!(
        claimed.iter().all(|c| !old_ids.contains(&c.id)),
        "priority 1 first"
    );
    for c in &claimed[..39] {
        h.complete(c, None).await.unwrap();
    }
    let running = claimed[39].id;

    let newest_first: Vec<JobId> = old_ids.iter().rev().copied().collect();
    for queue in [Some("q".to_owned()), None] {
        let available = JobListParams {
            queue: queue.clone(),
            state: Some(JobState::Available),
            limit: 2,
            ..Default::default()
        };
        let page = list_ids(&h, available.clone()).await;
        assert_eq!(page, newest_first[..2], "{queue:?}");
        let rest = list_ids(
            &h,
            JobListParams {
                before: Some(page[1]),
                ..available
            },
        )
        .await;
        assert_eq!(rest, newest_first[2..], "{queue:?}");
        let runs = list_ids(
            &h,
            JobListParams {
                queue,
                state: Some(JobState::Running),
                limit: 5,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(runs, vec![running]);
    }
    let named = list_ids(
        &h,
        JobListParams {
            name: Some("rare".into()),
            limit: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(named, vec![old_ids[2]]);
    let named = list_ids(
        &h,
        JobListParams {
            name: Some("rare".into()),
            queue: Some("q".into()),
            before: Some(old_ids[2]),
            limit: 5,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(named, vec![old_ids[0]]);
    // 20 newer acme jobs (19 succeeded, the running one or not), then the 2 old ones.
    let acme = JobListParams {
        tag: Some(("tenant".into(), "acme".into())),
        limit: 100,
        ..Default::default()
    };
    let all = list_ids(&h, acme.clone()).await;
    assert_eq!(all.len(), 22);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first");
    let old_acme = list_ids(
        &h,
        JobListParams {
            state: Some(JobState::Available),
            ..acme.clone()
        },
    )
    .await;
    assert_eq!(old_acme, vec![old_ids[2], old_ids[0]]);
    let page = list_ids(
        &h,
        JobListParams {
            before: Some(all[10]),
            limit: 5,
            ..acme.clone()
        },
    )
    .await;
    assert_eq!(page, all[11..16]);
    h.store.job_delete(old_ids[2]).await.unwrap();
    let after = list_ids(&h, acme).await;
    assert_eq!(after.len(), 21);
    assert!(!after.contains(&old_ids[2]));
}

/// Ended attempts are counted per queue and minute: completions as succeeded, worker failures (retrying or
/// dead) and expired leases as failed, acknowledged cancellations as neither; `since` picks whole minutes; the
/// pruner drops minutes older than a day.
pub async fn throughput_counts_ended_attempts_per_minute(h: Harness) {
    let m = |n: u64| add(t0(), secs(60 * n));
    assert!(throughput(&h, t0()).await.is_empty());
    let ids = h
        .insert((0..5).map(|i| job(if i < 4 { "a" } else { "b" })).collect())
        .await;
    h.store.job_cancel(ids[3].id).await.unwrap();
    assert!(
        throughput(&h, t0()).await.is_empty(),
        "enqueues and cancels end no attempt"
    );
    let a = h.claim("a", 3).await;
    h.advance(secs(10));
    h.complete(&a[0], None).await.unwrap();
    h.fail(&a[1], "boom", true, None).await.unwrap();
    let b = h.claim("b", 1).await;
    h.advance(secs(60));
    h.fail(&a[2], "fatal", false, None).await.unwrap();
    h.complete(&b[0], None).await.unwrap();
    assert_eq!(
        throughput(&h, t0()).await,
        vec![
            ("a".to_owned(), m(0), 1, 1),
            ("a".to_owned(), m(1), 0, 1),
            ("b".to_owned(), m(1), 1, 0),
        ]
    );
    assert_eq!(
        throughput(&h, add(m(1), secs(59))).await.len(),
        2,
        "`since` includes the minute holding it"
    );

    // An expired lease is a failed attempt, in the minute of the rescue.
    h.stage().await;
    let again = h.claim("a", 1).await;
    assert_eq!(again.len(), 1);
    h.advance(secs(120));
    let rescued = h
        .store
        .job_rescue_expired(JobRescueParams { limit: 10 })
        .await
        .unwrap();
    assert_eq!(rescued.rescued.len(), 1);
    assert_eq!(
        throughput(&h, m(2)).await,
        vec![("a".to_owned(), m(3), 0, 1)]
    );

    // Acknowledged cancellation: not a throughput event.
    h.advance(secs(10));
    h.stage().await;
    let c = h.claim("a", 1).await.remove(0);
    h.store.job_cancel(c.id).await.unwrap();
    h.fail(&c, "stopped", true, None).await.unwrap();
    assert_eq!(h.get(c.id).await.state, JobState::Cancelled);
    assert_eq!(
        throughput(&h, m(2)).await,
        vec![("a".to_owned(), m(3), 0, 1)]
    );

    h.advance(secs(2 * 24 * 3600));
    let prune = JobPruneParams {
        succeeded: secs(365 * 24 * 3600),
        dead: secs(365 * 24 * 3600),
        cancelled: secs(365 * 24 * 3600),
        limit: 100,
    };
    h.store.job_prune(prune).await.unwrap();
    assert!(throughput(&h, t0()).await.is_empty(), "old minutes pruned");
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

// ---------------------------------------------------------------------------------------------------------
// Push jobs
// ---------------------------------------------------------------------------------------------------------

/// A push job: like [`job`], delivered to `url`.
pub fn push_job(queue: &str, url: &str) -> NewJob {
    NewJob {
        target: Some(Target::post(url)),
        ..job(queue)
    }
}

impl Harness {
    /// Claims push jobs as the dispatcher `d1`.
    pub async fn claim_push(
        &self,
        max_jobs: u32,
        per_destination: u32,
        busy: &[(&str, u32)],
    ) -> Vec<PushJob> {
        let p = JobClaimPushParams {
            worker_id: "d1".into(),
            max_jobs,
            per_destination,
            busy: busy.iter().map(|(d, n)| ((*d).to_owned(), *n)).collect(),
        };
        self.store.job_claim_push(p).await.expect("claim push")
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
    let pushed = h.claim_push(10, 10, &[]).await;
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
    assert!(h.claim_push(10, 10, &[]).await.is_empty());
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

/// Push claims follow priority then due time across queues, skip paused queues, and never let one
/// destination hold more than `per_destination` jobs (counting what the caller holds).
pub async fn push_claims_cap_each_destination(h: Harness) {
    let a = "http://a.example/hook";
    let b = "http://b.example:8080/hook";
    let (da, db) = ("http://a.example:80", "http://b.example:8080");
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

    let first = h.claim_push(10, 2, &[(da, 1)]).await;
    let got: Vec<JobId> = first.iter().map(|p| p.job.id).collect();
    assert_eq!(
        got,
        vec![ids[0], ids[5], ids[6]],
        "one more of a (it holds one), two of b, in priority order"
    );
    assert!(
        h.claim_push(10, 2, &[(da, 2), (db, 2)]).await.is_empty(),
        "every destination is at its cap"
    );
    let more = h.claim_push(1, 2, &[(da, 2), (db, 1)]).await;
    assert_eq!(
        more.iter().map(|p| p.job.id).collect::<Vec<_>>(),
        vec![ids[7]]
    );

    h.store
        .queue_set_paused(QueueSetPausedParams {
            queue: "qa".into(),
            paused: true,
        })
        .await
        .unwrap();
    assert!(
        h.claim_push(10, 10, &[]).await.is_empty(),
        "a paused queue hands out nothing"
    );
    h.store
        .queue_set_paused(QueueSetPausedParams {
            queue: "qa".into(),
            paused: false,
        })
        .await
        .unwrap();
    let rest = h.claim_push(10, 10, &[]).await;
    assert_eq!(
        rest.iter().map(|p| p.job.id).collect::<Vec<_>>(),
        ids[1..5].to_vec()
    );
    assert_eq!(
        h.counts("qa").await,
        state_counts(&[(JobState::Running, 5)])
    );
}

/// A push job that succeeds gets its `callback_url` job, one that dies (by failure or lease expiry) its
/// `failure_callback_url` job, in the same transaction; a retry or a job without callbacks gets none.
pub async fn push_callbacks_are_created_with_the_end(h: Harness) {
    // Callbacks go elsewhere, so that claims can leave them out by destination.
    let hooks = [("https://hooks.example:443", 10)];
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
    let claimed = h.claim_push(10, 10, &[]).await;
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

    // A retryable failure with attempts left: no callback yet. The last attempt's failure: the failure one.
    h.insert(vec![with(2)]).await;
    let p = h.claim_push(1, 10, &hooks).await.remove(0);
    h.fail(&p.job, "HTTP 503", true, Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(h.callbacks().await.len(), 1);
    let p = h.claim_push(1, 10, &hooks).await.remove(0);
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
    let p = h.claim_push(1, 10, &hooks).await.remove(0);
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
    let cbs = h.claim_push(10, 10, &[]).await;
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
    let pushed = h.claim_push(10, 10, &[]).await;
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
    let again = h.claim_push(10, 10, &[]).await;
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
    let lost = h.claim_push(10, 10, &[]).await;
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
    let pushed = h.claim_push(10, 10, &[]).await;
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

/// A setting keeps the first value stored.
pub async fn setting_init_keeps_the_first_value(h: Harness) {
    let init = |value: &str| SettingInitParams {
        name: "push.signing_secret".into(),
        value: value.into(),
    };
    assert_eq!(h.store.setting_init(init("first")).await.unwrap(), "first");
    assert_eq!(h.store.setting_init(init("second")).await.unwrap(), "first");
    let other = SettingInitParams {
        name: "other".into(),
        value: "x".into(),
    };
    assert_eq!(h.store.setting_init(other).await.unwrap(), "x");
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
            snooze_runs_again_later_without_using_up_an_attempt,
            worker_cancel_ends_the_job,
            cancel_rules,
            manual_retry_of_dead_and_cancelled,
            delete_rules,
            prune_honours_retention_per_state,
            queue_counts_match_actual_states,
            throughput_counts_ended_attempts_per_minute,
            job_list_finds_rare_states_names_and_tags,
            job_list_filters_and_pages,
            leader_election_takeover_and_resign,
            available_jobs_wake_subscribers,
            close_makes_the_store_unavailable,
            push_jobs_are_only_claimed_by_the_dispatcher,
            push_claims_cap_each_destination,
            push_callbacks_are_created_with_the_end,
            push_failures_are_grouped_by_destination,
            push_failures_break_ties_and_cut_errors,
            setting_init_keeps_the_first_value,
            schedule_upsert_get_list_delete,
            schedule_pause_resume_and_due,
            schedule_fire_creates_jobs_and_advances,
            schedule_ticks_are_unique_per_fire_time,
            schedule_fire_applies_the_overlap_policy,
            schedule_fire_records_missed_ticks,
            schedule_fire_ignores_changed_schedules,
            schedule_trigger_runs_now,
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

// --- Schedules ---------------------------------------------------------------------------------------------

/// A validated schedule named `name` firing on `cron` (UTC) into queue `cron-q`, with `extra` JSON fields.
pub fn schedule(name: &str, cron: &str, extra: &str) -> Schedule {
    let json =
        format!(r#"{{"cron":"{cron}","job":{{"queue":"cron-q","payload":{{"n":1}}}}{extra}}}"#);
    serde_json::from_str::<ScheduleSpec>(&json)
        .expect("schedule JSON")
        .validate(Some(name), &Limits::default(), t0())
        .expect("valid schedule")
}

impl Harness {
    /// Creates or replaces a schedule from the API.
    pub async fn put_schedule(&self, s: Schedule) -> ScheduleUpserted {
        self.store
            .schedule_upsert(ScheduleUpsertParams {
                schedule: s,
                source: ScheduleSource::Api,
            })
            .await
            .expect("schedule_upsert")
    }

    /// A schedule that must exist, with up to 50 recent ticks.
    pub async fn get_schedule(&self, name: &str) -> ScheduleRecord {
        self.store
            .schedule_get(ScheduleGetParams {
                name: name.into(),
                recent_ticks: 50,
            })
            .await
            .expect("schedule_get")
            .expect("schedule exists")
    }

    /// Plans `runs` (fire times) and `missed` against the schedule's stored state and fires, with the next
    /// fire time `next`.
    pub async fn fire(
        &self,
        name: &str,
        runs: &[Timestamp],
        missed: Option<MissedTicks>,
        next: Option<Timestamp>,
    ) -> FireOutcome {
        let record = self.get_schedule(name).await;
        let fire = ScheduleFire {
            name: name.into(),
            revision: record.revision,
            from: record.next_fire_at.expect("a next fire time"),
            runs: runs
                .iter()
                .map(|&fire_at| TickRun {
                    fire_at,
                    job: record.schedule.job.new_job(fire_at).expect("job"),
                })
                .collect(),
            missed,
            next_fire_at: next,
        };
        let mut out = self
            .store
            .schedule_fire(ScheduleFireParams { fires: vec![fire] })
            .await
            .expect("schedule_fire");
        assert_eq!(out.len(), 1);
        out.remove(0)
    }
}

fn at(secs_after_t0: i64) -> Timestamp {
    t0().checked_add(SignedDuration::from_secs(secs_after_t0))
        .expect("test instant")
}

/// Create, read, replace (keeping the next fire time when the cadence is unchanged), list in pages, delete.
pub async fn schedule_upsert_get_list_delete(h: Harness) {
    let created = h.put_schedule(schedule("b-hourly", "0 * * * *", "")).await;
    assert!(created.created);
    let r = &created.record;
    assert_eq!(r.next_fire_at, Some(at(3600)));
    assert_eq!((r.paused, r.source), (false, ScheduleSource::Api));
    assert_eq!((r.created_at, r.updated_at), (t0(), t0()));
    let mut expected = schedule("b-hourly", "0 * * * *", "");
    expected.paused = Some(false);
    assert_eq!(
        r.schedule, expected,
        "stored as defined, with its pause state"
    );
    let got = h.get_schedule("b-hourly").await;
    assert_eq!(got.recent_ticks.as_deref(), Some(&[][..]));
    assert_eq!(got.revision, r.revision);

    // Replacing the template keeps the next fire time; replacing the cadence recomputes it.
    h.advance(secs(600));
    let replaced = h
        .put_schedule(schedule(
            "b-hourly",
            "0 * * * *",
            r#","overlap":"allow","jitter":"5s""#,
        ))
        .await;
    assert!(!replaced.created);
    assert_eq!(replaced.record.next_fire_at, Some(at(3600)));
    assert!(replaced.record.revision > r.revision);
    assert_eq!(replaced.record.updated_at, at(600));
    assert_eq!(replaced.record.created_at, t0());
    assert_eq!(replaced.record.schedule.jitter, secs(5));
    let recomputed = h
        .put_schedule(schedule("b-hourly", "*/5 * * * *", ""))
        .await;
    assert_eq!(recomputed.record.next_fire_at, Some(at(900)));

    for name in ["c-daily", "a-weekly"] {
        h.put_schedule(schedule(name, "@daily", "")).await;
    }
    h.store
        .schedule_upsert(ScheduleUpsertParams {
            schedule: schedule("d-file", "@daily", ""),
            source: ScheduleSource::File,
        })
        .await
        .unwrap();
    let names = |v: Vec<ScheduleRecord>| -> Vec<String> {
        v.into_iter().map(|r| r.schedule.name).collect()
    };
    let list = |after: Option<&str>, source: Option<ScheduleSource>, limit: u32| {
        let store = h.store.clone();
        let p = ScheduleListParams {
            after: after.map(str::to_owned),
            source,
            limit,
        };
        async move { store.schedule_list(p).await.unwrap() }
    };
    assert_eq!(
        names(list(None, None, 10).await),
        ["a-weekly", "b-hourly", "c-daily", "d-file"]
    );
    assert_eq!(names(list(None, None, 2).await), ["a-weekly", "b-hourly"]);
    assert_eq!(
        names(list(Some("b-hourly"), None, 2).await),
        ["c-daily", "d-file"]
    );
    assert_eq!(
        names(list(None, Some(ScheduleSource::File), 10).await),
        ["d-file"]
    );
    assert!(
        list(None, None, 10)
            .await
            .iter()
            .all(|r| r.recent_ticks.is_none())
    );

    h.store
        .schedule_delete(ScheduleDeleteParams {
            name: "c-daily".into(),
        })
        .await
        .unwrap();
    assert!(
        h.store
            .schedule_get(ScheduleGetParams {
                name: "c-daily".into(),
                recent_ticks: 5
            })
            .await
            .unwrap()
            .is_none()
    );
    let again = h
        .store
        .schedule_delete(ScheduleDeleteParams {
            name: "c-daily".into(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
}

/// Paused schedules are never due; pausing keeps the next fire time; a replace without `paused` keeps the
/// pause state; unknown names are `NotFound`.
pub async fn schedule_pause_resume_and_due(h: Harness) {
    h.put_schedule(schedule("minutely", "* * * * *", "")).await;
    h.put_schedule(schedule("hourly", "0 * * * *", "")).await;
    let due_by = |h: &Harness, until: Timestamp| {
        let store = h.store.clone();
        async move {
            store
                .schedule_due(ScheduleDueParams { until, limit: 10 })
                .await
                .unwrap()
        }
    };
    let due = |h: &Harness| due_by(h, h.now());
    let none = due(&h).await;
    assert!(none.due.is_empty());
    assert_eq!(none.next_fire_at, Some(at(60)));
    // Looking ahead: due by a later instant.
    let ahead = due_by(&h, at(60)).await;
    assert_eq!(ahead.due.len(), 1);
    assert_eq!(ahead.next_fire_at, Some(at(3600)));

    h.advance(secs(61));
    let one = due(&h).await;
    assert_eq!(one.due.len(), 1);
    assert_eq!(one.due[0].schedule.name, "minutely");
    assert_eq!(one.next_fire_at, Some(at(3600)));

    let paused = h
        .store
        .schedule_set_paused(ScheduleSetPausedParams {
            name: "minutely".into(),
            paused: true,
        })
        .await
        .unwrap();
    assert!(paused.paused);
    assert_eq!(
        paused.next_fire_at,
        Some(at(60)),
        "pausing keeps the next fire time"
    );
    assert!(due(&h).await.due.is_empty());
    let replaced = h.put_schedule(schedule("minutely", "* * * * *", "")).await;
    assert!(
        replaced.record.paused,
        "a replace without `paused` keeps the state"
    );

    let resumed = h
        .store
        .schedule_set_paused(ScheduleSetPausedParams {
            name: "minutely".into(),
            paused: false,
        })
        .await
        .unwrap();
    assert!(!resumed.paused && resumed.revision > paused.revision);
    assert_eq!(due(&h).await.due.len(), 1, "due again, to be caught up");
    let explicit = h
        .put_schedule(schedule("minutely", "* * * * *", r#","paused":true"#))
        .await;
    assert!(explicit.record.paused);

    let unknown = h
        .store
        .schedule_set_paused(ScheduleSetPausedParams {
            name: "nope".into(),
            paused: true,
        })
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
}

/// A fire creates the tick's job (carrying the schedule and fire time), records the tick, persists the next
/// fire time; the same plan applied again writes nothing.
pub async fn schedule_fire_creates_jobs_and_advances(h: Harness) {
    h.put_schedule(schedule("every-minute", "* * * * *", ""))
        .await;
    h.advance(secs(60));
    let record = h.get_schedule("every-minute").await;
    let out = h.fire("every-minute", &[at(60)], None, Some(at(120))).await;
    assert!(out.applied);
    assert_eq!(out.fired.len(), 1);
    let fired = &out.fired[0];
    assert_eq!((fired.fire_at, fired.queue.as_str()), (at(60), "cron-q"));
    assert_eq!(fired.inserted.state, JobState::Available);

    let job = h.get(fired.inserted.id).await;
    assert_eq!(job.queue, "cron-q");
    assert_eq!(job.payload.get(), r#"{"n":1}"#);
    let by = job.schedule.expect("the job carries its tick");
    assert_eq!((by.name.as_str(), by.fire_at), ("every-minute", at(60)));

    let after = h.get_schedule("every-minute").await;
    assert_eq!(after.next_fire_at, Some(at(120)));
    assert_eq!(
        after.revision, record.revision,
        "firing is not a change of definition"
    );
    let ticks = after.recent_ticks.unwrap();
    assert_eq!(ticks.len(), 1);
    assert_eq!(ticks[0].fire_at, at(60));
    assert_eq!(ticks[0].outcome, TickOutcome::Fired);
    assert_eq!(ticks[0].job_id, Some(fired.inserted.id));
    assert_eq!((ticks[0].count, ticks[0].manual), (1, false));

    // The plan made before the fire is stale now: nothing is written.
    let stale = ScheduleFire {
        name: "every-minute".into(),
        revision: record.revision,
        from: at(60),
        runs: vec![TickRun {
            fire_at: at(60),
            job: record.schedule.job.new_job(at(60)).unwrap(),
        }],
        missed: None,
        next_fire_at: Some(at(120)),
    };
    let out = h
        .store
        .schedule_fire(ScheduleFireParams { fires: vec![stale] })
        .await
        .unwrap();
    assert_eq!(out, vec![FireOutcome::default()]);
    assert_eq!(h.counts("cron-q").await[&JobState::Available], 1);
}

/// Whatever a plan says, a tick that was already recorded creates no second job.
pub async fn schedule_ticks_are_unique_per_fire_time(h: Harness) {
    h.put_schedule(schedule("once", "* * * * *", r#","overlap":"allow""#))
        .await;
    h.advance(secs(120));
    let first = h.fire("once", &[at(60)], None, Some(at(120))).await;
    assert_eq!(first.fired.len(), 1);
    // A plan that repeats the 60 s tick (a planner behind a clock that went backwards) fires only 120 s.
    let second = h
        .fire("once", &[at(60), at(120)], None, Some(at(180)))
        .await;
    assert!(second.applied);
    assert_eq!(second.duplicates, 1);
    assert_eq!(second.fired.len(), 1);
    assert_eq!(second.fired[0].fire_at, at(120));
    assert_eq!(h.counts("cron-q").await[&JobState::Available], 2);
    let ticks = h.get_schedule("once").await.recent_ticks.unwrap();
    assert_eq!(
        ticks.iter().map(|t| t.fire_at).collect::<Vec<_>>(),
        [at(120), at(60)],
        "newest first, one each"
    );
}

/// Overlap decisions count the schedule's unfinished jobs in the firing transaction, including runs created
/// earlier in the same plan.
pub async fn schedule_fire_applies_the_overlap_policy(h: Harness) {
    for (name, policy) in [
        ("s-skip", "skip"),
        ("s-buffer", "buffer_one"),
        ("s-allow", "allow"),
    ] {
        let extra = format!(r#","overlap":"{policy}""#);
        let mut s = schedule(name, "* * * * *", &extra);
        s.job.queue = name.into();
        h.put_schedule(s).await;
    }
    h.advance(secs(180));
    let fired = |o: &FireOutcome| o.fired.iter().map(|f| f.fire_at).collect::<Vec<_>>();
    // Three due ticks in one plan.
    let ticks = [at(60), at(120), at(180)];
    let skip = h.fire("s-skip", &ticks, None, Some(at(240))).await;
    assert_eq!(
        (fired(&skip), skip.skipped.clone()),
        (vec![at(60)], vec![at(120), at(180)])
    );
    let buffer = h.fire("s-buffer", &ticks, None, Some(at(240))).await;
    assert_eq!(fired(&buffer), [at(60)]);
    let allow = h.fire("s-allow", &ticks, None, Some(at(240))).await;
    assert_eq!(fired(&allow), ticks);

    // The skip schedule's run is taken by a worker: skip still skips, buffer_one lets one wait.
    let skip_running = h.claim("s-skip", 1).await;
    assert_eq!(skip_running.len(), 1);
    assert_eq!(h.claim("s-buffer", 1).await.len(), 1);
    h.advance(secs(60));
    assert_eq!(
        h.fire("s-skip", &[at(240)], None, Some(at(300)))
            .await
            .skipped,
        [at(240)]
    );
    let buffered = h.fire("s-buffer", &[at(240)], None, Some(at(300))).await;
    assert_eq!(fired(&buffered), [at(240)]);
    h.advance(secs(60));
    let full = h.fire("s-buffer", &[at(300)], None, Some(at(360))).await;
    assert_eq!(full.skipped, [at(300)], "one run already waits");

    // A finished run no longer counts.
    assert!(h.complete(&skip_running[0], None).await.is_ok());
    let again = h.fire("s-skip", &[at(300)], None, Some(at(360))).await;
    assert_eq!(fired(&again), [at(300)]);
    let ticks = h.get_schedule("s-skip").await.recent_ticks.unwrap();
    let skipped = ticks
        .iter()
        .filter(|t| t.outcome == TickOutcome::Skipped)
        .count();
    assert_eq!(skipped, 3);
}

/// Missed ticks are one record with their count and last fire time.
pub async fn schedule_fire_records_missed_ticks(h: Harness) {
    h.put_schedule(schedule("late", "* * * * *", "")).await;
    h.advance(secs(600));
    let missed = MissedTicks {
        first: at(60),
        last: at(540),
        count: 9,
    };
    let out = h
        .fire("late", &[at(600)], Some(missed), Some(at(660)))
        .await;
    assert_eq!((out.missed, out.fired.len()), (9, 1));
    let ticks = h.get_schedule("late").await.recent_ticks.unwrap();
    let record = ticks
        .iter()
        .find(|t| t.outcome == TickOutcome::Missed)
        .expect("a missed record");
    assert_eq!(
        (
            record.fire_at,
            record.last_fire_at,
            record.count,
            record.job_id
        ),
        (at(60), Some(at(540)), 9, None)
    );
    assert_eq!(h.get_schedule("late").await.next_fire_at, Some(at(660)));
}

/// A plan for a schedule paused, replaced or deleted since it was made writes nothing.
pub async fn schedule_fire_ignores_changed_schedules(h: Harness) {
    for name in ["paused", "replaced", "deleted"] {
        h.put_schedule(schedule(name, "* * * * *", "")).await;
    }
    h.advance(secs(60));
    let due = h
        .store
        .schedule_due(ScheduleDueParams {
            until: h.now(),
            limit: 10,
        })
        .await
        .unwrap()
        .due;
    assert_eq!(due.len(), 3);
    h.store
        .schedule_set_paused(ScheduleSetPausedParams {
            name: "paused".into(),
            paused: true,
        })
        .await
        .unwrap();
    h.put_schedule(schedule("replaced", "* * * * *", r#","jitter":"1s""#))
        .await;
    h.store
        .schedule_delete(ScheduleDeleteParams {
            name: "deleted".into(),
        })
        .await
        .unwrap();
    let fires = due
        .iter()
        .map(|r| ScheduleFire {
            name: r.schedule.name.clone(),
            revision: r.revision,
            from: r.next_fire_at.unwrap(),
            runs: vec![TickRun {
                fire_at: at(60),
                job: r.schedule.job.new_job(at(60)).unwrap(),
            }],
            missed: None,
            next_fire_at: Some(at(120)),
        })
        .collect();
    let out = h
        .store
        .schedule_fire(ScheduleFireParams { fires })
        .await
        .unwrap();
    assert!(out.iter().all(|o| !o.applied), "{out:?}");
    assert!(h.counts("cron-q").await.values().all(|n| *n == 0));
    assert_eq!(h.get_schedule("paused").await.next_fire_at, Some(at(60)));
}

/// A trigger creates a job at once, recorded as a manual tick, whatever the pause state; the next fire time
/// stays; deleting the schedule keeps its jobs.
pub async fn schedule_trigger_runs_now(h: Harness) {
    h.put_schedule(schedule("nightly", "0 3 * * *", r#","paused":true"#))
        .await;
    h.advance(secs(5));
    let trigger = |h: &Harness| {
        let store = h.store.clone();
        let job = schedule("nightly", "0 3 * * *", "")
            .job
            .new_job(h.now())
            .unwrap();
        async move {
            store
                .schedule_trigger(ScheduleTriggerParams {
                    name: "nightly".into(),
                    job,
                })
                .await
        }
    };
    let first = trigger(&h).await.unwrap();
    let second = trigger(&h).await.unwrap();
    assert_ne!(first.inserted.id, second.inserted.id);
    assert!(first.tick.manual && first.tick.fire_at == at(5));
    assert_eq!(first.queue, "cron-q");
    let job = h.get(first.inserted.id).await;
    assert_eq!(
        job.schedule.map(|s| (s.name, s.fire_at)),
        Some(("nightly".to_owned(), at(5)))
    );

    let record = h.get_schedule("nightly").await;
    assert_eq!(record.next_fire_at, Some(at(3 * 3600)));
    let ticks = record.recent_ticks.unwrap();
    assert_eq!(ticks.len(), 2);
    assert!(
        ticks
            .iter()
            .all(|t| t.manual && t.outcome == TickOutcome::Fired)
    );

    let unknown = h
        .store
        .schedule_trigger(ScheduleTriggerParams {
            name: "nope".into(),
            job: job_for_trigger(),
        })
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );

    h.store
        .schedule_delete(ScheduleDeleteParams {
            name: "nightly".into(),
        })
        .await
        .unwrap();
    assert!(h.store.job_get(first.inserted.id).await.unwrap().is_some());
}

fn job_for_trigger() -> NewJob {
    job("cron-q")
}
