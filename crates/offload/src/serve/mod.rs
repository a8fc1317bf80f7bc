//! `offload serve`: open the store, start the engine, serve the API, drain on SIGTERM or Ctrl-C.
//!
//! Stop order: stop handing out jobs (long polls answer empty at once), let in-flight requests finish so
//! workers can still complete and fail, then stop the maintenance loops and close the store after its
//! pending commits.

pub(crate) mod config;
pub(crate) mod push;

use std::sync::Arc;

use anyhow::Context;
use offload_core::flow::limits::{Patch, QueueLimits, QueueLimitsPatch};
use offload_core::function::record::RecordLimits;
use offload_engine::{Engine, EngineConfig};
use offload_server::ServerConfig;
use offload_server::metrics::PrometheusHandle;
use offload_store::DynStore;
use offload_store_postgres::{PostgresOptions, PostgresStore};
use offload_store_sqlite::{SqliteOptions, SqliteStore};

pub(crate) use config::{Database, Overrides, ServeConfig};

/// A server that is listening: what tests and the bench need to talk to it and stop it.
pub(crate) struct Running {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) engine: Engine,
    pub(crate) serve: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Push deliveries are signed with the secret generated for this database (none was configured).
    pub(crate) generated_secret: bool,
    stop: tokio_util::sync::CancellationToken,
}

impl Running {
    /// Drains and stops the server, waiting for every committed write.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.serve
            .await
            .context("server task failed")?
            .context("server failed")?;
        self.engine.shutdown().await;
        Ok(())
    }
}

/// Who opens a store: a SQLite file has one owner at a time, which holds its exclusive lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// `offload serve` and `offload migrate`: the only process using the file (a second one fails at once).
    Owner,
    /// A short command that reads beside a running server.
    Beside,
}

/// Opens the configured store. PostgreSQL: migrates first unless `migrate` is false (then the schema must be
/// current). A SQLite file is always brought up to date: one process owns it (see [`Access`]).
pub(crate) async fn open_store(
    database: &Database,
    migrate: bool,
    access: Access,
) -> anyhow::Result<DynStore> {
    open_store_with(database, migrate, access, RecordLimits::default()).await
}

/// [`open_store`] with the limits on what function runs record (`[functions]`) that the store applies when a
/// call's answer ends its job.
async fn open_store_with(
    database: &Database,
    migrate: bool,
    access: Access,
    record_limits: RecordLimits,
) -> anyhow::Result<DynStore> {
    let store: DynStore = match database {
        Database::Sqlite(path) => {
            let options = SqliteOptions::new(path.clone()).with_record_limits(record_limits);
            let options = match access {
                Access::Owner => options,
                Access::Beside => options.shared(),
            };
            Arc::new(SqliteStore::open(options).await?)
        }
        Database::Postgres { url, schema } => {
            let options = PostgresOptions {
                migrate,
                record_limits,
                ..PostgresOptions::new(url.clone()).with_schema(schema.clone())
            };
            Arc::new(PostgresStore::open(options).await?)
        }
    };
    Ok(store)
}

