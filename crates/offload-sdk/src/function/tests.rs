//! The replay engine against call requests, without a server: every response is checked against the
//! protocol's own parser.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use offload_core::function::protocol::{Answer, CallRequest, Plan, RanOutcome};
use serde_json::{Value, json};

use super::*;

const RUN: &str = "0193a5c0-0000-7000-8000-000000000001";

fn request(steps: Value, run_step: Option<&str>) -> CallRequest {
    let mut request = json!({
        "run_id": RUN,
        "function_id": "f",
        "attempt": 1,
        "event": {"name": "app/order.paid", "data": {"order": 7, "user_id": 3}, "id": "o-7"},
        "events": [{"name": "app/order.paid", "data": {"order": 7, "user_id": 3}}],
        "steps": steps,
    });
    if let Some(step) = run_step {
        request["run_step"] = json!(step);
    }
    serde_json::from_value(request).unwrap()
}

/// The response, after checking that the protocol's parser accepts it.
fn response(outcome: CallOutcome) -> Value {
    let CallOutcome::Response(body) = outcome else {
        panic!("a response expected, got {outcome:?}");
    };
    Answer::parse(&body.to_string(), Timestamp::now())
        .unwrap_or_else(|e| panic!("{body} is not a valid call response: {e}"));
    body
}

fn answer(outcome: CallOutcome) -> Answer {
    let body = response(outcome);
    Answer::parse(&body.to_string(), Timestamp::now()).unwrap()
}

use offload_core::Timestamp;

#[derive(Debug, thiserror::Error)]
#[error("the mail server is down")]
struct SmtpDown;

/// Three steps; counts how often each ran; the second fails while `fail_second` holds.
fn three_steps(counts: Arc<[AtomicU32; 3]>, fail_second: bool) -> Function {
    Function::new(spec("f", "app/order.paid"), move |ctx: Ctx<Value>| {
        let counts = counts.clone();
        async move {
            let order = ctx.event.data["order"].as_u64().unwrap_or(0);
            let charge: String = ctx
                .step
                .run("charge", || async {
                    counts[0].fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(format!("ch_{order}"))
                })
                .await?;
            ctx.step
                .run("receipt", || async {
                    counts[1].fetch_add(1, Ordering::SeqCst);
                    if fail_second { Err(SmtpDown) } else { Ok(()) }
                })
                .await?;
            let n: u32 = ctx
                .step
                .run("count", || async {
                    counts[2].fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(3)
                })
                .await?;
            Ok(json!({"charge": charge, "n": n}))
        }
    })
    .unwrap()
}

#[tokio::test]
async fn fresh_run_steps_execute_in_one_call_until_one_fails() {
    let counts: Arc<[AtomicU32; 3]> = Arc::default();
    let f = three_steps(counts.clone(), true);
    let body = response(f.call(request(json!({}), None)).await);
    assert_eq!(
        body,
        json!({"steps": [
            {"id": "charge", "op": "run", "data": "ch_7"},
            {"id": "receipt", "op": "run", "error": {"name": "SmtpDown", "message": "the mail server is down", "retryable": true}}
        ]})
    );
    assert_eq!(
        counts[2].load(Ordering::SeqCst),
        0,
        "nothing runs after a failed step"
    );

    // The retry call replays `charge` without running it.
    let body = response(
        f.call(request(json!({"charge": {"data": "ch_7"}}), None))
            .await,
    );
    assert_eq!(body["steps"][0]["id"], "receipt");
    assert_eq!(counts[0].load(Ordering::SeqCst), 1);
    assert_eq!(counts[1].load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn steps_that_ran_are_answered_and_the_replay_finishes_with_the_output() {
    let counts: Arc<[AtomicU32; 3]> = Arc::default();
    let f = three_steps(counts.clone(), false);
    let Answer::Steps { ran, then } = answer(f.call(request(json!({}), None)).await) else {
        panic!("steps expected");
    };
    assert_eq!(ran.len(), 3);
    assert!(then.is_none());
    let all = json!({"charge": {"data": "ch_7"}, "receipt": {"data": null}, "count": {"data": 3}});
    let body = response(f.call(request(all, None)).await);
    assert_eq!(
        body,
        json!({"done": true, "output": {"charge": "ch_7", "n": 3}})
    );
    assert_eq!(counts[0].load(Ordering::SeqCst), 1);
    assert_eq!(counts[2].load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_recorded_error_comes_back_as_step_failed_and_can_be_caught() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let r: Result<(), StepFailed> = ctx
            .step
            .run("risky", || async { Ok::<_, BoxError>(()) })
            .await;
        let failed = r.unwrap_err();
        Ok(json!([failed.step, failed.name, failed.message]))
    })
    .unwrap();
    let body = response(
        f.call(request(
            json!({"risky": {"error": {"name": "Boom", "message": "no"}}}),
            None,
        ))
        .await,
    );
    assert_eq!(
        body,
        json!({"done": true, "output": ["risky", "Boom", "no"]})
    );
}

#[tokio::test]
async fn uncaught_step_errors_fail_the_call_for_good_other_errors_retry() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        ctx.step
            .run("risky", || async { Ok::<_, BoxError>(()) })
            .await?;
        Ok(())
    })
    .unwrap();
    let outcome = f
        .call(request(
            json!({"risky": {"error": {"name": "Boom", "message": "no"}}}),
            None,
        ))
        .await;
    assert!(
        matches!(&outcome, CallOutcome::Failed { retryable: false, message } if message.contains("Boom")),
        "{outcome:?}"
    );

    let g = Function::new(spec("f", "app/x"), |_ctx: Ctx| async move {
        Err::<(), BoxError>("config missing".into())
    })
    .unwrap();
    assert_eq!(
        g.call(request(json!({}), None)).await,
        CallOutcome::failed("config missing", true)
    );
}

