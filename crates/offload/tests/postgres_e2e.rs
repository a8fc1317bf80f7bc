//! Several real `offload serve` processes on one real PostgreSQL: they share the work without doubling it,
//! survive one of them being killed with SIGKILL, and answer 503 (never a lost 2xx) while the database is
//! unreachable, recovering by themselves. Needs `OFFLOAD_TEST_POSTGRES_URL` (see
//! `offload_store_postgres::testing`).

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use offload_store_postgres::testing::{self, TestDatabase, TestSchema};
use serde_json::{Value, json};
use support::Server;

const JOBS: usize = 10_000;
const QUEUE: &str = "multi";

fn http() -> reqwest::Client {
    offload_engine::push::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn start(url: &str, schema: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--schema", schema];
    args.extend_from_slice(extra);
    Server::start_with(Path::new(url), &args)
}

/// What the test's workers saw.
#[derive(Default)]
struct Seen {
    /// Executions per job id.
    runs: HashMap<String, usize>,
    /// Jobs whose worker was on the killed server and could not report (or not learn that it had).
    abandoned: HashSet<String>,
}

/// One pull worker on one server: claim, "execute" (record), complete, until told to stop. While its server
/// is down it keeps retrying (the base URL changes when the server is restarted).
async fn worker(
    base: Arc<RwLock<String>>,
    name: String,
    seen: Arc<Mutex<Seen>>,
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let client = http();
    while !stop.load(Ordering::SeqCst) {
        let url = base.read().unwrap().clone();
        let claimed = client
            .post(format!("{url}/v1/queues/{QUEUE}/claim"))
            .json(&json!({"worker_id": name, "max_jobs": 100, "wait": "1s"}))
            .send()
            .await;
        let Ok(resp) = claimed else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(body) = resp.json::<Value>().await else {
            continue;
        };
        let jobs = body["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.is_empty() {
            continue;
        }
        let mut items = Vec::new();
        {
            let mut seen = seen.lock().unwrap();
            for job in &jobs {
                let id = job["id"].as_str().unwrap().to_owned();
                *seen.runs.entry(id.clone()).or_default() += 1;
                items.push(json!({"id": id, "lease_token": job["lease_token"]}));
            }
        }
        let reported = client
            .post(format!("{url}/v1/jobs/complete"))
            .json(&json!({ "jobs": items }))
            .send()
            .await;
        match reported {
            Ok(resp) if resp.status().is_success() => {
                let body: Value = resp.json().await.unwrap();
                let ok = body["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["ok"] == true)
                    .count();
                done.fetch_add(ok, Ordering::SeqCst);
            }
            // The server died under us: these attempts stay running until their leases expire.
            _ => {
                let mut seen = seen.lock().unwrap();
                for job in &jobs {
                    seen.abandoned
                        .insert(job["id"].as_str().unwrap().to_owned());
                }
            }
        }
    }
}

async fn queue_counts(client: &reqwest::Client, url: &str) -> Option<Value> {
    let body: Value = client
        .get(format!("{url}/v1/queues"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["queues"]
        .as_array()?
        .iter()
        .find(|q| q["name"] == QUEUE)
        .map(|q| q["counts"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_share_ten_thousand_jobs_and_survive_a_sigkill() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let client = http();

    // Three servers start at once on a fresh schema: each migrates, under the migrator's lock.
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let (url, name) = (url.clone(), schema.name.clone());
            std::thread::spawn(move || start(&url, &name, &[]))
        })
        .collect();
    let mut servers: Vec<Server> = starts.into_iter().map(|s| s.join().unwrap()).collect();
    let bases: Vec<Arc<RwLock<String>>> = servers
        .iter()
        .map(|s| Arc::new(RwLock::new(s.url.clone())))
        .collect();

    // 10,000 jobs with 2 s leases, enqueued in batches through all three servers.
    let job = json!({"queue": QUEUE, "timeout": "2s", "backoff": {"base": "500ms", "cap": "500ms", "jitter": 0}});
    for batch in 0..10 {
        let jobs: Vec<Value> = (0..JOBS / 10)
            .map(|i| {
                let mut j = job.clone();
                j["payload"] = json!({ "n": batch * 1000 + i });
                j
            })
            .collect();
        let url = servers[batch % 3].url.clone();
        let resp = client
            .post(format!("{url}/v1/jobs/batch"))
            .json(&json!({ "jobs": jobs }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }

    let seen: Arc<Mutex<Seen>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (s, base) in bases.iter().enumerate() {
        for w in 0..4 {
            workers.push(tokio::spawn(worker(
                base.clone(),
                format!("s{s}-w{w}"),
                seen.clone(),
                done.clone(),
                stop.clone(),
            )));
        }
    }

    // Mid-run, a worker on server 0 holds claimed jobs (work in progress) when server 0 is killed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < JOBS / 3 {
        assert!(
            Instant::now() < deadline,
            "too little progress before the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held: Value = client
        .post(format!("{}/v1/queues/{QUEUE}/claim", servers[0].url))
        .json(&json!({"worker_id": "s0-busy", "max_jobs": 20}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held: Vec<String> = held["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(held.len(), 20, "jobs left to hold");
    {
        let mut seen = seen.lock().unwrap();
        for id in &held {
            *seen.runs.entry(id.clone()).or_default() += 1;
            seen.abandoned.insert(id.clone());
        }
    }
    servers[0].kill_hard();
    let killed_at = Instant::now();
    let restarted = start(&url, &schema.name, &[]);
    *bases[0].write().unwrap() = restarted.url.clone();
    servers[0] = restarted;

    // Everything ends succeeded: the killed node's leases are rescued once they expire, even if it led
    // maintenance (another node takes the lease over when it runs out).
    let deadline = Instant::now() + Duration::from_secs(90);
    let counts = loop {
        let counts = queue_counts(&client, &servers[1].url).await;
        if let Some(c) = &counts
            && c["succeeded"] == JOBS
        {
            break c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "not all jobs succeeded: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("all succeeded {:?} after the kill", killed_at.elapsed());
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    for state in [
        "scheduled",
        "available",
        "running",
        "retrying",
        "dead",
        "cancelled",
    ] {
        assert_eq!(counts[state], 0, "{state}: {counts}");
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.runs.len(), JOBS, "every job executed");
    assert!(seen.abandoned.len() >= held.len());
    // A job ran more than once only after a recorded lease expiry; the killed node's jobs were rescued.
    let mut checked = 0;
    for (id, runs) in &seen.runs {
        let abandoned = seen.abandoned.contains(id);
        if *runs == 1 && !abandoned {
            continue;
        }
        let job: Value = client
            .get(format!("{}/v1/jobs/{id}", servers[2].url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(job["state"], "succeeded", "{job}");
        let attempts = job["attempts"].as_array().unwrap();
        let expired = attempts
            .iter()
            .filter(|a| a["outcome"] == "lease_expired")
            .count();
        assert!(
            expired >= runs - 1,
            "job {id} ran {runs} times with {expired} lease expiries: {job}"
        );
        // (A worker that lost its server may still have had its completion committed: only the jobs held
        // on purpose are certain to have been left running.)
        if held.contains(id) {
            assert!(
                expired >= 1,
                "job {id} held on the killed server was not rescued: {job}"
            );
            assert!(
                *runs >= 2,
                "job {id} held on the killed server never ran again"
            );
        }
        checked += 1;
    }
    eprintln!(
        "{checked} jobs re-run or rescued, {} abandoned on the killed server",
        seen.abandoned.len()
    );
    drop(servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_unreachable_writes_get_503_and_the_server_recovers_by_itself() {
    let Some(url) = testing::url() else { return };
    let db = TestDatabase::create(&url).await.unwrap();
    let server = start(&db.url, "offload", &[]);
    let client = http();
    let enqueue = || {
        client
            .post(format!("{}/v1/jobs", server.url))
            .json(&json!({"queue": "q", "payload": {"n": 1}}))
            .send()
    };
    assert_eq!(enqueue().await.unwrap().status(), 201);

    db.refuse_connections().await.unwrap();
    for _ in 0..3 {
        let resp = enqueue().await.unwrap();
        let status = resp.status();
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(status, 503, "{problem}");
        assert_eq!(problem["code"], "unavailable", "{problem}");
    }
    let claim = client
        .post(format!("{}/v1/queues/q/claim", server.url))
        .json(&json!({"worker_id": "w"}))
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status(), 503);
    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);

    db.allow_connections().await.unwrap();
    assert_eq!(enqueue().await.unwrap().status(), 201, "no restart needed");
    let body: Value = client
        .post(format!("{}/v1/queues/q/claim", server.url))
        .json(&json!({"worker_id": "w", "max_jobs": 10}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["jobs"].as_array().unwrap().len(),
        2,
        "the two acknowledged jobs, none of the refused ones"
    );
    drop(server);
}

/// An every-second schedule (catch-up `all`, so ticks that fall in a change of leader run late rather than
/// being recorded as missed) in an `offload.toml` every server reads.
fn cron_config(dir: &Path) -> String {
    let path = dir.join("offload.toml");
    let text = r#"
[[schedule]]
name = "tick"
cron = "* * * * * *"
overlap = "allow"
catch_up = "all"
job = { queue = "ticks", name = "tick" }
"#;
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The fire time of every job on the `ticks` queue, as the API lists them.
fn tick_jobs(server: &Server) -> Vec<jiff::Timestamp> {
    let page = server.cli_json(&["job", "ls", "--queue", "ticks", "--limit", "500"]);
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            assert_eq!(job["schedule"]["name"], "tick", "{job}");
            job["schedule"]["fire_at"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn three_servers_fire_each_cron_tick_once_even_when_the_leader_is_killed() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let dir = tempfile::tempdir().unwrap();
    let config = cron_config(dir.path());
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let (url, name, config) = (url.clone(), schema.name.clone(), config.clone());
            std::thread::spawn(move || start(&url, &name, &["--config", &config]))
        })
        .collect();
    let mut servers: Vec<Server> = starts.into_iter().map(|s| s.join().unwrap()).collect();

    // A few ticks fire, then the node leading the cron enqueuer is killed.
    support::wait_for(Duration::from_secs(30), "ticks to fire", || {
        (tick_jobs(&servers[0]).len() >= 3).then_some(())
    });
    let leader = schema.leader("cron").unwrap().expect("a cron leader");
    let killed = servers
        .iter()
        .position(|s| s.node == leader)
        .unwrap_or_else(|| panic!("leader {leader} is none of the servers"));
    servers[killed].kill_hard();
    let survivor = &servers[(killed + 1) % 3];

    // Another node takes the lease over once it runs out, and ticks go on (the ones of the gap run late).
    let successor = support::wait_for(Duration::from_secs(40), "a new cron leader", || {
        schema
            .leader("cron")
            .unwrap()
            .filter(|node| *node != leader)
    });
    assert_ne!(successor, leader);
    let after_takeover = jiff::Timestamp::now();
    support::wait_for(Duration::from_secs(30), "ticks after the takeover", || {
        let later = tick_jobs(survivor)
            .into_iter()
            .filter(|t| *t > after_takeover)
            .count();
        (later >= 3).then_some(())
    });
    let paused = survivor.cli(&["schedule", "pause", "tick"]);
    assert!(paused.status.success(), "{paused:?}");
    // A fire already planned by the leader may still land; let it.
    std::thread::sleep(Duration::from_millis(1500));

    let fired = tick_jobs(survivor);
    let unique: std::collections::BTreeSet<jiff::Timestamp> = fired.iter().copied().collect();
    assert_eq!(unique.len(), fired.len(), "a tick fired twice: {fired:?}");
    let (first, last) = (*unique.first().unwrap(), *unique.last().unwrap());
    assert_eq!(
        unique.into_iter().collect::<Vec<_>>(),
        support::every_second(first, last),
        "every second from the first tick to the last has exactly one job, across the change of leader"
    );
    eprintln!(
        "{} ticks, leader {leader} killed, {successor} took over",
        fired.len()
    );
    drop(servers);
}
