//! Server configuration: defaults, overridden by `offload.toml`, overridden by environment variables and
//! flags (clap merges those two).
//!
//! Invariant: an unknown key in the file is an error with its line and column, never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, bail};
use offload_core::DurationSpec;
use offload_core::cron::{Schedule, ScheduleSpec};
use offload_core::flow::limits::{QueueLimits, ThrottleSpec};
use offload_core::function::definition::FunctionSpec;
use offload_core::function::record::RecordLimits;
use offload_core::push::target::{MAX_TARGET_TIMEOUT, MIN_TARGET_TIMEOUT};
use offload_core::spec::{Limits, validate_queue_name};
use offload_engine::push::{DEFAULT_PER_DESTINATION, DEFAULT_TIMEOUT};
use offload_engine::{AddressPolicy, FunctionsConfig, Retention, SigningSecret};
use offload_server::ConnectionLimits;
use serde::Deserialize;

/// The default address: loopback only, so a fresh install is never reachable from other machines.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// The default database: a SQLite file in the current directory.
pub(crate) const DEFAULT_DATABASE: &str = "offload.db";
/// Schemes of PostgreSQL URLs (`database = "postgres://..."`).
const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];
/// Shortest API token a server reachable from other machines accepts, in bytes.
pub(crate) const MIN_PUBLIC_TOKEN_LEN: usize = 16;
/// The configuration file read when `--config` is not given and it exists.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "offload.toml";

/// The contents of `offload.toml`. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Address to listen on.
    pub(crate) listen: Option<String>,
    /// SQLite file path, or a `postgres://` URL.
    pub(crate) database: Option<String>,
    /// PostgreSQL schema holding Offload's tables.
    pub(crate) schema: Option<String>,
    /// Bearer tokens accepted by the API; required for non-loopback listeners.
    pub(crate) api_tokens: Option<Vec<String>>,
    /// Largest accepted request body for batch endpoints, in bytes.
    pub(crate) max_body_bytes: Option<usize>,
    /// Job limits.
    #[serde(default)]
    pub(crate) limits: Option<Limits>,
    /// Finished-job retention.
    #[serde(default)]
    pub(crate) retention: Option<Retention>,
    /// Cron enqueuer settings.
    #[serde(default)]
    pub(crate) cron: Option<CronSettings>,
    /// Maintenance settings.
    #[serde(default)]
    pub(crate) maintenance: Option<MaintenanceSettings>,
    /// `[[schedule]]` entries: schedules this file manages (applied at every start; see `schedules`).
    #[serde(default, rename = "schedule")]
    pub(crate) schedules: Vec<toml::Spanned<ScheduleSpec>>,
    /// `[[function]]` entries: durable functions this file manages (registered at every start as the app
    /// `offload.toml`; see `offload_engine::functions`).
    #[serde(default, rename = "function")]
    pub(crate) functions: Vec<toml::Spanned<FunctionSpec>>,
    /// `[functions]`: retention of events and ended runs, and the limits on events and step records.
    #[serde(default, rename = "functions")]
    pub(crate) functions_settings: Option<FunctionsFile>,
    /// `[[queue]]` entries: queues whose limits this file owns (set in full at every start).
    #[serde(default, rename = "queue")]
    pub(crate) queues: Vec<toml::Spanned<QueueEntry>>,
    /// Push delivery.
    #[serde(default)]
    pub(crate) push: Option<PushFile>,
    /// Client connections: timeouts and how many may be open.
    #[serde(default)]
    pub(crate) http: Option<HttpFile>,
}

/// A `[[queue]]` entry: a queue's limits. A key left out means no such limit (the file owns every limit of
/// the queues it names).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueEntry {
    /// The queue.
    pub(crate) name: Option<String>,
    /// Most running jobs of the queue, across every worker and server.
    pub(crate) concurrency: Option<u32>,
    /// Most running jobs per group.
    pub(crate) group_concurrency: Option<u32>,
    /// Most starts per period: `{ limit, period, burst, per_group }`.
    pub(crate) throttle: Option<ThrottleSpec>,
    /// Claims take groups in turn.
    pub(crate) fair: Option<bool>,
}

/// `[functions]` in `offload.toml`. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunctionsFile {
    /// How long events are kept, and their de-duplication ids remembered (default 7 days).
    pub(crate) event_retention: Option<DurationSpec>,
    /// How long ended runs are kept with their steps (default 7 days).
    pub(crate) run_retention: Option<DurationSpec>,
    /// Largest `data` of one event, in bytes (default 512 KiB).
    pub(crate) max_event_bytes: Option<usize>,
    /// Most steps one run may record (default 1,000).
    pub(crate) max_steps: Option<usize>,
    /// Largest result of one step, in bytes (default 4 MiB).
    pub(crate) max_step_bytes: Option<usize>,
    /// Most bytes of recorded results per run (default 16 MiB).
    pub(crate) max_state_bytes: Option<usize>,
}

