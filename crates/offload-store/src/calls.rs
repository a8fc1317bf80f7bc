//! Calls of a run, and what the end of a call does to its run: the rules both stores apply, so the stores only
//! read facts and write what these functions return.
//!
//! A call is an ordinary job ([`call_job`]): queue = the function's queue, name = the function id, tag
//! [`RUN_TAG`] = the run id, payload = the [`CallRequest`] with every step recorded so far (or none, with
//! `steps_omitted`, when they would not fit in `max_state_bytes`), `max_attempts` = retries + 1, the function's
//! backoff and timeout, its push target, and `group` = the value of the function's concurrency or throttle key
//! in the run's event (none without a key, or when the event lacks the field: the call then counts against the
//! queue-wide limits only).
//!
//! Invariant: pure. Nothing here reads a clock, a random source or a database.

use std::collections::BTreeMap;

use jiff::Timestamp;
use offload_core::function::definition::{Function, RunsOn};
use offload_core::function::event::{DEFAULT_MAX_EVENT_BYTES, EventId, NewEvent};
use offload_core::function::protocol::Answer;
use offload_core::function::protocol::{CallRequest, Json, ProtocolError, StepError, StepResult};
use offload_core::function::record::{
    CallFacts, Decision, InvokeOutcome, Next, RecordLimits, RunFacts, decide,
};
use offload_core::function::run::{RunId, RunState};
use offload_core::state::{Failure, FailureCause};
use offload_core::{JobId, JobState, NewJob, RunAt};
use serde_json::value::RawValue;

use crate::{RUN_TAG, RunChange, RunEnded, StepCounts, StoreError};

/// The name of the server's own event that starts an invoked run.
pub const INVOKED_EVENT: &str = "offload/function.invoked";

/// Everything a call job is built from.
#[derive(Debug, Clone, Copy)]
pub struct CallSpec<'a> {
    /// The function the run runs.
    pub function: &'a Function,
    /// The run.
    pub run_id: RunId,
    /// The run's event as the code sees it (`{"name", "data", "id", "ts"}`).
    pub event: &'a Json,
    /// Every step recorded so far, by id.
    pub steps: &'a BTreeMap<String, StepResult>,
    /// 1 + the failed attempts of the step the call retries (see [`call_attempt`]).
    pub attempt: u32,
    /// For a call made for one planned parallel step: that step.
    pub run_step: Option<&'a str>,
    /// When the call becomes due.
    pub at: Timestamp,
    /// Largest call request, in bytes, that carries its steps (the run's state limit).
    pub max_state_bytes: usize,
}

/// The call request of a call: every recorded step, unless the request would then exceed `max_state_bytes`, in
/// which case it carries none and says so (`steps_omitted`; the code fetches them from the API).
pub fn call_request(spec: &CallSpec<'_>) -> CallRequest {
    let mut request = CallRequest {
        run_id: spec.run_id,
        function_id: spec.function.id.clone(),
        attempt: spec.attempt.max(1),
        event: spec.event.clone(),
        events: vec![spec.event.clone()],
        steps: spec.steps.clone(),
        run_step: spec.run_step.map(str::to_owned),
        steps_omitted: false,
    };
    let size: usize = spec
        .steps
        .iter()
        .map(|(id, r)| id.len() + result_len(r))
        .sum::<usize>()
        + 2 * spec.event.get().len();
    if size > spec.max_state_bytes {
        request.steps = BTreeMap::new();
        request.steps_omitted = true;
    }
    request
}

