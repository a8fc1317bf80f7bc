//! Command-line definitions (clap derive) and the parsers of values users type.
//!
//! Invariant: everything here is parsing only; no command runs from this module. Values that clap can check
//! (durations, instants, tags, job ids, states) are checked while parsing, so commands receive typed values and
//! a bad value is a usage error (exit status 2) before any request is sent.

use std::fmt;

use clap::{Args, Parser, Subcommand};
use offload_core::{DurationSpec, JobId, JobState, Timestamp};

/// The address `offload serve` listens on by default.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

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
    Schedule(crate::commands::schedule::ScheduleCommand),
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

/// `offload push ...`
#[derive(Debug, Subcommand)]
pub(crate) enum PushCommand {
    /// Print the secrets push deliveries are signed with (`whsec_...`): the configured ones, or the one the
    /// server generated and keeps in its database (created now if the server never ran).
    Secret(PushSecretArgs),
}

/// `offload push secret`: reads the configuration and the database as `offload serve` would.
#[derive(Debug, Args)]
pub(crate) struct PushSecretArgs {
    /// Where the server's configuration and data are.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Push signing secrets, comma-separated (overrides `[push] signing_secrets`).
    #[arg(
        long,
        env = "OFFLOAD_PUSH_SIGNING_SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "SECRETS"
    )]
    pub(crate) push_signing_secrets: Option<Vec<String>>,
}

/// `offload serve`: flags and environment variables override `offload.toml`, which overrides defaults.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the server's configuration and data are.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Address to listen on, IP:PORT [default: 127.0.0.1:7070].
    #[arg(long, env = "OFFLOAD_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Do not apply pending PostgreSQL migrations on start (run `offload migrate` first).
    #[arg(long)]
    pub(crate) no_migrate: bool,
    /// API tokens, comma-separated; required when listening on a non-loopback address.
    #[arg(
        long,
        env = "OFFLOAD_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "TOKENS"
    )]
    pub(crate) api_tokens: Option<Vec<String>>,
    /// Push signing secrets (`whsec_...`), comma-separated; deliveries carry one signature per secret
    /// [default: `[push] signing_secrets`, else a secret generated once and kept in the database].
    #[arg(
        long,
        env = "OFFLOAD_PUSH_SIGNING_SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "SECRETS"
    )]
    pub(crate) push_signing_secrets: Option<Vec<String>>,
    /// Allow push deliveries to internal addresses (loopback, private ranges) [default: only when listening
    /// on a loopback address].
    #[arg(long, env = "OFFLOAD_PUSH_ALLOW_PRIVATE", value_name = "BOOL")]
    pub(crate) push_allow_private: Option<bool>,
}

/// `offload bench`: sizes of each phase.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Concurrent clients enqueueing single jobs.
    #[arg(long, default_value_t = 64)]
    pub(crate) clients: usize,
    /// Single-job enqueues.
    #[arg(long, default_value_t = 60_000)]
    pub(crate) single_jobs: usize,
    /// Jobs enqueued in batches, then drained.
    #[arg(long, default_value_t = 400_000)]
    pub(crate) batch_jobs: usize,
    /// Jobs per batch request.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) batch_size: usize,
    /// Concurrent pull workers in the drain.
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// Jobs per claim and per batch completion in the drain.
    #[arg(long, default_value_t = 500)]
    pub(crate) claim_batch: u32,
    /// Samples of the latency phase.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) latency_samples: usize,
    /// SQLite file to use instead of a temporary one, or a postgres:// URL (the bench then works in a fresh
    /// schema that it drops at the end, unless --schema names one to keep).
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) database: Option<String>,
    /// PostgreSQL schema to use (and keep) instead of a temporary one.
    #[arg(long, value_name = "NAME")]
    pub(crate) schema: Option<String>,
    /// Push jobs delivered to a no-op endpoint in the push throughput phase.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) push_jobs: usize,
    /// Samples of the push enqueue-to-delivery latency phase.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) push_latency_samples: usize,
    /// Schedules firing every second in the cron fire-lag phase.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) cron_schedules: usize,
    /// Seconds of ticks the cron fire-lag phase measures.
    #[arg(long, default_value_t = 10)]
    pub(crate) cron_seconds: usize,
    /// Idle schedules in the cron CPU phase.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) idle_schedules: usize,
    /// Seconds the cron CPU phase measures.
    #[arg(long, default_value_t = 10)]
    pub(crate) idle_seconds: usize,
}

