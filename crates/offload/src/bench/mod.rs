//! `offload bench`: end-to-end throughput and latency of a real server on a fresh temporary database.
//!
//! The server runs in this process on 127.0.0.1 with its normal configuration (durable commits included);
//! clients talk plain HTTP to it, as any worker would. Request bodies are built once up front so the figures
//! measure the server, not the client's JSON encoding. Phases:
//! 1. single-job enqueues from many concurrent clients;
//! 2. batch enqueues;
//! 3. drain: pull workers claim in batches and complete in batches until the queue is empty;
//!    3b. the same drain by the SDK's `Worker` with no-op handlers (target: at least 80 % of phase 3);
//! 4. enqueue-to-start latency at low load: one job at a time to a long-polling worker;
//! 5. push deliveries per second to a no-op HTTP endpoint on 127.0.0.1;
//! 6. push enqueue-to-delivery latency at low load;
//! 7. and 8. cron: fire lag of schedules firing every second, and the CPU cost of idle schedules (see `cron`);
//! 9. to 12. durable functions: events ingested per second with two functions subscribed (single sends and
//!    batches), steps per second of a ten-step no-op function through pull workers and through push, and the
//!    overhead one step adds (see `functions`).

mod cron;
mod functions;
mod phases;
mod push;
mod report;

use std::time::Duration;

use anyhow::Context;

use crate::serve::{self, Database, Overrides, ServeConfig};

pub(crate) use report::BenchReport;

/// What to run and how hard.
#[derive(Debug, Clone)]
pub(crate) struct BenchOptions {
    /// Concurrent clients for single-job enqueues.
    pub(crate) clients: usize,
    /// Single-job enqueues in phase 1.
    pub(crate) single_jobs: usize,
    /// Jobs enqueued in batches in phase 2 (and drained in phase 3).
    pub(crate) batch_jobs: usize,
    /// Jobs per batch request.
    pub(crate) batch_size: usize,
    /// Concurrent batch clients.
    pub(crate) batch_clients: usize,
    /// Concurrent pull workers in the drain.
    pub(crate) workers: usize,
    /// Jobs per claim (and per batch completion) in the drain.
    pub(crate) claim_batch: u32,
    /// Samples of the latency phase.
    pub(crate) latency_samples: usize,
    /// SQLite file or PostgreSQL URL; a SQLite file in a temporary directory when absent.
    pub(crate) database: Option<String>,
    /// PostgreSQL schema to use and keep; a temporary one when absent.
    pub(crate) schema: Option<String>,
    /// Push jobs delivered in the push throughput phase.
    pub(crate) push_jobs: usize,
    /// Samples of the push latency phase.
    pub(crate) push_latency_samples: usize,
    /// Schedules firing every second in the cron fire-lag phase.
    pub(crate) cron_schedules: usize,
    /// Seconds of ticks measured in the cron fire-lag phase.
    pub(crate) cron_seconds: usize,
    /// Idle schedules in the cron CPU phase.
    pub(crate) idle_schedules: usize,
    /// Seconds the cron CPU phase measures.
    pub(crate) idle_seconds: usize,
    /// Events sent one per request (from `clients` clients) in the event ingestion phase.
    pub(crate) fn_single_events: usize,
    /// Events sent in batches (from `batch_clients` clients) in the event ingestion phase.
    pub(crate) fn_events: usize,
    /// Runs of the ten-step function executed by pull workers.
    pub(crate) fn_runs: usize,
    /// Runs of the ten-step function executed through push.
    pub(crate) fn_push_runs: usize,
    /// Runs, one at a time, of the step overhead phase (ten samples each).
    pub(crate) step_latency_runs: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            clients: 64,
            single_jobs: 60_000,
            batch_jobs: 400_000,
            batch_size: 1_000,
            batch_clients: 4,
            workers: 4,
            claim_batch: 500,
            latency_samples: 2_000,
            database: None,
            schema: None,
            push_jobs: 100_000,
            push_latency_samples: 1_000,
            cron_schedules: 1_000,
            cron_seconds: 10,
            idle_schedules: 10_000,
            idle_seconds: 10,
            fn_single_events: 5_000,
            fn_events: 20_000,
            fn_runs: 1_000,
            fn_push_runs: 500,
            step_latency_runs: 100,
        }
    }
}

/// Runs every phase against a fresh server and returns the figures.
pub(crate) async fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let database = opts
        .database
        .clone()
        .unwrap_or_else(|| dir.path().join("bench.db").display().to_string());
    let is_postgres =
        Database::parse(&database, None).is_ok_and(|d| matches!(d, Database::Postgres { .. }));
    // A fresh schema for PostgreSQL unless one was named; dropped at the end.
    let temporary_schema = (is_postgres && opts.schema.is_none())
        .then(|| format!("offload_bench_{}", fastrand::u64(..)));
    let config = ServeConfig::resolve(Overrides {
        config: None,
        listen: Some("127.0.0.1:0".into()),
        database: Some(database.clone()),
        schema: opts.schema.clone().or(temporary_schema.clone()),
        api_tokens: Some(Vec::new()),
        ..Overrides::default()
    })?;
    let drop_after = match (&config.database, temporary_schema) {
        (Database::Postgres { url, schema }, Some(_)) => Some((url.clone(), schema.clone())),
        _ => None,
    };
    let report = run_on(&opts, config).await;
    if let Some((url, schema)) = drop_after
        && let Err(e) = offload_store_postgres::drop_schema(&url, &schema).await
    {
        eprintln!("bench: could not drop the temporary schema {schema}: {e}");
    }
    report
}

