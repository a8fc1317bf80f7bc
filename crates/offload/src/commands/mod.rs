//! The commands: each owns its command-line definition (clap derive) and turns parsed arguments into API calls
//! or a server run, printing the answers.
//!
//! Invariants: commands return errors instead of printing them; `main` prints one line and picks the exit
//! status. Nothing here imports the top-level parser (`cli.rs`), which only assembles these definitions.

pub(crate) mod bench;
pub(crate) mod event;
pub(crate) mod function;
pub(crate) mod job;
pub(crate) mod parse;
pub(crate) mod push;
pub(crate) mod queue;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod serve;
pub(crate) mod worker;

use clap::Args;
use offload_sdk::Client;

/// The address `offload serve` listens on by default.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Options shared by every client command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// Base URL of the Offload server.
    #[arg(long, global = true, env = "OFFLOAD_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub(crate) server: String,
    /// API token, sent as `Authorization: Bearer TOKEN`.
    #[arg(
        long,
        global = true,
        env = "OFFLOAD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,
    /// Print the server's JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The API client the global options describe.
pub(crate) fn client(global: &GlobalArgs) -> Result<Client, offload_sdk::Error> {
    let client = Client::new(&global.server)?;
    Ok(match &global.token {
        Some(token) if !token.trim().is_empty() => client.with_token(token),
        _ => client,
    })
}
