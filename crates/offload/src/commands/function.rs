//! `offload function ...`: list and inspect registered durable functions.

use anyhow::Result;
use clap::Subcommand;
use offload_sdk::FunctionView;
use serde_json::Value;

use super::GlobalArgs;
use crate::output::{self, Table};

/// `offload function ...`
#[derive(Debug, Subcommand)]
pub(crate) enum FunctionCommand {
    /// List registered functions.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one function's definition.
    Get {
        /// The function's id.
        id: String,
    },
}

/// Runs a `function` command.
pub(crate) async fn run(global: &GlobalArgs, command: FunctionCommand) -> Result<()> {
    let client = super::client(global)?;
    match command {
        FunctionCommand::Ls => {
            let functions = client.functions().await?;
            if global.json {
                return Ok(output::print_json(&functions)?);
            }
            if functions.is_empty() {
                return Ok(output::print("no functions registered")?);
            }
            let mut table = Table::new(&["ID", "TRIGGERS", "RUNS ON", "APP"]);
            for f in &functions {
                table.row(vec![
                    f.id.clone(),
                    triggers(f),
                    runs_on(f),
                    f.app.clone().unwrap_or_default(),
                ]);
            }
            Ok(output::print(&table.render())?)
        }
        FunctionCommand::Get { id } => {
            let f = client.get_function(&id).await?;
            if global.json {
                return Ok(output::print_json(&f)?);
            }
            let mut out = format!("function {}\n", f.id);
            if let Some(name) = &f.name {
                out.push_str(&format!("name: {name}\n"));
            }
            out.push_str(&format!("triggers: {}\n", triggers(&f)));
            out.push_str(&format!("runs on: {}\n", runs_on(&f)));
            if let Some(retries) = f.retries {
                out.push_str(&format!("retries: {retries}\n"));
            }
            if let Some(timeout) = &f.timeout {
                out.push_str(&format!("timeout: {}\n", plain(timeout)));
            }
            if !f.cancel_on.is_empty() {
                let rules: Vec<String> = f.cancel_on.iter().map(plain).collect();
                out.push_str(&format!("cancel on: {}\n", rules.join(", ")));
            }
            if let Some(app) = &f.app {
                out.push_str(&format!("app: {app}\n"));
            }
            if let Some(ts) = f.updated_at {
                out.push_str(&format!("updated: {}\n", output::time(ts)));
            }
            Ok(output::print(&out)?)
        }
    }
}

/// A JSON value as text, strings without quotes.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The triggers, e.g. `app/order.paid, cron 0 * * * *`.
fn triggers(f: &FunctionView) -> String {
    let parts: Vec<String> = f
        .triggers
        .iter()
        .map(|t| match (t.get("event"), t.get("cron")) {
            (Some(event), _) if t.get("if").is_some() => format!("{} (filtered)", plain(event)),
            (Some(event), _) => plain(event),
            (None, Some(cron)) => format!("cron {}", plain(cron)),
            _ => plain(t),
        })
        .collect();
    parts.join(", ")
}

/// `push URL` or `queue NAME`.
fn runs_on(f: &FunctionView) -> String {
    match (&f.target, &f.queue) {
        (Some(target), _) => format!(
            "push {}",
            target.get("url").map_or_else(|| plain(target), plain)
        ),
        (None, Some(queue)) => format!("queue {queue}"),
        (None, None) => format!("queue {}", f.id),
    }
}
