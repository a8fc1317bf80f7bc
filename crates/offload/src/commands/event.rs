//! `offload event send`: send an event, which starts the runs of the functions it triggers and resolves the
//! runs waiting for it.

use anyhow::Result;
use clap::Subcommand;
use offload_core::Timestamp;
use offload_sdk::function::EventSpec;
use serde_json::Value;

use super::GlobalArgs;
use super::parse::{UsageError, parse_timestamp};
use crate::output;

/// `offload event ...`
#[derive(Debug, Subcommand)]
pub(crate) enum EventCommand {
    /// Send one event.
    Send {
        /// The event's name, e.g. `app/user.signup`.
        name: String,
        /// The event's data: a JSON object; `@FILE` reads it from a file, `-` from standard input.
        #[arg(long, allow_hyphen_values = true, value_name = "JSON")]
        data: Option<String>,
        /// A de-duplication id: an event whose id was seen within the retention starts nothing again.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// When it happened (RFC 3339; default: when the server receives it).
        #[arg(long, value_parser = parse_timestamp, value_name = "TIME")]
        ts: Option<Timestamp>,
    },
}

/// Runs an `event` command.
pub(crate) async fn run(global: &GlobalArgs, command: EventCommand) -> Result<()> {
    let client = super::client(global)?;
    match command {
        EventCommand::Send { name, data, id, ts } => {
            let data = match data {
                Some(source) => Some(parse_data(&source)?),
                None => None,
            };
            let event = EventSpec { name, data, id, ts };
            let sent = client.send_event(&event).await?;
            if global.json {
                return Ok(output::print_json(&sent)?);
            }
            let id = sent.ids.first().map_or("?", String::as_str);
            let runs = sent.runs.first().cloned().unwrap_or_default();
            let text = if sent.duplicate {
                format!("duplicate of event {id}; nothing started")
            } else if runs.is_empty() {
                format!("sent event {id}; it started no runs")
            } else {
                format!(
                    "sent event {id}; it started {} run(s): {}",
                    runs.len(),
                    runs.join(", ")
                )
            };
            Ok(output::print(&text)?)
        }
    }
}

/// The `--data` JSON, which must be an object.
fn parse_data(source: &str) -> Result<Value> {
    let raw = super::job::read_payload(source)?;
    let value: Value = serde_json::from_str(raw.get())
        .map_err(|e| UsageError(format!("--data: not JSON: {e}")))?;
    if !value.is_object() {
        return Err(
            UsageError("--data: must be a JSON object, e.g. '{\"user_id\": 7}'".into()).into(),
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_must_be_an_object() {
        assert!(parse_data(r#"{"a": 1}"#).is_ok());
        for bad in ["[1]", "7", "{", "nope"] {
            let err = parse_data(bad).unwrap_err();
            assert!(err.is::<UsageError>(), "{bad}: {err}");
        }
    }
}
