//! The push phases of the bench: delivery throughput to a local no-op endpoint, and enqueue-to-delivery
//! latency at low load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes as Body;
use axum::extract::State;
use bytes::Bytes;
use offload_core::JobState;
use offload_core::api::QueueList;
use tokio::sync::mpsc;

use super::BenchOptions;
use super::phases::{Ctx, Latency, Throughput};
use super::report::quantile;

const PUSH_QUEUE: &str = "bench-push";
const PUSH_LATENCY_QUEUE: &str = "bench-push-latency";

/// The no-op endpoint: answers 204 at once; reports the arrival of latency samples.
#[derive(Clone)]
struct Sink {
    hits: Arc<AtomicUsize>,
    arrivals: mpsc::UnboundedSender<(u64, Instant)>,
}

async fn noop(State(sink): State<Sink>) -> axum::http::StatusCode {
    sink.hits.fetch_add(1, Ordering::Relaxed);
    axum::http::StatusCode::NO_CONTENT
}

async fn sample(State(sink): State<Sink>, body: Body) -> axum::http::StatusCode {
    let at = Instant::now();
    if let Ok(seq) = serde_json::from_slice::<u64>(&body) {
        let _ = sink.arrivals.send((seq, at));
    }
    axum::http::StatusCode::NO_CONTENT
}

/// A running no-op endpoint.
pub(super) struct Endpoint {
    url: String,
    arrivals: mpsc::UnboundedReceiver<(u64, Instant)>,
}

/// Starts the endpoint on 127.0.0.1 (same machine, as the target of the bench says).
pub(super) async fn endpoint() -> anyhow::Result<Endpoint> {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Sink {
        hits: Arc::default(),
        arrivals: tx,
    };
    let app = axum::Router::new()
        .route("/noop", axum::routing::post(noop))
        .route("/sample", axum::routing::post(sample))
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Endpoint { url, arrivals: rx })
}

/// Deliveries per second: `push_jobs` push jobs are enqueued on a paused queue, which is then resumed; the
/// clock runs from the resume until every job is recorded as succeeded.
pub(super) async fn throughput(
    ctx: &Ctx,
    opts: &BenchOptions,
    ep: &Endpoint,
) -> anyhow::Result<Throughput> {
    ctx.post(&format!("/v1/queues/{PUSH_QUEUE}/pause"), Bytes::new())
        .await?;
    let job = format!(
        r#"{{"queue":"{PUSH_QUEUE}","payload":{{"to":"user@example.com","n":42}},"target":{{"url":"{}/noop"}}}}"#,
        ep.url
    );
    let batch = opts.batch_size.min(opts.push_jobs.max(1));
    let body = Bytes::from(format!(r#"{{"jobs":[{}]}}"#, vec![job; batch].join(",")));
    let batches = opts.push_jobs.div_ceil(batch);
    for _ in 0..batches {
        ctx.post("/v1/jobs/batch", body.clone()).await?;
    }
    let total = batches * batch;
    let started = Instant::now();
    ctx.post(&format!("/v1/queues/{PUSH_QUEUE}/resume"), Bytes::new())
        .await?;
    let deadline = started + Duration::from_secs(600);
    loop {
        let queues: QueueList = serde_json::from_slice(&ctx.get("/v1/queues").await?)?;
        let counts = queues.queues.iter().find(|q| q.name == PUSH_QUEUE);
        let done = counts.map_or(0, |q| {
            q.counts.get(&JobState::Succeeded).copied().unwrap_or(0)
        });
        let failed = counts.map_or(0, |q| {
            q.counts.get(&JobState::Dead).copied().unwrap_or(0)
                + q.counts.get(&JobState::Retrying).copied().unwrap_or(0)
        });
        if failed > 0 {
            bail!("{failed} push deliveries failed against the no-op endpoint");
        }
        if done as usize >= total {
            break;
        }
        if Instant::now() > deadline {
            bail!("push throughput: only {done} of {total} delivered in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Throughput {
        per_s: total as f64 / started.elapsed().as_secs_f64().max(1e-9),
    })
}

/// Enqueue-to-delivery latency at low load: one push job at a time, from just before its enqueue request
/// is sent until the endpoint receives it.
pub(super) async fn latency(
    ctx: &Ctx,
    opts: &BenchOptions,
    ep: &mut Endpoint,
) -> anyhow::Result<Latency> {
    let mut samples = Vec::with_capacity(opts.push_latency_samples);
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    for seq in 0..opts.push_latency_samples as u64 {
        let body = Bytes::from(format!(
            r#"{{"queue":"{PUSH_LATENCY_QUEUE}","payload":{seq},"target":{{"url":"{}/sample"}}}}"#,
            ep.url
        ));
        let t0 = Instant::now();
        sent.insert(seq, t0);
        ctx.post("/v1/jobs", body).await?;
        let (got, at) = tokio::time::timeout(Duration::from_secs(10), ep.arrivals.recv())
            .await
            .context("a push latency job was not delivered within 10 s")?
            .context("push endpoint stopped")?;
        let start = sent.remove(&got).context("unknown push latency job")?;
        samples.push(at.duration_since(start).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        p50_ms: quantile(&samples, 0.5),
        p99_ms: quantile(&samples, 0.99),
    })
}
