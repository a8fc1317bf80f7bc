//! The step record decision: what the server writes when a call of a run ends with an answer, and what it
//! enqueues next.
//!
//! The rules, in the order they apply:
//! - An answer for a run that has ended (succeeded, failed, cancelled) changes nothing.
//! - A step id already recorded is ignored: the first report wins, so a repeated call (after a lease expiry, or
//!   a parallel call delivered twice) cannot record a step twice, and events of a `send_event` step are sent once.
//! - A `run` step that failed with a retryable error and has attempts left is not recorded: its failed attempt
//!   goes to the history and the next call is enqueued after the backoff. Otherwise the error is recorded and
//!   handed to the code on the next call, which may catch it.
//! - Limits (steps per run, bytes per step result, bytes of recorded state per run) fail the run with a named
//!   error rather than storing more.
//! - After the records: the run's output ends it; a sleep enqueues the next call at its time; a wait or an invoke
//!   parks the run; parallel steps get one call each; otherwise the next call is enqueued at once.
//!
//! Invariant: [`decide`] is pure and total over valid answers; stores apply its [`Decision`] in the transaction
//! that ends the call job, holding the run's row, so with several servers exactly one decision applies per call.

use jiff::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

use super::event::{EventId, EventRequest};
use super::path::FieldPath;
use super::protocol::{Answer, Json, Plan, ProtocolError, RanOutcome, StepError, StepResult};
use super::run::RunState;
use crate::backoff::Backoff;
use crate::state::add;

/// Limits on what a run may record; operators can change them in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Most steps one run may record (default 1,000).
    pub max_steps: usize,
    /// Largest result of one step, in bytes of JSON (default 4 MiB).
    pub max_step_bytes: usize,
    /// Most bytes of recorded step results per run (default 16 MiB).
    pub max_state_bytes: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self {
            max_steps: 1000,
            max_step_bytes: 4 * 1024 * 1024,
            max_state_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What the store read about the run, in the transaction that ends the call.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    /// The run's state.
    pub state: RunState,
    /// Ids of the steps recorded so far.
    pub recorded: &'a BTreeSet<String>,
    /// Bytes of the results recorded so far.
    pub recorded_bytes: usize,
    /// Planned parallel steps not yet recorded.
    pub pending_parallel: &'a BTreeSet<String>,
    /// Failed attempts of steps not yet recorded, by step id.
    pub failures: &'a BTreeMap<String, u32>,
    /// The function's retries per step.
    pub retries: u32,
    /// The function's retry delays.
    pub backoff: &'a Backoff,
    /// The run's event as JSON (`{"name", "data", "id", "ts"}`), for `wait_for_event` matches.
    pub event: &'a Value,
}

/// What the store knows about the call that ended.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    /// The planned parallel step this call was made for, if any.
    pub run_step: Option<&'a str>,
    /// The database's clock.
    pub now: Timestamp,
    /// A uniform draw in `[0, 1)` for the backoff's jitter.
    pub jitter: f64,
}

/// What to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Step records to insert (none of them recorded before).
    pub records: Vec<NewStepRecord>,
    /// Failed attempts to add to the steps' histories.
    pub failed_attempts: Vec<FailedAttempt>,
    /// Events to store and fan out, with the ids the `send_event` step's record names.
    pub events: Vec<(EventId, EventRequest)>,
    /// What happens to the run next.
    pub next: Next,
}

/// A step record to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStepRecord {
    /// The step's id.
    pub id: String,
    /// What kind of step it was.
    pub kind: StepKind,
    /// What the code gets on replay.
    pub result: StepResult,
    /// Attempts it took (1 unless it failed before).
    pub attempts: u32,
}

/// A failed attempt of a step that will be retried.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedAttempt {
    /// The step's id.
    pub id: String,
    /// Which attempt failed (1 for the first).
    pub attempt: u32,
    /// Its error.
    pub error: StepError,
}

/// The kinds of steps, as the run's history shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Code that ran.
    Run,
    /// A sleep.
    Sleep,
    /// A wait for an event.
    WaitForEvent,
    /// Events sent.
    SendEvent,
    /// Another function's run.
    Invoke,
}

