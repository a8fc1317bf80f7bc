//! Run reports: what `event_send` and the end of a call job say about the runs they touched, so the engine can
//! count runs started, runs ended (with their duration) and steps recorded without reading the runs again.

use offload_core::JobState;
use offload_core::function::run::RunState;
use serde_json::json;

use crate::{JobRescueParams, RunChange, RunEnded, StepCounts};

use super::functions::{answer, claim_call, put, run, send, start};
use super::{Harness, job, secs};

/// The function the tests here run: `report`, started by `app/start`, one retry of a failed step or call,
/// 1s backoff without jitter, 30s per call.
fn report_fn() -> serde_json::Value {
    json!({"id": "report", "triggers": [{"event": "app/start"}], "retries": 1,
        "backoff": {"base": "1s", "cap": "60s", "jitter": 0.0}, "timeout": "30s"})
}

/// An event names the function of each run it starts; its duplicate started nothing and names none.
pub async fn event_send_names_the_functions_of_the_runs_it_starts(h: Harness) {
    put(&h, report_fn()).await;
    put(
        &h,
        json!({"id": "audit", "triggers": [{"event": "app/start"}], "queue": "audit"}),
    )
    .await;
    let sent = send(&h, "app/start", json!({}), Some("once")).await;
    assert_eq!(sent.runs.len(), 2);
    assert_eq!(sent.started.len(), sent.runs.len());
    for (id, function) in sent.runs.iter().zip(&sent.started) {
        assert_eq!(&run(&h, *id).await.function_id, function);
    }
    let mut started = sent.started.clone();
    started.sort();
    assert_eq!(started, ["audit", "report"]);

    let again = send(&h, "app/start", json!({}), Some("once")).await;
    assert!(again.duplicate);
    assert_eq!(again.runs.len(), 2);
    assert!(again.started.is_empty());

    let none = send(&h, "app/other", json!({}), None).await;
    assert!(none.runs.is_empty() && none.started.is_empty());
}

/// Each end of a call job reports its run's function and the steps its answer recorded; the answer that ends
/// the run reports the end with the run's duration. A job that is not a call reports no run.
pub async fn a_call_end_reports_steps_and_the_runs_end(h: Harness) {
    put(&h, report_fn()).await;
    let run_id = start(&h, json!({})).await;

    let call = claim_call(&h, "report").await;
    let done = answer(
        &h,
        &call,
        json!({"steps": [{"id": "a", "op": "run", "data": 1}, {"id": "b", "op": "run", "data": 2}]}),
    )
    .await
    .unwrap();
    let change = done.run.expect("a call reports its run");
    assert_eq!(
        change,
        RunChange {
            run_id,
            function_id: "report".into(),
            ended: None,
            steps: StepCounts {
                data: 2,
                ..StepCounts::default()
            },
        }
    );

    let fail = json!({"steps": [{"id": "c", "op": "run", "error": {"name": "E", "message": "m"}}]});
    let call = claim_call(&h, "report").await;
    let done = answer(&h, &call, fail.clone()).await.unwrap();
    let change = done.run.unwrap();
    assert_eq!(change.ended, None);
    assert_eq!(
        change.steps,
        StepCounts {
            retry: 1,
            ..StepCounts::default()
        }
    );
    h.advance(secs(1));
    h.stage().await;
    let call = claim_call(&h, "report").await;
    let change = answer(&h, &call, fail).await.unwrap().run.unwrap();
    assert_eq!(
        change.steps,
        StepCounts {
            error: 1,
            ..StepCounts::default()
        }
    );

    h.advance(secs(2));
    let call = claim_call(&h, "report").await;
    let done = answer(&h, &call, json!({"done": true, "output": "ok"}))
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    let change = done.run.unwrap();
    assert_eq!(
        change.ended,
        Some(RunEnded {
            state: RunState::Succeeded,
            duration: secs(3),
        })
    );
    assert_eq!(change.steps, StepCounts::default());
    assert_eq!(run(&h, run_id).await.state, RunState::Succeeded);

    h.insert(vec![job("plain")]).await;
    let plain = claim_call(&h, "plain").await;
    assert_eq!(h.complete(&plain, None).await.unwrap().run, None);
}

/// A call that dies reports its run failed, whether its worker reported the failure or its lease expired; a
/// failure that will be retried reports the run still going; an answer for a run that has ended reports no run.
pub async fn a_dead_or_expired_call_reports_the_run_failed(h: Harness) {
    put(&h, report_fn()).await;
    let run_id = start(&h, json!({})).await;
    let call = claim_call(&h, "report").await;
    let retrying = h.fail(&call, "crashed", true, None).await.unwrap();
    assert_eq!(retrying.state, JobState::Retrying);
    let change = retrying.run.unwrap();
    assert_eq!((change.run_id, change.ended), (run_id, None));
    assert_eq!(change.steps, StepCounts::default());
    h.advance(secs(1));
    h.stage().await;
    let call = claim_call(&h, "report").await;
    h.advance(secs(4));
    let dead = h.fail(&call, "crashed again", true, None).await.unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(
        dead.run.unwrap().ended,
        Some(RunEnded {
            state: RunState::Failed,
            duration: secs(5),
        })
    );

    let expired = start(&h, json!({})).await;
    for _ in 0..2 {
        claim_call(&h, "report").await;
        h.advance(secs(30));
        let report = h
            .store
            .job_rescue_expired(JobRescueParams { limit: 10 })
            .await
            .unwrap();
        assert_eq!(report.rescued.len(), 1);
        let change = report.rescued[0].run.clone().unwrap();
        assert_eq!(change.run_id, expired);
        if report.rescued[0].state == JobState::Dead {
            assert_eq!(
                change.ended,
                Some(RunEnded {
                    state: RunState::Failed,
                    duration: secs(61),
                })
            );
        } else {
            assert_eq!(change.ended, None);
            h.advance(secs(1));
            h.stage().await;
        }
    }
    assert_eq!(run(&h, expired).await.state, RunState::Failed);

    // A run cancelled while its call is out: the call's late answer reports no run.
    let cancelled = start(&h, json!({})).await;
    let call = claim_call(&h, "report").await;
    h.store.run_cancel(cancelled).await.unwrap();
    if let Ok(done) = answer(&h, &call, json!({"done": true})).await {
        assert_eq!(done.run, None);
    }
}
