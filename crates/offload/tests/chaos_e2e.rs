//! Chaos with the real binary: 2,000 jobs flow from an enqueuer through two `offload worker` processes while
//! the server (SQLite) is killed with SIGKILL and restarted five times at random moments, some outages longer
//! than the jobs' lease. The run is drawn from a seed printed first (`OFFLOAD_CHAOS_SEED=N` replays it).
//!
//! What users rely on, checked job by job at the end: no acknowledged job is lost, every job is final, no job
//! succeeded twice, and every repeated attempt follows an attempt that ended with `lease expired` (the only
//! way a crash may cause a job to run again).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use support::{Server, bin, free_loopback_addr};

const JOBS: usize = 2_000;
const BATCH: usize = 10;
const KILLS: usize = 5;
/// The jobs' lease: an outage longer than this expires the leases of the jobs running when it began.
const LEASE: Duration = Duration::from_secs(2);
const QUEUE: &str = "chaos";

/// When and for how long the server is down, drawn from the seed.
#[derive(Debug)]
struct Outage {
    /// The kill happens once the workers have started this many executions.
    after_executions: usize,
    /// How long the server stays down.
    down: Duration,
}

/// Five outages at increasing points of the run; at least two of them outlast the lease, and the few seconds
/// for which a worker retries a report, so that jobs finished during them run again.
fn draw_outages(rng: &mut fastrand::Rng) -> Vec<Outage> {
    let mut points: Vec<usize> = (0..KILLS).map(|_| rng.usize(50..JOBS - 100)).collect();
    points.sort_unstable();
    let long: Vec<usize> = {
        let mut all: Vec<usize> = (0..KILLS).collect();
        rng.shuffle(&mut all);
        all.truncate(2);
        all
    };
    points
        .into_iter()
        .enumerate()
        .map(|(i, after_executions)| {
            let down_ms = if long.contains(&i) || rng.bool() {
                rng.u64(4_000..5_500)
            } else {
                rng.u64(50..1_500)
            };
            Outage {
                after_executions,
                down: Duration::from_millis(down_ms),
            }
        })
        .collect()
}

/// An `offload worker` process that appends each job id it runs to a log, killed when dropped.
struct Worker(Child);