impl StepKind {
    /// The kind's name as the API and the stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Run => "run",
            StepKind::Sleep => "sleep",
            StepKind::WaitForEvent => "wait_for_event",
            StepKind::SendEvent => "send_event",
            StepKind::Invoke => "invoke",
        }
    }
}

/// How a waiting step recognises its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitMatch {
    /// Any event of the awaited name.
    Any,
    /// An event whose value at `path` has this match key (see [`FieldPath::match_key`]).
    Field {
        /// The compared field.
        path: FieldPath,
        /// The run's event's value there, canonical.
        key: String,
    },
    /// The run's event has no value at the path, so no event can match: only the timeout resolves the step.
    Never,
}

/// What happens to the run after the decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Enqueue the next call at `at` (the run is `queued` when `at` is now, else `sleeping`).
    Call {
        /// When the call becomes due.
        at: Timestamp,
        /// The planned parallel step the call is for, if any.
        run_step: Option<String>,
        /// The step the call retries, which decides the request's `attempt`.
        retrying: Option<String>,
        /// The run's new state.
        state: RunState,
    },
    /// Enqueue one call per planned step, at once; they become the run's pending parallel steps.
    Parallel(Vec<String>),
    /// Park the run until a matching event arrives or `until` passes.
    Wait {
        /// The waiting step.
        step: String,
        /// The awaited event's name.
        event: String,
        /// How the event is recognised.
        matching: WaitMatch,
        /// When the step resolves to `null`.
        until: Timestamp,
    },
    /// Start a child run of `function_id` and park this run until it ends or `until` passes.
    Invoke {
        /// The waiting step.
        step: String,
        /// The function to run.
        function_id: String,
        /// The invocation event's `data`.
        data: Option<Json>,
        /// When the step fails with a timeout.
        until: Timestamp,
    },
    /// Enqueue nothing: other parallel steps are still pending, or the run has ended.
    Idle,
    /// The run succeeded with this output.
    Succeed(Json),
    /// The run failed with this error.
    Fail(StepError),
}

impl Decision {
    fn only(next: Next) -> Self {
        Self {
            records: vec![],
            failed_attempts: vec![],
            events: vec![],
            next,
        }
    }
}