#[tokio::test]
async fn non_retriable_errors_and_panics_are_step_errors() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        ctx.step
            .run("a", || async {
                Err::<(), _>(NonRetriable::new("CardDeclined", "declined"))
            })
            .await?;
        Ok(())
    })
    .unwrap();
    let body = response(f.call(request(json!({}), None)).await);
    assert_eq!(
        body["steps"][0]["error"],
        json!({"name": "CardDeclined", "message": "declined", "retryable": false})
    );

    let p = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        ctx.step
            .run("a", || async {
                if ctx.attempt > 0 {
                    panic!("boom");
                }
                Ok::<_, BoxError>(())
            })
            .await?;
        Ok(())
    })
    .unwrap();
    let body = response(p.call(request(json!({}), None)).await);
    assert_eq!(body["steps"][0]["error"]["name"], "Panic");
    assert_eq!(body["steps"][0]["error"]["message"], "boom");
}

#[tokio::test]
async fn repeated_ids_are_numbered() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let mut sum = 0u32;
        for i in 1..=3u32 {
            sum += ctx
                .step
                .run("add", || async move { Ok::<_, BoxError>(i) })
                .await?;
        }
        Ok(sum)
    })
    .unwrap();
    let body = response(f.call(request(json!({"add": {"data": 1}}), None)).await);
    let ids: Vec<&str> = body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["add:1", "add:2"]);
    let all = json!({"add": {"data": 1}, "add:1": {"data": 2}, "add:2": {"data": 3}});
    assert_eq!(
        response(f.call(request(all, None)).await),
        json!({"done": true, "output": 6})
    );
}

fn sleeper() -> Function {
    Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let a: u32 = ctx
            .step
            .run("before", || async { Ok::<_, BoxError>(1) })
            .await?;
        ctx.step.sleep("nap", Duration::from_secs(60)).await;
        let b: u32 = ctx
            .step
            .run("after", || async { Ok::<_, BoxError>(2) })
            .await?;
        Ok(a + b)
    })
    .unwrap()
}

#[tokio::test]
async fn a_sleep_stops_the_call_after_the_steps_before_it() {
    let before = Timestamp::now();
    let answer = answer(sleeper().call(request(json!({}), None)).await);
    let Answer::Steps {
        ran,
        then: Some(Plan::Sleep { id, until }),
    } = answer
    else {
        panic!("a sleep expected: {answer:?}");
    };
    assert_eq!(ran.len(), 1);
    assert_eq!(id, "nap");
    let ahead = until.duration_since(before).as_secs();
    assert!((59..=61).contains(&ahead), "{ahead}");

    let recorded = json!({"before": {"data": 1}, "nap": {"data": null}});
    let body = response(sleeper().call(request(recorded, None)).await);
    assert_eq!(body["steps"][0]["id"], "after");
}

#[tokio::test]
async fn wait_for_event_plans_a_wait_and_resolves_to_the_event_or_none() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let got = ctx
            .step
            .wait_for_event::<Value>(
                "upgrade",
                "app/user.upgraded",
                Some("data.user_id"),
                Duration::from_secs(5),
            )
            .await?;
        Ok(got.map(|e| e.data))
    })
    .unwrap();
    let body = response(f.call(request(json!({}), None)).await);
    assert_eq!(
        body,
        json!({"steps": [{"id": "upgrade", "op": "wait_for_event", "event": "app/user.upgraded", "match": "data.user_id", "timeout": 5000}]})
    );
    let timed_out = json!({"upgrade": {"data": null}});
    assert_eq!(
        response(f.call(request(timed_out, None)).await),
        json!({"done": true, "output": null})
    );
    let arrived = json!({"upgrade": {"data": {"name": "app/user.upgraded", "data": {"plan": "pro"}, "ts": "2026-12-03T10:00:00Z"}}});
    assert_eq!(
        response(f.call(request(arrived, None)).await),
        json!({"done": true, "output": {"plan": "pro"}})
    );
}

