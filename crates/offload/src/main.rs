//! The `offload` binary: parses the command line, installs logging, runs the command and turns its error into
//! one line on standard error and an exit status.
//!
//! Exit statuses: 0 success, 1 error, 2 invalid usage or input (clap's own parse errors also exit with 2).

mod bench;
mod cli;
mod commands;
mod output;
mod serve;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::commands::parse::UsageError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    init_tracing(match cli.command {
        Command::Worker(_) | Command::Serve(_) | Command::Migrate(_) => "info",
        _ => "warn",
    });
    // reqwest is built without a default TLS provider (no aws-lc): give it rustls' ring provider.
    offload_engine::push::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::from(exit_status(&err))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Job(command) => commands::job::run(&global, command).await,
        Command::Queue(command) => commands::queue::run(&global, command).await,
        Command::Schedule(command) => commands::schedule::run(&global, command).await,
        Command::Event(command) => commands::event::run(&global, command).await,
        Command::Run(command) => commands::run::run(&global, command).await,
        Command::Function(command) => commands::function::run(&global, command).await,
        Command::Worker(args) => commands::worker::run(&global, args).await,
        Command::Serve(args) => commands::serve::serve(args).await,
        Command::Migrate(args) => commands::serve::migrate(args).await,
        Command::Push(command) => commands::push::run(&global, command).await,
        Command::Bench(args) => commands::bench::run(args).await,
    }
}

/// Prints clap's help and version as clap does; any other parse error as one line, with exit status 2.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Printing help can only fail when the terminal is gone; there is nothing left to tell then.
            let _ = err.print();
        }
        _ => eprintln!(
            "error: {} (see --help)",
            clap_one_line(&err.render().to_string())
        ),
    }
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
}

/// The first paragraph of a rendered clap error, on one line, without its `error:` prefix.
fn clap_one_line(rendered: &str) -> String {
    let paragraph: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    let text = paragraph.join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}

/// Logs to standard error (colored only on a terminal); `RUST_LOG` overrides the command's default level.
fn init_tracing(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .init();
}

/// The error and its causes on one line, `outer: inner`. An API client error already says everything useful,
/// so the transport details behind it are left out.
fn one_line(err: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in err.chain() {
        parts.push(cause.to_string().replace('\n', " "));
        if cause.is::<offload_sdk::Error>() {
            break;
        }
    }
    parts.join(": ")
}

/// 2 for usage errors (ours, or the server refusing the request as invalid), 1 for everything else.
fn exit_status(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<offload_sdk::Error>() {
            return match e {
                offload_sdk::Error::InvalidUrl { .. } | offload_sdk::Error::InvalidToken => 2,
                offload_sdk::Error::Api {
                    status: 400 | 413 | 422,
                    ..
                } => 2,
                _ => 1,
            };
        }
    }
    1
}

/// True when standard output was closed early (`offload job ls | head`), which is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn api(status: u16) -> offload_sdk::Error {
        offload_sdk::Error::Api {
            status,
            problem: Box::new(offload_core::api::Problem {
                kind: "urn:offload:problem:x".into(),
                title: "x".into(),
                status,
                code: "invalid_field".into(),
                detail: "queue: must not be empty".into(),
                field: Some("queue".into()),
            }),
        }
    }

    #[test]
    fn errors_print_as_one_line_with_their_context() {
        let err = anyhow::Error::from(api(422)).context("enqueue");
        assert_eq!(
            one_line(&err),
            "enqueue: queue: must not be empty (invalid_field)"
        );
        let err = anyhow::Error::from(UsageError("--payload is not valid JSON:\nat line 1".into()));
        assert_eq!(one_line(&err), "--payload is not valid JSON: at line 1");
    }

    #[test]
    fn validation_errors_exit_with_2_and_others_with_1() {
        assert_eq!(exit_status(&anyhow::Error::from(api(422))), 2);
        assert_eq!(exit_status(&anyhow::Error::from(api(404))), 1);
        assert_eq!(
            exit_status(&anyhow::Error::from(UsageError("x".into())).context("y")),
            2
        );
        let io_err: Result<(), io::Error> = Err(io::Error::other("disk"));
        assert_eq!(exit_status(&io_err.context("z").unwrap_err()), 1);
    }

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  <QUEUE>\n\nUsage: offload job \
                        enqueue <QUEUE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_one_line(rendered),
            "the following required arguments were not provided: <QUEUE>"
        );
        let err =
            Cli::try_parse_from(["offload", "job", "enqueue", "q", "--delay", "-5s"]).unwrap_err();
        assert_eq!(
            clap_one_line(&err.render().to_string()),
            "invalid value '-5s' for '--delay <DURATION>': must not be negative"
        );
    }

    #[test]
    fn broken_pipes_are_not_errors() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::Error::from(api(500))));
    }
}
