//! Runs: each call's answer applied with the call job's end (steps recorded once, retries with backoff, sleeps,
//! invokes, parallel steps, output), dead calls, retry, cancel, steps recorded within a lease, pruning.

use offload_core::function::protocol::{Json, RanOutcome, RanStep, StepError, StepResult};
use offload_core::function::record::{RecordLimits, StepKind};
use offload_core::function::run::RunState;
use offload_core::state::add;
use offload_core::{JobState, LeaseToken};
use serde_json::json;

use crate::{JobHeartbeatParams, RunPruneParams, RunRecordStepsParams, StoreError};

use super::functions::{
    answer, assert_counts_match, claim_call, flow, put, request, run, send, start, step,
};
use super::{Harness, secs};

fn data(text: &str) -> StepResult {
    StepResult::Data(Json::from_text(text).unwrap())
}

/// A reported step is recorded once and the next call carries it; a repeated report of a recorded id is
/// ignored; an answer reporting only recorded steps fails the call.
pub async fn a_step_is_recorded_once_and_carried_by_the_next_call(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({})).await;
    let first = step(
        &h,
        "flow",
        json!({"steps": [{"id": "a", "op": "run", "data": 1}]}),
    )
    .await;
    assert_eq!(h.get(first.id).await.state, JobState::Succeeded);
    let r = run(&h, run_id).await;
    assert_eq!(r.state, RunState::Queued);
    assert_eq!(r.steps, 1);
    assert!(r.started_at.is_some());

    let second = claim_call(&h, "flow").await;
    let req = request(&second);
    assert_eq!(req["steps"], json!({"a": {"data": 1}}));
    assert_eq!(req["attempt"], json!(1));
    answer(
        &h,
        &second,
        json!({"steps": [{"id": "a", "op": "run", "data": 2}, {"id": "b", "op": "run", "data": "x"}]}),
    )
    .await
    .unwrap();
    let third = claim_call(&h, "flow").await;
    assert_eq!(
        request(&third)["steps"],
        json!({"a": {"data": 1}, "b": {"data": "x"}})
    );

    // Only recorded steps: the call fails and retries like any job.
    let refused = answer(
        &h,
        &third,
        json!({"steps": [{"id": "a", "op": "run", "data": 3}]}),
    )
    .await
    .unwrap();
    assert_eq!(refused.state, JobState::Retrying);
    let job = h.get(third.id).await;
    let error = job
        .attempts
        .and_then(|a| a.last().and_then(|a| a.error.clone()))
        .unwrap();
    assert!(error.starts_with("invalid call response: steps"), "{error}");
    let steps = h.store.run_steps(run_id).await.unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(steps[0].result, Some(data("1")));
    assert_eq!(steps[0].kind, StepKind::Run);
    assert_eq!(steps[0].recorded_at, Some(h.now()));
}

/// A retryable step error is retried after the backoff with the step's own attempt count; once exhausted the
/// error is recorded and handed to the code; the history shows every failed attempt.
pub async fn a_failing_step_retries_with_backoff_then_is_recorded(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({})).await;
    let fail = |m: &str| json!({"steps": [{"id": "a", "op": "run", "error": {"name": "E", "message": m}}]});
    step(&h, "flow", fail("m1")).await;
    let r = run(&h, run_id).await;
    assert_eq!(r.state, RunState::Sleeping);
    assert_eq!(r.wake_at, Some(add(h.now(), secs(1))));
    assert!(h.claim("flow", 10).await.is_empty());
    h.advance(secs(1));
    h.stage().await;
    let second = claim_call(&h, "flow").await;
    assert_eq!(request(&second)["attempt"], json!(2));
    assert_eq!(request(&second)["steps"], json!({}));
    answer(&h, &second, fail("m2")).await.unwrap();
    h.advance(secs(1));
    h.stage().await;
    assert!(
        h.claim("flow", 10).await.is_empty(),
        "the second delay is 2s"
    );
    h.advance(secs(1));
    h.stage().await;
    let third = claim_call(&h, "flow").await;
    assert_eq!(request(&third)["attempt"], json!(3));
    answer(&h, &third, fail("m3")).await.unwrap();

    let fourth = claim_call(&h, "flow").await;
    let req = request(&fourth);
    assert_eq!(req["attempt"], json!(1));
    assert_eq!(
        req["steps"]["a"],
        json!({"error": {"name": "E", "message": "m3"}})
    );
    let steps = h.store.run_steps(run_id).await.unwrap();
    assert_eq!(steps.len(), 1);
    let attempts: Vec<(u32, &str)> = steps[0]
        .failed_attempts
        .iter()
        .map(|a| (a.attempt, a.error.message.as_str()))
        .collect();
    assert_eq!(attempts, [(1, "m1"), (2, "m2")]);
    assert_eq!(
        steps[0].result,
        Some(StepResult::Error(StepError {
            name: "E".into(),
            message: "m3".into()
        }))
    );
    answer(&h, &fourth, json!({"done": true, "output": "caught"}))
        .await
        .unwrap();
    assert_eq!(run(&h, run_id).await.state, RunState::Succeeded);
}