#[tokio::test]
async fn send_event_and_invoke_are_planned_then_replayed() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let ids = ctx
            .step
            .send_event(
                "notify",
                vec![EventSpec::new("app/notified", json!({"n": 1})).id("n-1")],
            )
            .await?;
        let child: u32 = ctx
            .step
            .invoke(
                "child",
                "double",
                &json!({"n": 21}),
                Some(Duration::from_secs(30)),
            )
            .await?;
        Ok(json!({"ids": ids, "child": child}))
    })
    .unwrap();
    assert_eq!(
        response(f.call(request(json!({}), None)).await),
        json!({"steps": [{"id": "notify", "op": "send_event", "events": [{"name": "app/notified", "data": {"n": 1}, "id": "n-1"}]}]})
    );
    let sent = json!({"notify": {"data": {"ids": ["e1"]}}});
    assert_eq!(
        response(f.call(request(sent.clone(), None)).await),
        json!({"steps": [{"id": "child", "op": "invoke", "function_id": "double", "data": {"n": 21}, "timeout": 30000}]})
    );
    let mut done = sent;
    done["child"] = json!({"data": 42});
    assert_eq!(
        response(f.call(request(done, None)).await),
        json!({"done": true, "output": {"ids": ["e1"], "child": 42}})
    );
}

fn fan_out(runs: Arc<AtomicU32>) -> Function {
    Function::new(spec("f", "app/x"), move |ctx: Ctx| {
        let runs = runs.clone();
        async move {
            let mut group = ctx.step.parallel::<u32>();
            for i in 1..=3u32 {
                let runs = runs.clone();
                group = group.run("part", move || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(i * 10)
                });
            }
            let parts = group.join().await;
            let sum: u32 = parts
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?
                .iter()
                .sum();
            Ok(sum)
        }
    })
    .unwrap()
}

#[tokio::test]
async fn parallel_steps_are_planned_then_each_runs_alone_in_its_call() {
    let runs = Arc::new(AtomicU32::new(0));
    let f = fan_out(runs.clone());
    assert_eq!(
        answer(f.call(request(json!({}), None)).await),
        Answer::Steps {
            ran: vec![],
            then: Some(Plan::Parallel(vec![
                "part".into(),
                "part:1".into(),
                "part:2".into()
            ]))
        }
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "planning runs nothing");

    let body = response(f.call(request(json!({}), Some("part:1"))).await);
    assert_eq!(
        body,
        json!({"steps": [{"id": "part:1", "op": "run", "data": 20}]})
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Only the steps still missing are planned again.
    let some = json!({"part:1": {"data": 20}});
    assert_eq!(
        answer(f.call(request(some, None)).await),
        Answer::Steps {
            ran: vec![],
            then: Some(Plan::Parallel(vec!["part".into(), "part:2".into()]))
        }
    );
    // A repeated call for a recorded step answers its record without running it.
    let recorded = json!({"part:1": {"data": 20}});
    assert_eq!(
        response(f.call(request(recorded, Some("part:1"))).await),
        json!({"steps": [{"id": "part:1", "op": "run", "data": 20}]})
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let all = json!({"part": {"data": 10}, "part:1": {"data": 20}, "part:2": {"data": 30}});
    assert_eq!(
        response(f.call(request(all, None)).await),
        json!({"done": true, "output": 60})
    );
}

#[tokio::test]
async fn code_that_disagrees_with_the_records_fails_the_call() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let n: u32 = ctx.step.run("n", || async { Ok::<_, BoxError>(1) }).await?;
        Ok(n)
    })
    .unwrap();
    let outcome = f.call(request(json!({"n": {"data": "text"}}), None)).await;
    assert!(
        matches!(&outcome, CallOutcome::Failed { message, .. } if message.contains("does not decode")),
        "{outcome:?}"
    );
    // A call for a parallel step that the code reaches no more.
    let outcome = f.call(request(json!({}), Some("gone"))).await;
    assert!(
        matches!(&outcome, CallOutcome::Failed { message, .. } if message.contains("`gone`")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn typed_event_data_and_a_mismatch() {
    #[derive(serde::Deserialize)]
    struct Paid {
        order: u64,
    }
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx<Paid>| async move {
        Ok(ctx.event.data.order)
    })
    .unwrap();
    assert_eq!(
        response(f.call(request(json!({}), None)).await),
        json!({"done": true, "output": 7})
    );
    #[derive(Debug, serde::Deserialize)]
    struct Other {
        #[allow(dead_code)]
        sku: String,
    }
    let g = Function::new(spec("f", "app/x"), |_ctx: Ctx<Other>| async move { Ok(()) }).unwrap();
    assert!(matches!(
        g.call(request(json!({}), None)).await,
        CallOutcome::Failed {
            retryable: false,
            ..
        }
    ));
}

#[tokio::test]
async fn a_step_error_ends_the_answer_even_when_steps_run_concurrently() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let (a, b) = futures::join!(
            ctx.step.run("a", || async {
                Err::<u32, _>(NonRetriable::new("A", "no"))
            }),
            ctx.step.run("b", || async {
                tokio::task::yield_now().await;
                Ok::<u32, BoxError>(2)
            }),
        );
        Ok(a? + b?)
    })
    .unwrap();
    let Answer::Steps { ran, then } = answer(f.call(request(json!({}), None)).await) else {
        panic!("steps expected")
    };
    assert!(then.is_none());
    assert_eq!(ran.len(), 1);
    assert!(matches!(
        ran[0].outcome,
        RanOutcome::Error {
            retryable: false,
            ..
        }
    ));
}

