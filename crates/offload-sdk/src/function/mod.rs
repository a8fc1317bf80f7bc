//! Durable functions: multi-step code whose finished steps never run twice, that sleeps and waits for events
//! without holding a worker.
//!
//! ```no_run
//! use std::time::Duration;
//! use offload_sdk::function::{BoxError, Ctx, Function, NonRetriable, spec};
//!
//! #[derive(serde::Deserialize)]
//! struct Paid { order_id: u64, user_id: u64 }
//!
//! async fn receipt(ctx: Ctx<Paid>) -> Result<String, BoxError> {
//!     let order = ctx.event.data.order_id;
//!     let charge: String = ctx.step.run("charge", || async move {
//!         if order == 0 {
//!             return Err(NonRetriable::new("BadOrder", "order 0 does not exist").into());
//!         }
//!         Ok::<_, BoxError>(format!("ch_{order}")) // recorded once; replays return it
//!     }).await?;
//!     ctx.step.run("receipt", || async { Ok::<_, BoxError>(()) }).await?;
//!     ctx.step.sleep("follow-up-delay", Duration::from_secs(3 * 86400)).await;
//!     let upgraded = ctx.step
//!         .wait_for_event::<serde_json::Value>("upgrade", "app/user.upgraded", Some("data.user_id"),
//!             Duration::from_secs(86400))
//!         .await?;
//!     Ok(format!("{charge}, upgraded: {}", upgraded.is_some()))
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let function = Function::new(spec("send-receipt", "app/order.paid"), receipt)?;
//! # Ok(()) }
//! ```
//!
//! Register it with [`crate::Client::put_function`] or [`crate::Client::sync_app`], then serve it from a pull
//! [`crate::Worker`] ([`crate::WorkerBuilder::function`]) or, behind the `axum` feature, from a push endpoint
//! ([`push::router`]).
//!
//! How a call runs (the protocol is in `docs/functions-protocol.md`): the code replays from the top; each step
//! whose id is recorded returns its recorded result (or [`StepFailed`]) at once. Fresh `run` steps execute and
//! the code continues in the same call; the call ends at the first step that needs the server (sleep, wait,
//! send, invoke, parallel), at a step that fails, or when the code returns, and answers everything it did.
//! Code outside steps runs again on every call, so keep side effects inside steps. A pull worker records each
//! finished step at once (within the call's lease); a push answer ends once it holds
//! [`push::ANSWER_BUDGET`] bytes of results.
//!
//! Errors: a step closure's error is retried on the step's own count (the function's `retries`), unless
//! wrapped in [`NonRetriable`]; once recorded it comes back as [`StepFailed`], which the code may catch. An
//! error the code returns fails the call: [`StepFailed`] and [`NonRetriable`] fail it for good (replaying would
//! only fail again), which fails the run; any other error is retried like a job.
//!
//! Invariant: [`Function::call`] answers every call request with exactly one [`CallOutcome`], whatever the code
//! does (returns, fails, panics, or disagrees with the records).

mod engine;
mod error;
mod event;
#[cfg(feature = "axum")]
pub mod push;
mod serve;
mod step;

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use offload_core::function::protocol::{CallRequest, StepResult};
use offload_core::function::run::RunId;
use offload_core::spec::ValidationError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use engine::CallOutcome;
pub use error::{BoxError, NonRetriable, StepFailed};
pub use event::{Event, EventSpec};
pub use offload_core::function::definition::{CancelOnSpec, FunctionSpec, TriggerSpec};
pub use offload_core::function::flow::{
    ConcurrencySpec, FunctionThrottleSpec, RateLimitSpec, SingletonMode, SingletonSpec,
};
pub use offload_core::function::protocol::CallRequest as Call;
pub use step::{Parallel, Step};

use crate::Client;
use engine::Shared;

/// What function code receives: the run's event (with `data` typed as `E`) and the [`Step`] handle.
#[derive(Debug, Clone)]
pub struct Ctx<E = Value> {
    /// The event that started the run.
    pub event: Event<E>,
    /// Every event of the run, as JSON (one, unless the function batches events).
    pub events: Vec<Value>,
    /// The run's steps.
    pub step: Step,
    /// The run this call belongs to.
    pub run_id: RunId,
    /// The function's id.
    pub function_id: String,
    /// 1 + the failed attempts of the step this call retries.
    pub attempt: u32,
}

type Handler = Arc<dyn Fn(CallRequest, Shared) -> BoxFuture<'static, CodeResult> + Send + Sync>;
/// The code's output as JSON, or its error with whether another call may help.
type CodeResult = Result<Value, (String, bool)>;

