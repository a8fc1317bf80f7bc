//! The replay engine: runs function code against a call request and turns what it did into the call
//! response.
//!
//! How a call ends: the code runs from the top. Recorded steps return their results at once. `run` steps not
//! yet recorded are executed inline, and the code continues past them in the same call (their results are
//! answered together, as several `run` ops). The code stops at the first step that needs the server (a sleep, a
//! wait, sending events, an invoke, parallel steps), at the first step that fails, or when it returns. A step
//! that must stop the code records why in the shared [`State`], wakes the executor and never resolves; the
//! executor then drops the code's future (so nothing after that step runs) and answers. User code therefore
//! never sees the suspension: a step's `Result` only ever carries a real, recorded error.
//!
//! Invariant: one call produces exactly one [`CallOutcome`]; ops are pushed only while the call has not
//! stopped, so an answer never has anything after a failed step or a plan.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use futures::FutureExt;
use futures::future::BoxFuture;
use offload_core::function::protocol::{Json, StepResult};
use serde_json::{Value, json};

use super::error::WireError;

/// How one call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The call response to send: push answers it with status 200, pull completes the job with it.
    Response(Value),
    /// The call failed outside any step; the server retries it like any job (or, when `retryable` is false,
    /// lets it die, which fails the run).
    Failed {
        /// What went wrong.
        message: String,
        /// Whether another attempt may help.
        retryable: bool,
    },
}

impl CallOutcome {
    /// A failure.
    pub(crate) fn failed(message: impl Into<String>, retryable: bool) -> Self {
        CallOutcome::Failed {
            message: message.into(),
            retryable,
        }
    }
}

/// Records a finished step with the server while the call still runs (pull workers, within the call's lease):
/// `Ok(true)` recorded, `Ok(false)` the lease is lost (the call's answer will be refused), `Err` could not
/// record now (the step stays in the call's answer).
pub(crate) type Recorder =
    Arc<dyn Fn(String, Value) -> BoxFuture<'static, Result<bool, String>> + Send + Sync>;

/// Why the code was stopped before it returned.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Answer the ops gathered so far.
    Answer,
    /// The call fails (code and records disagree, e.g. a recorded result no longer decodes).
    Fatal(String),
}