/// The job of a call, ready to insert (see the module doc for its fields).
pub fn call_job(spec: &CallSpec<'_>) -> Result<NewJob, StoreError> {
    let request = call_request(spec);
    let text = serde_json::to_string(&request)
        .map_err(|e| StoreError::Internal(format!("call request: {e}")))?;
    let payload = RawValue::from_string(text)
        .map_err(|e| StoreError::Internal(format!("call request: {e}")))?;
    let f = spec.function;
    Ok(NewJob {
        id: JobId::new(),
        queue: f.queue.clone(),
        name: Some(f.id.clone()),
        payload,
        run_at: RunAt::At(spec.at),
        priority: 0,
        max_attempts: f.retries.saturating_add(1),
        backoff: f.backoff,
        timeout: f.timeout,
        idempotency_key: None,
        request_fingerprint: None,
        tags: BTreeMap::from([(RUN_TAG.to_owned(), spec.run_id.to_string())]),
        target: match &f.runs_on {
            RunsOn::Push(target) => Some(target.clone()),
            RunsOn::Pull => None,
        },
        group: serde_json::from_str::<serde_json::Value>(spec.event.get())
            .ok()
            .and_then(|event| f.flow.group(&event)),
        debounce: None,
    })
}

/// The `attempt` of a call: 1 + the failed attempts of the step it retries (`failures` counts them after the
/// decision's failed attempts were added), 1 when it retries nothing.
pub fn call_attempt(retrying: Option<&str>, failures: &BTreeMap<String, u32>) -> u32 {
    retrying
        .and_then(|id| failures.get(id))
        .map_or(1, |n| n.saturating_add(1))
}

/// A call response that breaks the protocol: the completion becomes this failed attempt, which the call job
/// retries per its policy.
pub fn protocol_failure(error: &ProtocolError) -> Failure {
    let field = if error.field.is_empty() {
        "response"
    } else {
        error.field.as_str()
    };
    Failure {
        error: format!("invalid call response: {field}: {}", error.message),
        retry_after: None,
        retryable: true,
        cause: FailureCause::Worker,
    }
}

/// A call's answer decided: the [`Decision`] to write, with the events its `send_event` step sends, validated.
#[derive(Debug, Clone)]
pub struct Decided {
    /// What to write.
    pub decision: Decision,
    /// The events to store and fan out, with the ids the step's record names.
    pub events: Vec<(EventId, NewEvent)>,
}

/// Decides a call response (`None`: the call completed without a result). A response that breaks the protocol,
/// or sends an invalid event, is refused with the failure the completion becomes (the call job retries it).
pub fn decide_answer(
    response: Option<&str>,
    run: &RunFacts<'_>,
    call: &CallFacts<'_>,
    limits: &RecordLimits,
) -> Result<Decided, Failure> {
    let answer =
        Answer::parse(response.unwrap_or("null"), call.now).map_err(|e| protocol_failure(&e))?;
    let decision = decide(run, call, answer, limits).map_err(|e| protocol_failure(&e))?;
    let mut events = Vec::with_capacity(decision.events.len());
    for (i, (id, request)) in decision.events.iter().enumerate() {
        let event = request
            .clone()
            .validate(call.now, DEFAULT_MAX_EVENT_BYTES)
            .map_err(|e| {
                protocol_failure(&ProtocolError {
                    field: format!("steps.events[{i}].{}", e.field),
                    message: e.message,
                })
            })?;
        events.push((*id, event));
    }
    Ok(Decided { decision, events })
}

/// What the end of a call job does to its run, beyond the answer a completion carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallJobEnd {
    /// Nothing: the call retries, or it completed (the answer decides).
    Nothing,
    /// The run fails with this error (the call job died).
    FailRun(StepError),
    /// The run is cancelled (the worker cancelled the call).
    CancelRun,
}

/// The run's fate when its call job reaches `state`; `last_error` is the error of the job's last attempt.
pub fn call_job_end(state: JobState, last_error: Option<&str>) -> CallJobEnd {
    match state {
        JobState::Dead => CallJobEnd::FailRun(StepError {
            name: "CallFailed".into(),
            message: last_error.unwrap_or("the call failed").to_owned(),
        }),
        JobState::Cancelled => CallJobEnd::CancelRun,
        _ => CallJobEnd::Nothing,
    }
}