#[test]
fn definitions_are_validated_like_the_server_does() {
    let mut bad = spec("f", "app/x");
    bad.triggers.clear();
    let err = Function::new(bad, |_ctx: Ctx| async move { Ok(()) }).unwrap_err();
    assert!(err.to_string().contains("triggers"), "{err}");
    let f = Function::new(
        spec("send-receipt", "app/x"),
        |_ctx: Ctx| async move { Ok(()) },
    )
    .unwrap();
    assert_eq!((f.id(), f.queue()), ("send-receipt", "send-receipt"));
}

/// A recorder that keeps the ids it was given and answers `answer` for each.
fn recorder(
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    answer: Result<bool, String>,
) -> engine::Recorder {
    Arc::new(move |id, _data| {
        seen.lock().unwrap().push(id);
        let answer = answer.clone();
        async move { answer }.boxed()
    })
}

#[tokio::test]
async fn steps_recorded_mid_call_leave_the_answer() {
    let counts: Arc<[AtomicU32; 3]> = Arc::default();
    let f = three_steps(counts.clone(), false);
    let seen = Arc::default();
    let outcome = f
        .call_recording(
            request(json!({}), None),
            None,
            Some(recorder(Arc::clone(&seen), Ok(true))),
            None,
        )
        .await;
    // Every step was recorded as it ended, so the call answers the run's output at once.
    assert_eq!(
        response(outcome),
        json!({"done": true, "output": {"charge": "ch_7", "n": 3}})
    );
    assert_eq!(*seen.lock().unwrap(), ["charge", "receipt", "count"]);

    // A failing step is not recorded mid-call: it ends the call's answer.
    let failing = three_steps(Arc::default(), true);
    let seen = Arc::default();
    let body = response(
        failing
            .call_recording(
                request(json!({}), None),
                None,
                Some(recorder(Arc::clone(&seen), Ok(true))),
                None,
            )
            .await,
    );
    assert_eq!(*seen.lock().unwrap(), ["charge"]);
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["steps"][0]["id"], "receipt");
}

#[tokio::test]
async fn a_lost_lease_stops_the_code_and_a_failed_record_stays_in_the_answer() {
    let counts: Arc<[AtomicU32; 3]> = Arc::default();
    let f = three_steps(counts.clone(), false);
    let seen = Arc::default();
    let outcome = f
        .call_recording(
            request(json!({}), None),
            None,
            Some(recorder(Arc::clone(&seen), Ok(false))),
            None,
        )
        .await;
    assert!(matches!(outcome, CallOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(
        counts[1].load(Ordering::SeqCst),
        0,
        "nothing runs after the lease is lost"
    );

    let seen = Arc::default();
    let Answer::Steps { ran, then } = answer(
        f.call_recording(
            request(json!({}), None),
            None,
            Some(recorder(Arc::clone(&seen), Err("unreachable".into()))),
            None,
        )
        .await,
    ) else {
        panic!("steps expected")
    };
    assert_eq!(ran.len(), 3);
    assert!(then.is_none());
}

#[tokio::test]
async fn a_push_answer_ends_before_it_grows_past_its_budget() {
    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let mut total = 0;
        for _ in 0..4 {
            let chunk: String = ctx
                .step
                .run("chunk", || async { Ok::<_, BoxError>("x".repeat(1000)) })
                .await?;
            total += chunk.len();
        }
        Ok(total)
    })
    .unwrap();
    let body = response(f.call_within(request(json!({}), None), None, 1500).await);
    let ids: Vec<&str> = body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["chunk", "chunk:1"],
        "the third step waits for the next call"
    );
    let recorded =
        json!({"chunk": {"data": "x".repeat(1000)}, "chunk:1": {"data": "x".repeat(1000)}});
    let body = response(f.call_within(request(recorded, None), None, 1500).await);
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["steps"][0]["id"], "chunk:2");
}
