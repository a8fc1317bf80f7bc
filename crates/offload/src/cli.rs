//! The top-level command line: assembles the commands' own definitions into one parser.
//!
//! Invariant: parsing only, and only assembly: each command's arguments are defined beside the command in
//! `commands/`, which never imports this module.

use clap::{Parser, Subcommand};

use crate::commands::GlobalArgs;
use crate::commands::bench::BenchArgs;
use crate::commands::event::EventCommand;
use crate::commands::function::FunctionCommand;
use crate::commands::job::JobCommand;
use crate::commands::push::PushCommand;
use crate::commands::queue::QueueCommand;
use crate::commands::run::RunCommand;
use crate::commands::schedule::ScheduleCommand;
use crate::commands::serve::{MigrateArgs, ServeArgs};
use crate::commands::worker::WorkerArgs;

const EXIT_STATUS_HELP: &str = "\
Exit status: 0 on success, 2 when the command line or the request is invalid (including requests the server \
refuses as invalid), 1 for any other error (server unreachable, job not found, conflicts).

Logs go to standard error; set RUST_LOG (e.g. RUST_LOG=debug) to see more.";

/// Offload: background jobs, task queues and cron in one self-hosted binary.
#[derive(Debug, Parser)]
#[command(name = "offload", version, propagate_version = true, after_help = EXIT_STATUS_HELP)]
pub(crate) struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Enqueue, inspect and manage jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// List, pause and resume queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Manage cron schedules, or check an expression's next fire times (`schedule next`, no server needed).
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Send events to durable functions.
    #[command(subcommand)]
    Event(EventCommand),
    /// List, inspect, cancel and retry the runs of durable functions.
    #[command(subcommand)]
    Run(RunCommand),
    /// List and inspect registered durable functions.
    #[command(subcommand)]
    Function(FunctionCommand),
    /// Run a command for each job of a queue: a generic pull worker.
    Worker(WorkerArgs),
    /// Run the server (SQLite file in the current directory, API on 127.0.0.1:7070 by default).
    Serve(ServeArgs),
    /// Measure throughput and latency end to end against a fresh server on a temporary database.
    Bench(BenchArgs),
    /// Push delivery: print the signing secret receivers verify deliveries with.
    #[command(subcommand)]
    Push(PushCommand),
    /// Apply pending database migrations (`serve` does it on start unless given --no-migrate).
    Migrate(MigrateArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use offload_core::JobState;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "offload",
            "job",
            "ls",
            "--json",
            "--server",
            "http://h:1",
            "--state",
            "dead",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.server, "http://h:1");
        match cli.command {
            Command::Job(JobCommand::Ls(args)) => assert_eq!(args.state, Some(JobState::Dead)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_mistakes_are_refused_while_parsing() {
        let bad = [
            vec!["offload", "job", "enqueue", "q", "--delay", "soon"],
            vec![
                "offload",
                "job",
                "enqueue",
                "q",
                "--delay",
                "1s",
                "--run-at",
                "2026-06-01T12:00:00Z",
            ],
            vec!["offload", "job", "enqueue", "q", "--run-at", "tomorrow"],
            vec!["offload", "job", "enqueue", "q", "--tag", "novalue"],
            vec!["offload", "job", "get", "not-a-uuid"],
            vec!["offload", "job", "ls", "--state", "done"],
            vec!["offload", "job", "ls", "--limit", "0"],
            vec!["offload", "worker", "--queue", "q"],
            vec![
                "offload",
                "worker",
                "--queue",
                "q",
                "--concurrency",
                "0",
                "--",
                "true",
            ],
        ];
        for args in bad {
            let err = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn worker_takes_the_command_after_the_separator() {
        let cli = Cli::try_parse_from([
            "offload", "worker", "-q", "q", "-c", "3", "--", "sh", "-c", "echo --x",
        ])
        .unwrap();
        match cli.command {
            Command::Worker(args) => {
                assert_eq!(args.concurrency, 3);
                assert_eq!(args.command, ["sh", "-c", "echo --x"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
