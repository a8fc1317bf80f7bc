//! Server configuration: defaults, overridden by `offload.toml`, overridden by environment variables and
//! flags (clap merges those two).
//!
//! Invariant: an unknown key in the file is an error with its line and column, never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use offload_core::spec::Limits;
use offload_engine::Retention;
use serde::Deserialize;

/// The default address: loopback only, so a fresh install is never reachable from other machines.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// The default database: a SQLite file in the current directory.
pub(crate) const DEFAULT_DATABASE: &str = "offload.db";
/// Schemes of PostgreSQL URLs (`database = "postgres://..."`).
const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];
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
}

/// What the command line and environment said (flags win over env; clap resolves that).
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    pub(crate) config: Option<PathBuf>,
    pub(crate) listen: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) schema: Option<String>,
    pub(crate) api_tokens: Option<Vec<String>>,
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
        let file = read_config(over)?;
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
}

impl ServeConfig {
    /// Resolves defaults < file < overrides, and checks the result.
    pub(crate) fn resolve(over: Overrides) -> anyhow::Result<Self> {
        let file = read_config(&over)?;
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
        if !listen.ip().is_loopback() && api_tokens.is_empty() {
            bail!(
                "refusing to listen on {listen} without API tokens: set `api_tokens` in offload.toml or \
                 OFFLOAD_API_TOKENS, or listen on a loopback address"
            );
        }
        let limits = file.limits.unwrap_or_default();
        if limits.max_payload_bytes == 0 {
            bail!("limits.max_payload_bytes must be at least 1");
        }
        let max_body_bytes = file
            .max_body_bytes
            .unwrap_or(64 * 1024 * 1024)
            .max(limits.max_payload_bytes);
        Ok(Self {
            listen,
            database,
            migrate: true,
            api_tokens,
            max_body_bytes,
            limits,
            retention: file.retention.unwrap_or_default(),
        })
    }
}

/// The configuration file named by `--config`, else `offload.toml` if it exists, else nothing.
fn read_config(over: &Overrides) -> anyhow::Result<FileConfig> {
    match &over.config {
        Some(path) => read_file(path),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
            read_file(Path::new(DEFAULT_CONFIG_FILE))
        }
        None => Ok(FileConfig::default()),
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_file(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
    // toml's error message carries the line, column and offending key.
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            api_tokens: Some(vec!["secret".into()]),
            ..public
        };
        assert!(ServeConfig::resolve(with_token).is_ok());

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
