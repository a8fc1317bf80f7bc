//! The `step` handle function code uses: every durable thing a function does goes through it.
//!
//! Each method numbers its id (`charge`, then `charge:1` for a second `charge` in the same run), then either
//! returns the step's recorded result (replay) or does the step: a `run` step executes its closure inline and
//! the code continues; every other step (and a failed `run`) stops the code, which the executor turns into the
//! call response (see [`super::engine`]).
//!
//! Invariant: a step method resolves only with a recorded (or just recorded) result; whenever the call must
//! end instead, the method never resolves, so no code after it runs in this call.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use offload_core::function::protocol::StepResult;
use offload_core::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::engine::{Shared, ran_op};
use super::error::{BoxError, StepFailed, WireError};
use super::event::{Event, EventSpec};

/// The handle on a run's steps, `ctx.step` in function code. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Step {
    shared: Shared,
}

/// What a step method found for its id.
enum Begin {
    /// The call has stopped: never resolve.
    Halt,
    /// The step is recorded.
    Recorded(String, StepResult),
    /// The step is new.
    Fresh(String),
}

/// Never resolves: the executor drops the code once the call has stopped.
async fn halt<T>() -> T {
    std::future::pending().await
}

/// Milliseconds of a duration, as the protocol's durations are written.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Step {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Numbers `id` and looks it up. A fresh step other than the planned parallel step of this call fails the
    /// call (the code no longer matches the run's records).
    fn begin(&self, id: &str, runs_here: bool) -> Begin {
        let mut state = self.shared.lock();
        if state.stopped() {
            return Begin::Halt;
        }
        let id = state.number(id);
        if let Some(result) = state.recorded(&id) {
            return Begin::Recorded(id, result.clone());
        }
        if let Some(step) = state.run_step.clone()
            && !(runs_here && step == id)
        {
            state.fatal(format!(
                "the call for parallel step `{step}` reached step `{id}`, which is not recorded, first; \
                 did the function's code change?"
            ));
            return Begin::Halt;
        }
        if runs_here && state.answer_full() {
            // Answer what ran so far; the next call starts with this step.
            state.stop_with(Vec::new());
            return Begin::Halt;
        }
        Begin::Fresh(id)
    }

    /// Decodes recorded data into `T`; a mismatch fails the call (the code changed its types).
    fn decode<T: DeserializeOwned>(
        &self,
        id: &str,
        result: StepResult,
    ) -> Option<Result<T, StepFailed>> {
        match result {
            StepResult::Data(data) => match serde_json::from_str(data.get()) {
                Ok(value) => Some(Ok(value)),
                Err(e) => {
                    self.shared.lock().fatal(format!(
                        "the recorded result of step `{id}` does not decode into the step's type: {e}"
                    ));
                    None
                }
            },
            StepResult::Error(error) => Some(Err(StepFailed {
                step: id.to_owned(),
                name: error.name,
                message: error.message,
            })),
        }
    }

    /// Ends the call with `op` as its plan.
    fn plan<T>(&self, op: Value) -> impl Future<Output = T> + use<T> {
        self.shared.lock().stop_with(vec![op]);
        halt()
    }

    /// Runs `f` once for the whole run and memoizes its result (as JSON, through serde): on replay the recorded
    /// result is returned without running `f`. `f`'s error is retried with the function's retry policy (wrap
    /// it in [`super::NonRetriable`] to record it at once); once the step's retries are exhausted, the replay
    /// returns it as [`StepFailed`].
    ///
    /// Several `run` steps in a row execute in the same call; the code stops at the first step that fails.
    pub async fn run<T, E, F, Fut>(&self, id: &str, f: F) -> Result<T, StepFailed>
    where
        T: Serialize + DeserializeOwned,
        E: Into<BoxError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let id = match self.begin(id, true) {
            Begin::Halt => return halt().await,
            Begin::Recorded(id, result) => match self.decode(&id, result) {
                Some(r) => return r,
                None => return halt().await,
            },
            Begin::Fresh(id) => id,
        };
        let outcome = execute(f).await;
        let data = outcome.as_ref().ok().cloned();
        match self.finish_run(&id, outcome) {
            Some(value) => {
                if let Some(data) = data {
                    self.shared.record(&id, &data).await;
                    if self.shared.lock().stopped() {
                        return halt().await;
                    }
                }
                Ok(value)
            }
            None => halt().await,
        }
    }

    /// Records the outcome of a fresh `run` step: data lets the code go on (unless this call was for that one
    /// parallel step), an error ends the call (`None`: the code must stop).
    fn finish_run<T: DeserializeOwned>(
        &self,
        id: &str,
        outcome: Result<Value, WireError>,
    ) -> Option<T> {
        let mut state = self.shared.lock();
        if state.stopped() {
            return None;
        }
        match outcome {
            Ok(value) => match serde_json::from_value::<T>(value.clone()) {
                Ok(decoded) => {
                    let op = ran_op(id, Ok(&value));
                    if state.run_step.is_some() {
                        state.stop_with(vec![op]);
                        return None;
                    }
                    state.push(op);
                    Some(decoded)
                }
                Err(e) => {
                    state.fatal(format!(
                        "the result of step `{id}` does not decode back into its type: {e}"
                    ));
                    None
                }
            },
            Err(error) => {
                state.stop_with(vec![ran_op(id, Err(&error))]);
                None
            }
        }
    }

    /// Sleeps for `duration` without holding a worker: the run continues in a new call after it.
    pub async fn sleep(&self, id: &str, duration: Duration) {
        let until = SignedDuration::try_from(duration)
            .ok()
            .and_then(|d| Timestamp::now().checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        self.sleep_until(id, until).await;
    }

    /// Sleeps until `until` (at most a year ahead); a time in the past continues at once.
    pub async fn sleep_until(&self, id: &str, until: Timestamp) {
        match self.begin(id, false) {
            Begin::Halt => halt().await,
            Begin::Recorded(..) => {}
            Begin::Fresh(id) => {
                self.plan(json!({"id": id, "op": "sleep", "until": until}))
                    .await
            }
        }
    }

    /// Waits for an event named `event` for at most `timeout`, without holding a worker. With `match_path`
    /// (e.g. `data.user_id`) only an event whose value there equals the run's event's value matches. Resolves
    /// to the event, or to `None` after the timeout. `D` is the type of the awaited event's `data`.
    pub async fn wait_for_event<D: DeserializeOwned>(
        &self,
        id: &str,
        event: &str,
        match_path: Option<&str>,
        timeout: Duration,
    ) -> Result<Option<Event<D>>, StepFailed> {
        match self.begin(id, false) {
            Begin::Halt => halt().await,
            Begin::Recorded(id, result) => match self.decode::<Option<Event<D>>>(&id, result) {
                Some(r) => r,
                None => halt().await,
            },
            Begin::Fresh(id) => {
                let mut op = json!({"id": id, "op": "wait_for_event", "event": event,
                    "timeout": millis(timeout)});
                if let Some(path) = match_path {
                    op["match"] = json!(path);
                }
                self.plan(op).await
            }
        }
    }

    /// Sends events once for the whole run, however often the code replays. Resolves to the events' ids.
    pub async fn send_event(
        &self,
        id: &str,
        events: Vec<EventSpec>,
    ) -> Result<Vec<String>, StepFailed> {
        #[derive(serde::Deserialize)]
        struct Sent {
            ids: Vec<String>,
        }
        match self.begin(id, false) {
            Begin::Halt => halt().await,
            Begin::Recorded(id, result) => match self.decode::<Sent>(&id, result) {
                Some(r) => r.map(|s| s.ids),
                None => halt().await,
            },
            Begin::Fresh(id) => {
                self.plan(json!({"id": id, "op": "send_event", "events": events}))
                    .await
            }
        }
    }

    /// Starts a run of function `function_id` with `data` (its event is `offload/function.invoked`) and waits,
    /// without holding a worker, for its output (`T`). The step fails with the child's error, with
    /// `InvokeTimeout` after `timeout` (default and most: a year), or with `FunctionNotFound`.
    pub async fn invoke<T: DeserializeOwned, D: Serialize>(
        &self,
        id: &str,
        function_id: &str,
        data: &D,
        timeout: Option<Duration>,
    ) -> Result<T, StepFailed> {
        match self.begin(id, false) {
            Begin::Halt => halt().await,
            Begin::Recorded(id, result) => match self.decode(&id, result) {
                Some(r) => r,
                None => halt().await,
            },
            Begin::Fresh(id) => {
                let data = match serde_json::to_value(data) {
                    Ok(data) => data,
                    Err(e) => {
                        self.shared.lock().fatal(format!(
                            "the data of invoke step `{id}` does not encode as JSON: {e}"
                        ));
                        return halt().await;
                    }
                };
                let mut op =
                    json!({"id": id, "op": "invoke", "function_id": function_id, "data": data});
                if let Some(timeout) = timeout {
                    op["timeout"] = json!(millis(timeout));
                }
                self.plan(op).await
            }
        }
    }

    /// Plans several `run` steps at once: each runs in its own call (on any worker, concurrently), and the
    /// code continues when all are recorded. Add steps with [`Parallel::run`], then [`Parallel::join`].
    pub fn parallel<'a, T>(&self) -> Parallel<'a, T> {
        Parallel {
            step: self.clone(),
            steps: Vec::new(),
            output: PhantomData,
        }
    }
}

