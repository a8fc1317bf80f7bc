//! The cron phases of the bench, through the API as any user would:
//! 5. fire lag: `cron_schedules` schedules firing every second onto one queue, taken by a long-polling
//!    worker; the lag of a tick is from its fire time to the moment the waiting worker's claim of its job
//!    began (the attempt's start), which bounds "tick to job available" from above;
//! 6. idle cost: `idle_schedules` schedules that do not fire during the phase; the process's CPU time over
//!    the phase, as a share of one core.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::try_join_all;
use offload_core::Timestamp;
use offload_core::api::{ClaimRequest, ListJobsQuery};
use offload_core::cron::{JobTemplateSpec, Overlap, ScheduleSpec};
use offload_sdk::Client;

use super::BenchOptions;
use super::report::quantile;

const CRON_QUEUE: &str = "bench-cron";

/// Figures of the cron phases.
pub(super) struct CronFigures {
    pub(super) lag_p50_ms: f64,
    pub(super) lag_p99_ms: f64,
    pub(super) ticks: usize,
    pub(super) idle_cpu_pct: f64,
}

fn spec(cron: &str, queue: &str) -> ScheduleSpec {
    ScheduleSpec {
        cron: cron.to_owned(),
        job: JobTemplateSpec {
            queue: queue.to_owned(),
            ..JobTemplateSpec::default()
        },
        overlap: Some(Overlap::Allow),
        ..ScheduleSpec::default()
    }
}

/// Creates `n` schedules named `{prefix}-{i}` with 16 concurrent clients.
async fn create(
    client: &Client,
    prefix: &str,
    n: usize,
    cron: &str,
    queue: &str,
) -> anyhow::Result<()> {
    let spec = spec(cron, queue);
    for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
        try_join_all(chunk.iter().map(|i| {
            let (client, spec) = (client.clone(), spec.clone());
            async move { client.put_schedule(&format!("{prefix}-{i}"), &spec).await }
        }))
        .await
        .context("creating bench schedules")?;
    }
    Ok(())
}

async fn delete(client: &Client, prefix: &str, n: usize) -> anyhow::Result<()> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
        try_join_all(chunk.iter().map(|i| {
            let client = client.clone();
            async move { client.delete_schedule(&format!("{prefix}-{i}")).await }
        }))
        .await
        .context("deleting bench schedules")?;
    }
    Ok(())
}

/// Runs both cron phases.
pub(super) async fn run(client: &Client, opts: &BenchOptions) -> anyhow::Result<CronFigures> {
    let (lag_p50_ms, lag_p99_ms, ticks) = fire_lag(client, opts).await?;
    let idle_cpu_pct = idle_cpu(client, opts).await?;
    Ok(CronFigures {
        lag_p50_ms,
        lag_p99_ms,
        ticks,
        idle_cpu_pct,
    })
}

/// Phase 5: returns (p50, p99, measured ticks).
async fn fire_lag(client: &Client, opts: &BenchOptions) -> anyhow::Result<(f64, f64, usize)> {
    let n = opts.cron_schedules;
    create(client, "bench-every-second", n, "* * * * * *", CRON_QUEUE).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    // One worker claims (and keeps) every job as soon as it is available; completing them would only add
    // writes that delay the next tick.
    let workers: Vec<_> = (0..1)
        .map(|w| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let claim = ClaimRequest {
                    worker_id: format!("bench-cron-{w}"),
                    max_jobs: Some(1000),
                    wait: Some(Duration::from_secs(2).into()),
                };
                while !stop.is_cancelled() {
                    client.claim(CRON_QUEUE, &claim).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    // Measure whole seconds after a warm-up second, so every measured tick fires all schedules.
    let warm_up = Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(2))?
        .round(jiff::Unit::Second)?;
    let until = warm_up.checked_add(jiff::SignedDuration::from_secs(opts.cron_seconds as i64))?;
    tokio::time::sleep(
        Duration::try_from(Timestamp::now().duration_until(until)).unwrap_or_default(),
    )
    .await;
    delete(client, "bench-every-second", n).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    for w in workers {
        w.await??;
    }

    let mut lags = Vec::new();
    let mut query = ListJobsQuery {
        queue: Some(CRON_QUEUE.into()),
        limit: Some(500),
        ..ListJobsQuery::default()
    };
    loop {
        let page = client.list_jobs(&query).await?;
        for job in &page.items {
            let Some(by) = &job.schedule else { continue };
            if by.fire_at < warm_up || by.fire_at >= until {
                continue;
            }
            let Some(claimed) = job.attempted_at else {
                bail!("job {} of tick {} was never claimed", job.id, by.fire_at);
            };
            lags.push(claimed.duration_since(by.fire_at).as_secs_f64() * 1000.0);
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let expected = n * opts.cron_seconds;
    if lags.len() != expected {
        bail!(
            "{} ticks fired in the measured {} s of {n} every-second schedules; expected {expected}",
            lags.len(),
            opts.cron_seconds
        );
    }
    lags.sort_by(f64::total_cmp);
    Ok((quantile(&lags, 0.5), quantile(&lags, 0.99), lags.len()))
}

/// Phase 6: the server's CPU share of one core while `idle_schedules` schedules wait.
async fn idle_cpu(client: &Client, opts: &BenchOptions) -> anyhow::Result<f64> {
    create(
        client,
        "bench-idle",
        opts.idle_schedules,
        "0 0 1 1 *",
        "bench-idle",
    )
    .await?;
    // Let the enqueuer settle after the burst of changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, wall0) = (process_cpu()?, Instant::now());
    tokio::time::sleep(Duration::from_secs(opts.idle_seconds as u64)).await;
    let (cpu1, wall) = (process_cpu()?, wall0.elapsed());
    delete(client, "bench-idle", opts.idle_schedules).await?;
    Ok((cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64() * 100.0)
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux, 100 ticks per second).
fn process_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name (which may contain spaces) start at state; utime and stime are the
    // 12th and 13th of them.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("unexpected /proc/self/stat")?
            .parse()
            .context("unexpected /proc/self/stat")
    };
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}
