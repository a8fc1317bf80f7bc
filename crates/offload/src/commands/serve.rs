//! `offload serve` and `offload migrate`: their command-line definitions, and how they become a server
//! configuration.
//!
//! Invariant: `serve`, `migrate` and `push secret` resolve the database from one [`StoreArgs`], so all three
//! find the same data.

use anyhow::Result;
use clap::Args;

use super::parse::UsageError;
use crate::serve::{self, Database, Overrides, ServeConfig};

/// `offload serve`: flags and environment variables override `offload.toml`, which overrides defaults.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the server's configuration and data are.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Address to listen on, IP:PORT [default: 127.0.0.1:7070].
    #[arg(long, env = "OFFLOAD_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Do not apply pending PostgreSQL migrations on start (run `offload migrate` first).
    #[arg(long)]
    pub(crate) no_migrate: bool,
    /// API tokens, comma-separated; required when listening on a non-loopback address.
    #[arg(
        long,
        env = "OFFLOAD_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "TOKENS"
    )]
    pub(crate) api_tokens: Option<Vec<String>>,
    /// Push signing secrets (`whsec_...`), comma-separated; deliveries carry one signature per secret
    /// [default: `[push] signing_secrets`, else a secret generated once and kept in the database].
    #[arg(
        long,
        env = "OFFLOAD_PUSH_SIGNING_SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "SECRETS"
    )]
    pub(crate) push_signing_secrets: Option<Vec<String>>,
    /// Allow push deliveries to internal addresses (loopback, private ranges) [default: only when listening
    /// on a loopback address].
    #[arg(long, env = "OFFLOAD_PUSH_ALLOW_PRIVATE", value_name = "BOOL")]
    pub(crate) push_allow_private: Option<bool>,
}

/// The configuration file and database options that `serve`, `migrate` and `push secret` share, so that all
/// three resolve the database exactly alike.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Configuration file [default: offload.toml in the current directory, if it exists].
    #[arg(long, env = "OFFLOAD_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// SQLite database file, or a postgres:// URL [default: offload.db].
    #[arg(
        long,
        env = "OFFLOAD_DATABASE",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    pub(crate) database: Option<String>,
    /// PostgreSQL schema holding Offload's tables [default: offload].
    #[arg(long, env = "OFFLOAD_SCHEMA", value_name = "NAME")]
    pub(crate) schema: Option<String>,
}

/// `offload migrate`: the database options of `offload serve`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Where the server's configuration and data are.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

impl From<StoreArgs> for Overrides {
    fn from(args: StoreArgs) -> Self {
        Self {
            config: args.config,
            database: args.database,
            schema: args.schema,
            ..Self::default()
        }
    }
}

/// Runs the server: flags and environment over the configuration file over defaults.
pub(crate) async fn serve(args: ServeArgs) -> Result<()> {
    let config = ServeConfig::resolve(Overrides {
        listen: args.listen,
        api_tokens: args.api_tokens,
        push_signing_secrets: args.push_signing_secrets,
        push_allow_private: args.push_allow_private,
        ..Overrides::from(args.store)
    })?;
    if args.no_migrate && matches!(config.database, Database::Sqlite(_)) {
        return Err(UsageError(
            "--no-migrate applies to PostgreSQL only (a SQLite file is always brought up to date)"
                .into(),
        )
        .into());
    }
    serve::run(ServeConfig {
        migrate: !args.no_migrate,
        ..config
    })
    .await
}

/// Applies pending migrations and prints what was done.
pub(crate) async fn migrate(args: MigrateArgs) -> Result<()> {
    let database = Database::resolve(&Overrides::from(args.store))?;
    println!("{}", serve::migrate(&database).await?);
    Ok(())
}
