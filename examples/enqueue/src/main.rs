//! Enqueues one job from the command line with the Offload SDK.
//!
//! ```sh
//! cargo run -p offload-example-enqueue -- emails welcome '{"user": 42}' --delay 10
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use offload_sdk::{Client, JobSpec};

/// Enqueue a job on an Offload server.
#[derive(Debug, Parser)]
struct Args {
    /// The queue.
    queue: String,
    /// The job's name (its kind, which workers dispatch on).
    name: String,
    /// The payload, as JSON.
    #[arg(default_value = "{}")]
    payload: String,
    /// Run it after this many seconds.
    #[arg(long)]
    delay: Option<u64>,
    /// Attempts allowed.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// De-duplication key.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// The server.
    #[arg(long, env = "OFFLOAD_SERVER", default_value = "http://127.0.0.1:7070")]
    server: String,
    /// API token, when the server wants one.
    #[arg(long, env = "OFFLOAD_TOKEN")]
    token: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let payload: serde_json::Value =
        serde_json::from_str(&args.payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let mut client = Client::new(&args.server)?;
    if let Some(token) = &args.token {
        client = client.with_token(token);
    }
    let mut job = JobSpec::new(args.queue, &payload).name(args.name);
    if let Some(seconds) = args.delay {
        job = job.delay(Duration::from_secs(seconds));
    }
    if let Some(n) = args.max_attempts {
        job = job.max_attempts(n);
    }
    if let Some(key) = args.idempotency_key {
        job = job.idempotency_key(key);
    }
    // A server-side refusal keeps its code and detail, e.g. "queue: must not be empty (invalid_field)".
    let enqueued = client.enqueue_job(&job).await?;
    let replay = if enqueued.replayed {
        " (already enqueued)"
    } else {
        ""
    };
    println!("{} {}{replay}", enqueued.job.id, enqueued.job.state);
    Ok(())
}
