//! A real server for tests: an [`Engine`] on a [`SqliteStore`] in a temporary directory, driven in-process
//! through `oneshot`, plus helpers that check problem+json answers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use offload_core::{ClaimedJob, Job};
use offload_engine::{Engine, EngineConfig};
use offload_server::{ServerConfig, router};
use offload_store_postgres::testing::{self, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore};
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

/// A router over a real engine and store, kept alive as long as this value.
pub(crate) struct TestApp {
    pub(crate) router: Router,
    pub(crate) engine: Engine,
    _dir: TempDir,
    _schema: Option<TestSchema>,
}

impl TestApp {
    /// Default configuration, maintenance loops not running.
    pub(crate) async fn new() -> Self {
        Self::with_config(ServerConfig::default()).await
    }

    /// A server with `config`.
    pub(crate) async fn with_config(config: ServerConfig) -> Self {
        let engine_config = EngineConfig {
            stage_interval: Duration::from_millis(50),
            claim_poll: Duration::from_millis(200),
            ..EngineConfig::default()
        };
        Self::with_engine(config, engine_config).await
    }

    /// A server with `config` on an engine with `engine_config`.
    pub(crate) async fn with_engine(config: ServerConfig, engine_config: EngineConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(SqliteOptions::new(dir.path().join("offload.db")))
            .await
            .expect("open store");
        let engine = Engine::new(Arc::new(store), engine_config);
        Self {
            router: router(engine.clone(), config),
            engine,
            _dir: dir,
            _schema: None,
        }
    }

    /// A server with `config` on an engine with `engine_config` over a fresh PostgreSQL schema; `None`
    /// when PostgreSQL tests are skipped (see `offload_store_postgres::testing::url`).
    pub(crate) async fn postgres_with_engine(
        config: ServerConfig,
        engine_config: EngineConfig,
    ) -> Option<Self> {
        let url = testing::url()?;
        let schema = TestSchema::new(&url);
        let store = PostgresStore::open(PostgresOptions::new(url).with_schema(schema.name.clone()))
            .await
            .expect("open PostgreSQL store");
        let engine = Engine::new(Arc::new(store), engine_config);
        Some(Self {
            router: router(engine.clone(), config),
            engine,
            _dir: tempfile::tempdir().expect("temp dir"),
            _schema: Some(schema),
        })
    }

    /// Both stores with default settings: SQLite, and PostgreSQL when its tests run.
    pub(crate) async fn each_store() -> Vec<(&'static str, Self)> {
        let mut apps = vec![("sqlite", Self::new().await)];
        if let Some(pg) =
            Self::postgres_with_engine(ServerConfig::default(), EngineConfig::default()).await
        {
            apps.push(("postgres", pg));
        }
        apps
    }

    /// Sends a request through the router.
    pub(crate) async fn call(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request without a body.
    pub(crate) async fn send(&self, method: Method, path: &str) -> Reply {
        self.call(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path).await
    }

    /// A POST with a JSON body.
    pub(crate) async fn post(&self, path: &str, json: impl Into<Body>) -> Reply {
        self.call(json_request(Method::POST, path, json)).await
    }

    /// Enqueues a job, expecting 201.
    pub(crate) async fn enqueue(&self, json: &str) -> Job {
        let reply = self.post("/v1/jobs", json.to_owned()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.parse()
    }

    /// Claims one job of `queue`, expecting one.
    pub(crate) async fn claim_one(&self, queue: &str) -> ClaimedJob {
        let reply = self
            .post(
                &format!("/v1/queues/{queue}/claim"),
                r#"{"worker_id":"w1"}"#,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let mut jobs: Vec<ClaimedJob> =
            serde_json::from_value(reply.json()["jobs"].clone()).unwrap();
        assert_eq!(jobs.len(), 1, "{reply:?}");
        jobs.remove(0)
    }

    /// The job as `GET /v1/jobs/{id}` shows it.
    pub(crate) async fn job(&self, id: impl std::fmt::Display) -> Job {
        let reply = self.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.parse()
    }

    /// Ids of `GET /v1/jobs?{query}`.
    pub(crate) async fn list_ids(&self, query: &str) -> Vec<String> {
        let reply = self.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A request with a JSON body and content type.
pub(crate) fn json_request(method: Method, path: &str, json: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(json.into())
        .unwrap()
}

/// A response, fully read.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    pub(crate) fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("unexpected shape ({e}): {self:?}"))
    }

    /// Asserts a problem+json answer with this status and code, whose `field` is `field` and whose detail
    /// names it. Returns the problem.
    #[track_caller]
    pub(crate) fn assert_problem(
        &self,
        status: StatusCode,
        code: &str,
        field: Option<&str>,
    ) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{self:?}"
        );
        let problem = self.json();
        assert_eq!(problem["code"], code, "{self:?}");
        assert_eq!(problem["status"], status.as_u16(), "{self:?}");
        assert_eq!(
            problem["type"],
            format!("urn:offload:problem:{code}"),
            "{self:?}"
        );
        assert!(
            problem["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{self:?}"
        );
        let detail = problem["detail"].as_str().expect("detail");
        match field {
            Some(field) => {
                assert_eq!(problem["field"], field, "{self:?}");
                assert!(
                    detail.contains(field),
                    "detail does not name `{field}`: {self:?}"
                );
            }
            None => assert!(problem.get("field").is_none(), "{self:?}"),
        }
        problem
    }
}
