//! `offload push secret`: prints the signing secrets, so receivers can verify deliveries.
//!
//! It resolves the configuration exactly as `offload serve` does; without configured secrets it opens the
//! database and reads the generated secret (creating it, as the server's first start would).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::GlobalArgs;
use super::serve::StoreArgs;
use crate::output;
use crate::serve::{self, Overrides, ServeConfig};

/// `offload push ...`
#[derive(Debug, Subcommand)]
pub(crate) enum PushCommand {
    /// Print the secrets push deliveries are signed with (`whsec_...`): the configured ones, or the one the
    /// server generated and keeps in its database (created now if the server never ran).
    Secret(PushSecretArgs),
}

/// `offload push secret`: reads the configuration and the database as `offload serve` would.
#[derive(Debug, Args)]
pub(crate) struct PushSecretArgs {
    /// Where the server's configuration and data are.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Push signing secrets, comma-separated (overrides `[push] signing_secrets`).
    #[arg(
        long,
        env = "OFFLOAD_PUSH_SIGNING_SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "SECRETS"
    )]
    pub(crate) push_signing_secrets: Option<Vec<String>>,
}

#[derive(Serialize)]
struct Secrets<'a> {
    secrets: Vec<&'a str>,
    /// `config` or `database`.
    source: &'static str,
}

/// Runs one push command.
pub(crate) async fn run(global: &GlobalArgs, command: PushCommand) -> Result<()> {
    let PushCommand::Secret(args) = command;
    let config = ServeConfig::resolve(Overrides {
        push_signing_secrets: args.push_signing_secrets,
        ..Overrides::from(args.store)
    })?;
    let (secrets, source) = if config.push.signing_secrets.is_empty() {
        let store = serve::open_store(&config.database, config.migrate, serve::Access::Beside)
            .await
            .with_context(|| format!("cannot open database {}", config.database.describe()))?;
        let secret = serve::push::stored_secret(store.as_ref()).await;
        store.close().await;
        (vec![secret?], "database")
    } else {
        (config.push.signing_secrets.clone(), "config")
    };
    let texts: Vec<&str> = secrets.iter().map(|s| s.expose()).collect();
    if global.json {
        output::print_json(&Secrets {
            secrets: texts,
            source,
        })?;
    } else {
        output::print(&texts.join("\n"))?;
    }
    Ok(())
}