/// A sleep records the step and enqueues the next call at its time; `done` ends the run with its output.
pub async fn sleep_then_done_succeeds_with_output(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({})).await;
    let until = add(h.now(), secs(60));
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "a", "op": "run", "data": 1}, {"id": "nap", "op": "sleep", "until": until.to_string()}]}),
    )
    .await;
    let r = run(&h, run_id).await;
    assert_eq!(r.state, RunState::Sleeping);
    assert_eq!(r.wake_at, Some(until));
    h.advance(secs(59));
    h.stage().await;
    assert!(h.claim("flow", 10).await.is_empty());
    h.advance(secs(1));
    h.stage().await;
    let call = claim_call(&h, "flow").await;
    assert_eq!(
        request(&call)["steps"],
        json!({"a": {"data": 1}, "nap": {"data": null}})
    );
    answer(&h, &call, json!({"done": true, "output": {"ok": true}}))
        .await
        .unwrap();
    let r = run(&h, run_id).await;
    assert_eq!(r.state, RunState::Succeeded);
    assert_eq!(r.output.as_ref().map(Json::get), Some(r#"{"ok":true}"#));
    assert_eq!(r.ended_at, Some(h.now()));
    assert_eq!(r.wake_at, None);
    assert!(h.claim("flow", 10).await.is_empty());
    let steps = h.store.run_steps(run_id).await.unwrap();
    assert_eq!(steps[1].kind, StepKind::Sleep);
}

/// `invoke` starts a child run with the invocation event; the child's output becomes the step's data and the
/// parent continues. An unknown function resolves the step at once with an error.
pub async fn invoke_returns_the_childs_output(h: Harness) {
    put(&h, flow()).await;
    put(
        &h,
        json!({"id": "child", "triggers": [{"event": "app/never"}]}),
    )
    .await;
    let run_id = start(&h, json!({})).await;
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "kid", "op": "invoke", "function_id": "child", "data": {"n": 2}, "timeout": "1h"}]}),
    )
    .await;
    assert_eq!(run(&h, run_id).await.state, RunState::Waiting);
    assert!(h.claim("flow", 10).await.is_empty());

    let child_call = claim_call(&h, "child").await;
    let req = request(&child_call);
    assert_eq!(req["event"]["name"], json!("offload/function.invoked"));
    assert_eq!(req["event"]["data"], json!({"n": 2}));
    let child_id = req["run_id"].as_str().unwrap().parse().unwrap();
    let child = run(&h, child_id).await;
    assert_eq!(child.parent, Some((run_id, "kid".to_owned())));
    answer(&h, &child_call, json!({"done": true, "output": 4}))
        .await
        .unwrap();

    assert_eq!(run(&h, run_id).await.state, RunState::Queued);
    let call = claim_call(&h, "flow").await;
    assert_eq!(request(&call)["steps"]["kid"], json!({"data": 4}));
    answer(
        &h,
        &call,
        json!({"steps": [{"id": "ghost", "op": "invoke", "function_id": "nobody"}]}),
    )
    .await
    .unwrap();
    let call = claim_call(&h, "flow").await;
    assert_eq!(
        request(&call)["steps"]["ghost"]["error"]["name"],
        json!("FunctionNotFound")
    );
}

