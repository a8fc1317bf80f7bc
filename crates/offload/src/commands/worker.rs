//! `offload worker`: a generic pull worker that runs a command for each job of a queue.
//!
//! Invariants: at most `--concurrency` jobs run at once, and a claim never asks for more jobs than there are
//! free slots. Stopping has two stages with two tokens (STYLE.md §8): `fetch` stops claiming (first signal),
//! `work` stops running commands (second signal); every job task is on one `TaskTracker`, which the worker
//! drains before it exits, so each claimed job is reported before the process ends.

mod child;
mod run;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use offload_core::api::{ClaimRequest, MAX_WORKER_ID_LEN};
use offload_core::spec::validate_queue_name;
use offload_core::{ClaimedJob, DurationSpec};
use offload_sdk::Error;
use offload_sdk::retry::Backoff;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::GlobalArgs;
use super::parse::{UsageError, parse_duration};
use crate::output;
use run::Shared;

/// Long-poll wait of one claim.
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// An empty claim answered faster than this is followed by this pause, so a server that does not long-poll
/// (or a paused queue) is not hammered.
const MIN_CLAIM_CYCLE: Duration = Duration::from_secs(1);

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

/// Runs the worker until a signal stops it (exit status 0) or the server refuses its claims for good.
pub(crate) async fn run(global: &GlobalArgs, args: WorkerArgs) -> Result<()> {
    validate_queue_name(&args.queue).map_err(|m| UsageError(format!("--queue: {m}")))?;
    let worker_id = match args.worker_id {
        Some(id) => id,
        None => default_worker_id(),
    };
    if worker_id.trim().is_empty() || worker_id.len() > MAX_WORKER_ID_LEN {
        return Err(UsageError(format!(
            "--worker-id: must be 1 to {MAX_WORKER_ID_LEN} bytes"
        ))
        .into());
    }
    let Some((program, program_args)) = args.command.split_first() else {
        return Err(UsageError("give the command to run after `--`".into()).into());
    };
    check_program(program)?;
    let shared = Arc::new(Shared {
        client: super::client(global)?,
        program: program.clone(),
        args: program_args.to_vec(),
        heartbeat: args.heartbeat.map(|d| d.0),
    });

    let fetch = CancellationToken::new();
    let work = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(fetch.clone(), work.clone()));
    let tracker = TaskTracker::new();
    info!(
        "worker {worker_id} started: queue {}, concurrency {}, server {}, command {}",
        args.queue,
        args.concurrency,
        shared.client.server(),
        args.command.join(" ")
    );
    let claimer = Claimer {
        shared,
        queue: args.queue,
        worker_id,
        concurrency: args.concurrency,
    };
    let result = claimer.run(&fetch, &work, &tracker).await;
    tracker.close();
    if !tracker.is_empty() {
        info!("waiting for {} running job(s) to finish", tracker.len());
    }
    tracker.wait().await;
    signals.abort();
    info!("worker stopped");
    result
}

struct Claimer {
    shared: Arc<Shared>,
    queue: String,
    worker_id: String,
    concurrency: u32,
}