impl FunctionsFile {
    /// The engine's settings: the file's values over the defaults.
    fn resolve(self) -> anyhow::Result<FunctionsConfig> {
        let d = FunctionsConfig::default();
        let config = FunctionsConfig {
            event_retention: self.event_retention.map_or(d.event_retention, |v| v.0),
            run_retention: self.run_retention.map_or(d.run_retention, |v| v.0),
            max_event_bytes: self.max_event_bytes.unwrap_or(d.max_event_bytes),
            limits: RecordLimits {
                max_steps: self.max_steps.unwrap_or(d.limits.max_steps),
                max_step_bytes: self.max_step_bytes.unwrap_or(d.limits.max_step_bytes),
                max_state_bytes: self.max_state_bytes.unwrap_or(d.limits.max_state_bytes),
            },
            ..d
        };
        if config.max_event_bytes == 0
            || config.limits.max_steps == 0
            || config.limits.max_step_bytes == 0
        {
            bail!("functions.max_event_bytes, max_steps and max_step_bytes must be at least 1");
        }
        if config.limits.max_state_bytes < config.limits.max_step_bytes {
            bail!("functions.max_state_bytes must be at least functions.max_step_bytes");
        }
        Ok(config)
    }
}

/// `[http]` in `offload.toml`: how long a connection may wait on its client, and how many may be open. Every
/// key is optional; `OFFLOAD_HTTP_*` environment variables win over the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpFile {
    /// From a request's first byte to the end of its head (default 10 s).
    pub(crate) header_read_timeout: Option<DurationSpec>,
    /// From the end of a request's head to the end of its body (default 30 s).
    pub(crate) body_read_timeout: Option<DurationSpec>,
    /// From an answer (or the connection's opening) to the next request's first byte (default 60 s).
    pub(crate) idle_timeout: Option<DurationSpec>,
    /// Most connections open at once (default 10,000); more wait until one closes.
    pub(crate) max_connections: Option<usize>,
}

/// Environment variables of the `[http]` keys, read by [`http_env`].
pub(crate) const HTTP_ENV: [&str; 4] = [
    "OFFLOAD_HTTP_HEADER_READ_TIMEOUT",
    "OFFLOAD_HTTP_BODY_READ_TIMEOUT",
    "OFFLOAD_HTTP_IDLE_TIMEOUT",
    "OFFLOAD_HTTP_MAX_CONNECTIONS",
];

/// The `[http]` settings given as `OFFLOAD_HTTP_*` environment variables (unset ones are `None`).
fn http_env() -> anyhow::Result<HttpFile> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let duration = |name: &str| {
        var(name)
            .map(|text| DurationSpec::parse(&text).with_context(|| name.to_owned()))
            .transpose()
    };
    Ok(HttpFile {
        header_read_timeout: duration(HTTP_ENV[0])?,
        body_read_timeout: duration(HTTP_ENV[1])?,
        idle_timeout: duration(HTTP_ENV[2])?,
        max_connections: var(HTTP_ENV[3])
            .map(|text| {
                text.trim()
                    .parse()
                    .with_context(|| format!("{}: `{text}` is not a count", HTTP_ENV[3]))
            })
            .transpose()?,
    })
}

/// Resolves `[http]`: environment over file over defaults; every timeout at least 1 ms, at least one
/// connection.
fn resolve_http(file: HttpFile, env: HttpFile) -> anyhow::Result<ConnectionLimits> {
    let defaults = ConnectionLimits::default();
    let pick = |env: Option<DurationSpec>, file: Option<DurationSpec>, default, key: &str| {
        let value = env.or(file).map_or(default, |d| d.0);
        if value.is_zero() {
            bail!("http.{key} must be more than 0");
        }
        Ok(value)
    };
    let limits = ConnectionLimits {
        header_read_timeout: pick(
            env.header_read_timeout,
            file.header_read_timeout,
            defaults.header_read_timeout,
            "header_read_timeout",
        )?,
        body_read_timeout: pick(
            env.body_read_timeout,
            file.body_read_timeout,
            defaults.body_read_timeout,
            "body_read_timeout",
        )?,
        idle_timeout: pick(
            env.idle_timeout,
            file.idle_timeout,
            defaults.idle_timeout,
            "idle_timeout",
        )?,
        max_connections: env
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections),
    };
    if limits.max_connections == 0 {
        bail!("http.max_connections must be at least 1");
    }
    Ok(limits)
}

/// `[push]` in `offload.toml`. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushFile {
    /// `whsec_...` secrets; deliveries carry one signature per secret.
    pub(crate) signing_secrets: Option<Vec<String>>,
    /// Allow internal addresses (default: only when listening on loopback).
    pub(crate) allow_private: Option<bool>,
    /// Ranges (or single addresses) always allowed.
    pub(crate) allow_cidrs: Option<Vec<String>>,
    /// Deliveries in flight per destination.
    pub(crate) per_destination_concurrency: Option<u32>,
    /// Request timeout of targets that set none.
    pub(crate) default_timeout: Option<DurationSpec>,
    /// Deliveries in flight in all.
    pub(crate) max_in_flight: Option<u32>,
}