/// Runs a step closure, turning its error (or panic) into the wire form and its result into JSON.
async fn execute<T, E, F, Fut>(f: F) -> Result<Value, WireError>
where
    T: Serialize,
    E: Into<BoxError>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match AssertUnwindSafe(async move { f().await })
        .catch_unwind()
        .await
    {
        Ok(Ok(value)) => serde_json::to_value(&value).map_err(|e| WireError {
            name: "EncodeError".into(),
            message: format!("the step's result does not encode as JSON: {e}"),
            retryable: false,
        }),
        Ok(Err(error)) => Err(WireError::from_step(error)),
        Err(panic) => Err(WireError {
            name: "Panic".into(),
            message: panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into()),
            retryable: true,
        }),
    }
}

type Erased<'a> = Box<dyn FnOnce() -> BoxFuture<'a, Result<Value, WireError>> + Send + 'a>;

/// Parallel `run` steps being planned; see [`Step::parallel`].
pub struct Parallel<'a, T> {
    step: Step,
    steps: Vec<(String, Erased<'a>)>,
    output: PhantomData<fn() -> T>,
}

impl<'a, T: Serialize + DeserializeOwned + Send + 'a> Parallel<'a, T> {
    /// Adds a step, like [`Step::run`].
    pub fn run<E, F, Fut>(mut self, id: &str, f: F) -> Self
    where
        E: Into<BoxError> + 'a,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        self.steps
            .push((id.to_owned(), Box::new(move || execute(f).boxed())));
        self
    }

    /// Resolves, once every step is recorded, to their results in the order added.
    pub async fn join(self) -> Vec<Result<T, StepFailed>> {
        let Parallel { step, steps, .. } = self;
        let (ids, mut closures): (Vec<String>, Vec<Erased<'a>>) = steps.into_iter().unzip();
        match step.plan_group(&ids) {
            Group::Halt => halt().await,
            Group::Execute(i, id) => {
                let f = closures.swap_remove(i);
                let outcome = f().await;
                step.shared
                    .lock()
                    .stop_with(vec![ran_op(&id, outcome.as_ref())]);
                halt().await
            }
            Group::Recorded(results) => {
                let mut decoded = Vec::with_capacity(results.len());
                for (id, result) in results {
                    match step.decode(&id, result) {
                        Some(r) => decoded.push(r),
                        None => return halt().await,
                    }
                }
                decoded
            }
        }
    }
}