/// Planned parallel steps get one call each (with `run_step`), a failing one retries on its own call, and the
/// run continues once all are recorded.
pub async fn parallel_steps_each_get_one_call(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({})).await;
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "a", "op": "plan_run"}, {"id": "b", "op": "plan_run"}]}),
    )
    .await;
    let mut calls = h.claim("flow", 10).await;
    assert_eq!(calls.len(), 2);
    calls.sort_by_key(|c| request(c)["run_step"].as_str().map(str::to_owned));
    assert_eq!(request(&calls[0])["run_step"], json!("a"));
    assert_eq!(request(&calls[1])["run_step"], json!("b"));
    answer(
        &h,
        &calls[0],
        json!({"steps": [{"id": "a", "op": "run", "error": {"name": "E", "message": "flaky"}}]}),
    )
    .await
    .unwrap();
    answer(
        &h,
        &calls[1],
        json!({"steps": [{"id": "b", "op": "run", "data": "B"}]}),
    )
    .await
    .unwrap();
    assert!(
        h.claim("flow", 10).await.is_empty(),
        "a is still pending: its retry is due in 1s"
    );
    h.advance(secs(1));
    h.stage().await;
    let retry = claim_call(&h, "flow").await;
    assert_eq!(request(&retry)["run_step"], json!("a"));
    assert_eq!(request(&retry)["attempt"], json!(2));
    answer(
        &h,
        &retry,
        json!({"steps": [{"id": "a", "op": "run", "data": "A"}]}),
    )
    .await
    .unwrap();
    let next = claim_call(&h, "flow").await;
    let req = request(&next);
    assert!(req.get("run_step").is_none());
    assert_eq!(
        req["steps"],
        json!({"a": {"data": "A"}, "b": {"data": "B"}})
    );
    assert_eq!(run(&h, run_id).await.steps, 2);
    assert_counts_match(&h, "flow").await;
}

/// A call job that dies fails its run with the job's last error.
pub async fn a_dead_call_fails_the_run(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({})).await;
    for delay in [1, 2] {
        let call = claim_call(&h, "flow").await;
        h.fail(&call, "worker crashed", true, None).await.unwrap();
        h.advance(secs(delay));
        h.stage().await;
    }
    let call = claim_call(&h, "flow").await;
    let ended = h
        .fail(&call, "worker crashed again", true, None)
        .await
        .unwrap();
    assert_eq!(ended.state, JobState::Dead);
    let r = run(&h, run_id).await;
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(
        r.error,
        Some(StepError {
            name: "CallFailed".into(),
            message: "worker crashed again".into()
        })
    );
    assert_eq!(r.ended_at, Some(h.now()));
}