/// What one call's steps share.
pub(crate) struct State {
    /// Every step recorded so far, by (numbered) id.
    recorded: BTreeMap<String, StepResult>,
    /// The planned parallel step this call is for.
    pub(crate) run_step: Option<String>,
    /// How often each id was used in this replay, for numbering repeats.
    seen: HashMap<String, u32>,
    /// The ops answered so far.
    ops: Vec<Value>,
    /// Set once the code must stop.
    stop: Option<Stop>,
    /// The executor's waker, to wake it when a step stops the code from outside its poll.
    waker: Option<Waker>,
    /// Where finished steps are recorded mid-call, if anywhere.
    recorder: Option<Recorder>,
    /// Once the answer's ops hold this many bytes, the call ends before the next fresh `run` step.
    pub(crate) answer_budget: Option<usize>,
    /// Bytes of the ops answered so far.
    answer_bytes: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("recorded", &self.recorded.len())
            .field("run_step", &self.run_step)
            .field("ops", &self.ops.len())
            .field("stop", &self.stop)
            .field("recording", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

/// A handle on the shared state of one call.
#[derive(Debug, Clone)]
pub(crate) struct Shared(Arc<Mutex<State>>);

impl Shared {
    pub(crate) fn new(
        recorded: BTreeMap<String, StepResult>,
        run_step: Option<String>,
        recorder: Option<Recorder>,
    ) -> Self {
        Self(Arc::new(Mutex::new(State {
            recorded,
            run_step,
            seen: HashMap::new(),
            ops: Vec::new(),
            stop: None,
            waker: None,
            recorder,
            answer_budget: None,
            answer_bytes: 0,
        })))
    }

    /// Records the `run` step `id`, just answered with `data`, with the recorder (if any); once recorded it
    /// leaves the call's answer (the server refuses an answer of recorded steps only). A lost lease stops the
    /// code: nothing it does now would be accepted.
    pub(crate) async fn record(&self, id: &str, data: &Value) {
        let Some(recorder) = self.lock().recorder.clone() else {
            return;
        };
        match recorder(id.to_owned(), data.clone()).await {
            Ok(true) => {
                let mut state = self.lock();
                state.ops.retain(|op| op["id"] != id);
                state.answer_bytes = state.ops.iter().map(|op| op.to_string().len()).sum();
                if let Ok(json) = Json::from_text(data.to_string()) {
                    state.recorded.insert(id.to_owned(), StepResult::Data(json));
                }
            }
            Ok(false) => self
                .lock()
                .fatal("the call's lease was lost while it ran: it runs elsewhere now".to_owned()),
            Err(e) => {
                tracing::debug!(
                    "step `{id}` not recorded mid-call ({e}); it goes with the call's answer"
                );
            }
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The numbered id of the next use of `id` in this replay: `id`, then `id:1`, `id:2`, ...
    pub(crate) fn number(&mut self, id: &str) -> String {
        let n = self.seen.entry(id.to_owned()).or_insert(0);
        let numbered = if *n == 0 {
            id.to_owned()
        } else {
            format!("{id}:{n}")
        };
        *n += 1;
        numbered
    }

    /// The recorded result of a step.
    pub(crate) fn recorded(&self, id: &str) -> Option<&StepResult> {
        self.recorded.get(id)
    }

    /// True once the code must stop: nothing more may be answered.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    /// Adds an op to the answer (ignored once stopped).
    pub(crate) fn push(&mut self, op: Value) {
        if self.stop.is_none() {
            self.answer_bytes += op.to_string().len();
            self.ops.push(op);
        }
    }

    /// True when the answer is as large as it should get: the call ends before another fresh `run` step.
    pub(crate) fn answer_full(&self) -> bool {
        self.answer_budget
            .is_some_and(|budget| !self.ops.is_empty() && self.answer_bytes >= budget)
    }

    /// Stops the code: `ops` end the answer (a plan or a failed step). The first stop wins.
    pub(crate) fn stop_with(&mut self, ops: Vec<Value>) {
        if self.stop.is_none() {
            self.ops.extend(ops);
            self.stop = Some(Stop::Answer);
            self.wake();
        }
    }

    /// Fails the call. The first stop wins.
    pub(crate) fn fatal(&mut self, message: String) {
        if self.stop.is_none() {
            self.stop = Some(Stop::Fatal(message));
            self.wake();
        }
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// A `run` op with its result.
pub(crate) fn ran_op(id: &str, result: Result<&Value, &WireError>) -> Value {
    match result {
        Ok(data) => json!({"id": id, "op": "run", "data": data}),
        Err(e) => json!({"id": id, "op": "run", "error": e.to_json()}),
    }
}

/// How the code itself ended.
pub(crate) enum CodeEnded {
    /// It returned its output (encoded), or an error with whether retrying the call may help.
    Returned(Result<Value, (String, bool)>),
    /// It panicked.
    Panicked(String),
}

/// Runs `code` (already bound to the call's [`Shared`] state) until it returns or a step stops it, and builds
/// the call's outcome.
pub(crate) async fn drive<F>(shared: &Shared, code: F) -> CallOutcome
where
    F: Future<Output = Result<Value, (String, bool)>>,
{
    let mut code = std::pin::pin!(AssertUnwindSafe(code).catch_unwind());
    let ended = std::future::poll_fn(|cx| {
        shared.lock().waker = Some(cx.waker().clone());
        if shared.lock().stopped() {
            return Poll::Ready(None);
        }
        match code.as_mut().poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(Some(CodeEnded::Returned(r))),
            Poll::Ready(Err(panic)) => {
                Poll::Ready(Some(CodeEnded::Panicked(panic_message(panic.as_ref()))))
            }
            Poll::Pending if shared.lock().stopped() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let mut state = shared.lock();
    state.waker = None;
    let ops = std::mem::take(&mut state.ops);
    match (state.stop.take(), ended) {
        (Some(Stop::Fatal(message)), _) => CallOutcome::failed(message, true),
        (Some(Stop::Answer), _) => CallOutcome::Response(json!({"steps": ops})),
        // Steps ran in this call: answer them so they are recorded; the next call replays them and ends
        // the same way without running them again.
        (None, Some(_)) if !ops.is_empty() => CallOutcome::Response(json!({"steps": ops})),
        (None, Some(CodeEnded::Panicked(message))) => {
            CallOutcome::failed(format!("the function panicked: {message}"), true)
        }
        (None, Some(CodeEnded::Returned(Ok(output)))) => {
            if state.run_step.is_some() {
                // A call for one parallel step must answer that step; the code returned without reaching it.
                return CallOutcome::failed(
                    format!(
                        "the function returned without reaching parallel step `{}`",
                        state.run_step.as_deref().unwrap_or_default()
                    ),
                    true,
                );
            }
            CallOutcome::Response(json!({"done": true, "output": output}))
        }
        (None, Some(CodeEnded::Returned(Err((message, retryable))))) => {
            CallOutcome::failed(message, retryable)
        }
        (None, None) => CallOutcome::failed("the function stopped without an answer", true),
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