/// Push delivery as resolved from file, environment and defaults.
#[derive(Debug, Clone)]
pub(crate) struct PushSettings {
    /// Configured secrets; empty: the server uses the secret generated and kept in its database.
    pub(crate) signing_secrets: Vec<SigningSecret>,
    pub(crate) policy: AddressPolicy,
    pub(crate) per_destination: u32,
    pub(crate) default_timeout: std::time::Duration,
    pub(crate) max_in_flight: u32,
}

/// The `[cron]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CronSettings {
    /// A tick at most this late runs whatever its schedule's catch-up policy (default 1 minute).
    pub(crate) grace: Option<DurationSpec>,
}

/// The `[maintenance]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceSettings {
    /// How often flow counters are recounted from the jobs and repaired (default 5 minutes).
    pub(crate) flow_repair_interval: Option<DurationSpec>,
}

/// What the command line and environment said (flags win over env; clap resolves that).
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    pub(crate) config: Option<PathBuf>,
    pub(crate) listen: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) schema: Option<String>,
    pub(crate) api_tokens: Option<Vec<String>>,
    /// `OFFLOAD_PUSH_SIGNING_SECRETS` / `--push-signing-secrets`.
    pub(crate) push_signing_secrets: Option<Vec<String>>,
    /// `OFFLOAD_PUSH_ALLOW_PRIVATE` / `--push-allow-private`.
    pub(crate) push_allow_private: Option<bool>,
}

/// Where the server keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Database {
    /// An embedded SQLite file: one server.
    Sqlite(PathBuf),
    /// A PostgreSQL database that any number of servers share; Offload's tables live in `schema`.
    Postgres {
        /// `postgres://...`
        url: String,
        /// The schema.
        schema: String,
    },
}

impl Database {
    /// A `postgres://` (or `postgresql://`) URL is PostgreSQL, anything else without `://` a SQLite file.
    pub(crate) fn parse(text: &str, schema: Option<String>) -> anyhow::Result<Self> {
        if POSTGRES_SCHEMES.iter().any(|s| text.starts_with(s)) {
            let schema =
                schema.unwrap_or_else(|| offload_store_postgres::DEFAULT_SCHEMA.to_owned());
            offload_store_postgres::validate_schema(&schema)
                .map_err(|m| anyhow::anyhow!("schema `{schema}`: {m}"))?;
            return Ok(Self::Postgres {
                url: text.to_owned(),
                schema,
            });
        }
        if text.contains("://") {
            bail!(
                "database `{}`: unsupported URL; give a SQLite file path or a postgres:// URL",
                offload_store_postgres::redact(text)
            );
        }
        if text.is_empty() {
            bail!("database: must not be empty");
        }
        if let Some(schema) = schema {
            bail!(
                "schema `{schema}`: only PostgreSQL databases have schemas (database is the SQLite file {text})"
            );
        }
        Ok(Self::Sqlite(PathBuf::from(text)))
    }

    /// For logs: the file, or the URL without its password and the schema.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres { url, schema } => {
                format!("{} schema {schema}", offload_store_postgres::redact(url))
            }
        }
    }

    /// Resolves defaults < file < overrides for commands that only need the database (`offload migrate`).
    pub(crate) fn resolve(over: &Overrides) -> anyhow::Result<Self> {
        let (file, _, _) = read_config(over)?;
        Self::from_parts(over.clone(), &file)
    }

    fn from_parts(over: Overrides, file: &FileConfig) -> anyhow::Result<Self> {
        let database = over
            .database
            .or_else(|| file.database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        Self::parse(&database, over.schema.or_else(|| file.schema.clone()))
    }
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) database: Database,
    /// Apply pending migrations on start (PostgreSQL; a SQLite file is always brought up to date).
    pub(crate) migrate: bool,
    pub(crate) api_tokens: Vec<String>,
    pub(crate) max_body_bytes: usize,
    pub(crate) limits: Limits,
    pub(crate) retention: Retention,
    pub(crate) push: PushSettings,
    /// Cron: how late a tick may be and still count as on time (`None`: the engine's default).
    pub(crate) cron_grace: Option<Duration>,
    /// How often flow counters are recounted and repaired (`None`: the engine's default).
    pub(crate) flow_repair_interval: Option<Duration>,
    /// The file's schedules, validated. At start they are created or replaced, and file-defined schedules
    /// no longer in the file are deleted (API-defined ones are never touched).
    pub(crate) schedules: Vec<Schedule>,
    /// Client connection timeouts and cap (`[http]`).
    pub(crate) connections: ConnectionLimits,
    /// The file's functions, validated. At start they are registered as the app `offload.toml`: unchanged
    /// ones are not rewritten, and file functions no longer in the file are removed (their runs keep going).
    pub(crate) functions: Vec<FunctionSpec>,
    /// `[functions]`: retention and limits of durable functions.
    pub(crate) functions_settings: FunctionsConfig,
    /// The file's queues with their limits, validated. At start each queue's limits are set to exactly these
    /// (a limit set by the API on such a queue is replaced); queues the file does not name are not touched.
    pub(crate) queues: Vec<(String, QueueLimits)>,
}