impl Claimer {
    /// Claims jobs into free slots until `fetch` is cancelled; errors only when the server refuses the claims
    /// themselves (bad token, invalid request), which waiting will not fix.
    async fn run(
        &self,
        fetch: &CancellationToken,
        work: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<()> {
        let slots = Arc::new(Semaphore::new(self.concurrency as usize));
        let mut backoff = Backoff::new();
        loop {
            let first = tokio::select! {
                biased;
                _ = fetch.cancelled() => return Ok(()),
                permit = slots.clone().acquire_owned() => permit.context("the job slots were closed")?,
            };
            let mut permits = vec![first];
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                permits.push(permit);
            }
            let request = ClaimRequest {
                worker_id: self.worker_id.clone(),
                max_jobs: Some(u32::try_from(permits.len()).unwrap_or(u32::MAX)),
                wait: Some(CLAIM_WAIT.into()),
            };
            let asked = Instant::now();
            // Stopping drops an in-flight long poll. The server then stops waiting; only a job it claimed in
            // that very instant goes unanswered, and is rescued when its lease expires.
            let answer = tokio::select! {
                biased;
                _ = fetch.cancelled() => return Ok(()),
                answer = self.shared.client.claim(&self.queue, &request) => answer,
            };
            match answer {
                Ok(answer) => {
                    backoff.reset();
                    let got_none = answer.jobs.is_empty();
                    for job in answer.jobs {
                        self.start(job, permits.pop(), work, tracker);
                    }
                    if got_none
                        && asked.elapsed() < MIN_CLAIM_CYCLE
                        && pause(fetch, MIN_CLAIM_CYCLE).await
                    {
                        return Ok(());
                    }
                }
                Err(e) if is_fatal(&e) => {
                    fetch.cancel();
                    return Err(e).context(format!(
                        "the server refused to hand out jobs from queue {}",
                        self.queue
                    ));
                }
                Err(e) => {
                    let delay = backoff.next_pause();
                    warn!(
                        "cannot claim jobs: {e}; trying again in {}",
                        output::age(millis(delay))
                    );
                    if pause(fetch, delay).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn start(
        &self,
        job: ClaimedJob,
        permit: Option<OwnedSemaphorePermit>,
        work: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        if permit.is_none() {
            warn!(
                "job {}: the server handed out more jobs than asked for; running it anyway",
                job.id
            );
        }
        let shared = self.shared.clone();
        let work = work.clone();
        tracker.spawn(async move {
            run::run(&shared, job, work).await;
            drop(permit);
        });
    }
}

/// Waits `delay` unless `fetch` is cancelled first; true when cancelled.
async fn pause(fetch: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        _ = fetch.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

/// Claim failures that retrying will not fix.
fn is_fatal(e: &Error) -> bool {
    matches!(e, Error::InvalidToken | Error::InvalidUrl { .. })
        || matches!(
            e,
            Error::Api {
                status: 400 | 401 | 403 | 422,
                ..
            }
        )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// First SIGINT/SIGTERM: stop claiming. Second: stop the running commands.
async fn watch_signals(fetch: CancellationToken, work: CancellationToken) {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(e) => {
            warn!("cannot listen for signals: {e}");
            return;
        }
    };
    signals.next().await;
    info!(
        "stopping: no more jobs will be claimed; running jobs finish first (signal again to stop them now)"
    );
    fetch.cancel();
    signals.next().await;
    warn!("stopping running jobs now");
    work.cancel();
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) {
        // If Ctrl-C cannot be watched, never report a signal rather than stopping at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Refuses a command that cannot be found, so a typo fails at start instead of failing every job.
fn check_program(program: &str) -> Result<(), UsageError> {
    let found = if program.contains(std::path::MAIN_SEPARATOR) || program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    if found {
        Ok(())
    } else if program.contains('/') {
        Err(UsageError(format!("command `{program}` not found")))
    } else {
        Err(UsageError(format!("command `{program}` not found in PATH")))
    }
}

/// `HOSTNAME-PID`: unique per process on a machine, and readable in the attempt history.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_commands_are_refused_up_front() {
        assert!(check_program("sh").is_ok());
        assert_eq!(
            check_program("no-such-command-offload").unwrap_err().0,
            "command `no-such-command-offload` not found in PATH"
        );
        assert!(check_program("./no/such/script.sh").is_err());
    }

    #[test]
    fn only_refusals_of_the_claim_itself_stop_the_worker() {
        assert!(is_fatal(&Error::InvalidToken));
        assert!(!is_fatal(&Error::Decode {
            status: 502,
            message: String::new()
        }));
    }

    #[test]
    fn default_worker_ids_name_host_and_process() {
        let id = default_worker_id();
        assert!(id.ends_with(&format!("-{}", std::process::id())), "{id}");
        assert!(id.len() <= MAX_WORKER_ID_LEN);
    }
}