/// The run state an API reader sees. A queued or sleeping run follows its calls: `running` while a worker holds
/// one, `queued` while one is available (a sleep that has ended and was staged).
pub fn visible_state(stored: RunState, call_running: bool, call_available: bool) -> RunState {
    match stored {
        RunState::Queued | RunState::Sleeping if call_running => RunState::Running,
        RunState::Sleeping if call_available => RunState::Queued,
        s => s,
    }
}

/// How a child run's end reads to the parent waiting on it through `invoke` (`None`: it has not ended).
pub fn child_outcome(
    state: RunState,
    output: Option<&Json>,
    error: Option<&StepError>,
) -> Option<InvokeOutcome> {
    match state {
        RunState::Succeeded => Some(InvokeOutcome::Succeeded(
            output.cloned().unwrap_or_else(Json::null),
        )),
        RunState::Failed => Some(InvokeOutcome::Failed(error.cloned().unwrap_or_else(|| {
            StepError {
                name: "RunFailed".into(),
                message: "the invoked run failed".into(),
            }
        }))),
        RunState::Cancelled => Some(InvokeOutcome::Failed(cancelled_error())),
        _ => None,
    }
}

/// The error a cancelled run reports (to a parent waiting on it, and as its own error).
pub fn cancelled_error() -> StepError {
    StepError {
        name: "RunCancelled".into(),
        message: "the run was cancelled".into(),
    }
}

/// The `data` of the event that starts an invoked run (`{}` when the step gave none).
pub fn invoked_data(data: Option<&Json>) -> Json {
    data.cloned()
        .unwrap_or_else(|| Json::from_text("{}").unwrap_or_else(|_| Json::null()))
}

/// A recorded step as a store lists it for [`retry_removes`]: its id and whether its result is an error.
#[derive(Debug, Clone, Copy)]
pub struct RecordedStep<'a> {
    /// The step's id.
    pub id: &'a str,
    /// True when its recorded result is an error.
    pub is_error: bool,
}

/// Which record a retry of a failed or cancelled run deletes: the last recorded step, when its result is an error
/// (the error the code did not catch, which failed the run); every other record stays. `records` are in the
/// order they were recorded.
pub fn retry_removes<'a>(state: RunState, records: &[RecordedStep<'a>]) -> Option<&'a str> {
    if state != RunState::Failed {
        return None;
    }
    records.last().filter(|r| r.is_error).map(|r| r.id)
}

/// The steps a decision records, by outcome (what the engine counts as `offload_steps_total`).
pub fn step_counts(decision: &Decision) -> StepCounts {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let error = decision
        .records
        .iter()
        .filter(|r| matches!(r.result, StepResult::Error(_)))
        .count();
    StepCounts {
        data: count(decision.records.len() - error),
        error: count(error),
        retry: count(decision.failed_attempts.len()),
        planned: match &decision.next {
            Next::Parallel(ids) => count(ids.len()),
            _ => 0,
        },
    }
}

/// A run as it stood before and after the end of one of its call jobs, as a store reads it for [`run_change`].
#[derive(Debug, Clone)]
pub struct RunSides {
    /// The run.
    pub run_id: RunId,
    /// Its function.
    pub function_id: String,
    /// Its stored state before the call's end was applied.
    pub before: RunState,
    /// Its stored state after.
    pub after: RunState,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it ended, if it has.
    pub ended_at: Option<Timestamp>,
}

/// What the end of a call job did to its run: nothing to report when the run had already ended; else its
/// recorded steps, and its end when it reached a final state in this transaction.
pub fn run_change(sides: RunSides, steps: StepCounts) -> Option<RunChange> {
    if sides.before.is_final() {
        return None;
    }
    let ended = sides.after.is_final().then(|| {
        let end = sides.ended_at.unwrap_or(sides.created_at);
        RunEnded {
            state: sides.after,
            duration: std::time::Duration::try_from(end.duration_since(sides.created_at))
                .unwrap_or_default(),
        }
    });
    Some(RunChange {
        run_id: sides.run_id,
        function_id: sides.function_id,
        ended,
        steps,
    })
}

