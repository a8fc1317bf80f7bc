//! The client commands: each turns parsed arguments into API calls and prints the answers.
//!
//! Invariant: commands return errors instead of printing them; `main` prints one line and picks the exit status.

pub(crate) mod job;
pub(crate) mod push;
pub(crate) mod queue;
pub(crate) mod schedule;
pub(crate) mod worker;

use offload_sdk::Client;

use crate::cli::GlobalArgs;

/// The API client the global options describe.
pub(crate) fn client(global: &GlobalArgs) -> Result<Client, offload_sdk::Error> {
    let client = Client::new(&global.server)?;
    Ok(match &global.token {
        Some(token) if !token.trim().is_empty() => client.with_token(token),
        _ => client,
    })
}
