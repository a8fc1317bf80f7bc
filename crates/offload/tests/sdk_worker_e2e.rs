//! The Rust SDK against the real server binary on 127.0.0.1 (SQLite in a temporary directory): typed
//! enqueue, the pull worker's handlers and every way a job can end, cancellation, shutdown, crashed workers.
//!
//! Tests wait on the worker's counters ([`WorkerHandle::wait_until`]), which move only when the server has
//! answered, so the job states read afterwards are committed ones.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use offload_sdk::api::ListJobsQuery;
use offload_sdk::{
    AttemptOutcome, Backoff, Client, DurationSpec, Job, JobError, JobId, JobRecord, JobSpec,
    JobState, Worker, WorkerHandle, WorkerStats,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::Server;
use tokio::sync::{Notify, mpsc};

/// Longest any single wait in these tests may take before it counts as a failure.
const PATIENCE: Duration = Duration::from_secs(30);

struct World {
    _server: Server,
    client: Client,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let client = Client::new(&server.url).unwrap();
    World {
        _server: server,
        client,
        _dir: dir,
    }
}

/// A quick retry policy, so retries in these tests take milliseconds.
fn quick_backoff() -> Backoff {
    Backoff {
        base: DurationSpec(Duration::from_millis(50)),
        cap: DurationSpec(Duration::from_millis(200)),
        jitter: 0.0,
    }
}

async fn wait(
    handle: &WorkerHandle,
    what: &str,
    done: impl FnMut(&WorkerStats) -> bool,
) -> WorkerStats {
    tokio::time::timeout(PATIENCE, handle.wait_until(done))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}; stats: {:?}", handle.stats()))
}

async fn job(client: &Client, id: JobId) -> JobRecord {
    client.get_job(id).await.unwrap()
}

fn outcomes(job: &JobRecord) -> Vec<AttemptOutcome> {
    job.attempts
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.outcome)
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
struct Double {
    n: i64,
}