/// The phases, against a server with `config`.
async fn run_on(opts: &BenchOptions, config: ServeConfig) -> anyhow::Result<BenchReport> {
    let config = ServeConfig {
        max_body_bytes: 256 * 1024 * 1024,
        ..config
    };
    let server = serve::start(&config, None).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.clients.max(opts.workers) * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()?;
    let ctx = phases::Ctx { http, base };

    eprintln!("bench: database {}", config.database.describe());
    let enqueue = phases::single_enqueue(&ctx, opts).await?;
    eprintln!(
        "  single enqueue: {:>9.0} jobs/s ({} clients)",
        enqueue.per_s, opts.clients
    );
    let batch = phases::batch_enqueue(&ctx, opts).await?;
    eprintln!(
        "  batch enqueue:  {:>9.0} jobs/s ({} per batch)",
        batch.per_s, opts.batch_size
    );
    let drain = phases::drain(&ctx, opts).await?;
    eprintln!(
        "  drain:          {:>9.0} jobs/s ({} workers, {} per claim)",
        drain.per_s, opts.workers, opts.claim_batch
    );
    let sdk_drain = phases::sdk_drain(&ctx, opts).await?;
    eprintln!(
        "  SDK drain:      {:>9.0} jobs/s ({:.0} % of the raw drain)",
        sdk_drain.per_s,
        100.0 * sdk_drain.per_s / drain.per_s.max(1e-9)
    );
    let latency = phases::latency(&ctx, opts).await?;
    eprintln!(
        "  enqueue->start: p50 {:.3} ms, p99 {:.3} ms ({} samples)",
        latency.p50_ms, latency.p99_ms, opts.latency_samples
    );
    let mut endpoint = push::endpoint().await?;
    let push_rate = push::throughput(&ctx, opts, &endpoint).await?;
    eprintln!(
        "  push delivery:  {:>9.0} jobs/s ({} jobs to one no-op endpoint)",
        push_rate.per_s, opts.push_jobs
    );
    let push_latency = push::latency(&ctx, opts, &mut endpoint).await?;
    eprintln!(
        "  enqueue->push:  p50 {:.3} ms, p99 {:.3} ms ({} samples)",
        push_latency.p50_ms, push_latency.p99_ms, opts.push_latency_samples
    );
    let client = offload_sdk::Client::new(&ctx.base)?;
    let cron = cron::run(&client, opts).await?;
    eprintln!(
        "  cron fire lag:  p50 {:.3} ms, p99 {:.3} ms ({} schedules every second, {} ticks)",
        cron.lag_p50_ms, cron.lag_p99_ms, opts.cron_schedules, cron.ticks
    );
    eprintln!(
        "  cron idle CPU:  {:.2} % of a core ({} idle schedules)",
        cron.idle_cpu_pct, opts.idle_schedules
    );
    let ingest = functions::ingest(&ctx, opts).await?;
    eprintln!(
        "  events single:  {:>9.0} events/s ({} clients, 2 functions subscribed)",
        ingest.single.per_s, opts.clients
    );
    eprintln!(
        "  events batched: {:>9.0} events/s ({} per request, 2 functions subscribed)",
        ingest.batched.per_s,
        opts.batch_size.min(1_000)
    );
    let pull_steps = functions::pull_steps(&ctx, opts).await?;
    eprintln!(
        "  steps, pull:    {:>9.0} steps/s ({} runs of {} steps, {} workers, {} completions retried after 503)",
        pull_steps.rate.per_s,
        opts.fn_runs,
        functions::STEPS,
        opts.workers,
        pull_steps.retried
    );
    let push_steps = functions::push_steps(&ctx, opts).await?;
    eprintln!(
        "  steps, push:    {:>9.0} steps/s ({} runs of {} steps, one no-op endpoint)",
        push_steps.per_s,
        opts.fn_push_runs,
        functions::STEPS
    );
    let step = functions::step_latency(&ctx, opts).await?;
    eprintln!(
        "  step overhead:  p50 {:.3} ms, p99 {:.3} ms ({} samples, pull)",
        step.p50_ms,
        step.p99_ms,
        opts.step_latency_runs * functions::STEPS
    );
    server.stop().await?;
    Ok(BenchReport {
        enqueue_per_s: enqueue.per_s,
        batch_enqueue_per_s: batch.per_s,
        drain_per_s: drain.per_s,
        sdk_drain_per_s: sdk_drain.per_s,
        p50_ms: latency.p50_ms,
        p99_ms: latency.p99_ms,
        push_per_s: push_rate.per_s,
        push_p50_ms: push_latency.p50_ms,
        push_p99_ms: push_latency.p99_ms,
        cron_lag_p50_ms: cron.lag_p50_ms,
        cron_lag_p99_ms: cron.lag_p99_ms,
        cron_idle_cpu_pct: cron.idle_cpu_pct,
        events_single_per_s: ingest.single.per_s,
        events_batch_per_s: ingest.batched.per_s,
        fn_pull_steps_per_s: pull_steps.rate.per_s,
        fn_push_steps_per_s: push_steps.per_s,
        step_p50_ms: step.p50_ms,
        step_p99_ms: step.p99_ms,
    })
}
