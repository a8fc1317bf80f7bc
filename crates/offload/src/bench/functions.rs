//! The durable-function phases of the bench: events ingested with two functions subscribed, steps per second
//! of a ten-step no-op function through HTTP pull workers and through push to a local endpoint, and the
//! overhead one step adds (from a step's answer to the next call's delivery to a worker).
//!
//! Workers speak the raw call protocol over HTTP (`docs/functions-protocol.md`), as the drain phase speaks the
//! job protocol: a no-op function answers the first step missing from the call's `steps`, and `done` once all
//! [`STEPS`] are recorded, so a run is [`STEPS`] + 1 calls. Every phase uses its own functions and events, so
//! calls left over by one phase never reach another's workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes as Body;
use bytes::Bytes;
use offload_core::JobState;
use offload_core::api::{
    ClaimResponse, CompleteBatchRequest, CompleteItem, FinishBatchResponse, QueueList,
};
use offload_core::job::ClaimedJob;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::BenchOptions;
use super::phases::{Ctx, Latency, Throughput};
use super::report::quantile;

/// Steps of the bench's no-op function.
pub(super) const STEPS: usize = 10;
/// The most events one `POST /v1/events` accepts.
const MAX_EVENTS_PER_REQUEST: usize = 1_000;
/// Attempts of one batch completion answered 503 before the pull phase gives up.
const COMPLETE_TRIES: usize = 5;

const INGEST_EVENT: &str = "bench/fn.ingest";
const INGEST_FUNCTIONS: [&str; 2] = ["bench-fn-ingest-a", "bench-fn-ingest-b"];
const PULL_EVENT: &str = "bench/fn.pull";
const PULL_FUNCTION: &str = "bench-fn-pull";
const PUSH_EVENT: &str = "bench/fn.push";
const PUSH_FUNCTION: &str = "bench-fn-push";
const LATENCY_EVENT: &str = "bench/fn.latency";
const LATENCY_FUNCTION: &str = "bench-fn-latency";

/// Events ingested per second, with two pull functions subscribed (each event starts two runs).
pub(crate) struct Ingest {
    /// Events sent one per request from `clients` concurrent clients.
    pub(crate) single: Throughput,
    /// Events sent in requests of up to 1,000 from `batch_clients` concurrent clients.
    pub(crate) batched: Throughput,
}

/// Steps per second through pull workers, and how many batch completions the server asked to retry.
pub(crate) struct PullSteps {
    pub(crate) rate: Throughput,
    /// Batch completions answered 503 and sent again.
    pub(crate) retried: usize,
}

/// The part of a call request the no-op function reads.
#[derive(Deserialize)]
struct Call {
    #[serde(default)]
    steps: BTreeMap<String, IgnoredAny>,
}

