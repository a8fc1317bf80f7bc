//! `offload queue ...`: list, pause and resume queues.

use anyhow::Result;

use crate::cli::{GlobalArgs, QueueCommand};
use crate::output;

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
