//! The call protocol between the server and function code, the same for push and pull.
//!
//! Each call is a job whose payload is a [`CallRequest`]: the run's event(s) and every step recorded so far.
//! The code replays from the top; a step found in `steps` returns its data (or throws its error) without
//! running; at the first step not found the code stops and answers with a call response, parsed here into an
//! [`Answer`]: the run's output, or the steps it ran or planned.
//!
//! An answer's `steps` hold zero or more `run` results, then at most one of: a `sleep`, a `wait_for_event`, a
//! `send_event`, an `invoke`, or one or more `plan_run` (parallel steps). The whole protocol is specified for
//! SDK authors in `docs/functions-protocol.md`.
//!
//! Invariant: an [`Answer`] only exists if it follows these rules (step ids valid and unique within the answer,
//! times and timeouts within limits, events valid), so the record decision never meets a malformed answer.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::event::{EventRequest, MAX_EVENTS_PER_REQUEST};
use super::names::{validate_event_name, validate_function_id, validate_step_id};
use super::path::FieldPath;
pub use super::raw::Json;
use super::run::RunId;
use crate::duration::DurationSpec;

/// Longest `sleep`, `wait_for_event` or `invoke` timeout (one year), measured from the answer.
pub const MAX_WAIT: Duration = Duration::from_secs(366 * 24 * 3600);
/// Longest error name a step may report.
pub const MAX_ERROR_NAME_LEN: usize = 256;

/// What a call delivers to the code: the job payload of every call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRequest {
    /// The run this call belongs to.
    pub run_id: RunId,
    /// The function being run.
    pub function_id: String,
    /// 1 + the failed attempts of the step this call retries (1 when it retries nothing).
    pub attempt: u32,
    /// The event that started the run (`{"name", "data", "id", "ts"}`).
    pub event: Json,
    /// Every event of the run (one, unless the function batches events).
    pub events: Vec<Json>,
    /// Every step recorded so far, by step id.
    pub steps: BTreeMap<String, StepResult>,
    /// For a call made for one planned parallel step: that step's id; the code runs only it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_step: Option<String>,
    /// True when the recorded steps did not fit in the request: fetch them from `GET /v1/runs/{id}/steps`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub steps_omitted: bool,
}

/// A recorded step, as the code sees it on replay: `{"data": ...}` or `{"error": {"name", "message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    /// The step's JSON result.
    Data(Json),
    /// The step's final error (its retries exhausted, or not retryable).
    Error(StepError),
}

/// An error a step (or the run) ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepError {
    /// The error's class, e.g. `TypeError` or `CardDeclined`.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

/// The call response exactly as code sends it (push: the HTTP response body; pull: the job's result).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseWire {
    #[serde(default)]
    done: Option<bool>,
    #[serde(default)]
    output: Option<Json>,
    #[serde(default)]
    steps: Option<Vec<StepOpWire>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepOpWire {
    id: String,
    op: OpKind,
    #[serde(default)]
    data: Option<Json>,
    #[serde(default)]
    error: Option<OpErrorWire>,
    #[serde(default)]
    until: Option<Timestamp>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default, rename = "match")]
    match_path: Option<String>,
    #[serde(default)]
    timeout: Option<DurationSpec>,
    #[serde(default)]
    events: Option<Vec<EventRequest>>,
    #[serde(default)]
    function_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpKind {
    Run,
    Sleep,
    WaitForEvent,
    SendEvent,
    Invoke,
    PlanRun,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpErrorWire {
    name: String,
    message: String,
    #[serde(default)]
    retryable: Option<bool>,
}

/// A parsed, valid call response.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The run finished with this output (`null` when the code returned nothing).
    Done(Option<Json>),
    /// Steps the code ran, then what it plans next.
    Steps {
        /// `run` steps executed in this call, in order.
        ran: Vec<RanStep>,
        /// What the code asks for next, if anything.
        then: Option<Plan>,
    },
}

/// One executed `run` step.
#[derive(Debug, Clone, PartialEq)]
pub struct RanStep {
    /// The step's id.
    pub id: String,
    /// Its result, or its error.
    pub outcome: RanOutcome,
}

/// How an executed step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RanOutcome {
    /// It returned this JSON (`None`: `null`).
    Data(Option<Json>),
    /// It threw; `retryable: false` records the error at once, without retries.
    Error {
        /// The error.
        error: StepError,
        /// Whether retries may help.
        retryable: bool,
    },
}