fn result_len(result: &StepResult) -> usize {
    match result {
        StepResult::Data(d) => d.get().len() + 10,
        StepResult::Error(e) => e.name.len() + e.message.len() + 40,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use offload_core::function::definition::FunctionSpec;
    use serde_json::json;

    use super::*;

    fn function(spec: serde_json::Value) -> Function {
        serde_json::from_value::<FunctionSpec>(spec)
            .unwrap()
            .validate(None)
            .unwrap()
    }

    fn at() -> Timestamp {
        "2026-12-03T10:00:00Z".parse().unwrap()
    }

    fn data(text: &str) -> StepResult {
        StepResult::Data(Json::from_text(text).unwrap())
    }

    #[test]
    fn a_call_job_carries_the_run_and_every_step() {
        let f = function(
            json!({"id": "charge", "triggers": [{"event": "app/x"}], "retries": 2,
            "timeout": "10s", "queue": "billing"}),
        );
        let run_id = RunId::new();
        let event = Json::from_text(r#"{"name":"app/x","data":{}}"#).unwrap();
        let steps = BTreeMap::from([("a".to_owned(), data("1"))]);
        let spec = CallSpec {
            function: &f,
            run_id,
            event: &event,
            steps: &steps,
            attempt: 2,
            run_step: Some("p"),
            at: at(),
            max_state_bytes: 1 << 20,
        };
        let job = call_job(&spec).unwrap();
        assert_eq!(job.queue, "billing");
        assert_eq!(job.group, None);
        assert_eq!(job.name.as_deref(), Some("charge"));
        assert_eq!(job.max_attempts, 3);
        assert_eq!(job.timeout, Duration::from_secs(10));
        assert_eq!(job.tags.get(RUN_TAG), Some(&run_id.to_string()));
        assert!(job.target.is_none());
        assert!(matches!(job.run_at, RunAt::At(t) if t == at()));
        let payload: serde_json::Value = serde_json::from_str(job.payload.get()).unwrap();
        assert_eq!(payload["run_id"], json!(run_id.to_string()));
        assert_eq!(payload["attempt"], json!(2));
        assert_eq!(payload["steps"]["a"], json!({"data": 1}));
        assert_eq!(payload["run_step"], json!("p"));
        assert_eq!(payload["events"][0]["name"], json!("app/x"));
    }

    #[test]
    fn a_keyed_concurrency_groups_calls_by_the_events_value() {
        let f = function(json!({"id": "sync", "triggers": [{"event": "app/x"}],
            "concurrency": [{"limit": 1, "key": "data.account"}]}));
        let steps = BTreeMap::new();
        let group_of = |text: &str| {
            let event = Json::from_text(text).unwrap();
            call_job(&CallSpec {
                function: &f,
                run_id: RunId::new(),
                event: &event,
                steps: &steps,
                attempt: 1,
                run_step: None,
                at: at(),
                max_state_bytes: 1 << 20,
            })
            .unwrap()
            .group
        };
        assert_eq!(
            group_of(r#"{"name":"app/x","data":{"account":"acme"}}"#),
            Some("acme".into())
        );
        assert_eq!(group_of(r#"{"name":"app/x","data":{}}"#), None);
    }

    #[test]
    fn push_functions_get_their_target() {
        let f = function(json!({"id": "p", "triggers": [{"event": "app/x"}],
            "target": {"url": "http://127.0.0.1:9/hook"}}));
        let event = Json::from_text("{}").unwrap();
        let steps = BTreeMap::new();
        let spec = CallSpec {
            function: &f,
            run_id: RunId::new(),
            event: &event,
            steps: &steps,
            attempt: 1,
            run_step: None,
            at: at(),
            max_state_bytes: 1 << 20,
        };
        assert!(call_job(&spec).unwrap().target.is_some());
    }

    #[test]
    fn steps_beyond_the_state_limit_are_omitted() {
        let f = function(json!({"id": "f", "triggers": [{"event": "app/x"}]}));
        let event = Json::from_text("{}").unwrap();
        let big = format!("\"{}\"", "x".repeat(2000));
        let steps = BTreeMap::from([("a".to_owned(), data(&big))]);
        let mut spec = CallSpec {
            function: &f,
            run_id: RunId::new(),
            event: &event,
            steps: &steps,
            attempt: 1,
            run_step: None,
            at: at(),
            max_state_bytes: 1000,
        };
        let request = call_request(&spec);
        assert!(request.steps_omitted && request.steps.is_empty());
        spec.max_state_bytes = 10_000;
        let request = call_request(&spec);
        assert!(!request.steps_omitted && request.steps.len() == 1);
    }

    #[test]
    fn attempts_count_the_retried_steps_failures() {
        let failures = BTreeMap::from([("a".to_owned(), 2)]);
        assert_eq!(call_attempt(None, &failures), 1);
        assert_eq!(call_attempt(Some("a"), &failures), 3);
        assert_eq!(call_attempt(Some("b"), &failures), 1);
    }

    #[test]
    fn a_protocol_error_is_a_retryable_failure_naming_the_field() {
        let f = protocol_failure(&ProtocolError {
            field: "steps[0].until".into(),
            message: "is required".into(),
        });
        assert_eq!(
            f.error,
            "invalid call response: steps[0].until: is required"
        );
        assert!(f.retryable);
    }

    #[test]
    fn answers_are_decided_and_bad_ones_refused_as_failures() {
        use std::collections::BTreeSet;
        let recorded = BTreeSet::new();
        let pending = BTreeSet::new();
        let failures = BTreeMap::new();
        let backoff = offload_core::Backoff::default();
        let event = json!({"name": "app/x", "data": {}});
        let run = RunFacts {
            state: RunState::Queued,
            recorded: &recorded,
            recorded_bytes: 0,
            pending_parallel: &pending,
            failures: &failures,
            retries: 1,
            backoff: &backoff,
            event: &event,
        };
        let call = CallFacts {
            run_step: None,
            now: at(),
            jitter: 0.0,
        };
        let limits = RecordLimits::default();
        let sent = r#"{"steps":[{"id":"s","op":"send_event","events":[{"name":"app/y"}]}]}"#;
        let decided = decide_answer(Some(sent), &run, &call, &limits).unwrap();
        assert_eq!(decided.events.len(), 1);
        assert_eq!(decided.events[0].0, decided.decision.events[0].0);
        let reserved =
            r#"{"steps":[{"id":"s","op":"send_event","events":[{"name":"offload/y"}]}]}"#;
        let refused = decide_answer(Some(reserved), &run, &call, &limits).unwrap_err();
        assert!(
            refused
                .error
                .starts_with("invalid call response: steps.events[0].name"),
            "{}",
            refused.error
        );
        let none = decide_answer(None, &run, &call, &limits).unwrap_err();
        assert!(none.error.starts_with("invalid call response: response"));
    }

    #[test]
    fn a_dead_call_fails_its_run_and_a_cancelled_one_cancels_it() {
        assert_eq!(
            call_job_end(JobState::Dead, Some("boom")),
            CallJobEnd::FailRun(StepError {
                name: "CallFailed".into(),
                message: "boom".into()
            })
        );
        assert_eq!(
            call_job_end(JobState::Cancelled, None),
            CallJobEnd::CancelRun
        );
        for s in [JobState::Retrying, JobState::Succeeded, JobState::Available] {
            assert_eq!(call_job_end(s, None), CallJobEnd::Nothing);
        }
    }

    #[test]
    fn a_queued_run_with_a_held_call_reads_running() {
        assert_eq!(
            visible_state(RunState::Queued, true, false),
            RunState::Running
        );
        assert_eq!(
            visible_state(RunState::Queued, false, true),
            RunState::Queued
        );
        assert_eq!(
            visible_state(RunState::Sleeping, false, true),
            RunState::Queued
        );
        assert_eq!(
            visible_state(RunState::Sleeping, false, false),
            RunState::Sleeping
        );
        assert_eq!(
            visible_state(RunState::Waiting, true, false),
            RunState::Waiting
        );
    }

    #[test]
    fn a_child_end_reads_as_the_parents_outcome() {
        let out = Json::from_text("5").unwrap();
        assert_eq!(
            child_outcome(RunState::Succeeded, Some(&out), None),
            Some(InvokeOutcome::Succeeded(out))
        );
        assert_eq!(
            child_outcome(RunState::Cancelled, None, None),
            Some(InvokeOutcome::Failed(cancelled_error()))
        );
        assert!(matches!(
            child_outcome(RunState::Failed, None, None),
            Some(InvokeOutcome::Failed(_))
        ));
        assert_eq!(child_outcome(RunState::Waiting, None, None), None);
    }

    #[test]
    fn a_run_change_reports_an_end_only_once() {
        let created = at();
        let ended = created + jiff::SignedDuration::from_millis(1500);
        let sides = |before, after, ended_at| RunSides {
            run_id: RunId::new(),
            function_id: "f".into(),
            before,
            after,
            created_at: created,
            ended_at,
        };
        let steps = StepCounts {
            data: 2,
            ..StepCounts::default()
        };
        let change = run_change(
            sides(RunState::Queued, RunState::Succeeded, Some(ended)),
            steps,
        )
        .unwrap();
        assert_eq!(change.function_id, "f");
        assert_eq!(change.steps, steps);
        assert_eq!(
            change.ended,
            Some(RunEnded {
                state: RunState::Succeeded,
                duration: Duration::from_millis(1500)
            })
        );
        let going = run_change(sides(RunState::Queued, RunState::Sleeping, None), steps).unwrap();
        assert_eq!(going.ended, None);
        let over = sides(RunState::Failed, RunState::Failed, Some(ended));
        assert_eq!(run_change(over, steps), None);
        let back = sides(
            RunState::Queued,
            RunState::Failed,
            Some(created - jiff::SignedDuration::from_secs(1)),
        );
        assert_eq!(
            run_change(back, steps).unwrap().ended.unwrap().duration,
            Duration::ZERO
        );
    }

    #[test]
    fn step_counts_split_records_by_outcome() {
        use offload_core::function::record::{FailedAttempt, NewStepRecord, StepKind};
        let record = |id: &str, result| NewStepRecord {
            id: id.into(),
            kind: StepKind::Run,
            result,
            attempts: 1,
        };
        let error = StepError {
            name: "E".into(),
            message: "m".into(),
        };
        let decision = Decision {
            records: vec![
                record("a", data("1")),
                record("b", data("2")),
                record("c", StepResult::Error(error.clone())),
            ],
            failed_attempts: vec![FailedAttempt {
                id: "d".into(),
                attempt: 1,
                error,
            }],
            events: Vec::new(),
            next: Next::Parallel(vec!["p".into(), "q".into()]),
        };
        assert_eq!(
            step_counts(&decision),
            StepCounts {
                data: 2,
                error: 1,
                retry: 1,
                planned: 2
            }
        );
    }

    #[test]
    fn retry_removes_only_a_last_error_of_a_failed_run() {
        let records = [
            RecordedStep {
                id: "a",
                is_error: false,
            },
            RecordedStep {
                id: "b",
                is_error: true,
            },
        ];
        assert_eq!(retry_removes(RunState::Failed, &records), Some("b"));
        assert_eq!(retry_removes(RunState::Cancelled, &records), None);
        assert_eq!(retry_removes(RunState::Failed, &records[..1]), None);
        assert_eq!(retry_removes(RunState::Failed, &[]), None);
    }
}
