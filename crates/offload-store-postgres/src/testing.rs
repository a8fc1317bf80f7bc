//! Helpers for tests that run against a real PostgreSQL (feature `testing`).
//!
//! Tests find the database through one variable, [`URL_VAR`] (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). Without it they are skipped, and say so on standard error; in CI
//! (`CI=true`) a missing variable fails them instead, so a CI run can never pass without having tested
//! PostgreSQL. A set variable pointing at a server that does not answer fails the tests, locally too. Each test
//! works in a schema of its own ([`TestSchema`]), dropped when the test ends, so tests never see each other's
//! rows and can run in parallel on one database.

use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Once};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

/// The environment variable holding the test database's URL.
pub const URL_VAR: &str = "OFFLOAD_TEST_POSTGRES_URL";

/// The test database's URL, or `None` when PostgreSQL tests are to be skipped (after printing why, once per
/// test binary).
///
/// # Panics
/// When the variable is missing and `CI` is `true`.
pub fn url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{URL_VAR} is not set, but CI=true: PostgreSQL tests must run in CI")
        }
        _ => {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                // Written to the stream itself: the test harness captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL tests skipped: set {URL_VAR}=postgres://USER@HOST:PORT/DATABASE to run them"
                );
            });
            None
        }
    }
}

/// Runs `work` to completion on a thread with a runtime of its own, so that it can be called from inside a
/// runtime (async tests, drops) or outside one (blocking tests).
fn on_own_runtime<T, F>(work: F) -> Result<T, String>
where
    F: std::future::Future<Output = Result<T, String>> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(work)
    })
    .join()
    .map_err(|_| "the worker thread panicked".to_owned())?
}

/// `n` stores on one fresh schema, like `n` servers on one database, each opened with `tune` applied to its
/// options (a connection cap, a shared clock).
///
/// # Panics
/// When a store cannot open (the tests' database must answer).
pub async fn servers(
    url: &str,
    n: usize,
    tune: impl Fn(crate::PostgresOptions) -> crate::PostgresOptions,
) -> (TestSchema, Vec<Arc<crate::PostgresStore>>) {
    let schema = TestSchema::new(url);
    let mut stores = Vec::with_capacity(n);
    for _ in 0..n {
        let options = tune(crate::PostgresOptions::new(url).with_schema(&schema.name));
        stores.push(Arc::new(
            crate::PostgresStore::open(options).await.expect("open"),
        ));
    }
    (schema, stores)
}

/// A two-connection pool reading `schema` directly: the truth tests check several stores against.
///
/// # Panics
/// When the URL does not parse or the database does not answer.
pub async fn truth(url: &str, schema: &str) -> PgPool {
    let options = PgConnectOptions::from_str(url)
        .expect("a PostgreSQL URL")
        .options([("search_path", schema)]);
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("the truth pool connects")
}

/// A fresh schema name for one test, dropped (with everything in it) when this value is dropped.
#[derive(Debug)]
pub struct TestSchema {
    /// The database URL.
    pub url: String,
    /// The schema's name (`offload_test_` and random hex).
    pub name: String,
}

impl TestSchema {
    /// A new, unique schema name on the database at `url` (the store's migrations create the schema).
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("offload_test_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The node holding the unexpired lease on the singleton work `work` (`cron`, `maintenance`), if any:
    /// multi-node tests use it to kill the leader. Blocking (own runtime), so any test can call it.
    pub fn leader(&self, work: &str) -> Result<Option<String>, String> {
        let (url, schema, work) = (self.url.clone(), self.name.clone(), work.to_owned());
        on_own_runtime(async move {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .map_err(|e| e.to_string())?;
            let sql = format!(
                "SELECT node_id FROM \"{schema}\".leaders WHERE name = $1 AND expires_at > now()"
            );
            sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(work)
                .fetch_optional(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = on_own_runtime(async move {
            crate::drop_schema(&url, &name)
                .await
                .map_err(|e| e.to_string())
        });
        if let Err(e) = dropped {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test schema {}: {e}",
                self.name
            );
        }
    }
}

/// A database of its own for one test (for what must not disturb other tests, such as refusing connections),
/// dropped with `FORCE` when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL the test was given (its database is left alone).
    pub admin_url: String,
    /// The URL of the new database.
    pub url: String,
    /// The new database's name.
    pub name: String,
}

impl TestDatabase {
    /// Creates an empty database next to the one `admin_url` names.
    pub async fn create(admin_url: &str) -> Result<Self, sqlx::Error> {
        let name = format!("offload_test_{}", uuid::Uuid::new_v4().simple());
        admin(admin_url, &format!("CREATE DATABASE {name}")).await?;
        let options: PgConnectOptions = admin_url.parse()?;
        let url = options.database(&name).to_url_lossy().to_string();
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url,
            name,
        })
    }

    /// Makes the database unreachable for clients: new connections are refused and existing ones are
    /// terminated (`pg_terminate_backend`), as when the server or the network fails. Returns once the
    /// terminated backends are gone (termination is asynchronous).
    pub async fn refuse_connections(&self) -> Result<(), sqlx::Error> {
        let name = &self.name;
        admin(
            &self.admin_url,
            &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
        )
        .await?;
        let options: PgConnectOptions = self.admin_url.parse()?;
        let mut conn = options.connect().await?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
            if left == 0 || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// Accepts connections again.
    pub async fn allow_connections(&self) -> Result<(), sqlx::Error> {
        admin(
            &self.admin_url,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name),
        )
        .await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (url, sql) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        let dropped =
            on_own_runtime(async move { admin(&url, &sql).await.map_err(|e| e.to_string()) });
        if let Err(e) = dropped {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test database {}: {e}",
                self.name
            );
        }
    }
}

/// Runs `sql` (one or more statements) on a fresh connection to `url`.
async fn admin(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let mut conn = options.connect().await?;
    let result = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    result.map(drop)
}