/// What the code plans after the steps it ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Sleep until a time.
    Sleep {
        /// The step's id.
        id: String,
        /// When the run continues.
        until: Timestamp,
    },
    /// Wait for an event.
    WaitForEvent {
        /// The step's id.
        id: String,
        /// The awaited event's name.
        event: String,
        /// A field compared between the awaited event and the run's event (`None`: any event of that name).
        match_path: Option<FieldPath>,
        /// How long to wait before the step resolves to `null`.
        timeout: Duration,
    },
    /// Send events, once however often the code replays.
    SendEvent {
        /// The step's id.
        id: String,
        /// The events.
        events: Vec<EventRequest>,
    },
    /// Start another function's run and wait for its output.
    Invoke {
        /// The step's id.
        id: String,
        /// The function to run.
        function_id: String,
        /// The `data` of the invocation event the child run receives.
        data: Option<Json>,
        /// How long to wait for the child run (default and most: [`MAX_WAIT`]).
        timeout: Duration,
    },
    /// Run these steps in parallel: one call each.
    Parallel(Vec<String>),
}

impl Plan {
    /// The id of the one step this plan records (`None` for parallel steps, which have several).
    pub fn step_id(&self) -> Option<&str> {
        match self {
            Plan::Sleep { id, .. }
            | Plan::WaitForEvent { id, .. }
            | Plan::SendEvent { id, .. }
            | Plan::Invoke { id, .. } => Some(id),
            Plan::Parallel(_) => None,
        }
    }
}

/// Why a call response was refused. The call then fails like a job whose worker reported an error, and is
/// retried by the function's retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid call response at `{field}`: {message}")]
pub struct ProtocolError {
    /// Where in the response, e.g. `steps[2].until`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> ProtocolError {
    ProtocolError {
        field: field.into(),
        message: message.into(),
    }
}

impl Answer {
    /// Parses a call response. `now` bounds `sleep` times (at most [`MAX_WAIT`] ahead).
    pub fn parse(text: &str, now: Timestamp) -> Result<Self, ProtocolError> {
        let wire: ResponseWire =
            serde_json::from_str(text).map_err(|e| refuse("", e.to_string()))?;
        match (wire.done, wire.steps) {
            (Some(true), None) => Ok(Answer::Done(wire.output)),
            (Some(true), Some(_)) => Err(refuse("steps", "a response with `done` has no `steps`")),
            (Some(false), _) => Err(refuse("done", "is `true` or absent")),
            (None, None) => Err(refuse(
                "",
                "give `{\"done\": true, \"output\": ...}` or `{\"steps\": [...]}`",
            )),
            (None, Some(steps)) => {
                if wire.output.is_some() {
                    return Err(refuse("output", "only goes with `done`"));
                }
                parse_steps(steps, now)
            }
        }
    }
}

