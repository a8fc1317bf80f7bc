//! The step record decision, case by case: the rules users rely on ("a finished step never runs twice", "a
//! failed step retries on its own count", "a sleep holds no worker") as table-like tests without a database.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::backoff::Backoff;
use crate::function::protocol::Answer;

fn now() -> Timestamp {
    "2026-12-03T10:00:00Z".parse().unwrap()
}

/// A run's facts, owned, so each test states only what differs.
struct Run {
    state: RunState,
    recorded: BTreeSet<String>,
    recorded_bytes: usize,
    pending: BTreeSet<String>,
    failures: BTreeMap<String, u32>,
    retries: u32,
    backoff: Backoff,
    event: Value,
}

impl Run {
    fn new() -> Self {
        Self {
            state: RunState::Running,
            recorded: BTreeSet::new(),
            recorded_bytes: 0,
            pending: BTreeSet::new(),
            failures: BTreeMap::new(),
            retries: 2,
            backoff: Backoff::default(),
            event: json!({"name": "app/order.paid", "data": {"user_id": 7}}),
        }
    }

    fn recorded(mut self, ids: &[&str]) -> Self {
        self.recorded = ids.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn decide(&self, run_step: Option<&str>, answer: Value) -> Result<Decision, ProtocolError> {
        self.decide_with(run_step, answer, &RecordLimits::default())
    }

    fn decide_with(
        &self,
        run_step: Option<&str>,
        answer: Value,
        limits: &RecordLimits,
    ) -> Result<Decision, ProtocolError> {
        let facts = RunFacts {
            state: self.state,
            recorded: &self.recorded,
            recorded_bytes: self.recorded_bytes,
            pending_parallel: &self.pending,
            failures: &self.failures,
            retries: self.retries,
            backoff: &self.backoff,
            event: &self.event,
        };
        let call = CallFacts {
            run_step,
            now: now(),
            jitter: 0.0,
        };
        decide(
            &facts,
            &call,
            Answer::parse(&answer.to_string(), now()).unwrap(),
            limits,
        )
    }
}

fn data(text: &str) -> StepResult {
    StepResult::Data(Json::from_text(text).unwrap())
}

fn now_call() -> Next {
    Next::Call {
        at: now(),
        run_step: None,
        retrying: None,
        state: RunState::Queued,
    }
}

#[test]
fn a_ran_step_is_recorded_and_the_next_call_follows_at_once() {
    let d = Run::new()
        .decide(
            None,
            json!({"steps": [{"id": "charge", "op": "run", "data": {"id": "ch_1"}}]}),
        )
        .unwrap();
    assert_eq!(
        d.records,
        [NewStepRecord {
            id: "charge".into(),
            kind: StepKind::Run,
            result: data(r#"{"id":"ch_1"}"#),
            attempts: 1
        }]
    );
    assert_eq!(d.next, now_call());
}

#[test]
fn a_recorded_step_is_never_recorded_again() {
    let run = Run::new().recorded(&["charge"]);
    let d = run
        .decide(
            None,
            json!({"steps": [
                {"id": "charge", "op": "run", "data": "second"},
                {"id": "receipt", "op": "run", "data": true}
            ]}),
        )
        .unwrap();
    assert_eq!(
        d.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["receipt"]
    );
    // An answer of nothing but recorded steps cannot make progress: the call is refused, never looped on.
    assert!(
        run.decide(None, json!({"steps": [{"id": "charge", "op": "run"}]}))
            .is_err()
    );
}

#[test]
fn a_failing_step_retries_on_its_own_count_then_its_error_is_handed_to_the_code() {
    let mut run = Run::new().recorded(&["charge"]);
    let failing = json!({"steps": [{"id": "receipt", "op": "run", "error": {"name": "SmtpError", "message": "down"}}]});

    let first = run.decide(None, failing.clone()).unwrap();
    assert!(
        first.records.is_empty(),
        "a retryable failure records no result"
    );
    assert_eq!(first.failed_attempts[0].attempt, 1);
    assert_eq!(
        first.next,
        Next::Call {
            at: crate::state::add(now(), Duration::from_secs(1)),
            run_step: None,
            retrying: Some("receipt".into()),
            state: RunState::Sleeping
        }
    );

    run.failures.insert("receipt".into(), 1);
    let second = run.decide(None, failing.clone()).unwrap();
    assert_eq!(second.failed_attempts[0].attempt, 2);

    run.failures.insert("receipt".into(), 2);
    let third = run.decide(None, failing).unwrap();
    assert!(third.failed_attempts.is_empty());
    assert_eq!(third.records[0].attempts, 3);
    assert_eq!(
        third.records[0].result,
        StepResult::Error(StepError {
            name: "SmtpError".into(),
            message: "down".into()
        })
    );
    assert_eq!(
        third.next,
        now_call(),
        "the code gets the error on the next call"
    );
}

#[test]
fn a_non_retryable_error_is_recorded_at_once() {
    let d = Run::new()
        .decide(None, json!({"steps": [{"id": "a", "op": "run", "error": {"name": "Fatal", "message": "no", "retryable": false}}]}))
        .unwrap();
    assert_eq!(d.records[0].attempts, 1);
    assert!(matches!(d.records[0].result, StepResult::Error(_)));
}

#[test]
fn nothing_may_follow_a_failed_step() {
    let err = Run::new()
        .decide(
            None,
            json!({"steps": [
                {"id": "a", "op": "run", "error": {"name": "E", "message": "m"}},
                {"id": "b", "op": "run", "data": 1}
            ]}),
        )
        .unwrap_err();
    assert_eq!(err.field, "steps[1]");
}

#[test]
fn a_sleep_is_recorded_and_the_next_call_waits_for_its_time() {
    let until: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
    let d = Run::new()
        .decide(
            None,
            json!({"steps": [{"id": "nap", "op": "sleep", "until": until}]}),
        )
        .unwrap();
    assert_eq!(d.records[0].kind, StepKind::Sleep);
    assert_eq!(
        d.next,
        Next::Call {
            at: until,
            run_step: None,
            retrying: None,
            state: RunState::Sleeping
        }
    );
    // A time already past continues at once.
    let past = Run::new()
        .decide(
            None,
            json!({"steps": [{"id": "nap", "op": "sleep", "until": "2026-12-01T00:00:00Z"}]}),
        )
        .unwrap();
    assert_eq!(past.next, now_call());
}

#[test]
fn a_wait_parks_the_run_with_the_run_events_match_key() {
    let d = Run::new()
        .decide(None, json!({"steps": [{"id": "upgrade", "op": "wait_for_event", "event": "app/user.upgraded", "match": "data.user_id", "timeout": "3d"}]}))
        .unwrap();
    assert!(d.records.is_empty(), "a wait is recorded when it resolves");
    let Next::Wait {
        step,
        event,
        matching,
        until,
    } = d.next
    else {
        panic!("a wait")
    };
    assert_eq!(
        (step.as_str(), event.as_str()),
        ("upgrade", "app/user.upgraded")
    );
    assert_eq!(
        matching,
        WaitMatch::Field {
            path: FieldPath::parse("data.user_id").unwrap(),
            key: "7".into()
        }
    );
    assert_eq!(
        until,
        crate::state::add(now(), Duration::from_secs(3 * 86400))
    );

    let none = Run::new()
        .decide(None, json!({"steps": [{"id": "w", "op": "wait_for_event", "event": "x", "match": "data.team_id", "timeout": "1h"}]}))
        .unwrap();
    assert!(matches!(
        none.next,
        Next::Wait {
            matching: WaitMatch::Never,
            ..
        }
    ));
}

#[test]
fn waits_resolve_to_the_event_or_to_null() {
    let event = Json::from_text(r#"{"name":"app/user.upgraded","data":{"user_id":7}}"#).unwrap();
    assert_eq!(
        resolve_wait("w", WaitOutcome::Event(event.clone())).result,
        StepResult::Data(event)
    );
    assert_eq!(
        resolve_wait("w", WaitOutcome::TimedOut).result,
        data("null")
    );
}

#[test]
fn sent_events_are_recorded_with_their_ids_once() {
    let answer = json!({"steps": [{"id": "notify", "op": "send_event", "events": [{"name": "app/a"}, {"name": "app/b"}]}]});
    let d = Run::new().decide(None, answer.clone()).unwrap();
    assert_eq!(d.events.len(), 2);
    let StepResult::Data(ids) = &d.records[0].result else {
        panic!("data")
    };
    let ids: Value = serde_json::from_str(ids.get()).unwrap();
    assert_eq!(
        ids["ids"][1],
        json!(d.events[1].0.0.hyphenated().to_string())
    );
    assert_eq!(d.next, now_call());
    // Replayed after it was recorded: nothing is sent again.
    let again = Run::new()
        .recorded(&["notify"])
        .decide(None, answer)
        .unwrap();
    assert!(again.events.is_empty() && again.records.is_empty());
}

#[test]
fn invoke_parks_the_run_and_resolves_to_the_childs_output_or_an_error() {
    let d = Run::new()
        .decide(None, json!({"steps": [{"id": "child", "op": "invoke", "function_id": "render-pdf", "data": {"n": 1}, "timeout": "1h"}]}))
        .unwrap();
    assert!(matches!(d.next, Next::Invoke { ref function_id, .. } if function_id == "render-pdf"));
    let out = Json::from_text(r#"{"url":"x"}"#).unwrap();
    assert_eq!(
        resolve_invoke("child", InvokeOutcome::Succeeded(out.clone())).result,
        StepResult::Data(out)
    );
    assert!(
        matches!(resolve_invoke("child", InvokeOutcome::TimedOut).result, StepResult::Error(e) if e.name == "InvokeTimeout")
    );
    assert!(
        matches!(resolve_invoke("child", InvokeOutcome::UnknownFunction("f".into())).result, StepResult::Error(e) if e.name == "FunctionNotFound")
    );
}

#[test]
fn parallel_steps_get_a_call_each_and_the_run_continues_when_all_are_recorded() {
    let planned = Run::new()
        .recorded(&["b"])
        .decide(None, json!({"steps": [{"id": "a", "op": "plan_run"}, {"id": "b", "op": "plan_run"}, {"id": "c", "op": "plan_run"}]}))
        .unwrap();
    assert_eq!(planned.next, Next::Parallel(vec!["a".into(), "c".into()]));

    let mut run = Run::new().recorded(&["b"]);
    run.pending = ["a".to_owned(), "c".to_owned()].into();
    let first = run
        .decide(
            Some("a"),
            json!({"steps": [{"id": "a", "op": "run", "data": 1}]}),
        )
        .unwrap();
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.next, Next::Idle, "c is still pending");

    run.pending = ["c".to_owned()].into();
    let last = run
        .decide(
            Some("c"),
            json!({"steps": [{"id": "c", "op": "run", "data": 3}]}),
        )
        .unwrap();
    assert_eq!(last.next, now_call());

    // A parallel step's call answers with that step only.
    assert!(
        run.decide(Some("c"), json!({"steps": [{"id": "d", "op": "run"}]}))
            .is_err()
    );
    assert!(run.decide(Some("c"), json!({"done": true})).is_err());
}

#[test]
fn a_parallel_steps_retry_keeps_its_run_step() {
    let mut run = Run::new();
    run.pending = ["a".to_owned()].into();
    let d = run
        .decide(
            Some("a"),
            json!({"steps": [{"id": "a", "op": "run", "error": {"name": "E", "message": "m"}}]}),
        )
        .unwrap();
    assert!(
        matches!(d.next, Next::Call { run_step: Some(ref s), retrying: Some(_), .. } if s == "a")
    );
}

#[test]
fn done_ends_the_run_with_its_output() {
    let d = Run::new()
        .decide(None, json!({"done": true, "output": {"ok": true}}))
        .unwrap();
    assert_eq!(
        d.next,
        Next::Succeed(Json::from_text(r#"{"ok":true}"#).unwrap())
    );
    assert_eq!(
        Run::new().decide(None, json!({"done": true})).unwrap().next,
        Next::Succeed(Json::null())
    );
    let mut pending = Run::new();
    pending.pending = ["a".to_owned()].into();
    assert!(pending.decide(None, json!({"done": true})).is_err());
}

#[test]
fn answers_for_ended_runs_change_nothing() {
    for state in [RunState::Succeeded, RunState::Failed, RunState::Cancelled] {
        let mut run = Run::new();
        run.state = state;
        let d = run
            .decide(
                None,
                json!({"steps": [{"id": "a", "op": "run", "data": 1}]}),
            )
            .unwrap();
        assert_eq!(d, Decision::only(Next::Idle), "{state}");
    }
}

#[test]
fn limits_fail_the_run_with_a_named_error() {
    let limits = RecordLimits {
        max_steps: 2,
        max_step_bytes: 10,
        max_state_bytes: 15,
    };
    let fail_name = |d: Decision| match d.next {
        Next::Fail(e) => e.name,
        other => panic!("expected a failure, got {other:?}"),
    };
    let big = Run::new()
        .decide_with(
            None,
            json!({"steps": [{"id": "a", "op": "run", "data": "01234567890"}]}),
            &limits,
        )
        .unwrap();
    assert_eq!(fail_name(big), "StepOutputTooLarge");

    let mut full = Run::new().recorded(&["x"]);
    full.recorded_bytes = 10;
    let state = full
        .decide_with(
            None,
            json!({"steps": [{"id": "a", "op": "run", "data": "123456"}]}),
            &limits,
        )
        .unwrap();
    assert_eq!(fail_name(state), "RunStateTooLarge");

    let many = Run::new()
        .recorded(&["x", "y"])
        .decide_with(
            None,
            json!({"steps": [{"id": "a", "op": "run", "data": 1}]}),
            &limits,
        )
        .unwrap();
    assert_eq!(fail_name(many), "StepLimitExceeded");

    let planned = Run::new()
        .recorded(&["x"])
        .decide_with(
            None,
            json!({"steps": [{"id": "a", "op": "plan_run"}, {"id": "b", "op": "plan_run"}]}),
            &limits,
        )
        .unwrap();
    assert_eq!(fail_name(planned), "StepLimitExceeded");
}