/// The configuration file and database options that `serve`, `migrate` and `push secret` share, so that all
/// three resolve the database exactly alike.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Configuration file [default: offload.toml in the current directory, if it exists].
    #[arg(long, env = "OFFLOAD_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// SQLite database file, or a postgres:// URL [default: offload.db].
    #[arg(
        long,
        env = "OFFLOAD_DATABASE",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    pub(crate) database: Option<String>,
    /// PostgreSQL schema holding Offload's tables [default: offload].
    #[arg(long, env = "OFFLOAD_SCHEMA", value_name = "NAME")]
    pub(crate) schema: Option<String>,
}

/// `offload migrate`: the database options of `offload serve`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Where the server's configuration and data are.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `offload job ...`
#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Enqueue a job.
    Enqueue(EnqueueArgs),
    /// Show a job with its attempt history.
    Get {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// List jobs, newest first.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Cancel a job (a running job is asked to stop).
    Cancel {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// Make a dead or cancelled job available again.
    Retry {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// Delete a job and its history.
    #[command(visible_alias = "delete")]
    Rm {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
}

/// `offload job enqueue`.
#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// Queue to put the job on.
    pub(crate) queue: String,
    /// JSON payload; `@FILE` reads it from a file, `-` from standard input.
    #[arg(long, allow_hyphen_values = true, value_name = "JSON")]
    pub(crate) payload: Option<String>,
    /// Job name (kind), which workers dispatch on.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Run after this delay, e.g. 30s, 5m, 1h30m.
    #[arg(
        long,
        value_parser = parse_duration,
        allow_hyphen_values = true,
        conflicts_with = "run_at",
        value_name = "DURATION"
    )]
    pub(crate) delay: Option<DurationSpec>,
    /// Run at this instant (RFC 3339, e.g. 2026-06-01T12:00:00Z).
    #[arg(long, value_parser = parse_timestamp, value_name = "RFC3339")]
    pub(crate) run_at: Option<Timestamp>,
    /// Higher runs first (default 0).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub(crate) priority: Option<i32>,
    /// Attempts allowed before the job is dead.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<u32>,
    /// Lease length of one attempt, e.g. 5m; a worker must heartbeat within it.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub(crate) timeout: Option<DurationSpec>,
    /// De-duplication key: enqueueing the same request with the same key returns the first job.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
    /// A label, repeatable.
    #[arg(long = "tag", value_parser = parse_tag, value_name = "KEY=VALUE")]
    pub(crate) tags: Vec<(String, String)>,
    /// Make it a push job: the server POSTs the payload to this URL (signed) instead of handing it to workers.
    #[arg(long, value_name = "URL")]
    pub(crate) target: Option<String>,
    /// With --target: receives a signed POST with the result once the job succeeded.
    #[arg(long, requires = "target", value_name = "URL")]
    pub(crate) callback_url: Option<String>,
    /// With --target: receives a signed POST with the last error once the job is dead.
    #[arg(long, requires = "target", value_name = "URL")]
    pub(crate) failure_callback_url: Option<String>,
}

/// `offload job ls`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Only this state (scheduled, available, running, retrying, succeeded, dead, cancelled).
    #[arg(long)]
    pub(crate) state: Option<JobState>,
    /// Only this job name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Only jobs with this tag.
    #[arg(long, value_parser = parse_tag_filter, value_name = "KEY:VALUE")]
    pub(crate) tag: Option<String>,
    /// Page size (1 to 500; the server's default is 50).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500), value_name = "N")]
    pub(crate) limit: Option<u32>,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    pub(crate) cursor: Option<String>,
}

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