/// `offload migrate`: applies pending migrations and says what it did.
pub(crate) async fn migrate(database: &Database) -> anyhow::Result<String> {
    let what = database.describe();
    match database {
        Database::Sqlite(_) => {
            open_store(database, true, Access::Owner)
                .await
                .with_context(|| format!("cannot migrate database {what}"))?
                .close()
                .await;
            Ok(format!("database {what} is up to date"))
        }
        Database::Postgres { url, schema } => {
            let applied = offload_store_postgres::migrate(url, schema)
                .await
                .with_context(|| format!("cannot migrate database {what}"))?;
            Ok(match applied.as_slice() {
                [] => format!("database {what} is up to date"),
                versions => format!(
                    "database {what}: applied migration{} {}",
                    if versions.len() == 1 { "" } else { "s" },
                    versions
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    }
}

/// Opens the store and starts listening; returns once the socket is bound. `metrics` is the installed
/// Prometheus recorder's handle, rendered at `/metrics`.
pub(crate) async fn start(
    config: &ServeConfig,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<Running> {
    let limits = config.functions_settings.limits;
    let store = open_store_with(&config.database, config.migrate, Access::Owner, limits)
        .await
        .with_context(|| format!("cannot open database {}", config.database.describe()))?;
    let (push, generated_secret) = push::config(store.as_ref(), &config.push).await?;
    let defaults = EngineConfig::default();
    let engine_config = EngineConfig {
        retention: config.retention,
        push,
        cron_grace: config.cron_grace.unwrap_or(defaults.cron_grace),
        flow_repair_interval: config
            .flow_repair_interval
            .unwrap_or(defaults.flow_repair_interval),
        functions: config.functions_settings,
        ..defaults
    };
    let engine = Engine::new(store, engine_config);
    let synced = engine
        .sync_file_schedules(config.schedules.clone())
        .await
        .context("cannot apply the configuration file's schedules")?;
    if !(synced.created.is_empty() && synced.replaced.is_empty() && synced.deleted.is_empty()) {
        tracing::info!(
            created = ?synced.created,
            replaced = ?synced.replaced,
            deleted = ?synced.deleted,
            "schedules from the configuration file applied"
        );
    }
    match engine.functions().sync_file(config.functions.clone()).await {
        Ok(synced) => {
            if !(synced.created.is_empty()
                && synced.updated.is_empty()
                && synced.removed.is_empty())
            {
                tracing::info!(
                    created = ?synced.created,
                    updated = ?synced.updated,
                    removed = ?synced.removed,
                    "functions from the configuration file applied"
                );
            }
        }
        Err(e) if config.functions.is_empty() => {
            tracing::warn!(error = %e, "cannot check for functions removed from the configuration file");
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context("cannot apply the configuration file's functions")
            );
        }
    }
    apply_file_queues(&engine, &config.queues).await?;
    engine.start();
    let server_config = ServerConfig {
        limits: config.limits.clone(),
        api_tokens: config.api_tokens.clone(),
        max_body_bytes: config.max_body_bytes,
        metrics,
    };
    let app = offload_server::router(engine.clone(), server_config);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let drain = {
        let stop = stop.clone();
        let engine = engine.clone();
        async move {
            stop.cancelled().await;
            engine.stop_claiming();
        }
    };
    let connections = config.connections;
    let serve =
        tokio::spawn(async move { offload_server::serve(listener, app, connections, drain).await });
    Ok(Running {
        addr,
        engine,
        serve,
        generated_secret,
        stop,
    })
}

/// Sets the limits of every `[[queue]]` of the file, in full: a limit the entry leaves out is removed, so the
/// file owns the limits of the queues it names (queues it does not name keep what the API set).
async fn apply_file_queues(
    engine: &Engine,
    queues: &[(String, QueueLimits)],
) -> anyhow::Result<()> {
    for (name, limits) in queues {
        let full = |v: Option<u32>| v.map_or(Patch::Clear, Patch::Set);
        let patch = QueueLimitsPatch {
            concurrency: full(limits.concurrency),
            group_concurrency: full(limits.group_concurrency),
            throttle: limits.throttle.map_or(Patch::Clear, Patch::Set),
            fair: Some(limits.fair),
        };
        engine
            .set_limits(name.clone(), patch)
            .await
            .with_context(|| format!("cannot apply the limits of [[queue]] `{name}`"))?;
    }
    if !queues.is_empty() {
        tracing::info!(
            queues = ?queues.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "queue limits from the configuration file applied"
        );
    }
    Ok(())
}

/// Runs the server until SIGTERM or Ctrl-C, then drains.
pub(crate) async fn run(config: ServeConfig) -> anyhow::Result<()> {
    // The one global recorder of the process: the engine's counters and histograms land here.
    let metrics = offload_server::metrics::recorder()
        .and_then(|builder| builder.install_recorder())
        .context("cannot install the metrics recorder")?;
    offload_engine::describe_metrics();
    let running = start(&config, Some(metrics)).await?;
    tracing::info!(
        listen = %running.addr,
        database = %config.database.describe(),
        auth = !config.api_tokens.is_empty(),
        "offload is serving"
    );
    // One write for the whole line, so a reader of standard error (tests, supervisors) never sees it in pieces.
    let announce = format!(
        "offload listening on http://{} (database {}, node {})\n",
        running.addr,
        config.database.describe(),
        running.engine.config().node_id
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), announce.as_bytes());
    if running.generated_secret {
        eprintln!(
            "push deliveries are signed with a secret generated for this database: print it with `offload push \
             secret`, or set [push] signing_secrets"
        );
    }
    let policy = &config.push.policy;
    tracing::info!(
        allow_private = policy.allow_private,
        allow_cidrs = policy.allow.len(),
        per_destination = config.push.per_destination,
        "push delivery ready"
    );
    shutdown_signal().await;
    tracing::info!("shutdown requested: draining");
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