async fn double(job: Job<Double>) -> Result<Value, JobError> {
    Ok(json!({ "doubled": job.payload.n * 2, "attempt": job.attempt, "queue": job.queue }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_jobs_are_enqueued_worked_and_their_results_kept() {
    let w = world();
    let one = w
        .client
        .enqueue_job(
            &JobSpec::new("math", &Double { n: 21 })
                .name("double")
                .priority(5)
                .max_attempts(3)
                .timeout(Duration::from_secs(20))
                .backoff(quick_backoff())
                .idempotency_key("double-21")
                .tag("tenant", "acme"),
        )
        .await
        .unwrap();
    assert_eq!(one.job.state, JobState::Available);
    assert_eq!((one.job.priority, one.job.max_attempts), (5, 3));
    assert_eq!(one.job.timeout, DurationSpec(Duration::from_secs(20)));
    assert_eq!(one.job.tags["tenant"], "acme");
    let again = w
        .client
        .enqueue_job(
            &JobSpec::new("math", &Double { n: 21 })
                .name("double")
                .priority(5)
                .max_attempts(3)
                .timeout(Duration::from_secs(20))
                .backoff(quick_backoff())
                .idempotency_key("double-21")
                .tag("tenant", "acme"),
        )
        .await
        .unwrap();
    assert!(
        again.replayed && again.job.id == one.job.id,
        "idempotent replay"
    );

    let batch: Vec<JobSpec> = (1..=5)
        .map(|n| JobSpec::new("math", &Double { n }).name("double"))
        .chain([JobSpec::new("math", &json!({"free": "form"}))])
        .collect();
    let stored = w.client.enqueue_jobs(&batch).await.unwrap();
    assert_eq!(stored.jobs.len(), 6);

    let worker = Worker::builder(w.client.clone())
        .queue("math", 4)
        .worker_id("sdk-e2e")
        .handler("double", double)
        .fallback(|job: Job| async move { Ok(json!({ "echo": job.payload })) })
        .build()
        .unwrap();
    let handle = worker.start();
    let stats = wait(&handle, "seven completions", |s| s.succeeded == 7).await;
    assert_eq!((stats.claimed, stats.failed), (7, 0));

    let done = job(&w.client, one.job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(
        done.result
            .as_ref()
            .map(|r| serde_json::from_str::<Value>(r.get()).unwrap()),
        Some(json!({"doubled": 42, "attempt": 1, "queue": "math"}))
    );
    let attempt = &done.attempts.as_ref().unwrap()[0];
    assert_eq!(
        (attempt.outcome, attempt.worker_id.as_deref()),
        (AttemptOutcome::Succeeded, Some("sdk-e2e"))
    );
    let free = job(&w.client, stored.jobs[5].id).await;
    assert_eq!(free.result.unwrap().get(), r#"{"echo":{"free":"form"}}"#);
    handle.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_retry_fatal_errors_go_dead_and_snoozes_use_no_attempt() {
    let w = world();
    let spec = |name: &str, max_attempts: u32| {
        JobSpec::new("outcomes", &json!({}))
            .name(name)
            .max_attempts(max_attempts)
            .backoff(quick_backoff())
    };
    let flaky = w
        .client
        .enqueue_job(&spec("flaky", 3))
        .await
        .unwrap()
        .job
        .id;
    let hopeless = w
        .client
        .enqueue_job(&spec("hopeless", 2))
        .await
        .unwrap()
        .job
        .id;
    let fatal = w
        .client
        .enqueue_job(&spec("fatal", 5))
        .await
        .unwrap()
        .job
        .id;
    let sleepy = w
        .client
        .enqueue_job(&spec("sleepy", 1))
        .await
        .unwrap()
        .job
        .id;
    let quitter = w
        .client
        .enqueue_job(&spec("quitter", 5))
        .await
        .unwrap()
        .job
        .id;

    let worker = Worker::builder(w.client.clone())
        .queue("outcomes", 5)
        .handler("flaky", |job: Job| async move {
            if job.attempt == 1 {
                // Any std error works with `?`: retried with the job's backoff.
                let _: u32 = "not a number".parse()?;
            }
            Ok(job.attempt)
        })
        .handler("hopeless", |_job: Job| async move {
            Err::<(), _>(JobError::retry_after(
                "still down",
                Duration::from_millis(10),
            ))
        })
        .handler("fatal", |_job: Job| async move {
            Err::<(), _>(JobError::fatal("the input can never work"))
        })
        .handler("sleepy", |job: Job| async move {
            if job.attempt == 1 {
                return Err(JobError::snooze(Duration::from_millis(300)));
            }
            Ok("awake")
        })
        .handler("quitter", |_job: Job| async move {
            Err::<(), _>(JobError::cancel("the order was withdrawn"))
        })
        .build()
        .unwrap();
    let handle = worker.start();
    let stats = wait(&handle, "every job to end", |s| {
        s.succeeded == 2 && s.failed == 4 && s.snoozed == 1 && s.cancelled == 1
    })
    .await;
    assert_eq!((stats.refused, stats.unreported, stats.panicked), (0, 0, 0));

    let j = job(&w.client, flaky).await;
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(
        outcomes(&j),
        [AttemptOutcome::Failed, AttemptOutcome::Succeeded]
    );
    assert_eq!(
        j.attempts.as_ref().unwrap()[0].error.as_deref(),
        Some("invalid digit found in string")
    );

    let j = job(&w.client, hopeless).await;
    assert_eq!(
        (j.state, j.attempt),
        (JobState::Dead, 2),
        "attempts exhausted"
    );
    assert_eq!(j.last_error.as_deref(), Some("still down"));

    let j = job(&w.client, fatal).await;
    assert_eq!((j.state, j.attempt), (JobState::Dead, 1), "no retry");
    assert_eq!(j.last_error.as_deref(), Some("the input can never work"));

    let j = job(&w.client, sleepy).await;
    assert_eq!(
        j.state,
        JobState::Succeeded,
        "one allowed attempt, and the snooze did not use it"
    );
    assert_eq!(
        outcomes(&j),
        [AttemptOutcome::Snoozed, AttemptOutcome::Succeeded]
    );
    assert_eq!((j.attempt, j.max_attempts), (2, 2));

    let j = job(&w.client, quitter).await;
    assert_eq!((j.state, j.attempt), (JobState::Cancelled, 1));
    assert_eq!(outcomes(&j), [AttemptOutcome::Cancelled]);
    assert_eq!(j.last_error.as_deref(), Some("the order was withdrawn"));
    handle.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_running_handler_through_its_token() {
    let w = world();
    let id = w
        .client
        .enqueue_job(
            &JobSpec::new("long", &json!({}))
                .name("long")
                .timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap()
        .job
        .id;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let worker = Worker::builder(w.client.clone())
        .queue("long", 1)
        .handler("long", move |job: Job| {
            let started = started_tx.clone();
            async move {
                job.progress(10, Some("started")).await?;
                started.send(()).unwrap();
                // A long job that watches its token (heartbeats keep its 1 s lease alive meanwhile).
                tokio::select! {
                    () = job.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(60)) => return Ok("finished"),
                }
                assert!(job.cancel_requested() && !job.lease_lost());
                Err(JobError::retry("stopped on request"))
            }
        })
        .build()
        .unwrap();
    let handle = worker.start();
    tokio::time::timeout(PATIENCE, started.recv())
        .await
        .unwrap();
    let running = job(&w.client, id).await;
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.progress.as_ref().map(|p| p.percent), Some(10));

    let requested = w.client.cancel_job(id).await.unwrap();
    assert!(requested.cancel_requested);
    wait(&handle, "the handler to stop", |s| s.failed == 1).await;
    let j = job(&w.client, id).await;
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(outcomes(&j), [AttemptOutcome::Cancelled]);
    assert_eq!(j.last_error.as_deref(), Some("stopped on request"));
    handle.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_or_hands_back_every_job() {
    let w = world();
    let quick: Vec<JobSpec> = (0..10)
        .map(|n| JobSpec::new("drain", &n).name("quick"))
        .collect();
    w.client.enqueue_jobs(&quick).await.unwrap();
    let slow: Vec<JobSpec> = (0..2)
        .map(|n| JobSpec::new("drain", &n).name("slow").max_attempts(1))
        .collect();
    let slow_ids: Vec<JobId> = w
        .client
        .enqueue_jobs(&slow)
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id)
        .collect();

    // The slow handler ignores its token: only the end of the grace period stops it.
    let worker = Worker::builder(w.client.clone())
        .queue("drain", 4)
        .handler("quick", |_job: Job<u32>| async { Ok(()) })
        .handler("slow", |_job: Job<u32>| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .build()
        .unwrap();
    let handle = worker.start();
    wait(&handle, "every job claimed and the quick ones done", |s| {
        s.claimed == 12 && s.succeeded == 10
    })
    .await;
    let stats = handle.shutdown(Duration::from_millis(300)).await;
    assert_eq!((stats.succeeded, stats.released, stats.running), (10, 2, 0));

    // Nothing is running or lost: the slow jobs are available again, their attempt not counted.
    for id in &slow_ids {
        let j = job(&w.client, *id).await;
        assert_eq!(j.state, JobState::Available, "{j:?}");
        assert_eq!(outcomes(&j), [AttemptOutcome::Snoozed]);
        assert_eq!(j.max_attempts, 2);
    }
    let page = w
        .client
        .list_jobs(&ListJobsQuery {
            queue: Some("drain".into()),
            state: Some(JobState::Running),
            ..ListJobsQuery::default()
        })
        .await
        .unwrap();
    assert!(page.items.is_empty());

    // A worker that finishes in time is waited for, and the handed-back jobs run again.
    let worker = Worker::builder(w.client.clone())
        .queue("drain", 4)
        .handler("slow", |_job: Job<u32>| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        })
        .build()
        .unwrap();
    let handle = worker.start();
    wait(&handle, "both slow jobs claimed", |s| s.claimed == 2).await;
    let stats = handle.shutdown(Duration::from_secs(20)).await;
    assert_eq!((stats.succeeded, stats.released), (2, 0));
    for id in &slow_ids {
        let j = job(&w.client, *id).await;
        assert_eq!(j.state, JobState::Succeeded);
        assert_eq!(
            outcomes(&j),
            [AttemptOutcome::Snoozed, AttemptOutcome::Succeeded]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_job_is_retried_elsewhere() {
    let w = world();
    let id = w
        .client
        .enqueue_job(
            &JobSpec::new("crash", &json!({}))
                .name("work")
                .timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap()
        .job
        .id;

    // Worker A runs on its own runtime, which is torn down while the handler runs: like a killed process,
    // nothing more is sent (no report, no heartbeat, no hand-back).
    let (started_tx, started) = std::sync::mpsc::channel();
    let client = w.client.clone();
    let crashed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.block_on(async move {
            Worker::builder(client)
                .queue("crash", 1)
                .worker_id("doomed")
                .handler("work", move |_job: Job| {
                    let started = started_tx.clone();
                    async move {
                        started.send(()).unwrap();
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                })
                .build()
                .unwrap()
                .start()
        });
        started.recv_timeout(PATIENCE).unwrap();
        std::mem::forget(handle);
        rt.shutdown_background();
    });
    tokio::task::spawn_blocking(move || crashed.join().unwrap())
        .await
        .unwrap();

    let worker = Worker::builder(w.client.clone())
        .queue("crash", 1)
        .worker_id("survivor")
        .handler("work", |_job: Job| async { Ok("recovered") })
        .build()
        .unwrap();
    let handle = worker.start();
    wait(&handle, "the rescued job to be completed", |s| {
        s.succeeded == 1
    })
    .await;
    let j = job(&w.client, id).await;
    assert_eq!(j.state, JobState::Succeeded);
    let attempts = j.attempts.unwrap();
    let seen: Vec<_> = attempts
        .iter()
        .map(|a| (a.outcome, a.worker_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (AttemptOutcome::LeaseExpired, Some("doomed")),
            (AttemptOutcome::Succeeded, Some("survivor"))
        ]
    );
    handle.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_completion_after_the_lease_expired_is_refused() {
    let w = world();
    let id = w
        .client
        .enqueue_job(
            &JobSpec::new("late", &json!({}))
                .name("work")
                .timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap()
        .job
        .id;
    // Worker A stalls (no heartbeat within the 1 s lease) and only finishes when told to.
    let release = Arc::new(Notify::new());
    let stalled = Worker::builder(w.client.clone())
        .queue("late", 1)
        .worker_id("stalled")
        .heartbeat_interval(Duration::from_secs(3600))
        .handler("work", {
            let release = release.clone();
            move |_job: Job| {
                let release = release.clone();
                async move {
                    release.notified().await;
                    Ok("from the stalled worker")
                }
            }
        })
        .build()
        .unwrap()
        .start();
    wait(&stalled, "the stalled worker to claim the job", |s| {
        s.claimed == 1
    })
    .await;

    let fresh = Worker::builder(w.client.clone())
        .queue("late", 1)
        .worker_id("fresh")
        .handler("work", |_job: Job| async { Ok("from the fresh worker") })
        .build()
        .unwrap()
        .start();
    wait(&fresh, "the rescued job to be completed", |s| {
        s.succeeded == 1
    })
    .await;

    release.notify_one();
    let stats = wait(&stalled, "the late report to be answered", |s| {
        s.refused == 1
    })
    .await;
    assert_eq!(stats.succeeded, 0);
    let j = job(&w.client, id).await;
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(
        j.result.as_ref().unwrap().get(),
        r#""from the fresh worker""#
    );
    assert_eq!(
        outcomes(&j),
        [AttemptOutcome::LeaseExpired, AttemptOutcome::Succeeded]
    );
    stalled.shutdown(Duration::from_secs(5)).await;
    fresh.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_only_its_attempt() {
    let w = world();
    let jobs: Vec<JobSpec> = (0..6)
        .map(|n| {
            JobSpec::new("fragile", &n)
                .name("fragile")
                .backoff(quick_backoff())
        })
        .collect();
    let ids: Vec<JobId> = w
        .client
        .enqueue_jobs(&jobs)
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id)
        .collect();
    let panics = Arc::new(AtomicU32::new(0));
    let worker = Worker::builder(w.client.clone())
        .queue("fragile", 2)
        .handler("fragile", {
            let panics = panics.clone();
            move |job: Job<u32>| {
                let panics = panics.clone();
                async move {
                    if job.payload == 3 && job.attempt == 1 {
                        panics.fetch_add(1, Ordering::Relaxed);
                        panic!("bad luck with job {}", job.payload);
                    }
                    Ok(job.payload)
                }
            }
        })
        .build()
        .unwrap();
    let handle = worker.start();
    let stats = wait(
        &handle,
        "every job, the retried one included, to succeed",
        |s| s.succeeded == 6,
    )
    .await;
    assert_eq!((stats.panicked, stats.failed), (1, 1));
    assert_eq!(panics.load(Ordering::Relaxed), 1);
    let j = job(&w.client, ids[3]).await;
    assert_eq!(
        outcomes(&j),
        [AttemptOutcome::Failed, AttemptOutcome::Succeeded]
    );
    assert_eq!(
        j.attempts.as_ref().unwrap()[0].error.as_deref(),
        Some("the handler panicked: bad luck with job 3")
    );
    for id in ids.iter().filter(|id| **id != ids[3]) {
        assert_eq!(
            outcomes(&job(&w.client, *id).await),
            [AttemptOutcome::Succeeded]
        );
    }
    handle.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_outlives_a_server_restart_within_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let mut server = Server::start(&db);
    let client = Client::new(&server.url).unwrap();
    let id = client
        .enqueue_job(
            &JobSpec::new("restart", &json!({}))
                .name("work")
                .timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .job
        .id;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let finish = Arc::new(Notify::new());
    let release = finish.clone();
    let worker = Worker::builder(client.clone())
        .queue("restart", 1)
        .handler("work", move |_job: Job| {
            let (started, finish) = (started_tx.clone(), finish.clone());
            async move {
                started.send(()).unwrap();
                finish.notified().await;
                Ok("done")
            }
        })
        .build()
        .unwrap();
    let handle = worker.start();
    tokio::time::timeout(PATIENCE, started.recv())
        .await
        .expect("the job to start");

    server.kill_hard();
    release.notify_one();
    // More unanswered tries than a worker used to make before it dropped the report (5, over about 4 s).
    wait(&handle, "unanswered report tries", |s| {
        s.report_retries >= 6
    })
    .await;
    let addr = server.addr().to_owned();
    let _server = tokio::task::spawn_blocking(move || Server::start_on(&db, &addr))
        .await
        .unwrap();

    let stats = wait(&handle, "the completion to be accepted", |s| {
        s.succeeded == 1
    })
    .await;
    assert_eq!(stats.unreported, 0);
    let j = job(&client, id).await;
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(outcomes(&j), [AttemptOutcome::Succeeded], "one attempt");
    handle.shutdown(PATIENCE).await;
}
