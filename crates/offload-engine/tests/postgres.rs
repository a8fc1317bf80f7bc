//! Several engines (as several servers would run) on one real PostgreSQL schema: a job enqueued through one
//! wakes a long poll on another at once, and when the maintenance leader loses the database another engine
//! takes over within one lease period; a server stopped gracefully hands its leases over at once. Needs `OFFLOAD_TEST_POSTGRES_URL` (see
//! `offload_store_postgres::testing`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offload_core::NewJob;
use offload_core::spec::{EnqueueRequest, Limits};
use offload_engine::{Engine, EngineConfig};
use offload_store::JobClaimParams;
use offload_store_postgres::testing::{self, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore, migrate};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

async fn engine(url: &str, schema: &str, config: EngineConfig) -> Engine {
    let options = PostgresOptions {
        migrate: false,
        acquire_timeout: Duration::from_secs(2),
        ..PostgresOptions::new(url).with_schema(schema)
    };
    let store = PostgresStore::open(options).await.unwrap();
    let engine = Engine::new(Arc::new(store), config);
    engine.start();
    engine
}

fn job(json: &str, engine: &Engine) -> NewJob {
    serde_json::from_str::<EnqueueRequest>(json)
        .unwrap()
        .validate(&Limits::default(), None, engine.now())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_through_one_server_wakes_a_long_poll_on_another() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    migrate(&url, &schema.name).await.unwrap();
    // Only a notification can explain a fast answer: the backstop poll is 30 s.
    let config = EngineConfig {
        claim_poll: Duration::from_secs(30),
        ..EngineConfig::default()
    };
    let a = engine(&url, &schema.name, config.clone()).await;
    let b = engine(&url, &schema.name, config).await;

    for round in 0..3 {
        let waiting = b.signals().long_polls.count();
        let waiter = tokio::spawn({
            let b = b.clone();
            async move {
                let params = JobClaimParams {
                    queue: "mail".into(),
                    worker_id: "on-b".into(),
                    max_jobs: 10,
                };
                let started = Instant::now();
                let jobs = b.claim(params, Duration::from_secs(20)).await.unwrap();
                (jobs, started.elapsed())
            }
        });
        // Enqueue once the long poll found the queue empty and waits (a job found at once proves nothing).
        b.signals().long_polls.past(waiting).await;
        let sent = a
            .enqueue(vec![job(r#"{"queue":"mail"}"#, &a)])
            .await
            .unwrap();
        let (jobs, waited) = waiter.await.unwrap();
        assert_eq!(jobs.len(), 1, "round {round}");
        assert_eq!(jobs[0].id, sent[0].id);
        assert!(
            waited < Duration::from_secs(5),
            "round {round}: waited {waited:?}"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_by_sql_in_an_application_transaction_wakes_a_long_poll_on_commit() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    migrate(&url, &schema.name).await.unwrap();
    let config = EngineConfig {
        claim_poll: Duration::from_secs(30),
        ..EngineConfig::default()
    };
    let server = engine(&url, &schema.name, config).await;
    let waiter = tokio::spawn({
        let server = server.clone();
        async move {
            let params = JobClaimParams {
                queue: "orders".into(),
                worker_id: "w".into(),
                max_jobs: 10,
            };
            server.claim(params, Duration::from_secs(20)).await.unwrap()
        }
    });
    server.signals().long_polls.past(0).await;

    let mut app = url
        .parse::<PgConnectOptions>()
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tx = sqlx::Connection::begin(&mut app).await.unwrap();
    let id: uuid::Uuid = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT {}.enqueue('orders', '{{\"order\": 42}}')",
        schema.name
    )))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "nothing to claim before the commit");
    let committed = Instant::now();
    tx.commit().await.unwrap();
    let jobs = waiter.await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id.0, id);
    assert!(
        committed.elapsed() < Duration::from_secs(5),
        "woken by the commit's notification, not the 30 s poll"
    );
    server.shutdown().await;
}

