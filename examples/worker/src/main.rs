//! A worker service with the Offload SDK: two job kinds on one queue, progress and cancellation, graceful
//! shutdown on Ctrl-C or SIGTERM.
//!
//! ```sh
//! OFFLOAD_SERVER=http://127.0.0.1:7070 cargo run -p offload-example-worker
//! cargo run -p offload-example-enqueue -- emails welcome '{"user": 42}'
//! cargo run -p offload-example-enqueue -- emails report '{"pages": 5}'
//! ```

use std::time::Duration;

use offload_sdk::{Client, Job, JobError, Worker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct Welcome {
    user: u64,
}

#[derive(Debug, Deserialize)]
struct Report {
    pages: u32,
}

#[derive(Debug, Serialize)]
struct Rendered {
    pages: u32,
}

/// A quick job: validate, do the work, return a result.
async fn welcome(job: Job<Welcome>) -> Result<String, JobError> {
    if job.payload.user == 0 {
        // Retrying would not help: the job goes dead at once.
        return Err(JobError::fatal("user 0 does not exist"));
    }
    tracing::info!(
        "welcoming user {} (attempt {})",
        job.payload.user,
        job.attempt
    );
    Ok(format!("welcomed {}", job.payload.user))
}

/// A long job: reports progress and stops when cancelled.
async fn report(job: Job<Report>) -> Result<Rendered, JobError> {
    for page in 1..=job.payload.pages {
        tokio::select! {
            () = job.cancelled() => return Err(JobError::cancel("stopped on request")),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let percent = (page * 100 / job.payload.pages.max(1)) as u8;
        // Progress is best effort: a failed report is no reason to fail the job.
        if let Err(e) = job.progress(percent, Some(&format!("page {page}"))).await {
            tracing::warn!("cannot report progress: {e}");
        }
    }
    Ok(Rendered {
        pages: job.payload.pages,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let server = std::env::var("OFFLOAD_SERVER").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let mut client = Client::new(&server)?;
    if let Ok(token) = std::env::var("OFFLOAD_TOKEN") {
        client = client.with_token(token);
    }
    let worker = Worker::builder(client)
        .queue("emails", 8)
        .handler("welcome", welcome)
        .handler("report", report)
        .build()?;
    tracing::info!("worker {} started", worker.id());
    let stats = worker
        .run_until(shutdown_signal(), Duration::from_secs(30))
        .await;
    tracing::info!(
        "stopped: {} succeeded, {} failed, {} handed back",
        stats.succeeded,
        stats.failed,
        stats.released
    );
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix (what process managers send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
