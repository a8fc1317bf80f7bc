//! `offload run ...`: list, inspect, cancel and retry the runs of durable functions.

use anyhow::Result;
use clap::{Args, Subcommand};
use offload_core::function::protocol::StepResult;
use offload_core::function::run::{RunId, RunState};
use offload_sdk::{RunView, RunsQuery, StepView};

use super::GlobalArgs;
use crate::output::{self, Table};

/// `offload run ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RunCommand {
    /// List runs, newest first.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Show a run with its steps.
    Get {
        /// The run's id.
        #[arg(value_parser = parse_run_id)]
        id: RunId,
    },
    /// Cancel a run that has not ended.
    Cancel {
        /// The run's id.
        #[arg(value_parser = parse_run_id)]
        id: RunId,
    },
    /// Resume a failed or cancelled run from its failed step (finished steps keep their results).
    Retry {
        /// The run's id.
        #[arg(value_parser = parse_run_id)]
        id: RunId,
    },
}

/// `offload run ls`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only runs of this function.
    #[arg(long, value_name = "ID")]
    pub(crate) function: Option<String>,
    /// Only runs in this state.
    #[arg(long, value_parser = parse_state)]
    pub(crate) state: Option<RunState>,
    /// Only runs started by this event (its id).
    #[arg(long, value_name = "EVENT_ID")]
    pub(crate) event: Option<String>,
    /// Only runs older than this one (for the next page).
    #[arg(long, value_parser = parse_run_id, value_name = "RUN_ID")]
    pub(crate) before: Option<RunId>,
    /// Most runs to show.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) limit: Option<u32>,
}

/// Parses a run id (a UUID).
pub(crate) fn parse_run_id(text: &str) -> Result<RunId, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "`{text}` is not a run id; ids are UUIDs such as 01900000-0000-7000-8000-000000000001"
        )
    })
}

/// Parses a run state by name.
fn parse_state(text: &str) -> Result<RunState, String> {
    RunState::ALL
        .into_iter()
        .find(|s| s.as_str() == text.trim())
        .ok_or_else(|| {
            let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
            format!(
                "`{text}` is not a run state; use one of {}",
                names.join(", ")
            )
        })
}

/// Runs a `run` command.
pub(crate) async fn run(global: &GlobalArgs, command: RunCommand) -> Result<()> {
    let client = super::client(global)?;
    let (verb, view) = match command {
        RunCommand::Ls(args) => {
            let query = RunsQuery {
                function: args.function,
                state: args.state,
                event: args.event,
                before: args.before,
                limit: args.limit,
            };
            let runs = client.runs(&query).await?;
            if global.json {
                return Ok(output::print_json(&runs)?);
            }
            if runs.is_empty() {
                return Ok(output::print("no runs found")?);
            }
            return Ok(output::print(&run_table(&runs))?);
        }
        RunCommand::Get { id } => {
            let view = client.run(id).await?;
            let steps = client.run_steps(id).await?;
            if global.json {
                let both = serde_json::json!({"run": view, "steps": steps});
                return Ok(output::print_json(&both)?);
            }
            return Ok(output::print(&run_details(&view, &steps))?);
        }
        RunCommand::Cancel { id } => ("cancelled", client.cancel_run(id).await?),
        RunCommand::Retry { id } => ("retried", client.retry_run(id).await?),
    };
    if global.json {
        Ok(output::print_json(&view)?)
    } else {
        Ok(output::print(&format!(
            "{verb} run {} of {}: now {}",
            view.id,
            view.function_id,
            view.state.as_str()
        ))?)
    }
}

fn time(ts: Option<offload_core::Timestamp>) -> String {
    ts.map(output::time).unwrap_or_default()
}

/// Runs as a table.
fn run_table(runs: &[RunView]) -> String {
    let mut table = Table::new(&["ID", "FUNCTION", "STATE", "CREATED", "ENDED"]);
    for r in runs {
        table.row(vec![
            r.id.to_string(),
            r.function_id.clone(),
            r.state.as_str().to_owned(),
            time(r.created_at),
            time(r.ended_at),
        ]);
    }
    table.render()
}

/// One run with its steps.
fn run_details(run: &RunView, steps: &[StepView]) -> String {
    let mut out = format!(
        "run {}\nfunction: {}\nstate: {}\n",
        run.id,
        run.function_id,
        run.state.as_str()
    );
    if let Some(event) = &run.event_id {
        out.push_str(&format!("event: {event}\n"));
    }
    for (label, ts) in [
        ("created", run.created_at),
        ("started", run.started_at),
        ("ended", run.ended_at),
        ("wakes", run.wake_at),
    ] {
        if let Some(ts) = ts {
            out.push_str(&format!("{label}: {}\n", output::time(ts)));
        }
    }
    if let Some(parent) = &run.parent {
        out.push_str(&format!(
            "invoked by: run {} (step {})\n",
            parent.run_id, parent.step
        ));
    }
    if let Some(output_value) = &run.output {
        out.push_str(&format!(
            "output: {}\n",
            output::cut(&output_value.to_string(), 200)
        ));
    }
    if let Some(error) = &run.error {
        out.push_str(&format!("error: {}: {}\n", error.name, error.message));
    }
    if steps.is_empty() {
        out.push_str("no steps recorded\n");
        return out;
    }
    let mut table = Table::new(&["STEP", "KIND", "FAILED ATTEMPTS", "RESULT"]).right(&[2]);
    for s in steps {
        let result = match &s.result {
            Some(StepResult::Data(data)) => output::cut(data.get(), 60),
            Some(StepResult::Error(e)) => {
                output::cut(&format!("error {}: {}", e.name, e.message), 60)
            }
            None => match s.until {
                Some(until) => format!("pending until {}", output::time(until)),
                None => "pending".to_owned(),
            },
        };
        table.row(vec![
            s.id.clone(),
            s.kind.clone(),
            s.failed_attempts.len().to_string(),
            result,
        ]);
    }
    out.push('\n');
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_ids_are_checked_while_parsing() {
        assert_eq!(parse_state("waiting"), Ok(RunState::Waiting));
        assert!(parse_state("done").unwrap_err().contains("succeeded"));
        assert!(parse_run_id("nope").is_err());
        assert!(parse_run_id("01900000-0000-7000-8000-000000000001").is_ok());
    }
}
