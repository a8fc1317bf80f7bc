//! `offload push secret`: prints the signing secrets, so receivers can verify deliveries.
//!
//! It resolves the configuration exactly as `offload serve` does; without configured secrets it opens the
//! database and reads the generated secret (creating it, as the server's first start would).

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{GlobalArgs, PushCommand};
use crate::output;
use crate::serve::{self, Overrides, ServeConfig};

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
