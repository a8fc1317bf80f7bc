//! `offload bench`: its command-line definition, turned into the options of a run.

use anyhow::Result;
use clap::Args;
use offload_core::api::{MAX_BATCH_JOBS, MAX_CLAIM_JOBS};

use crate::bench::{self, BenchOptions};

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
    /// Events sent one per request in the event ingestion phase (two functions subscribed).
    #[arg(long, default_value_t = 5_000)]
    pub(crate) fn_single_events: usize,
    /// Events sent in batches (up to 1,000 per request) in the event ingestion phase.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) fn_events: usize,
    /// Runs of a ten-step no-op function executed by HTTP pull workers.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) fn_runs: usize,
    /// Runs of the ten-step function executed through push to a no-op endpoint.
    #[arg(long, default_value_t = 500)]
    pub(crate) fn_push_runs: usize,
    /// Runs, one at a time, of the step overhead phase (ten samples each).
    #[arg(long, default_value_t = 100)]
    pub(crate) step_latency_runs: usize,
}

/// Runs the benchmark and prints its report (ending with the `RESULT` line).
pub(crate) async fn run(args: BenchArgs) -> Result<()> {
    let defaults = BenchOptions::default();
    let report = bench::run(BenchOptions {
        clients: args.clients.max(1),
        single_jobs: args.single_jobs,
        batch_jobs: args.batch_jobs.max(1),
        batch_size: args.batch_size.clamp(1, MAX_BATCH_JOBS),
        workers: args.workers.max(1),
        claim_batch: args.claim_batch.clamp(1, MAX_CLAIM_JOBS),
        latency_samples: args.latency_samples.max(1),
        database: args.database,
        push_jobs: args.push_jobs.max(1),
        push_latency_samples: args.push_latency_samples.max(1),
        cron_schedules: args.cron_schedules.max(1),
        cron_seconds: args.cron_seconds.max(1),
        idle_schedules: args.idle_schedules,
        idle_seconds: args.idle_seconds.max(1),
        schema: args.schema,
        fn_single_events: args.fn_single_events,
        fn_events: args.fn_events.max(1),
        fn_runs: args.fn_runs.max(1),
        fn_push_runs: args.fn_push_runs.max(1),
        step_latency_runs: args.step_latency_runs.max(1),
        ..defaults
    })
    .await?;
    println!("{report}");
    Ok(())
}
