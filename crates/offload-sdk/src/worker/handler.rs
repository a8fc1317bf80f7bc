//! Handlers, typed at registration and erased for dispatch: decode the payload, run, encode the result, and
//! turn a panic into an ordinary failed attempt.
//!
//! Invariant: whatever a handler does (returns, fails, panics, or is handed a payload it cannot decode),
//! [`execute`] answers with exactly one [`Ended`]; nothing escapes to the worker's own tasks.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use offload_core::{JobId, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::job::{Job, JobCtx};
use super::job_error::JobError;

/// What the worker knows about a claimed attempt, before the payload is decoded.
pub(crate) struct RawJob {
    pub(crate) id: JobId,
    pub(crate) queue: String,
    pub(crate) name: Option<String>,
    pub(crate) payload: Box<RawValue>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) created_at: Timestamp,
    pub(crate) timeout: Duration,
    pub(crate) ctx: Arc<JobCtx>,
}

/// How a handler's run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Success, with the encoded result (`None` for a unit or `null` result).
    Succeeded(Option<Box<RawValue>>),
    /// The handler returned an error.
    Failed(JobError),
    /// The handler panicked; the message, when the panic carried one.
    Panicked(String),
}

/// A handler with its types erased, so handlers of different payload and result types share one table.
pub(crate) type Erased = Arc<dyn Fn(RawJob) -> BoxFuture<'static, Ended> + Send + Sync>;

/// Wraps a typed handler: decodes the payload into `T` (a payload that does not decode is a fatal error: no
/// retry would change it), runs it, encodes its `R` result.
pub(crate) fn erase<T, R, F, Fut>(handler: F) -> Erased
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |raw: RawJob| {
        let handler = handler.clone();
        // Everything, the call included, happens inside the future, so a panic anywhere is caught by
        // `execute`'s `catch_unwind`.
        async move {
            let payload: T = match serde_json::from_str(raw.payload.get()) {
                Ok(payload) => payload,
                Err(e) => {
                    return Ended::Failed(JobError::fatal(format!(
                        "the payload does not match the handler's type: {e}"
                    )));
                }
            };
            let job = Job {
                id: raw.id,
                queue: raw.queue,
                name: raw.name,
                payload,
                attempt: raw.attempt,
                max_attempts: raw.max_attempts,
                tags: raw.tags,
                created_at: raw.created_at,
                timeout: raw.timeout,
                ctx: raw.ctx,
            };
            let id = job.id;
            match handler(job).await {
                Ok(result) => Ended::Succeeded(encode(id, &result)),
                Err(e) => Ended::Failed(e),
            }
        }
        .boxed()
    })
}

/// A result as JSON; `()` and `null` mean no result. A result that cannot be encoded is dropped with a warning:
/// the work was done, and failing the attempt would only run it again.
fn encode<R: Serialize>(id: JobId, result: &R) -> Option<Box<RawValue>> {
    match serde_json::value::to_raw_value(result) {
        Ok(raw) if raw.get() == "null" => None,
        Ok(raw) => Some(raw),
        Err(e) => {
            tracing::warn!(
                "job {id}: cannot encode the handler's result as JSON ({e}); completing without it"
            );
            None
        }
    }
}

/// Runs an erased handler to its end, catching panics.
pub(crate) async fn execute(handler: &Erased, job: RawJob) -> Ended {
    let run = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(job))) {
        Ok(run) => run,
        Err(panic) => return Ended::Panicked(panic_message(panic.as_ref())),
    };
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(ended) => ended,
        Err(panic) => Ended::Panicked(panic_message(panic.as_ref())),
    }
}

/// The text of a panic (`panic!("...")` carries a `&str` or a `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
