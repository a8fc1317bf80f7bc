//! The bench phases. Each returns its figure; failures of individual requests abort the run (a bench that
//! silently drops errors would report fiction).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use offload_core::api::{ClaimResponse, CompleteBatchRequest, CompleteItem, FinishBatchResponse};
use offload_sdk::{Client, Job, JobError, Worker};
use serde::Deserialize;
use tokio::sync::{Mutex, mpsc};

use super::BenchOptions;
use super::report::quantile;

/// Shared client state.
pub(crate) struct Ctx {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

/// A throughput figure.
pub(crate) struct Throughput {
    pub(crate) per_s: f64,
}

/// Latency figures.
pub(crate) struct Latency {
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

const DRAIN_QUEUE: &str = "bench-drain";
const LATENCY_QUEUE: &str = "bench-latency";
const SDK_QUEUE: &str = "bench-sdk";

impl Ctx {
    /// GETs `path`; fails on a non-2xx answer.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Bytes> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    }

    /// POSTs `body` as JSON to `path`; fails on a non-2xx answer.
    pub(crate) async fn post(&self, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// PUTs `body` as JSON to `path`; fails on a non-2xx answer.
    pub(crate) async fn put(&self, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
        self.send(reqwest::Method::PUT, path, body).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<Bytes> {
        let resp = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes)
    }
}

/// `count` items in `elapsed` as a rate.
pub(super) fn throughput(count: usize, elapsed: Duration) -> Throughput {
    Throughput {
        per_s: count as f64 / elapsed.as_secs_f64().max(1e-9),
    }
}

/// Posts `body` to `path` `requests` times from `clients` concurrent tasks; fails on any non-2xx answer.
pub(super) async fn post_concurrently(
    ctx: &Ctx,
    path: &'static str,
    body: Bytes,
    clients: usize,
    requests: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, body, http, base) = (
            next.clone(),
            body.clone(),
            ctx.http.clone(),
            ctx.base.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ctx = Ctx { http, base };
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                ctx.post(path, body.clone()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Phase 1: `clients` tasks each post single jobs until `single_jobs` were accepted.
pub(super) async fn single_enqueue(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<Throughput> {
    let body =
        Bytes::from(r#"{"queue":"bench-single","payload":{"to":"user@example.com","n":42}}"#);
    let started = Instant::now();
    post_concurrently(ctx, "/v1/jobs", body, opts.clients, opts.single_jobs).await?;
    Ok(throughput(opts.single_jobs, started.elapsed()))
}

/// Phase 2: `batch_clients` tasks post batches of `batch_size` jobs to the drain queue.
pub(super) async fn batch_enqueue(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    let jobs = fill(ctx, DRAIN_QUEUE, opts).await?;
    Ok(throughput(jobs, started.elapsed()))
}

/// Enqueues about `batch_jobs` jobs (whole batches of `batch_size`) to `queue` from `batch_clients` tasks;
/// returns how many.
async fn fill(ctx: &Ctx, queue: &str, opts: &BenchOptions) -> anyhow::Result<usize> {
    let job = format!(r#"{{"queue":"{queue}","payload":{{"to":"user@example.com","n":42}}}}"#);
    let body = Bytes::from(format!(
        r#"{{"jobs":[{}]}}"#,
        vec![job; opts.batch_size].join(",")
    ));
    let batches = opts.batch_jobs.div_ceil(opts.batch_size);
    post_concurrently(ctx, "/v1/jobs/batch", body, opts.batch_clients, batches).await?;
    Ok(batches * opts.batch_size)
}

/// Phase 3: `workers` pull workers claim up to `claim_batch` jobs and complete them in one request, until
/// the drain queue is empty.
pub(super) async fn drain(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<Throughput> {
    let claim = Bytes::from(format!(
        r#"{{"worker_id":"bench","max_jobs":{}}}"#,
        opts.claim_batch
    ));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..opts.workers {
        let (done, claim, http, base) = (
            done.clone(),
            claim.clone(),
            ctx.http.clone(),
            ctx.base.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ctx = Ctx { http, base };
            loop {
                let got = ctx
                    .post(&format!("/v1/queues/{DRAIN_QUEUE}/claim"), claim.clone())
                    .await?;
                let claimed: ClaimResponse = serde_json::from_slice(&got)?;
                if claimed.jobs.is_empty() {
                    return anyhow::Ok(());
                }
                let n = claimed.jobs.len();
                complete_all(&ctx, claimed).await?;
                done.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let drained = done.load(Ordering::Relaxed);
    if drained < opts.batch_jobs {
        bail!("drain finished with {drained} of {} jobs", opts.batch_jobs);
    }
    Ok(throughput(drained, started.elapsed()))
}

/// The payload of the bench's jobs, as a handler would decode it.
#[derive(Deserialize)]
struct Email {
    #[allow(dead_code)] // decoded like a real handler would, never read: the handler does nothing
    to: String,
    #[allow(dead_code)] // as above
    n: u64,
}

/// A handler that does nothing but decode its payload.
async fn noop(_job: Job<Email>) -> Result<(), JobError> {
    Ok(())
}

/// Phase 3b: the same drain by the SDK's [`Worker`] with a no-op handler, holding as many jobs at once as
/// the raw workers do together (`workers * claim_batch`). Filling the queue is not timed; the clock stops when
/// the last completion is acknowledged.
pub(super) async fn sdk_drain(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<Throughput> {
    let jobs = fill(ctx, SDK_QUEUE, opts).await?;
    let concurrency = opts.workers * opts.claim_batch as usize;
    let worker = Worker::builder(Client::new(&ctx.base)?)
        .queue(SDK_QUEUE, concurrency)
        .claim_batch(opts.claim_batch as usize)
        .worker_id("bench-sdk")
        .fallback(noop)
        .build()?;
    let started = Instant::now();
    let handle = worker.start();
    let ended = |s: &offload_sdk::WorkerStats| {
        (s.succeeded + s.failed + s.refused + s.unreported) as usize >= jobs
    };
    let waited = tokio::time::timeout(Duration::from_secs(600), handle.wait_until(ended)).await;
    let elapsed = started.elapsed();
    let stats = handle.shutdown(Duration::from_secs(10)).await;
    if waited.is_err() || stats.succeeded as usize != jobs {
        bail!("the SDK worker drain ended with {stats:?} for {jobs} jobs");
    }
    Ok(throughput(jobs, elapsed))
}

async fn complete_all(ctx: &Ctx, claimed: ClaimResponse) -> anyhow::Result<()> {
    let jobs = claimed
        .jobs
        .into_iter()
        .map(|j| CompleteItem {
            id: j.id,
            lease_token: j.lease_token,
            result: None,
        })
        .collect();
    let body = serde_json::to_vec(&CompleteBatchRequest { jobs })?;
    let answer: FinishBatchResponse =
        serde_json::from_slice(&ctx.post("/v1/jobs/complete", body.into()).await?)?;
    if let Some(bad) = answer.jobs.iter().find(|r| !r.ok) {
        bail!("completion of {} refused: {:?}", bad.id, bad.code);
    }
    Ok(())
}

/// Phase 4: one job at a time; the time from just before the enqueue request is sent until a long-polling
/// worker holds the job.
pub(super) async fn latency(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<Latency> {
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let (got_tx, mut got_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let worker = {
        let (http, base) = (ctx.http.clone(), ctx.base.clone());
        let samples = opts.latency_samples;
        tokio::spawn(async move {
            let ctx = Ctx { http, base };
            let claim = Bytes::from(r#"{"worker_id":"bench-latency","max_jobs":10,"wait":"5s"}"#);
            let mut seen = 0;
            while seen < samples {
                let got = ctx
                    .post(&format!("/v1/queues/{LATENCY_QUEUE}/claim"), claim.clone())
                    .await?;
                let at = Instant::now();
                let claimed: ClaimResponse = serde_json::from_slice(&got)?;
                for job in &claimed.jobs {
                    let seq: u64 = serde_json::from_str(job.payload.get())?;
                    let _ = got_tx.send((seq, at));
                }
                seen += claimed.jobs.len();
                if !claimed.jobs.is_empty() {
                    complete_all(&ctx, claimed).await?;
                }
            }
            anyhow::Ok(())
        })
    };
    // Let the worker's first long poll reach the server.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut samples = Vec::with_capacity(opts.latency_samples);
    for seq in 0..opts.latency_samples as u64 {
        let body = Bytes::from(format!(r#"{{"queue":"{LATENCY_QUEUE}","payload":{seq}}}"#));
        let t0 = Instant::now();
        sent.lock().await.insert(seq, t0);
        ctx.post("/v1/jobs", body).await?;
        let (got_seq, at) = tokio::time::timeout(Duration::from_secs(10), got_rx.recv())
            .await
            .context("a latency job was not delivered within 10 s")?
            .context("latency worker stopped")?;
        let start = sent
            .lock()
            .await
            .remove(&got_seq)
            .context("unknown latency job")?;
        samples.push(at.duration_since(start).as_secs_f64() * 1000.0);
        // Low load: leave the server idle briefly between jobs, and let the worker's next long poll arrive.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    worker.await??;
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        p50_ms: quantile(&samples, 0.5),
        p99_ms: quantile(&samples, 0.99),
    })
}