/// Decides what an answer records and what follows. A [`ProtocolError`] means the answer contradicts the call
/// it answers; the call job then fails and is retried like any job.
pub fn decide(
    run: &RunFacts<'_>,
    call: &CallFacts<'_>,
    answer: Answer,
    limits: &RecordLimits,
) -> Result<Decision, ProtocolError> {
    if run.state.is_final() {
        return Ok(Decision::only(Next::Idle));
    }
    let (ran, then) = match answer {
        Answer::Done(output) => {
            if call.run_step.is_some() {
                return Err(protocol(
                    "done",
                    "a call for a parallel step answers with that step only",
                ));
            }
            if !run.pending_parallel.is_empty() {
                return Err(protocol("done", "the run still has parallel steps pending"));
            }
            return Ok(Decision::only(Next::Succeed(
                output.unwrap_or_else(Json::null),
            )));
        }
        Answer::Steps { ran, then } => (ran, then),
    };
    if let Some(step) = call.run_step
        && (then.is_some() || ran.len() != 1 || ran[0].id != step)
    {
        return Err(protocol(
            "steps",
            format!("a call for parallel step `{step}` answers with that step only"),
        ));
    }
    if let Some(i) = ran
        .iter()
        .position(|s| matches!(s.outcome, RanOutcome::Error { .. }))
        && (i + 1 != ran.len() || then.is_some())
    {
        return Err(protocol(
            format!("steps[{}]", i + 1),
            "nothing may follow a step that failed",
        ));
    }

    let mut decision = Decision::only(Next::Idle);
    let mut budget = Budget {
        steps: run.recorded.len(),
        bytes: run.recorded_bytes,
        limits,
    };
    let mut progressed = false;
    for step in ran {
        if run.recorded.contains(&step.id) {
            continue;
        }
        progressed = true;
        let failures = run.failures.get(&step.id).copied().unwrap_or(0);
        let result = match step.outcome {
            RanOutcome::Data(data) => StepResult::Data(data.unwrap_or_else(Json::null)),
            RanOutcome::Error { error, retryable } => {
                let attempt = failures.saturating_add(1);
                if retryable && attempt <= run.retries {
                    let delay = run.backoff.delay(attempt, call.jitter);
                    decision.failed_attempts.push(FailedAttempt {
                        id: step.id.clone(),
                        attempt,
                        error,
                    });
                    decision.next = Next::Call {
                        at: add(call.now, delay),
                        run_step: call.run_step.map(str::to_owned),
                        retrying: Some(step.id),
                        state: RunState::Sleeping,
                    };
                    return Ok(decision);
                }
                StepResult::Error(error)
            }
        };
        if let Err(error) = budget.take(&result) {
            return Ok(Decision::only(Next::Fail(error)));
        }
        decision.records.push(NewStepRecord {
            id: step.id,
            kind: StepKind::Run,
            result,
            attempts: failures.saturating_add(1),
        });
    }

    // A plan whose step is already recorded was carried out by an earlier call: the code continues at once.
    if let Some(id) = then.as_ref().and_then(Plan::step_id)
        && run.recorded.contains(id)
    {
        decision.next = call_now(call.now);
        return Ok(decision);
    }
    decision.next = match then {
        None => match call.run_step {
            Some(step) => {
                let still_pending = run.pending_parallel.iter().any(|p| p != step);
                if still_pending {
                    Next::Idle
                } else {
                    call_now(call.now)
                }
            }
            None if progressed => call_now(call.now),
            None => {
                return Err(protocol(
                    "steps",
                    "the answer reports only steps that are already recorded",
                ));
            }
        },
        Some(Plan::Sleep { id, until }) => {
            let record = NewStepRecord {
                id,
                kind: StepKind::Sleep,
                result: StepResult::Data(Json::null()),
                attempts: 1,
            };
            if let Err(error) = budget.take(&record.result) {
                return Ok(Decision::only(Next::Fail(error)));
            }
            decision.records.push(record);
            let at = until.max(call.now);
            let state = if at > call.now {
                RunState::Sleeping
            } else {
                RunState::Queued
            };
            Next::Call {
                at,
                run_step: None,
                retrying: None,
                state,
            }
        }
        Some(Plan::WaitForEvent {
            id,
            event,
            match_path,
            timeout,
        }) => {
            if let Err(error) = budget.reserve() {
                return Ok(Decision::only(Next::Fail(error)));
            }
            let matching = match match_path {
                None => WaitMatch::Any,
                Some(path) => match path.match_key(run.event) {
                    Some(key) => WaitMatch::Field { path, key },
                    None => WaitMatch::Never,
                },
            };
            Next::Wait {
                step: id,
                event,
                matching,
                until: add(call.now, timeout),
            }
        }
        Some(Plan::SendEvent { id, events }) => {
            let sent: Vec<(EventId, EventRequest)> =
                events.into_iter().map(|e| (EventId::new(), e)).collect();
            let ids: Vec<String> = sent
                .iter()
                .map(|(id, _)| id.0.hyphenated().to_string())
                .collect();
            let data = serde_json::json!({ "ids": ids }).to_string();
            let result = StepResult::Data(
                Json::from_text(data).map_err(|e| protocol("steps", e.to_string()))?,
            );
            if let Err(error) = budget.take(&result) {
                return Ok(Decision::only(Next::Fail(error)));
            }
            decision.records.push(NewStepRecord {
                id,
                kind: StepKind::SendEvent,
                result,
                attempts: 1,
            });
            decision.events = sent;
            call_now(call.now)
        }
        Some(Plan::Invoke {
            id,
            function_id,
            data,
            timeout,
        }) => {
            if let Err(error) = budget.reserve() {
                return Ok(Decision::only(Next::Fail(error)));
            }
            Next::Invoke {
                step: id,
                function_id,
                data,
                until: add(call.now, timeout),
            }
        }
        Some(Plan::Parallel(ids)) => {
            let fresh: Vec<String> = ids
                .into_iter()
                .filter(|id| !run.recorded.contains(id))
                .collect();
            if fresh.is_empty() {
                call_now(call.now)
            } else {
                for _ in &fresh {
                    if let Err(error) = budget.reserve() {
                        return Ok(Decision::only(Next::Fail(error)));
                    }
                }
                Next::Parallel(fresh)
            }
        }
    };
    Ok(decision)
}