impl Worker {
    fn start(url: &str, id: &str, log: &Path) -> Worker {
        let child = Command::new(bin())
            .args(["--server", url, "worker", "--queue", QUEUE])
            .args(["--concurrency", "8", "--worker-id", id, "--"])
            .args([
                "sh",
                "-c",
                r#"echo "$OFFLOAD_JOB_ID" >> "$CHAOS_LOG"; sleep 0.05"#,
            ])
            .env("CHAOS_LOG", log)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn offload worker");
        Worker(child)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints a line even when the test passes (the harness captures `println!` of passing tests): the seed and
/// the counts belong in every run's log.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// How many times the workers started each job, from their log.
fn executions(log: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut runs = HashMap::new();
    for id in text.lines().filter(|l| !l.is_empty()) {
        *runs.entry(id.to_owned()).or_insert(0) += 1;
    }
    runs
}

fn execution_count(log: &Path) -> usize {
    std::fs::read(log)
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
        .unwrap_or(0)
}

/// Enqueues every job in batches, each with its own idempotency key, retrying a batch until it is
/// acknowledged: a retry after a crash either stores the jobs or finds them stored, never twice.
async fn enqueue_all(client: reqwest::Client, url: String, acknowledged: Arc<Mutex<Vec<String>>>) {
    for first in (0..JOBS).step_by(BATCH) {
        let jobs: Vec<Value> = (first..first + BATCH)
            .map(|n| {
                json!({"queue": QUEUE, "payload": {"n": n}, "idempotency_key": format!("chaos-{n}"),
                       "timeout": "2s", "max_attempts": 100,
                       "backoff": {"base": "100ms", "cap": "500ms"}})
            })
            .collect();
        let body = json!({ "jobs": jobs });
        let deadline = Instant::now() + Duration::from_secs(90);
        let ids = loop {
            assert!(
                Instant::now() < deadline,
                "batch {first} never acknowledged"
            );
            let answer = client
                .post(format!("{url}/v1/jobs/batch"))
                .json(&body)
                .send()
                .await;
            if let Ok(resp) = answer
                && resp.status().is_success()
                && let Ok(body) = resp.json::<Value>().await
            {
                break body["jobs"]
                    .as_array()
                    .expect("jobs in a batch answer")
                    .iter()
                    .map(|j| j["id"].as_str().expect("job id").to_owned())
                    .collect::<Vec<_>>();
            }
            // The server is down or restarting; this pause is the enqueuer's retry rhythm.
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        acknowledged.lock().unwrap().extend(ids);
        // Spread the enqueues over the first part of the run, so that kills land among them too.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Jobs of the queue by state, or `None` while the server does not answer.
async fn counts(client: &reqwest::Client, url: &str) -> Option<HashMap<String, u64>> {
    let list: Value = client
        .get(format!("{url}/v1/queues"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let queue = list["queues"]
        .as_array()?
        .iter()
        .find(|q| q["name"] == QUEUE)?;
    serde_json::from_value(queue["counts"].clone()).ok()
}

/// Kills the server with SIGKILL, keeps it down for `down`, and starts it again on the same address.
async fn crash_and_restart(mut server: Server, listen: &str, down: Duration) -> Server {
    let db: PathBuf = server.db.clone();
    let listen = listen.to_owned();
    tokio::task::spawn_blocking(move || {
        server.kill_hard();
        drop(server);
        // The outage itself: how long the workers and the enqueuer find nobody at the address.
        std::thread::sleep(down);
        Server::start_on(&db, &listen)
    })
    .await
    .expect("restart the server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_is_lost_or_succeeds_twice_when_the_server_is_killed_five_times() {
    let seed = std::env::var("OFFLOAD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    say(&format!(
        "chaos seed {seed} (OFFLOAD_CHAOS_SEED={seed} replays this run)"
    ));
    let mut rng = fastrand::Rng::with_seed(seed);
    let outages = draw_outages(&mut rng);
    for o in &outages {
        say(&format!(
            "  kill after {} executions, down for {} ms",
            o.after_executions,
            o.down.as_millis()
        ));
    }
    offload_engine::push::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let log = dir.path().join("executions.log");
    let listen = free_loopback_addr();
    let mut server = Server::start_on(&db, &listen);
    let url = server.url.clone();
    let _workers = [
        Worker::start(&url, "w1", &log),
        Worker::start(&url, "w2", &log),
    ];
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let enqueuer = tokio::spawn(enqueue_all(
        client.clone(),
        url.clone(),
        acknowledged.clone(),
    ));

    let mut long_outages = 0;
    for outage in &outages {
        let deadline = Instant::now() + Duration::from_secs(60);
        while execution_count(&log) < outage.after_executions {
            assert!(
                Instant::now() < deadline,
                "the workers stalled at {} executions",
                execution_count(&log)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        long_outages += usize::from(outage.down > LEASE);
        server = crash_and_restart(server, &listen, outage.down).await;
    }
    enqueuer.await.expect("enqueuer");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), JOBS);

    // Every job reaches a final state: expired leases are rescued and retried, and the workers drain the rest.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = counts(&client, &url).await.unwrap_or_default();
        let finished: u64 = ["succeeded", "dead", "cancelled"]
            .iter()
            .map(|s| now.get(*s).copied().unwrap_or(0))
            .sum();
        if finished == JOBS as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "not every job finished: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(_workers);

    // Job by job: found, succeeded once, every earlier attempt ended by an expired lease.
    let jobs: Vec<(String, u16, Value)> = futures::stream::iter(acknowledged.iter().cloned())
        .map(|id| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let resp = client
                    .get(format!("{url}/v1/jobs/{id}"))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                (
                    id,
                    status,
                    resp.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let runs = executions(&log);
    let mut lost = Vec::new();
    let mut unfinished = Vec::new();
    let mut succeeded_twice = Vec::new();
    let mut unexplained = Vec::new();
    let mut ran_more_than_claimed = Vec::new();
    let (mut attempts_total, mut repeated, mut lease_expired) = (0, 0, 0);
    for (id, status, job) in &jobs {
        if *status != 200 {
            lost.push(id.clone());
            continue;
        }
        if job["state"] != "succeeded" {
            unfinished.push(format!("{id}: {}", job["state"]));
        }
        let attempts = job["attempts"].as_array().expect("attempts");
        let outcomes: Vec<&str> = attempts
            .iter()
            .map(|a| a["outcome"].as_str().unwrap_or("?"))
            .collect();
        attempts_total += attempts.len();
        repeated += attempts.len().saturating_sub(1);
        lease_expired += outcomes.iter().filter(|o| **o == "lease_expired").count();
        if outcomes.iter().filter(|o| **o == "succeeded").count() > 1 {
            succeeded_twice.push(format!("{id}: {outcomes:?}"));
        }
        // Each attempt before the last must have ended because its lease expired.
        let earlier = &attempts[..attempts.len().saturating_sub(1)];
        if earlier
            .iter()
            .any(|a| a["outcome"] != "lease_expired" || a["error"] != "lease expired")
        {
            unexplained.push(format!("{id}: {outcomes:?}"));
        }
        // A worker can only run what a claim handed it: never more runs than attempts.
        let ran = runs.get(id).copied().unwrap_or(0);
        if ran > attempts.len() {
            ran_more_than_claimed.push(format!("{id}: ran {ran} times, {outcomes:?}"));
        }
    }
    say(&format!(
        "chaos: {} jobs acknowledged, {} found, {} succeeded, {} lost; {} kills ({} outages longer than the \
         {} s lease); {} attempts, {} repeated, {} ended by `lease expired`; {} executions by the workers; \
         {} jobs succeeded twice; {:.1} s",
        acknowledged.len(),
        jobs.len() - lost.len(),
        jobs.len() - lost.len() - unfinished.len(),
        lost.len(),
        outages.len(),
        long_outages,
        LEASE.as_secs(),
        attempts_total,
        repeated,
        lease_expired,
        runs.values().sum::<usize>(),
        succeeded_twice.len(),
        started.elapsed().as_secs_f64(),
    ));
    let first = |v: &Vec<String>| v.iter().take(5).cloned().collect::<Vec<_>>();
    assert!(
        lost.is_empty(),
        "acknowledged jobs lost: {:?}",
        first(&lost)
    );
    assert!(
        unfinished.is_empty(),
        "jobs not succeeded: {:?}",
        first(&unfinished)
    );
    assert!(
        succeeded_twice.is_empty(),
        "jobs that succeeded twice: {:?}",
        first(&succeeded_twice)
    );
    assert!(
        unexplained.is_empty(),
        "repeated attempts without `lease expired` before them: {:?}",
        first(&unexplained)
    );
    assert!(
        ran_more_than_claimed.is_empty(),
        "jobs run more often than claimed: {:?}",
        first(&ran_more_than_claimed)
    );
    assert!(
        long_outages >= 2,
        "the run had {long_outages} outages longer than the lease"
    );
}