fn parse_steps(steps: Vec<StepOpWire>, now: Timestamp) -> Result<Answer, ProtocolError> {
    if steps.is_empty() {
        return Err(refuse("steps", "must hold at least one step"));
    }
    let mut seen = HashSet::new();
    let mut ran = Vec::new();
    let mut planned = Vec::new();
    let mut then = None;
    for (i, op) in steps.into_iter().enumerate() {
        let at = |f: &str| {
            if f.is_empty() {
                format!("steps[{i}]")
            } else {
                format!("steps[{i}].{f}")
            }
        };
        validate_step_id(&op.id).map_err(|m| refuse(at("id"), m))?;
        if !seen.insert(op.id.clone()) {
            return Err(refuse(
                at("id"),
                format!("`{}` appears twice in one response", op.id),
            ));
        }
        if then.is_some() {
            return Err(refuse(
                at(""),
                "nothing may follow a sleep, wait_for_event, send_event or invoke",
            ));
        }
        if !planned.is_empty() && op.op != OpKind::PlanRun {
            return Err(refuse(at("op"), "only plan_run may follow plan_run"));
        }
        let unexpected = |field: &str, present: bool| -> Result<(), ProtocolError> {
            if present {
                Err(refuse(
                    at(field),
                    format!("does not go with op `{:?}`", op.op).to_lowercase(),
                ))
            } else {
                Ok(())
            }
        };
        match op.op {
            OpKind::Run => {
                if !planned.is_empty() {
                    return Err(refuse(at("op"), "only plan_run may follow plan_run"));
                }
                unexpected("until", op.until.is_some())?;
                unexpected("event", op.event.is_some())?;
                unexpected("timeout", op.timeout.is_some())?;
                let outcome = match (op.data, op.error) {
                    (Some(_), Some(_)) => {
                        return Err(refuse(at("error"), "give `data` or `error`, not both"));
                    }
                    (data, None) => RanOutcome::Data(data),
                    (None, Some(e)) => {
                        if e.name.is_empty() || e.name.len() > MAX_ERROR_NAME_LEN {
                            return Err(refuse(
                                at("error.name"),
                                format!("must be 1 to {MAX_ERROR_NAME_LEN} bytes"),
                            ));
                        }
                        RanOutcome::Error {
                            error: StepError {
                                name: e.name,
                                message: e.message,
                            },
                            retryable: e.retryable.unwrap_or(true),
                        }
                    }
                };
                ran.push(RanStep { id: op.id, outcome });
            }
            OpKind::PlanRun => {
                unexpected("data", op.data.is_some())?;
                unexpected("error", op.error.is_some())?;
                planned.push(op.id);
            }
            OpKind::Sleep => {
                let until = op
                    .until
                    .ok_or_else(|| refuse(at("until"), "is required (RFC 3339)"))?;
                if until > crate::state::add(now, MAX_WAIT) {
                    return Err(refuse(at("until"), "must be at most a year ahead"));
                }
                then = Some(Plan::Sleep { id: op.id, until });
            }
            OpKind::WaitForEvent => {
                let event = op.event.ok_or_else(|| refuse(at("event"), "is required"))?;
                validate_event_name(&event).map_err(|m| refuse(at("event"), m))?;
                let match_path = op
                    .match_path
                    .map(|p| FieldPath::parse(&p))
                    .transpose()
                    .map_err(|m| refuse(at("match"), m))?;
                let timeout = op
                    .timeout
                    .ok_or_else(|| refuse(at("timeout"), "is required"))?
                    .0;
                if timeout > MAX_WAIT {
                    return Err(refuse(at("timeout"), "must be at most a year"));
                }
                then = Some(Plan::WaitForEvent {
                    id: op.id,
                    event,
                    match_path,
                    timeout,
                });
            }
            OpKind::SendEvent => {
                let events = op
                    .events
                    .ok_or_else(|| refuse(at("events"), "is required"))?;
                if events.is_empty() || events.len() > MAX_EVENTS_PER_REQUEST {
                    return Err(refuse(
                        at("events"),
                        format!("must hold 1 to {MAX_EVENTS_PER_REQUEST} events"),
                    ));
                }
                then = Some(Plan::SendEvent { id: op.id, events });
            }
            OpKind::Invoke => {
                let function_id = op
                    .function_id
                    .ok_or_else(|| refuse(at("function_id"), "is required"))?;
                validate_function_id(&function_id).map_err(|m| refuse(at("function_id"), m))?;
                let timeout = op.timeout.map_or(MAX_WAIT, |t| t.0);
                if timeout > MAX_WAIT {
                    return Err(refuse(at("timeout"), "must be at most a year"));
                }
                then = Some(Plan::Invoke {
                    id: op.id,
                    function_id,
                    data: op.data,
                    timeout,
                });
            }
        }
    }
    if !planned.is_empty() {
        then = Some(Plan::Parallel(planned));
    }
    Ok(Answer::Steps { ran, then })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2026-12-03T10:00:00Z".parse().unwrap()
    }

    fn parse(value: serde_json::Value) -> Result<Answer, ProtocolError> {
        Answer::parse(&value.to_string(), now())
    }

    #[test]
    fn done_with_and_without_output() {
        assert_eq!(
            parse(json!({"done": true, "output": {"ok": 1}})).unwrap(),
            Answer::Done(Some(Json::from_text(r#"{"ok":1}"#).unwrap()))
        );
        assert_eq!(parse(json!({"done": true})).unwrap(), Answer::Done(None));
    }

    #[test]
    fn ran_steps_then_a_plan() {
        let answer = parse(json!({"steps": [
            {"id": "charge", "op": "run", "data": {"charge_id": "ch_1"}},
            {"id": "receipt", "op": "run", "error": {"name": "SmtpError", "message": "timeout"}},
            {"id": "nap", "op": "sleep", "until": "2026-12-06T10:00:00Z"}
        ]}))
        .unwrap();
        let Answer::Steps { ran, then } = answer else {
            panic!("steps expected")
        };
        assert_eq!(ran.len(), 2);
        assert!(
            matches!(&ran[1].outcome, RanOutcome::Error { retryable: true, error } if error.name == "SmtpError")
        );
        assert_eq!(
            then,
            Some(Plan::Sleep {
                id: "nap".into(),
                until: "2026-12-06T10:00:00Z".parse().unwrap()
            })
        );
    }

    #[test]
    fn each_plan_kind_parses() {
        let wait = parse(json!({"steps": [{"id": "w", "op": "wait_for_event", "event": "app/user.upgraded", "match": "data.user_id", "timeout": "3d"}]})).unwrap();
        assert!(
            matches!(wait, Answer::Steps { then: Some(Plan::WaitForEvent { ref match_path, timeout, .. }), .. }
            if match_path.as_ref().unwrap().as_str() == "data.user_id" && timeout == Duration::from_secs(3 * 86400))
        );
        let send = parse(
            json!({"steps": [{"id": "s", "op": "send_event", "events": [{"name": "app/x"}]}]}),
        )
        .unwrap();
        assert!(
            matches!(send, Answer::Steps { then: Some(Plan::SendEvent { ref events, .. }), .. } if events.len() == 1)
        );
        let invoke = parse(json!({"steps": [{"id": "i", "op": "invoke", "function_id": "child", "data": {"n": 1}}]})).unwrap();
        assert!(
            matches!(invoke, Answer::Steps { then: Some(Plan::Invoke { timeout, .. }), .. } if timeout == MAX_WAIT)
        );
        let parallel =
            parse(json!({"steps": [{"id": "a", "op": "plan_run"}, {"id": "b", "op": "plan_run"}]}))
                .unwrap();
        assert_eq!(
            parallel,
            Answer::Steps {
                ran: vec![],
                then: Some(Plan::Parallel(vec!["a".into(), "b".into()]))
            }
        );
    }

    #[test]
    fn a_step_returning_nothing_is_null_data() {
        let answer = parse(json!({"steps": [{"id": "a", "op": "run"}]})).unwrap();
        assert_eq!(
            answer,
            Answer::Steps {
                ran: vec![RanStep {
                    id: "a".into(),
                    outcome: RanOutcome::Data(None)
                }],
                then: None
            }
        );
    }

    #[test]
    fn malformed_responses_are_refused_with_a_place() {
        let cases = [
            (json!({}), ""),
            (json!({"done": false}), "done"),
            (json!({"done": true, "steps": []}), "steps"),
            (
                json!({"output": 1, "steps": [{"id": "a", "op": "run"}]}),
                "output",
            ),
            (json!({"steps": []}), "steps"),
            (json!({"steps": [{"id": "", "op": "run"}]}), "steps[0].id"),
            (
                json!({"steps": [{"id": "a", "op": "run"}, {"id": "a", "op": "run"}]}),
                "steps[1].id",
            ),
            (
                json!({"steps": [{"id": "a", "op": "run", "data": 1, "error": {"name": "E", "message": ""}}]}),
                "steps[0].error",
            ),
            (
                json!({"steps": [{"id": "a", "op": "sleep"}]}),
                "steps[0].until",
            ),
            (
                json!({"steps": [{"id": "a", "op": "sleep", "until": "2028-12-03T10:00:00Z"}]}),
                "steps[0].until",
            ),
            (
                json!({"steps": [{"id": "a", "op": "sleep", "until": "2026-12-04T10:00:00Z"}, {"id": "b", "op": "run"}]}),
                "steps[1]",
            ),
            (
                json!({"steps": [{"id": "a", "op": "plan_run"}, {"id": "b", "op": "run"}]}),
                "steps[1].op",
            ),
            (
                json!({"steps": [{"id": "a", "op": "wait_for_event", "event": "x"}]}),
                "steps[0].timeout",
            ),
            (
                json!({"steps": [{"id": "a", "op": "wait_for_event", "event": "x", "timeout": "1s", "match": "zz"}]}),
                "steps[0].match",
            ),
            (
                json!({"steps": [{"id": "a", "op": "send_event", "events": []}]}),
                "steps[0].events",
            ),
            (
                json!({"steps": [{"id": "a", "op": "invoke"}]}),
                "steps[0].function_id",
            ),
            (
                json!({"steps": [{"id": "a", "op": "run", "until": "2026-12-04T10:00:00Z"}]}),
                "steps[0].until",
            ),
        ];
        for (value, field) in cases {
            let err = parse(value.clone()).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
        assert!(parse(json!({"steps": [{"id": "a", "op": "fly"}]})).is_err());
        assert!(parse(json!({"done": true, "extra": 1})).is_err());
    }

    #[test]
    fn call_requests_serialize_as_the_protocol_says() {
        let mut steps = BTreeMap::new();
        steps.insert(
            "a".to_owned(),
            StepResult::Data(Json::from_text("1").unwrap()),
        );
        steps.insert(
            "b".to_owned(),
            StepResult::Error(StepError {
                name: "E".into(),
                message: "m".into(),
            }),
        );
        let request = CallRequest {
            run_id: RunId(uuid::Uuid::nil()),
            function_id: "f".into(),
            attempt: 1,
            event: Json::from_text(r#"{"name":"app/x","data":{}}"#).unwrap(),
            events: vec![],
            steps,
            run_step: None,
            steps_omitted: false,
        };
        let json: serde_json::Value = serde_json::to_value(&request).unwrap();
        assert_eq!(json["steps"]["a"], json!({"data": 1}));
        assert_eq!(
            json["steps"]["b"],
            json!({"error": {"name": "E", "message": "m"}})
        );
        assert!(json.get("run_step").is_none() && json.get("steps_omitted").is_none());
    }
}