/// A TCP forwarder to PostgreSQL that can be cut like a network partition: open connections are dropped and
/// new ones refused until it is healed.
struct Partition {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Partition {
    async fn to(host: String, port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, open) = (cut.clone(), open.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    if cut.load(Ordering::SeqCst) {
                        continue;
                    }
                    let Ok(mut server) = TcpStream::connect((host.as_str(), port)).await else {
                        continue;
                    };
                    let pipe = tokio::spawn(async move {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                    open.lock().unwrap().push(pipe.abort_handle());
                }
            }
        });
        Self {
            port: local,
            cut,
            open,
            accept: accept.abort_handle(),
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for pipe in self.open.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Who holds the maintenance lease, and its term.
async fn holder(url: &str, schema: &str) -> Option<(String, i64)> {
    let mut conn = url
        .parse::<PgConnectOptions>()
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT node_id, term FROM {schema}.leaders WHERE name = 'maintenance' AND expires_at > clock_timestamp()"
    )))
    .fetch_optional(&mut conn)
    .await
    .unwrap()
}

async fn wait_for_holder(url: &str, schema: &str, node: &str, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        if let Some((held_by, term)) = holder(url, schema).await
            && held_by == node
        {
            return term;
        }
        assert!(
            Instant::now() < deadline,
            "{node} did not become leader within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_server_takes_over_within_one_lease_when_the_leader_loses_the_database() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    migrate(&url, &schema.name).await.unwrap();
    let options: PgConnectOptions = url.parse().unwrap();
    let partition = Partition::to(options.get_host().to_owned(), options.get_port()).await;
    let a_url = options
        .clone()
        .host("127.0.0.1")
        .port(partition.port)
        .to_url_lossy()
        .to_string();

    let ttl = Duration::from_millis(1500);
    let config = |node: &str| EngineConfig {
        node_id: node.to_owned(),
        leader_ttl: ttl,
        ..EngineConfig::default()
    };
    let a = engine(&a_url, &schema.name, config("node-a")).await;
    let first_term = wait_for_holder(&url, &schema.name, "node-a", Duration::from_secs(5)).await;
    let b = engine(&url, &schema.name, config("node-b")).await;

    partition.cut();
    let lost = Instant::now();
    let term = wait_for_holder(&url, &schema.name, "node-b", ttl * 2).await;
    assert!(term > first_term, "a new term for the new holder");
    // One lease period after A's last renewal, which happened before the cut.
    assert!(
        lost.elapsed() <= ttl + Duration::from_secs(1),
        "took {:?}",
        lost.elapsed()
    );

    // A, reconnected, does not take the lease back while B renews it.
    partition.heal();
    tokio::time::sleep(ttl).await;
    assert_eq!(
        holder(&url, &schema.name).await.map(|h| h.0).as_deref(),
        Some("node-b")
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_the_cron_lease_to_another_server_well_before_it_would_expire() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    migrate(&url, &schema.name).await.unwrap();
    let config = |node: &str| EngineConfig {
        node_id: node.to_owned(),
        ..EngineConfig::default()
    };
    let ttl = config("any").leader_ttl;
    let a = engine(&url, &schema.name, config("node-a")).await;
    tokio::time::timeout(Duration::from_secs(10), a.signals().cron_leader.until(true))
        .await
        .expect("the only server leads cron");
    let b = engine(&url, &schema.name, config("node-b")).await;

    let stopped = Instant::now();
    a.shutdown().await;
    tokio::time::timeout(ttl, b.signals().cron_leader.until(true))
        .await
        .expect("the other server leads cron before the lease would have expired");
    // It tries again every third of a lease while another holds it; a lease handed back needs no more.
    assert!(
        stopped.elapsed() < ttl / 3 + Duration::from_secs(1),
        "took {:?} with a {ttl:?} lease",
        stopped.elapsed()
    );
    b.shutdown().await;
}
