//! How long each dashboard page takes to render with a million jobs in SQLite.
//!
//! `cargo bench -p offload-server --bench dashboard` fills a temporary database with 1,000,000 jobs over five
//! queues (mostly succeeded, some dead, a backlog of available jobs; one queue's backlog is its *oldest* jobs,
//! the worst case for a newest-first walk), plus push jobs whose deliveries failed (20 destinations, one of
//! them with more failures in the last hour than the push page counts) and 60 schedules with manual ticks,
//! then requests every page through the router in-process and prints p50, p99 and max per page, ending with a
//! `RESULT` line. `DASHBOARD_BENCH_JOBS` changes the size; `DASHBOARD_BENCH_DB` keeps the filled database at
//! that path and reuses it on the next run (push failures older than an hour then leave the push page empty).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use offload_core::Timestamp;
use offload_core::cron::{ScheduleSource, ScheduleSpec};
use offload_core::spec::EnqueueRequest;
use offload_core::spec::Limits;
use offload_engine::{Engine, EngineConfig};
use offload_server::{ServerConfig, router};
use offload_store::{
    DynStore, Finish, FinishItem, JobClaimParams, JobClaimPushParams, JobFinishParams,
    JobInsertParams,
};
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use tower::ServiceExt;

const QUEUES: usize = 5;
const ROUNDS: usize = 30;
/// Push destinations with failed deliveries; the first has [`BUSY_FAILURES`] of them, the others
/// [`FAILURES`].
const DESTINATIONS: usize = 20;
const BUSY_FAILURES: usize = 12_000;
const FAILURES: usize = 500;
/// Schedules (more than one page of the schedules list), each triggered [`TRIGGERS`] times.
const SCHEDULES: usize = 60;
const TRIGGERS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let total: usize = std::env::var("DASHBOARD_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = std::env::var("DASHBOARD_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("dashboard.db"));
    let reuse = path.exists();
    let store = SqliteStore::open(SqliteOptions::new(&path))
        .await
        .expect("open store");
    let store: DynStore = Arc::new(store);
    let engine = Engine::new(store.clone(), EngineConfig::default());
    if !reuse {
        let started = Instant::now();
        fill(&store, total).await;
        println!(
            "filled {total} jobs in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        fail_pushes(&store).await;
        schedules(&engine).await;
        println!(
            "push failures and schedules in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    let queues = store.queue_list().await.expect("queues");
    let jobs: u64 = queues.iter().flat_map(|q| q.counts.values()).sum();
    println!("database: {} ({jobs} jobs)", path.display());
    for q in &queues {
        println!("  {}: {:?}", q.name, q.counts);
    }

    let app = router(engine.clone(), ServerConfig::default());
    // A session, as a browser would have after its first visit.
    let first = app
        .clone()
        .oneshot(Request::get("/ui").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = first.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let some_dead = store
        .job_list(offload_store::JobListParams {
            state: Some(offload_core::JobState::Dead),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0)
        .id;
    let middle = store
        .job_list(offload_store::JobListParams {
            queue: Some("q2".into()),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .pop()
        .unwrap()
        .id;
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/ui".into()),
        ("jobs", "/ui/jobs".into()),
        (
            "jobs page 11 (cursor)",
            format!("/ui/jobs?queue=q2&cursor={middle}"),
        ),
        ("jobs queue", "/ui/jobs?queue=q1".into()),
        (
            "jobs available, all queues",
            "/ui/jobs?state=available".into(),
        ),
        (
            "jobs queue+available (new backlog)",
            "/ui/jobs?queue=q1&state=available".into(),
        ),
        (
            "jobs queue+available (old backlog)",
            "/ui/jobs?queue=q4&state=available".into(),
        ),
        ("jobs succeeded", "/ui/jobs?state=succeeded".into()),
        ("jobs name", "/ui/jobs?name=send-3".into()),
        ("jobs name+queue", "/ui/jobs?queue=q3&name=send-3".into()),
        ("jobs tag (1 in 100)", "/ui/jobs?tag=tenant:t7".into()),
        ("jobs name, rare (worst case)", "/ui/jobs?name=rare".into()),
        ("dead", "/ui/dead".into()),
        ("dead queue", "/ui/dead?queue=q1".into()),
        ("job detail", format!("/ui/jobs/{some_dead}")),
        ("schedules", "/ui/schedules".into()),
        ("schedules page 2", "/ui/schedules?after=s-049".into()),
        ("push targets", "/ui/push".into()),
        ("metrics", "/metrics".into()),
    ];
    println!(
        "\n{:<38} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p99 ms", "max ms"
    );
    let mut worst = Duration::ZERO;
    let mut results = Vec::new();
    for (name, path) in &pages {
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS + 3 {
            let started = Instant::now();
            let response = app
                .clone()
                .oneshot(
                    Request::get(path.as_str())
                        .header(header::COOKIE, &cookie)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let took = started.elapsed();
            assert!(status.is_success(), "{path}: {status}");
            assert!(!body.is_empty());
            if round >= 3 {
                times.push(took);
            }
        }
        times.sort();
        let p50 = times[times.len() / 2];
        let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
        let max = times[times.len() - 1];
        worst = worst.max(p99);
        println!(
            "{name:<38} {:>9.2} {:>9.2} {:>9.2}",
            ms(p50),
            ms(p99),
            ms(max)
        );
        results.push((*name, p99));
    }
    println!(
        "\nRESULT dashboard_jobs={jobs} worst_page_p99_ms={:.2}",
        ms(worst)
    );
    engine.shutdown().await;
}

/// Push jobs over [`DESTINATIONS`] destinations, each delivered once and failed (as the dispatcher records an
/// HTTP 500), so the push page has failures to count in the last hour.
async fn fail_pushes(store: &DynStore) {
    let limits = Limits::default();
    let now = Timestamp::now();
    for d in 0..DESTINATIONS {
        let n = if d == 0 { BUSY_FAILURES } else { FAILURES };
        let url = format!("https://hooks-{d:02}.example/in");
        let jobs = (0..n)
            .map(|i| {
                let request: EnqueueRequest = serde_json::from_value(serde_json::json!({
                    "queue": "hooks",
                    "name": "push",
                    "max_attempts": 1,
                    "payload": {"event": i},
                    "target": {"url": url},
                }))
                .unwrap();
                request.validate(&limits, None, now).unwrap()
            })
            .collect();
        store
            .job_insert(JobInsertParams { jobs })
            .await
            .expect("insert push jobs");
    }
    loop {
        let claimed = store
            .job_claim_push(JobClaimPushParams {
                worker_id: "bench-dispatcher".into(),
                max_jobs: 1000,
                per_destination: 1000,
            })
            .await
            .expect("claim push");
        if claimed.is_empty() {
            break;
        }
        let items = claimed
            .iter()
            .map(|p| FinishItem {
                id: p.job.id,
                lease_token: p.job.lease_token,
                finish: Finish::Fail(offload_core::state::Failure {
                    error: "HTTP 500: {\"error\": \"upstream unavailable\"}".into(),
                    retry_after: None,
                    retryable: true,
                    cause: offload_core::state::FailureCause::Worker,
                }),
            })
            .collect();
        store
            .job_finish(JobFinishParams { items })
            .await
            .expect("fail push jobs");
    }
}

/// [`SCHEDULES`] schedules named `s-000`…, with assorted expressions, each triggered [`TRIGGERS`] times.
async fn schedules(engine: &Engine) {
    let expressions = [
        "*/5 * * * *",
        "0 9 * * 1-5",
        "*/15 9-17 * * 1-5",
        "0 0 1 * *",
        "0 0 L * *",
        "0 0 * * 5#L",
    ];
    for i in 0..SCHEDULES {
        let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
            "cron": expressions[i % expressions.len()],
            "timezone": "Europe/Berlin",
            "job": {"queue": "cron", "name": format!("report-{i}"), "payload": {"n": i}},
        }))
        .unwrap();
        let name = format!("s-{i:03}");
        let schedule = spec
            .validate(Some(&name), &Limits::default(), Timestamp::now())
            .unwrap();
        engine
            .put_schedule(schedule, ScheduleSource::Api)
            .await
            .expect("schedule");
        for _ in 0..TRIGGERS {
            engine.trigger_schedule(&name).await.expect("trigger");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `total` jobs over [`QUEUES`] queues: 10 names, 100 tenants; per queue 75 % succeeded, 5 % dead, 20 %
/// available. Queue `q4`'s available jobs are its oldest (they were enqueued first with a lower priority, so
/// the claims took the newer ones), the others' are their newest. A few old jobs are named `rare`.
async fn fill(store: &DynStore, total: usize) {
    let limits = Limits::default();
    let now = Timestamp::now();
    let per_queue = total / QUEUES;
    let batch = 10_000;
    for q in 0..QUEUES {
        let queue = format!("q{q}");
        let mut made = 0;
        while made < per_queue {
            let n = batch.min(per_queue - made);
            let jobs = (0..n)
                .map(|i| {
                    let k = made + i;
                    // q4: the first 20 % wait at priority 0 while the rest (priority 1) are claimed first.
                    let priority = if q == 4 && k >= per_queue / 5 { 1 } else { 0 };
                    let name = if k < 3 { "rare".to_owned() } else { format!("send-{}", k % 10) };
                    let request: EnqueueRequest = serde_json::from_value(serde_json::json!({
                        "queue": queue,
                        "name": name,
                        "priority": priority,
                        "max_attempts": 1,
                        "payload": {"user": k, "email": format!("user{k}@example.com"), "plan": "pro"},
                        "tags": {"tenant": format!("t{}", k % 100)},
                    }))
                    .unwrap();
                    request.validate(&limits, None, now).unwrap()
                })
                .collect();
            store
                .job_insert(JobInsertParams { jobs })
                .await
                .expect("insert");
            made += n;
        }
        // Claim and finish 80 % of the queue: one in 16 of those dies (5 % of the queue), the rest succeed.
        let to_finish = per_queue * 4 / 5;
        let mut finished = 0;
        while finished < to_finish {
            let claimed = store
                .job_claim(JobClaimParams {
                    queue: queue.clone(),
                    worker_id: "bench-worker".into(),
                    max_jobs: 1000.min((to_finish - finished) as u32),
                })
                .await
                .expect("claim");
            assert!(!claimed.is_empty());
            let items = claimed
                .iter()
                .enumerate()
                .map(|(i, job)| FinishItem {
                    id: job.id,
                    lease_token: job.lease_token,
                    finish: if (finished + i) % 16 == 0 {
                        Finish::Fail(offload_core::state::Failure {
                            error: "SMTP 550: mailbox unavailable".into(),
                            retry_after: None,
                            retryable: false,
                            cause: offload_core::state::FailureCause::Worker,
                        })
                    } else {
                        Finish::Complete {
                            result: Some(
                                serde_json::value::RawValue::from_string(r#"{"sent":true}"#.into())
                                    .unwrap(),
                            ),
                        }
                    },
                })
                .collect();
            finished += claimed.len();
            store
                .job_finish(JobFinishParams { items })
                .await
                .expect("finish");
        }
    }
}