/// What a parallel group does in this call.
enum Group {
    /// The call stops (steps planned, a recorded step answered, or the code disagrees with the records).
    Halt,
    /// Execute the step at this index, with this numbered id (this call is for it), and stop.
    Execute(usize, String),
    /// Every step is recorded: these are the numbered ids with their results, in order.
    Recorded(Vec<(String, StepResult)>),
}

impl Step {
    /// Numbers a group's ids and decides what the group does in this call.
    fn plan_group(&self, ids: &[String]) -> Group {
        let mut state = self.shared.lock();
        if state.stopped() {
            return Group::Halt;
        }
        let ids: Vec<String> = ids.iter().map(|id| state.number(id)).collect();
        let run_step = state.run_step.clone();
        if let Some(mine) = run_step
            .as_deref()
            .and_then(|r| ids.iter().position(|id| id == r))
        {
            // The call for one planned step: answer that step alone (again, from its record, if a repeated
            // call finds it recorded) and stop.
            let op = match state.recorded(&ids[mine]) {
                Some(StepResult::Data(data)) => {
                    let value: Value = serde_json::from_str(data.get()).unwrap_or(Value::Null);
                    ran_op(&ids[mine], Ok(&value))
                }
                Some(StepResult::Error(e)) => ran_op(
                    &ids[mine],
                    Err(&WireError {
                        name: e.name.clone(),
                        message: e.message.clone(),
                        retryable: false,
                    }),
                ),
                None => return Group::Execute(mine, ids[mine].clone()),
            };
            state.stop_with(vec![op]);
            return Group::Halt;
        }
        let fresh: Vec<&String> = ids
            .iter()
            .filter(|id| state.recorded(id).is_none())
            .collect();
        if fresh.is_empty() {
            return Group::Recorded(
                ids.iter()
                    .filter_map(|id| state.recorded(id).map(|r| (id.clone(), r.clone())))
                    .collect(),
            );
        }
        if let Some(step) = &run_step {
            state.fatal(format!(
                "the call for parallel step `{step}` reached parallel steps without it; did the \
                 function's code change?"
            ));
        } else {
            let ops = fresh
                .iter()
                .map(|id| json!({"id": id, "op": "plan_run"}))
                .collect();
            state.stop_with(ops);
        }
        Group::Halt
    }
}