/// How a waiting step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitOutcome {
    /// The awaited event arrived (as JSON: `{"name", "data", "id", "ts"}`).
    Event(Json),
    /// The timeout passed first.
    TimedOut,
}

/// The record of a `wait_for_event` step once it resolves: the event, or `null` after the timeout. The next call
/// is enqueued at once.
pub fn resolve_wait(step: &str, outcome: WaitOutcome) -> NewStepRecord {
    let data = match outcome {
        WaitOutcome::Event(event) => event,
        WaitOutcome::TimedOut => Json::null(),
    };
    NewStepRecord {
        id: step.to_owned(),
        kind: StepKind::WaitForEvent,
        result: StepResult::Data(data),
        attempts: 1,
    }
}

/// How an invoked run ended, as its parent sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeOutcome {
    /// The child succeeded with this output.
    Succeeded(Json),
    /// The child failed (or was cancelled) with this error.
    Failed(StepError),
    /// The child did not end before the invoke step's timeout.
    TimedOut,
    /// The invoked function does not exist.
    UnknownFunction(String),
}

/// The record of an `invoke` step once the child ends or the wait times out: its output, or an error the code
/// may catch. The next call is enqueued at once.
pub fn resolve_invoke(step: &str, outcome: InvokeOutcome) -> NewStepRecord {
    let result = match outcome {
        InvokeOutcome::Succeeded(output) => StepResult::Data(output),
        InvokeOutcome::Failed(error) => StepResult::Error(error),
        InvokeOutcome::TimedOut => StepResult::Error(StepError {
            name: "InvokeTimeout".into(),
            message: "the invoked run did not finish before the step's timeout".into(),
        }),
        InvokeOutcome::UnknownFunction(id) => StepResult::Error(StepError {
            name: "FunctionNotFound".into(),
            message: format!("no function `{id}` is registered"),
        }),
    };
    NewStepRecord {
        id: step.to_owned(),
        kind: StepKind::Invoke,
        result,
        attempts: 1,
    }
}

/// The size of a recorded result, as counted against the limits.
pub fn result_bytes(result: &StepResult) -> usize {
    match result {
        StepResult::Data(data) => data.get().len(),
        StepResult::Error(error) => error.name.len() + error.message.len(),
    }
}

fn call_now(now: Timestamp) -> Next {
    Next::Call {
        at: now,
        run_step: None,
        retrying: None,
        state: RunState::Queued,
    }
}

fn protocol(field: impl Into<String>, message: impl Into<String>) -> ProtocolError {
    ProtocolError {
        field: field.into(),
        message: message.into(),
    }
}

/// Steps and bytes the run may still record.
struct Budget<'a> {
    steps: usize,
    bytes: usize,
    limits: &'a RecordLimits,
}

impl Budget<'_> {
    fn reserve(&mut self) -> Result<(), StepError> {
        if self.steps >= self.limits.max_steps {
            return Err(StepError {
                name: "StepLimitExceeded".into(),
                message: format!("the run may record at most {} steps", self.limits.max_steps),
            });
        }
        self.steps += 1;
        Ok(())
    }

    fn take(&mut self, result: &StepResult) -> Result<(), StepError> {
        let bytes = result_bytes(result);
        if bytes > self.limits.max_step_bytes {
            return Err(StepError {
                name: "StepOutputTooLarge".into(),
                message: format!(
                    "a step's result is {bytes} bytes; the limit is {} bytes",
                    self.limits.max_step_bytes
                ),
            });
        }
        if self.bytes + bytes > self.limits.max_state_bytes {
            return Err(StepError {
                name: "RunStateTooLarge".into(),
                message: format!(
                    "the run's recorded steps would exceed {} bytes",
                    self.limits.max_state_bytes
                ),
            });
        }
        self.reserve()?;
        self.bytes += bytes;
        Ok(())
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