/// A failed run resumes from its failed step: the step's error record goes, the other records stay, and a call
/// is enqueued at once. Only failed or cancelled runs are retried.
pub async fn run_retry_resumes_from_the_failed_step(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({})).await;
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "a", "op": "run", "data": 1},
            {"id": "b", "op": "run", "error": {"name": "E", "message": "no", "retryable": false}}]}),
    )
    .await;
    let call = claim_call(&h, "flow").await;
    // The code does not catch b's error: the call fails for good.
    let dead = h.fail(&call, "E: no", false, None).await.unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(run(&h, run_id).await.state, RunState::Failed);

    let retried = h.store.run_retry(run_id).await.unwrap();
    assert_eq!(retried.state, RunState::Queued);
    assert_eq!(retried.error, None);
    assert_eq!(retried.ended_at, None);
    let call = claim_call(&h, "flow").await;
    let req = request(&call);
    assert_eq!(req["steps"], json!({"a": {"data": 1}}));
    assert_eq!(req["attempt"], json!(1));
    assert!(matches!(
        h.store.run_retry(run_id).await,
        Err(StoreError::RunState {
            from: RunState::Running,
            ..
        })
    ));
    answer(&h, &call, json!({"done": true})).await.unwrap();
    assert!(matches!(
        h.store.run_retry(run_id).await,
        Err(StoreError::RunState { .. })
    ));
    assert!(matches!(
        h.store
            .run_retry(offload_core::function::run::RunId::new())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Cancelling a run asks its running call to stop and ignores that call's answer (no retry until that call
/// ends); a sleeping run's call is cancelled; an ended run cannot be cancelled.
pub async fn run_cancel_stops_calls(h: Harness) {
    put(&h, flow()).await;
    let running = start(&h, json!({})).await;
    let call = claim_call(&h, "flow").await;
    let cancelled = h.store.run_cancel(running).await.unwrap();
    assert_eq!(cancelled.state, RunState::Cancelled);
    assert_eq!(cancelled.ended_at, Some(h.now()));
    let beat = h
        .store
        .job_heartbeat(JobHeartbeatParams {
            id: call.id,
            lease_token: call.lease_token,
            progress: None,
        })
        .await
        .unwrap();
    assert!(beat.cancel_requested);
    assert!(
        matches!(
            h.store.run_retry(running).await,
            Err(StoreError::RunState {
                from: RunState::Running,
                ..
            })
        ),
        "no retry while the cancelled call still runs"
    );
    answer(
        &h,
        &call,
        json!({"steps": [{"id": "a", "op": "run", "data": 1}]}),
    )
    .await
    .unwrap();
    assert_eq!(run(&h, running).await.state, RunState::Cancelled);
    assert!(h.claim("flow", 10).await.is_empty());
    assert!(matches!(
        h.store.run_cancel(running).await,
        Err(StoreError::RunState {
            from: RunState::Cancelled,
            ..
        })
    ));

    let sleeping = start(&h, json!({})).await;
    let until = add(h.now(), secs(60));
    let call = step(
        &h,
        "flow",
        json!({"steps": [{"id": "nap", "op": "sleep", "until": until.to_string()}]}),
    )
    .await;
    let _ = call;
    h.store.run_cancel(sleeping).await.unwrap();
    h.advance(secs(60));
    h.stage().await;
    assert!(h.claim("flow", 10).await.is_empty());
    // A cancelled run may be retried.
    assert_eq!(
        h.store.run_retry(sleeping).await.unwrap().state,
        RunState::Queued
    );
    assert_eq!(
        request(&claim_call(&h, "flow").await)["steps"],
        json!({"nap": {"data": null}})
    );
    assert_counts_match(&h, "flow").await;
}

/// Steps recorded within a lease need the call's lease token, are recorded once, refuse retryable errors, and
/// rewrite the call's payload so a retried call replays them.
pub async fn run_record_steps_checks_the_lease(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({})).await;
    let call = claim_call(&h, "flow").await;
    let ran = |id: &str, text: &str| RanStep {
        id: id.into(),
        outcome: RanOutcome::Data(Some(Json::from_text(text).unwrap())),
    };
    let record = |token: LeaseToken, steps: Vec<RanStep>| {
        h.store.run_record_steps(RunRecordStepsParams {
            run_id,
            job_id: call.id,
            lease_token: token,
            steps,
            limits: RecordLimits::default(),
        })
    };
    assert!(matches!(
        record(LeaseToken::new(), vec![ran("a", "1")]).await,
        Err(StoreError::LeaseMismatch)
    ));
    let r = record(call.lease_token, vec![ran("a", "1")]).await.unwrap();
    assert_eq!(r.steps, 1);
    let r = record(call.lease_token, vec![ran("a", "2"), ran("b", "3")])
        .await
        .unwrap();
    assert_eq!(r.steps, 2);
    let retryable = RanStep {
        id: "c".into(),
        outcome: RanOutcome::Error {
            error: StepError {
                name: "E".into(),
                message: "m".into(),
            },
            retryable: true,
        },
    };
    assert!(record(call.lease_token, vec![retryable]).await.is_err());
    let payload: serde_json::Value =
        serde_json::from_str(h.get(call.id).await.payload.get()).unwrap();
    assert_eq!(
        payload["steps"],
        json!({"a": {"data": 1}, "b": {"data": 3}})
    );

    // The worker dies; the retried call replays the recorded steps.
    h.advance(secs(30));
    h.store
        .job_rescue_expired(crate::JobRescueParams { limit: 10 })
        .await
        .unwrap();
    h.advance(secs(1));
    h.stage().await;
    let again = claim_call(&h, "flow").await;
    assert_eq!(again.id, call.id);
    assert_eq!(
        request(&again)["steps"],
        json!({"a": {"data": 1}, "b": {"data": 3}})
    );
    answer(&h, &again, json!({"done": true})).await.unwrap();
    assert_eq!(run(&h, run_id).await.state, RunState::Succeeded);
}

/// Pruning deletes ended runs (with their steps) past their retention and events past theirs, whose ids become
/// free again; live runs stay.
pub async fn run_prune_deletes_old_runs_and_events(h: Harness) {
    put(&h, flow()).await;
    let sent = send(&h, "app/start", json!({}), Some("once")).await;
    let done = sent.runs[0];
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "a", "op": "run", "data": 1}]}),
    )
    .await;
    step(&h, "flow", json!({"done": true})).await;
    let live = start(&h, json!({})).await;
    let prune = |runs: u64, events: u64| {
        h.store.run_prune(RunPruneParams {
            runs: secs(runs),
            events: secs(events),
            limit: 100,
        })
    };
    h.advance(secs(3600));
    assert_eq!(prune(7200, 86_400).await.unwrap(), 0);
    h.advance(secs(3600));
    assert_eq!(prune(3600, 86_400).await.unwrap(), 1);
    assert!(h.store.run_get(done).await.unwrap().is_none());
    assert!(matches!(
        h.store.run_steps(done).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(h.store.run_get(live).await.unwrap().is_some());
    let dup = send(&h, "app/start", json!({}), Some("once")).await;
    assert!(dup.duplicate, "the event is kept longer than its run");

    h.advance(secs(86_400));
    assert!(prune(3600, 86_400).await.unwrap() >= 1);
    assert!(h.store.event_get(sent.id).await.unwrap().is_none());
    let fresh = send(&h, "app/start", json!({}), Some("once")).await;
    assert!(!fresh.duplicate, "a pruned event's id is free again");
}

/// An invoke whose child does not end in time resolves to `InvokeTimeout` through `run_wake_due` (the child's
/// later end changes nothing for the parent); a cancelled child resolves its parent's step to `RunCancelled`.
pub async fn invoke_times_out_and_a_cancelled_child_fails_the_step(h: Harness) {
    put(&h, flow()).await;
    put(
        &h,
        json!({"id": "child", "triggers": [{"event": "app/never"}]}),
    )
    .await;
    let run_id = start(&h, json!({})).await;
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "kid", "op": "invoke", "function_id": "child", "timeout": "60s"}]}),
    )
    .await;
    let slow_child = claim_call(&h, "child").await;
    h.advance(secs(60));
    let woken = h
        .store
        .run_wake_due(crate::RunWakeParams { limit: 10 })
        .await
        .unwrap();
    assert_eq!(woken.woken, 1);
    let call = claim_call(&h, "flow").await;
    assert_eq!(
        request(&call)["steps"]["kid"]["error"]["name"],
        json!("InvokeTimeout")
    );
    answer(&h, &slow_child, json!({"done": true, "output": 1}))
        .await
        .unwrap();
    assert!(
        h.claim("flow", 10).await.is_empty(),
        "the child's end does not resume the parent again"
    );

    answer(
        &h,
        &call,
        json!({"steps": [{"id": "kid2", "op": "invoke", "function_id": "child"}]}),
    )
    .await
    .unwrap();
    let child_call = claim_call(&h, "child").await;
    let child_id = request(&child_call)["run_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    h.store.run_cancel(child_id).await.unwrap();
    let call = claim_call(&h, "flow").await;
    assert_eq!(
        request(&call)["steps"]["kid2"]["error"]["name"],
        json!("RunCancelled")
    );
    assert_eq!(run(&h, run_id).await.state, RunState::Running);
}

