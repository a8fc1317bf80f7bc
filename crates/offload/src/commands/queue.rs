//! `offload queue ...`: list, pause and resume queues.

use anyhow::Result;
use clap::Subcommand;

use super::GlobalArgs;
use crate::output;

/// `offload queue ...`
#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// List queues with their job counts.
    #[command(visible_alias = "list")]
    Ls,
    /// Stop handing out jobs from a queue (enqueueing still works).
    Pause {
        /// The queue.
        queue: String,
    },
    /// Hand out jobs from a paused queue again.
    Resume {
        /// The queue.
        queue: String,
    },
}

/// Runs one queue command.
pub(crate) async fn run(global: &GlobalArgs, command: QueueCommand) -> Result<()> {
    let client = super::client(global)?;
    let info = match command {
        QueueCommand::Ls => {
            let list = client.list_queues().await?;
            if global.json {
                output::print_json(&list)?;
            } else if list.queues.is_empty() {
                output::print("no queues yet: a queue appears when its first job is enqueued")?;
            } else {
                output::print(&output::queue_table(&list.queues))?;
            }
            return Ok(());
        }
        QueueCommand::Pause { queue } => client.pause_queue(&queue).await?,
        QueueCommand::Resume { queue } => client.resume_queue(&queue).await?,
    };
    if global.json {
        output::print_json(&info)?
    } else {
        output::print(&output::queue_line(&info))?
    }
    Ok(())
}