/// A durable function: its definition (a [`FunctionSpec`] as registered on the server) and its code.
#[derive(Clone)]
pub struct Function {
    id: String,
    queue: String,
    spec: FunctionSpec,
    handler: Handler,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("id", &self.id)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// A definition triggered by events named `event`, with every other field at its default (pull workers on a
/// queue named like the function). Change fields before [`Function::new`], e.g. `retries` or `target`.
pub fn spec(id: &str, event: &str) -> FunctionSpec {
    FunctionSpec {
        id: Some(id.to_owned()),
        triggers: vec![TriggerSpec {
            event: Some(event.to_owned()),
            ..TriggerSpec::default()
        }],
        ..FunctionSpec::default()
    }
}

impl Function {
    /// A function from its definition (which must carry its `id`, and is validated here as the server would)
    /// and its code, an `async fn(Ctx<E>) -> Result<T, BoxError>`: `E` is the type of the event's `data`, `T`
    /// the run's output.
    pub fn new<E, T, F, Fut>(spec: FunctionSpec, code: F) -> Result<Self, ValidationError>
    where
        E: DeserializeOwned + Send + 'static,
        T: Serialize + 'static,
        F: Fn(Ctx<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
    {
        let valid = spec.clone().validate(None)?;
        let code = Arc::new(code);
        let handler: Handler = Arc::new(move |request: CallRequest, shared: Shared| {
            let code = code.clone();
            async move {
                let event: Event<E> = serde_json::from_str(request.event.get()).map_err(|e| {
                    (
                        format!(
                            "the run's event does not decode into the function's event type: {e}"
                        ),
                        false,
                    )
                })?;
                let events = request
                    .events
                    .iter()
                    .map(|e| serde_json::from_str(e.get()).unwrap_or(Value::Null))
                    .collect();
                let ctx = Ctx {
                    event,
                    events,
                    step: Step::new(shared),
                    run_id: request.run_id,
                    function_id: request.function_id,
                    attempt: request.attempt,
                };
                match code(ctx).await {
                    Ok(output) => serde_json::to_value(&output).map_err(|e| {
                        (
                            format!("the function's output does not encode as JSON: {e}"),
                            false,
                        )
                    }),
                    Err(e) => {
                        let fatal = e.downcast_ref::<StepFailed>().is_some()
                            || e.downcast_ref::<NonRetriable>().is_some();
                        Err((e.to_string(), !fatal))
                    }
                }
            }
            .boxed()
        });
        Ok(Self {
            id: valid.id,
            queue: valid.queue,
            spec,
            handler,
        })
    }

    /// The function's id (the job name of its calls).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The queue its calls are on (pull workers work it).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The definition to register on the server.
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// Runs one call: replays the code against the request's records and answers with the call response (or
    /// a failure). A request with `steps_omitted` fails (retryably): use [`Function::call_with`] and a client.
    pub async fn call(&self, request: CallRequest) -> CallOutcome {
        self.call_with(request, None).await
    }

    /// [`Function::call`], fetching the recorded steps with `client` when the request omitted them.
    pub async fn call_with(&self, request: CallRequest, client: Option<&Client>) -> CallOutcome {
        self.call_recording(request, client, None, None).await
    }

    /// [`Function::call_with`] for a transport that limits the size of the call response (push: the server
    /// reads at most 64 KiB of an endpoint's answer): once the `run` steps answered hold `answer_bytes`, the
    /// call ends before the next fresh step, which the next call runs. One step's result larger than the
    /// transport's limit cannot be answered this way.
    pub async fn call_within(
        &self,
        request: CallRequest,
        client: Option<&Client>,
        answer_bytes: usize,
    ) -> CallOutcome {
        self.call_recording(request, client, None, Some(answer_bytes))
            .await
    }

    /// [`Function::call_with`], recording each finished `run` step with `recorder` as soon as it ends, and
    /// ending the call once the answer holds `answer_budget` bytes.
    pub(crate) async fn call_recording(
        &self,
        mut request: CallRequest,
        client: Option<&Client>,
        recorder: Option<engine::Recorder>,
        answer_budget: Option<usize>,
    ) -> CallOutcome {
        if request.function_id != self.id {
            return CallOutcome::failed(
                format!(
                    "a call for function `{}` reached function `{}`",
                    request.function_id, self.id
                ),
                true,
            );
        }
        if request.steps_omitted {
            let Some(client) = client else {
                return CallOutcome::failed(
                    "the call omitted its recorded steps and there is no client to fetch them",
                    true,
                );
            };
            match client.run_steps(request.run_id).await {
                Ok(steps) => {
                    for step in steps {
                        if let Some(result) = step.result {
                            request.steps.insert(step.id, result);
                        }
                    }
                }
                Err(e) => {
                    return CallOutcome::failed(
                        format!("cannot fetch the run's recorded steps: {e}"),
                        true,
                    );
                }
            }
        }
        let recorded: std::collections::BTreeMap<String, StepResult> =
            std::mem::take(&mut request.steps);
        let recorder = recorder.filter(|_| request.run_step.is_none());
        let shared = Shared::new(recorded, request.run_step.clone(), recorder);
        shared.lock().answer_budget = answer_budget;
        let code = (self.handler)(request, shared.clone());
        engine::drive(&shared, code).await
    }
}

#[cfg(test)]
mod tests;