impl ServeConfig {
    /// Resolves defaults < file < overrides, and checks the result.
    pub(crate) fn resolve(over: Overrides) -> anyhow::Result<Self> {
        let (file, text, path) = read_config(&over)?;
        let database = Database::from_parts(over.clone(), &file)?;
        let listen_text = over
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("listen address `{listen_text}` is not IP:PORT (e.g. 127.0.0.1:7070)")
        })?;
        let api_tokens: Vec<String> = over
            .api_tokens
            .or(file.api_tokens)
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if !offload_core::net::is_loopback(listen.ip()) {
            if api_tokens.is_empty() {
                bail!(
                    "refusing to listen on {listen} without API tokens: set `api_tokens` in offload.toml or \
                     OFFLOAD_API_TOKENS, or listen on a loopback address"
                );
            }
            if let Some(i) = api_tokens
                .iter()
                .position(|t| t.len() < MIN_PUBLIC_TOKEN_LEN)
            {
                bail!(
                    "refusing to listen on {listen}: api_tokens[{i}] is {} bytes; tokens of a server reachable \
                     from other machines must be at least {MIN_PUBLIC_TOKEN_LEN} bytes (e.g. `openssl rand -hex \
                     32`)",
                    api_tokens[i].len()
                );
            }
        }
        let limits = file.limits.unwrap_or_default();
        if limits.max_payload_bytes == 0 {
            bail!("limits.max_payload_bytes must be at least 1");
        }
        let max_body_bytes = file
            .max_body_bytes
            .unwrap_or(64 * 1024 * 1024)
            .max(limits.max_payload_bytes);
        let push = resolve_push(
            file.push.unwrap_or_default(),
            over.push_signing_secrets,
            over.push_allow_private,
            listen,
        )?;
        let schedules = validate_schedules(file.schedules, &limits, &text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        let functions = validate_functions(file.functions, &text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        let functions_settings = file.functions_settings.unwrap_or_default().resolve()?;
        let queues = validate_queues(file.queues, &limits, &text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        let connections = resolve_http(file.http.unwrap_or_default(), http_env()?)?;
        let flow_repair_interval = file
            .maintenance
            .and_then(|m| m.flow_repair_interval)
            .map(|d| d.0);
        if flow_repair_interval.is_some_and(|d| d.is_zero()) {
            bail!("maintenance.flow_repair_interval must be more than 0");
        }
        Ok(Self {
            listen,
            database,
            migrate: true,
            api_tokens,
            max_body_bytes,
            limits,
            retention: file.retention.unwrap_or_default(),
            push,
            cron_grace: file.cron.and_then(|c| c.grace).map(|g| g.0),
            flow_repair_interval,
            schedules,
            connections,
            functions,
            functions_settings,
            queues,
        })
    }
}

/// Resolves `[push]`. Internal addresses are allowed by default only when the server listens on loopback
/// (a laptop: targets such as `http://localhost:3000` just work); a server reachable from other machines
/// refuses them unless `allow_private` or `allow_cidrs` says otherwise.
fn resolve_push(
    file: PushFile,
    secrets: Option<Vec<String>>,
    allow_private: Option<bool>,
    listen: SocketAddr,
) -> anyhow::Result<PushSettings> {
    let signing_secrets = secrets
        .or(file.signing_secrets)
        .unwrap_or_default()
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| SigningSecret::parse(s).with_context(|| format!("push.signing_secrets[{i}]")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let allow = file
        .allow_cidrs
        .unwrap_or_default()
        .iter()
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| {
                    format!(
                        "push.allow_cidrs: `{text}` is not a range (e.g. 10.1.0.0/16) or an address"
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let per_destination = file
        .per_destination_concurrency
        .unwrap_or(DEFAULT_PER_DESTINATION);
    if per_destination == 0 {
        bail!("push.per_destination_concurrency must be at least 1");
    }
    let max_in_flight = file.max_in_flight.unwrap_or(1024);
    if max_in_flight == 0 {
        bail!("push.max_in_flight must be at least 1");
    }
    let default_timeout = file.default_timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
    if !(MIN_TARGET_TIMEOUT..=MAX_TARGET_TIMEOUT).contains(&default_timeout) {
        bail!(
            "push.default_timeout must be between {} and {}",
            DurationSpec(MIN_TARGET_TIMEOUT),
            DurationSpec(MAX_TARGET_TIMEOUT)
        );
    }
    Ok(PushSettings {
        signing_secrets,
        policy: AddressPolicy {
            allow_private: allow_private
                .or(file.allow_private)
                .unwrap_or(offload_core::net::is_loopback(listen.ip())),
            allow,
        },
        per_destination,
        default_timeout,
        max_in_flight,
    })
}

/// The configuration file named by `--config`, else `offload.toml` if it exists, else nothing; with its text
/// and path (for error positions).
fn read_config(over: &Overrides) -> anyhow::Result<(FileConfig, String, PathBuf)> {
    match &over.config {
        Some(path) => {
            let (file, text) = read_file(path)?;
            Ok((file, text, path.clone()))
        }
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
            let (file, text) = read_file(Path::new(DEFAULT_CONFIG_FILE))?;
            Ok((file, text, PathBuf::from(DEFAULT_CONFIG_FILE)))
        }
        None => Ok((FileConfig::default(), String::new(), PathBuf::new())),
    }
}

fn read_file(path: &Path) -> anyhow::Result<(FileConfig, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let file =
        parse_file(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    Ok((file, text))
}

/// Validates every `[[schedule]]` entry as the API would; an error names the entry's line, its name and
/// the field.
fn validate_schedules(
    entries: Vec<toml::Spanned<ScheduleSpec>>,
    limits: &Limits,
    text: &str,
) -> anyhow::Result<Vec<Schedule>> {
    let now = offload_core::Timestamp::now();
    let mut names = BTreeSet::new();
    let mut schedules = Vec::with_capacity(entries.len());
    for entry in entries {
        let line = text
            .get(..entry.span().start)
            .map_or(0, |before| before.lines().count() + 1);
        let spec = entry.into_inner();
        let label = match &spec.name {
            Some(name) => format!("[[schedule]] `{name}` (line {line})"),
            None => format!("[[schedule]] at line {line}"),
        };
        let schedule = spec
            .validate(None, limits, now)
            .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        if !names.insert(schedule.name.clone()) {
            bail!(
                "{label}: the name `{}` is used by an earlier [[schedule]]",
                schedule.name
            );
        }
        schedules.push(schedule);
    }
    Ok(schedules)
}

/// Validates every `[[function]]` entry as the API would (each needs its `id`); an error names the entry's
/// line, its id and the field. Push targets are checked against the address policy when they are registered.
fn validate_functions(
    entries: Vec<toml::Spanned<FunctionSpec>>,
    text: &str,
) -> anyhow::Result<Vec<FunctionSpec>> {
    let mut ids = BTreeSet::new();
    let mut specs = Vec::with_capacity(entries.len());
    for entry in entries {
        let line = text
            .get(..entry.span().start)
            .map_or(0, |before| before.lines().count() + 1);
        let spec = entry.into_inner();
        let label = match &spec.id {
            Some(id) => format!("[[function]] `{id}` (line {line})"),
            None => format!("[[function]] at line {line}"),
        };
        let function = spec
            .clone()
            .validate(None)
            .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        if !ids.insert(function.id.clone()) {
            bail!(
                "{label}: the id `{}` is used by an earlier [[function]]",
                function.id
            );
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// Validates every `[[queue]]` entry as the API would; an error names the entry's line, its queue and the
/// field.
fn validate_queues(
    entries: Vec<toml::Spanned<QueueEntry>>,
    server: &Limits,
    text: &str,
) -> anyhow::Result<Vec<(String, QueueLimits)>> {
    let mut names = BTreeSet::new();
    let mut queues = Vec::with_capacity(entries.len());
    for entry in entries {
        let line = text
            .get(..entry.span().start)
            .map_or(0, |before| before.lines().count() + 1);
        let entry = entry.into_inner();
        let Some(name) = entry.name else {
            bail!("[[queue]] at line {line}: name: is required");
        };
        let label = format!("[[queue]] `{name}` (line {line})");
        validate_queue_name(&name).map_err(|m| anyhow::anyhow!("{label}: name: {m}"))?;
        let limits = QueueLimits {
            concurrency: entry.concurrency,
            group_concurrency: entry.group_concurrency,
            throttle: entry.throttle,
            fair: entry.fair.unwrap_or(false),
        };
        limits
            .validate()
            .and_then(|()| server.check_queue_limits(&limits))
            .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        if !names.insert(name.clone()) {
            bail!("{label}: the queue `{name}` is named by an earlier [[queue]]");
        }
        queues.push((name, limits));
    }
    Ok(queues)
}

fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
    // toml's error message carries the line, column and offending key.
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_entries_are_validated_with_the_field_named() {
        let text = r#"
[[queue]]
name = "emails"
concurrency = 10
group_concurrency = 2
throttle = { limit = 100, period = "1s", burst = 5, per_group = true }
fair = true

[[queue]]
name = "reports"
"#;
        let file = parse_file(text).unwrap();
        let queues = validate_queues(file.queues, &Limits::default(), text).unwrap();
        assert_eq!(queues.len(), 2);
        let (name, limits) = &queues[0];
        assert_eq!(name, "emails");
        assert_eq!(
            (limits.concurrency, limits.group_concurrency, limits.fair),
            (Some(10), Some(2), true)
        );
        let throttle = limits.throttle.unwrap();
        assert_eq!(
            (throttle.limit, throttle.burst, throttle.per_group),
            (100, 5, true)
        );
        assert!(queues[1].1.is_unlimited());

        let refused = |text: &str| {
            let file = parse_file(text)?;
            validate_queues(file.queues, &Limits::default(), text)
        };
        let cases = [
            ("[[queue]]\nname = \"q\"\nconcurrency = 0\n", "concurrency"),
            (
                "[[queue]]\nname = \"q\"\ngroup_concurrency = 0\n",
                "group_concurrency",
            ),
            (
                "[[queue]]\nname = \"q\"\nthrottle = { limit = 1, period = 0 }\n",
                "throttle.period",
            ),
            (
                "[[queue]]\nname = \"q\"\nthrottle = { limit = 0, period = \"1s\" }\n",
                "throttle.limit",
            ),
            (
                "[[queue]]\nname = \"q\"\nthrottle = { limit = 1, period = \"400d\" }\n",
                "throttle.period",
            ),
            ("[[queue]]\nconcurrency = 1\n", "name"),
            ("[[queue]]\nname = \"a b\"\n", "name"),
            ("[[queue]]\nname = \"q\"\nmax = 1\n", "max"),
            (
                "[[queue]]\nname = \"q\"\nthrottle = { limit = 1 }\n",
                "period",
            ),
            (
                "[[queue]]\nname = \"q\"\n[[queue]]\nname = \"q\"\n",
                "earlier",
            ),
        ];
        for (text, field) in cases {
            let err = format!("{:#}", refused(text).unwrap_err());
            assert!(err.contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn empty_file_means_defaults() {
        let file = parse_file("").unwrap();
        assert!(file.listen.is_none() && file.limits.is_none());
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let err = parse_file("listen = \"127.0.0.1:1\"\nlisten_addr = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listen_addr") && err.contains("line 2"),
            "{err}"
        );
        let err = parse_file("[limits]\nmax_payload = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_payload"), "{err}");
    }

    #[test]
    fn nested_sections_parse() {
        let file = parse_file(
            "api_tokens = [\"t\"]\n[limits]\nmax_payload_bytes = 2048\n[retention]\nsucceeded = \"1h\"\ndead = 5000\n",
        )
        .unwrap();
        assert_eq!(file.limits.unwrap().max_payload_bytes, 2048);
        let r = file.retention.unwrap();
        assert_eq!(r.succeeded.as_secs(), 3600);
        assert_eq!(r.dead.as_millis(), 5000);
        assert_eq!(r.cancelled, Retention::default().cancelled);
    }

    fn schedules_of(text: &str) -> anyhow::Result<Vec<Schedule>> {
        let file = parse_file(text)?;
        validate_schedules(file.schedules, &Limits::default(), text)
    }

    #[test]
    fn function_entries_are_validated_like_the_api() {
        let text = r#"
[functions]
event_retention = "3d"
max_steps = 50

[[function]]
id = "welcome"
triggers = [{ event = "app/user.signup", if = { "data.plan" = "pro" } }]
retries = 2

[[function]]
id = "invoice"
triggers = [{ event = "billing/order.closed" }]
target = { url = "https://app.example.com/api/offload" }
cancel_on = [{ event = "billing/order.reopened", match = "data.order_id" }]
concurrency = [{ limit = 10 }, { limit = 2, key = "data.account" }]
rate_limit = { limit = 5, period = "1h", key = "data.account" }
singleton = { key = "data.order_id", mode = "cancel" }
"#;
        let file = parse_file(text).unwrap();
        let settings = file.functions_settings.unwrap().resolve().unwrap();
        assert_eq!(settings.event_retention.as_secs(), 3 * 24 * 3600);
        assert_eq!(settings.limits.max_steps, 50);
        assert_eq!(
            settings.run_retention,
            FunctionsConfig::default().run_retention
        );
        let file = parse_file(text).unwrap();
        let specs = validate_functions(file.functions, text).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].id.as_deref(), Some("welcome"));
        assert_eq!(specs[1].cancel_on[0].event, "billing/order.reopened");
        let invoice = specs[1].clone().validate(None).unwrap();
        assert_eq!(invoice.flow.group_concurrency, Some(2));
        assert_eq!(invoice.flow.rate_limit.unwrap().limit, 5);

        let zero = "[[function]]\nid = \"f\"\ntriggers = [{ event = \"a\" }]\nconcurrency = [{ limit = 0 }]\n";
        let file = parse_file(zero).unwrap();
        let err = validate_functions(file.functions, zero)
            .unwrap_err()
            .to_string();
        assert!(err.contains("concurrency[0].limit"), "{err}");

        let bad = "[[function]]\nid = \"f\"\ntriggers = [{ cron = \"61 * * * *\" }]\n";
        let file = parse_file(bad).unwrap();
        let err = validate_functions(file.functions, bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`f` (line 1)") && err.contains("triggers[0].cron"),
            "{err}"
        );
        let twice = "[[function]]\nid = \"f\"\ntriggers = [{ event = \"a\" }]\n\
                     [[function]]\nid = \"f\"\ntriggers = [{ event = \"b\" }]\n";
        let file = parse_file(twice).unwrap();
        let err = validate_functions(file.functions, twice)
            .unwrap_err()
            .to_string();
        assert!(err.contains("used by an earlier [[function]]"), "{err}");
        let missing_id = "[[function]]\ntriggers = [{ event = \"a\" }]\n";
        let file = parse_file(missing_id).unwrap();
        let err = validate_functions(file.functions, missing_id)
            .unwrap_err()
            .to_string();
        assert!(err.contains("id"), "{err}");
        assert!(parse_file("[[function]]\nid = \"f\"\ntriggers = []\nretry = 1\n").is_err());
    }

    #[test]
    fn schedule_entries_are_validated_like_the_api() {
        let text = r#"
[cron]
grace = "10s"

[[schedule]]
name = "nightly"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
catch_up = "all"
catch_up_window = "6h"
job = { queue = "reports", name = "nightly-report", payload = { kind = "full", days = 7 } }

[[schedule]]
name = "heartbeat"
cron = "*/10 * * * * *"
overlap = "allow"
[schedule.job]
queue = "pings"
"#;
        let file = parse_file(text).unwrap();
        assert_eq!(file.cron.unwrap().grace.unwrap().as_millis(), 10_000);
        let schedules = schedules_of(text).unwrap();
        assert_eq!(schedules.len(), 2);
        assert_eq!(schedules[0].name, "nightly");
        assert_eq!(schedules[0].cadence.time_zone(), "Europe/Berlin");
        assert_eq!(schedules[0].catch_up_window.as_secs(), 6 * 3600);
        assert_eq!(
            schedules[0].job.payload.get(),
            r#"{"days":7,"kind":"full"}"#
        );
        assert_eq!(schedules[1].job.queue, "pings");
    }

    #[test]
    fn bad_schedule_entries_name_their_line_and_field() {
        let err = schedules_of(
            "[[schedule]]\nname = \"a\"\ncron = \"* 25 * * *\"\njob = { queue = \"q\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`a` (line 1)") && err.contains("cron: the hour field `25`"),
            "{err}"
        );
        let err = schedules_of("\n[[schedule]]\ncron = \"* * * * *\"\njob = { queue = \"q\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("name: is required"),
            "{err}"
        );
        let twice = "[[schedule]]\nname = \"a\"\ncron = \"@daily\"\njob = { queue = \"q\" }\n";
        let err = schedules_of(&format!("{twice}{twice}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("used by an earlier"), "{err}");
        let err = parse_file(
            "[[schedule]]\nname = \"a\"\ncron = \"@daily\"\njob = { queue = \"q\" }\ncronn = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cronn") && err.contains("line 5"), "{err}");
        let err = parse_file("[cron]\ngrace = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    const LONG_TOKEN: &str = "0123456789abcdef";

    #[test]
    fn mapped_loopback_listeners_are_loopback() {
        let mapped = ServeConfig::resolve(Overrides {
            listen: Some("[::ffff:127.0.0.1]:7070".into()),
            ..Overrides::default()
        })
        .expect("a mapped loopback address needs no token");
        assert!(
            mapped.push.policy.allow_private,
            "judged as loopback, like 127.0.0.1"
        );
        let err = ServeConfig::resolve(Overrides {
            listen: Some("[::ffff:10.0.0.1]:7070".into()),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("without API tokens"), "{err}");
    }

    #[test]
    fn http_limits_default_and_resolve() {
        let none = || HttpFile::default();
        assert_eq!(
            resolve_http(none(), none()).unwrap(),
            ConnectionLimits::default()
        );
        let defaults = ConnectionLimits::default();
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.body_read_timeout, Duration::from_secs(30));
        assert_eq!(defaults.idle_timeout, Duration::from_secs(60));
        assert_eq!(defaults.max_connections, 10_000);
        let file = parse_file(
            "[http]\nheader_read_timeout = \"5s\"\nbody_read_timeout = 2000\nidle_timeout = \"2m\"\n\
             max_connections = 50\n",
        )
        .unwrap()
        .http
        .unwrap();
        let env = HttpFile {
            idle_timeout: Some(DurationSpec(Duration::from_secs(7))),
            ..HttpFile::default()
        };
        let limits = resolve_http(file, env).unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(5));
        assert_eq!(limits.body_read_timeout, Duration::from_secs(2));
        assert_eq!(limits.idle_timeout, Duration::from_secs(7), "env wins");
        assert_eq!(limits.max_connections, 50);
        let bad = |toml: &str| {
            resolve_http(parse_file(toml).unwrap().http.unwrap(), none())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[http]\nmax_connections = 0\n").contains("max_connections"));
        assert!(bad("[http]\nidle_timeout = 0\n").contains("idle_timeout"));
        assert!(parse_file("[http]\ntimeout = 1\n").is_err());
    }

    #[test]
    fn push_defaults_follow_the_listener() {
        let local = ServeConfig::resolve(Overrides::default()).unwrap();
        assert!(
            local.push.policy.allow_private,
            "loopback: internal targets allowed"
        );
        assert!(local.push.signing_secrets.is_empty());
        assert_eq!(local.push.per_destination, DEFAULT_PER_DESTINATION);
        let public = ServeConfig::resolve(Overrides {
            listen: Some("0.0.0.0:7070".into()),
            api_tokens: Some(vec![LONG_TOKEN.into()]),
            ..Overrides::default()
        })
        .unwrap();
        assert!(
            !public.push.policy.allow_private,
            "reachable: refused by default"
        );
        let opened = ServeConfig::resolve(Overrides {
            listen: Some("0.0.0.0:7070".into()),
            api_tokens: Some(vec![LONG_TOKEN.into()]),
            push_allow_private: Some(true),
            ..Overrides::default()
        })
        .unwrap();
        assert!(opened.push.policy.allow_private);
    }

    #[test]
    fn push_section_parses_and_checks() {
        let file = parse_file(
            "[push]\nsigning_secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nallow_private = false\n\
             allow_cidrs = [\"10.1.0.0/16\", \"192.168.0.7\"]\nper_destination_concurrency = 8\n\
             default_timeout = \"2m\"\n",
        )
        .unwrap();
        let listen: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let push = resolve_push(file.push.unwrap(), None, None, listen).unwrap();
        assert_eq!(push.signing_secrets.len(), 1);
        assert!(
            !push.policy.allow_private,
            "the file wins over the listener default"
        );
        assert_eq!(push.policy.allow.len(), 2);
        assert_eq!(push.per_destination, 8);
        assert_eq!(push.default_timeout.as_secs(), 120);
        let env = resolve_push(
            PushFile::default(),
            Some(vec![
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                " ".into(),
            ]),
            None,
            listen,
        )
        .unwrap();
        assert_eq!(env.signing_secrets.len(), 1);
        let bad = |toml: &str| {
            let file = parse_file(toml).unwrap();
            resolve_push(file.push.unwrap(), None, None, listen)
                .map(drop)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[push]\nsigning_secrets = [\"hunter2\"]\n").contains("signing_secrets[0]"));
        assert!(bad("[push]\nallow_cidrs = [\"10.0.0.0/33\"]\n").contains("allow_cidrs"));
        assert!(bad("[push]\nper_destination_concurrency = 0\n").contains("per_destination"));
        assert!(bad("[push]\ndefault_timeout = \"2h\"\n").contains("default_timeout"));
        assert!(
            parse_file("[push]\nsecrets = []\n").is_err(),
            "unknown keys are errors"
        );
    }

    #[test]
    fn overrides_win_and_public_listeners_need_tokens() {
        let over = Overrides {
            listen: Some("127.0.0.1:9999".into()),
            database: Some("x.db".into()),
            ..Overrides::default()
        };
        let cfg = ServeConfig::resolve(over).unwrap();
        assert_eq!(cfg.listen.port(), 9999);
        assert_eq!(cfg.database, Database::Sqlite(PathBuf::from("x.db")));

        let public = Overrides {
            listen: Some("0.0.0.0:7070".into()),
            ..Overrides::default()
        };
        let err = ServeConfig::resolve(public.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("without API tokens"), "{err}");
        let with_token = Overrides {
            api_tokens: Some(vec![LONG_TOKEN.into()]),
            ..public.clone()
        };
        assert!(ServeConfig::resolve(with_token).is_ok());
        let short = Overrides {
            api_tokens: Some(vec![
                LONG_TOKEN.into(),
                "s".repeat(MIN_PUBLIC_TOKEN_LEN - 1),
            ]),
            ..public.clone()
        };
        let err = ServeConfig::resolve(short).unwrap_err().to_string();
        assert!(
            err.contains("api_tokens[1] is 15 bytes") && err.contains("at least 16 bytes"),
            "{err}"
        );
        let loopback_short = Overrides {
            listen: Some("127.0.0.1:7070".into()),
            api_tokens: Some(vec!["x".into()]),
            ..public
        };
        assert!(
            ServeConfig::resolve(loopback_short).is_ok(),
            "loopback servers keep short tokens"
        );

        let bad = Overrides {
            listen: Some("localhost".into()),
            ..Overrides::default()
        };
        assert!(
            ServeConfig::resolve(bad)
                .unwrap_err()
                .to_string()
                .contains("IP:PORT")
        );
    }
}

#[cfg(test)]
mod database_tests {
    use super::*;

    #[test]
    fn postgres_urls_and_sqlite_paths() {
        assert_eq!(
            Database::parse("postgres://u:pw@db:5432/app", None).unwrap(),
            Database::Postgres {
                url: "postgres://u:pw@db:5432/app".into(),
                schema: "offload".into()
            }
        );
        let custom = Database::parse("postgresql://db/app", Some("jobs_eu".into())).unwrap();
        assert_eq!(custom.describe(), "postgresql://db/app schema jobs_eu");
        assert_eq!(
            Database::parse("postgres://u:pw@db/app", None)
                .unwrap()
                .describe(),
            "postgres://u:***@db/app schema offload"
        );
        assert_eq!(
            Database::parse("data/offload.db", None).unwrap(),
            Database::Sqlite(PathBuf::from("data/offload.db"))
        );
        for (text, schema, needle) in [
            ("mysql://db/app", None, "unsupported URL"),
            ("postgres://db/app", Some("Bad-Name"), "schema `Bad-Name`"),
            ("offload.db", Some("jobs"), "only PostgreSQL"),
            ("", None, "must not be empty"),
        ] {
            let err = Database::parse(text, schema.map(str::to_owned))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn the_schema_can_come_from_the_file() {
        let file = parse_file("database = \"postgres://db/app\"\nschema = \"tenant_a\"\n").unwrap();
        let db = Database::from_parts(Overrides::default(), &file).unwrap();
        assert_eq!(
            db,
            Database::Postgres {
                url: "postgres://db/app".into(),
                schema: "tenant_a".into()
            }
        );
    }
}