const WORKER_HELP: &str = "\
For each job, COMMAND runs with ARGS (not through a shell), in its own process group, with:
  standard input   the job's payload (JSON), then closed
  environment      the worker's own, plus OFFLOAD_JOB_ID, OFFLOAD_JOB_QUEUE, OFFLOAD_JOB_NAME (when the job has a
                   name), OFFLOAD_JOB_ATTEMPT (1 for the first attempt) and OFFLOAD_JOB_MAX_ATTEMPTS

Outcome:
  exit status 0    the job succeeded. Its result is the standard output: kept as JSON when it is valid JSON,
                   otherwise as a JSON string (one trailing newline removed); no result when the output is empty
                   or larger than 1 MiB.
  anything else    the job failed with the last 4 KiB of standard error as its error (or \"exited with status N\"
                   / \"killed by signal N\" when standard error is empty); the server retries it with backoff.

While a job runs, the worker renews its lease every --heartbeat (default: a third of the job's timeout). When a
user cancels the job, the command is stopped (SIGTERM to its process group, SIGKILL 10s later) and the job ends
as cancelled. When the lease was lost (the job was rescued after missed heartbeats), the command is
stopped and nothing is reported.

The first SIGINT or SIGTERM stops claiming: running jobs finish and report, then the worker exits with status 0.
A second signal stops the running commands, reports their jobs as failed and exits.

Example:
  offload worker --queue images --concurrency 4 -- ./resize.sh --quality 80";

/// `offload worker`.
#[derive(Debug, Args)]
#[command(after_long_help = WORKER_HELP)]
pub(crate) struct WorkerArgs {
    /// Queue to claim jobs from.
    #[arg(long, short)]
    pub(crate) queue: String,
    /// Jobs to run at once.
    #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000), value_name = "N")]
    pub(crate) concurrency: u32,
    /// Worker id recorded on each attempt (default: HOSTNAME-PID).
    #[arg(long, value_name = "ID")]
    pub(crate) worker_id: Option<String>,
    /// Lease renewal interval (default: a third of each job's timeout).
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub(crate) heartbeat: Option<DurationSpec>,
    /// The command to run for each job, and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// A problem with what the user typed, found before or without asking the server. Exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses a job id (a UUID).
pub(crate) fn parse_job_id(text: &str) -> Result<JobId, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "`{text}` is not a job id; ids are UUIDs such as 01900000-0000-7000-8000-000000000001"
        )
    })
}

/// Parses `30s`, `5m`, `1h30m` or integer milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<DurationSpec, String> {
    DurationSpec::parse(text).map_err(|e| e.to_string())
}

/// Parses an RFC 3339 instant with an offset.
pub(crate) fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    text.trim()
        .parse::<Timestamp>()
        .map_err(|_| format!("`{text}` is not an RFC 3339 instant; use e.g. 2026-06-01T12:00:00Z or 2026-06-01T14:00:00+02:00"))
}

/// Parses a `KEY=VALUE` tag; the value may be empty and may itself contain `=`.
pub(crate) fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not a tag; use KEY=VALUE")),
    }
}

/// Parses a tag filter `KEY:VALUE` (also accepting `KEY=VALUE`) into the server's `KEY:VALUE` form.
pub(crate) fn parse_tag_filter(text: &str) -> Result<String, String> {
    let split = text.split_once(':').or_else(|| text.split_once('='));
    match split {
        Some((key, value)) if !key.is_empty() => Ok(format!("{key}:{value}")),
        _ => Err(format!("`{text}` is not a tag filter; use KEY:VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tags_split_at_the_first_separator() {
        assert_eq!(parse_tag("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(
            parse_tag("url=http://x/?a=b"),
            Ok(("url".into(), "http://x/?a=b".into()))
        );
        assert_eq!(parse_tag("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=x").is_err());
        assert_eq!(parse_tag_filter("env:prod").as_deref(), Ok("env:prod"));
        assert_eq!(parse_tag_filter("env=prod").as_deref(), Ok("env:prod"));
        assert_eq!(
            parse_tag_filter("url:http://x").as_deref(),
            Ok("url:http://x")
        );
        assert!(parse_tag_filter("env").is_err());
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