/// A call whose lease expires on its last attempt fails the run; a call job cancelled through the job API
/// cancels its run.
pub async fn expired_and_cancelled_call_jobs_end_their_runs(h: Harness) {
    put(
        &h,
        json!({"id": "flow", "triggers": [{"event": "app/start"}], "retries": 0, "timeout": "30s"}),
    )
    .await;
    let expired = start(&h, json!({})).await;
    claim_call(&h, "flow").await;
    h.advance(secs(30));
    h.store
        .job_rescue_expired(crate::JobRescueParams { limit: 10 })
        .await
        .unwrap();
    let r = run(&h, expired).await;
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(r.error.map(|e| e.name), Some("CallFailed".to_owned()));

    let cancelled = start(&h, json!({})).await;
    let jobs = h
        .store
        .job_list(crate::JobListParams {
            tag: Some((crate::RUN_TAG.into(), cancelled.to_string())),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    h.store.job_cancel(jobs[0].id).await.unwrap();
    assert_eq!(run(&h, cancelled).await.state, RunState::Cancelled);
    assert_counts_match(&h, "flow").await;
}

/// Runs list newest first, filtered by function and by the state a reader sees (a queued run whose call is held
/// is running).
pub async fn run_list_filters_by_visible_state(h: Harness) {
    put(&h, flow()).await;
    let first = start(&h, json!({})).await;
    claim_call(&h, "flow").await;
    let second = start(&h, json!({})).await;
    let list = |state: Option<RunState>| {
        h.store.run_list(crate::RunListParams {
            state,
            function_id: Some("flow".into()),
            limit: 10,
            ..Default::default()
        })
    };
    let ids = |runs: Vec<crate::RunRecord>| -> Vec<offload_core::function::run::RunId> {
        runs.into_iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(list(None).await.unwrap()), [second, first]);
    assert_eq!(ids(list(Some(RunState::Running)).await.unwrap()), [first]);
    assert_eq!(ids(list(Some(RunState::Queued)).await.unwrap()), [second]);
    assert!(list(Some(RunState::Failed)).await.unwrap().is_empty());
    let page = h
        .store
        .run_list(crate::RunListParams {
            before: Some(second),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(page), [first]);
}