/// The no-op function's answer to a call that holds `recorded` steps, and whether it ends the run.
fn answer(recorded: usize) -> (&'static str, bool) {
    const ANSWERS: [&str; STEPS] = [
        r#"{"steps":[{"id":"s0","op":"run"}]}"#,
        r#"{"steps":[{"id":"s1","op":"run"}]}"#,
        r#"{"steps":[{"id":"s2","op":"run"}]}"#,
        r#"{"steps":[{"id":"s3","op":"run"}]}"#,
        r#"{"steps":[{"id":"s4","op":"run"}]}"#,
        r#"{"steps":[{"id":"s5","op":"run"}]}"#,
        r#"{"steps":[{"id":"s6","op":"run"}]}"#,
        r#"{"steps":[{"id":"s7","op":"run"}]}"#,
        r#"{"steps":[{"id":"s8","op":"run"}]}"#,
        r#"{"steps":[{"id":"s9","op":"run"}]}"#,
    ];
    match ANSWERS.get(recorded) {
        Some(a) => (a, false),
        None => (r#"{"done":true}"#, true),
    }
}

/// The answer to one claimed call job.
fn answer_job(job: &ClaimedJob) -> anyhow::Result<(Box<RawValue>, bool)> {
    let call: Call = serde_json::from_str(job.payload.get()).context("a call request")?;
    let (text, done) = answer(call.steps.len());
    Ok((RawValue::from_string(text.to_owned())?, done))
}

/// Registers (or replaces) a function subscribed to `event`; `target` makes it a push function.
async fn register(ctx: &Ctx, id: &str, event: &str, target: Option<&str>) -> anyhow::Result<()> {
    let mut spec = serde_json::json!({ "triggers": [{ "event": event }], "retries": 0 });
    if let Some(url) = target {
        spec["target"] = serde_json::json!({ "url": url });
    }
    ctx.put(
        &format!("/v1/functions/{id}"),
        serde_json::to_vec(&spec)?.into(),
    )
    .await?;
    Ok(())
}

/// A `POST /v1/events` body of `count` events named `name` (batched when more than one).
fn events_body(name: &str, count: usize) -> Bytes {
    let event = format!(r#"{{"name":"{name}","data":{{"order_id":42,"plan":"pro"}}}}"#);
    if count == 1 {
        return Bytes::from(event);
    }
    Bytes::from(format!(
        r#"{{"events":[{}]}}"#,
        vec![event; count].join(",")
    ))
}

/// Sends `runs` events named `name` in batches, one after the other; returns how many were sent.
async fn start_runs(ctx: &Ctx, name: &str, runs: usize) -> anyhow::Result<()> {
    let batch = MAX_EVENTS_PER_REQUEST.min(runs.max(1));
    let mut left = runs;
    while left > 0 {
        let n = batch.min(left);
        ctx.post("/v1/events", events_body(name, n)).await?;
        left -= n;
    }
    Ok(())
}

/// Phase 9: events ingested per second, single sends then batches, into two subscribed pull functions
/// whose calls are left queued (ingestion, not execution, is measured).
pub(super) async fn ingest(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<Ingest> {
    for id in INGEST_FUNCTIONS {
        register(ctx, id, INGEST_EVENT, None).await?;
    }
    let started = Instant::now();
    super::phases::post_concurrently(
        ctx,
        "/v1/events",
        events_body(INGEST_EVENT, 1),
        opts.clients,
        opts.fn_single_events,
    )
    .await?;
    let single = super::phases::throughput(opts.fn_single_events, started.elapsed());

    let batch = MAX_EVENTS_PER_REQUEST.min(opts.batch_size);
    let batches = opts.fn_events.div_ceil(batch);
    let started = Instant::now();
    super::phases::post_concurrently(
        ctx,
        "/v1/events",
        events_body(INGEST_EVENT, batch),
        opts.batch_clients,
        batches,
    )
    .await?;
    let batched = super::phases::throughput(batches * batch, started.elapsed());
    Ok(Ingest { single, batched })
}

/// Phase 10: steps per second through pull workers. `fn_runs` runs are started (not timed), then `workers`
/// workers claim up to `claim_batch` calls, answer each with its next step and complete them in one request;
/// the clock stops when the last run's final answer is acknowledged.
pub(super) async fn pull_steps(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<PullSteps> {
    register(ctx, PULL_FUNCTION, PULL_EVENT, None).await?;
    start_runs(ctx, PULL_EVENT, opts.fn_runs).await?;
    let claim = Bytes::from(format!(
        r#"{{"worker_id":"bench-fn","max_jobs":{},"wait":"200ms"}}"#,
        opts.claim_batch
    ));
    let finished = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let runs = opts.fn_runs;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..opts.workers {
        let (finished, retried, claim, http, base) = (
            finished.clone(),
            retried.clone(),
            claim.clone(),
            ctx.http.clone(),
            ctx.base.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ctx = Ctx { http, base };
            let mut ended = None;
            while finished.load(Ordering::Relaxed) < runs {
                let got = ctx
                    .post(&format!("/v1/queues/{PULL_FUNCTION}/claim"), claim.clone())
                    .await?;
                let claimed: ClaimResponse = serde_json::from_slice(&got)?;
                if claimed.jobs.is_empty() {
                    continue;
                }
                let mut done = 0;
                let mut jobs = Vec::with_capacity(claimed.jobs.len());
                for job in &claimed.jobs {
                    let (result, ends) = answer_job(job)?;
                    done += usize::from(ends);
                    jobs.push(CompleteItem {
                        id: job.id,
                        lease_token: job.lease_token,
                        result: Some(result),
                    });
                }
                complete(&ctx, jobs, &retried).await?;
                if finished.fetch_add(done, Ordering::Relaxed) + done >= runs {
                    ended = Some(Instant::now());
                }
            }
            anyhow::Ok(ended)
        }));
    }
    let mut ended = None;
    for t in tasks {
        ended = ended.max(t.await??);
    }
    let ended = ended.context("the pull function phase ended without its last run")?;
    Ok(PullSteps {
        rate: super::phases::throughput(runs * STEPS, ended.duration_since(started)),
        retried: retried.load(Ordering::Relaxed),
    })
}

/// Completes claimed calls in one request; fails if any completion is refused. A 503 ("nothing was
/// written, try again") is retried, as a worker would, up to [`COMPLETE_TRIES`] times; each retry is counted
/// in `retried` so the report shows it.
async fn complete(ctx: &Ctx, jobs: Vec<CompleteItem>, retried: &AtomicUsize) -> anyhow::Result<()> {
    let body = Bytes::from(serde_json::to_vec(&CompleteBatchRequest { jobs })?);
    let url = format!("{}/v1/jobs/complete", ctx.base);
    let mut tries = 0;
    let got = loop {
        tries += 1;
        let resp = ctx
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .context("POST /v1/jobs/complete")?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && tries < COMPLETE_TRIES {
            retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if !status.is_success() {
            bail!(
                "POST /v1/jobs/complete: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        break bytes;
    };
    let answer: FinishBatchResponse = serde_json::from_slice(&got)?;
    if let Some(bad) = answer.jobs.iter().find(|r| !r.ok) {
        bail!("completion of call {} refused: {:?}", bad.id, bad.code);
    }
    Ok(())
}

/// The no-op push endpoint of a function: answers each call with its next step.
async fn push_call(body: Body) -> axum::response::Response {
    use axum::response::IntoResponse;
    match serde_json::from_slice::<Call>(&body) {
        Ok(call) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            answer(call.steps.len()).0,
        )
            .into_response(),
        Err(_) => axum::http::StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Starts the function endpoint on 127.0.0.1; returns its URL.
async fn push_endpoint() -> anyhow::Result<String> {
    let app = axum::Router::new().route("/fn", axum::routing::post(push_call));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/fn", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Phase 11: steps per second through push. The function's queue is paused while `fn_push_runs` runs are
/// started, then resumed; the clock runs from the resume until every call job of every run succeeded.
pub(super) async fn push_steps(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<Throughput> {
    let url = push_endpoint().await?;
    register(ctx, PUSH_FUNCTION, PUSH_EVENT, Some(&url)).await?;
    ctx.post(&format!("/v1/queues/{PUSH_FUNCTION}/pause"), Bytes::new())
        .await?;
    start_runs(ctx, PUSH_EVENT, opts.fn_push_runs).await?;
    let calls = opts.fn_push_runs * (STEPS + 1);
    let started = Instant::now();
    ctx.post(&format!("/v1/queues/{PUSH_FUNCTION}/resume"), Bytes::new())
        .await?;
    let deadline = started + Duration::from_secs(600);
    loop {
        let queues: QueueList = serde_json::from_slice(&ctx.get("/v1/queues").await?)?;
        let counts = queues.queues.iter().find(|q| q.name == PUSH_FUNCTION);
        let count = |state| counts.map_or(0, |q| q.counts.get(&state).copied().unwrap_or(0));
        let failed = count(JobState::Dead) + count(JobState::Retrying);
        if failed > 0 {
            bail!("{failed} function calls failed against the no-op push endpoint");
        }
        let done = count(JobState::Succeeded);
        if done as usize >= calls {
            break;
        }
        if Instant::now() > deadline {
            bail!("push function: only {done} of {calls} calls succeeded in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(super::phases::throughput(
        opts.fn_push_runs * STEPS,
        started.elapsed(),
    ))
}

/// Phase 12: the overhead of a step at low load. One run at a time; one worker long-polls for one call,
/// answers it with a single completion and polls again. A sample is the time from just before an answer is
/// sent until the worker holds the run's next call: the step's commit, the next call's enqueue and its claim.
pub(super) async fn step_latency(ctx: &Ctx, opts: &BenchOptions) -> anyhow::Result<Latency> {
    register(ctx, LATENCY_FUNCTION, LATENCY_EVENT, None).await?;
    let claim = Bytes::from(r#"{"worker_id":"bench-fn-latency","max_jobs":1,"wait":"5s"}"#);
    let mut samples = Vec::with_capacity(opts.step_latency_runs * STEPS);
    for _ in 0..opts.step_latency_runs {
        ctx.post("/v1/events", events_body(LATENCY_EVENT, 1))
            .await?;
        let mut answered: Option<Instant> = None;
        loop {
            let got = ctx
                .post(
                    &format!("/v1/queues/{LATENCY_FUNCTION}/claim"),
                    claim.clone(),
                )
                .await?;
            let at = Instant::now();
            let claimed: ClaimResponse = serde_json::from_slice(&got)?;
            let Some(job) = claimed.jobs.first() else {
                bail!("no call of the step latency run within 5 s");
            };
            if let Some(sent) = answered {
                samples.push(at.duration_since(sent).as_secs_f64() * 1000.0);
            }
            let (result, ends) = answer_job(job)?;
            let body = serde_json::json!({ "lease_token": job.lease_token, "result": result });
            answered = Some(Instant::now());
            ctx.post(
                &format!("/v1/jobs/{}/complete", job.id.0),
                serde_json::to_vec(&body)?.into(),
            )
            .await?;
            if ends {
                break;
            }
        }
        // Low load: leave the server idle briefly between runs.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        p50_ms: quantile(&samples, 0.5),
        p99_ms: quantile(&samples, 0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_noop_function_answers_its_next_step_then_done() {
        for recorded in 0..STEPS {
            let (text, done) = answer(recorded);
            assert!(!done);
            assert_eq!(
                text,
                format!(r#"{{"steps":[{{"id":"s{recorded}","op":"run"}}]}}"#)
            );
        }
        assert_eq!(answer(STEPS), (r#"{"done":true}"#, true));
    }

    #[test]
    fn event_bodies_are_single_or_batched() {
        let one: serde_json::Value = serde_json::from_slice(&events_body("a/b", 1)).unwrap();
        assert_eq!(one["name"], "a/b");
        let many: serde_json::Value = serde_json::from_slice(&events_body("a/b", 3)).unwrap();
        assert_eq!(many["events"].as_array().map(Vec::len), Some(3));
    }
}
