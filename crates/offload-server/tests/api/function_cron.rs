//! Cron-triggered functions over the API: a registered function with a cron trigger gets runs from the server's
//! cron enqueuer, each started by an `offload/cron.tick` event, listed by `GET /v1/runs?function=`.

use serde_json::json;

use crate::functions::started_app;

#[tokio::test]
async fn a_cron_function_gets_runs_listed_by_function() {
    let app = started_app().await;
    app.register(
        "ticker",
        json!({"queue": "ticker-q", "triggers": [{"cron": "* * * * * *"}]}),
    )
    .await;
    // The long poll returns once the enqueuer has started a run (the next whole second at the latest).
    let call = app.claim_call("ticker-q").await;
    let event = &call["payload"]["event"];
    assert_eq!(event["name"], "offload/cron.tick", "{call}");
    assert_eq!(event["data"]["function_id"], "ticker");
    assert_eq!(event["data"]["cron"], "* * * * * *");
    assert_eq!(event["data"]["timezone"], "UTC");
    assert_eq!(event["ts"], event["data"]["scheduled_at"]);

    let run_id = call["payload"]["run_id"].as_str().unwrap();
    let listed = app.get("/v1/runs?function=ticker").await.json();
    let runs = listed["runs"].as_array().unwrap();
    assert!(
        runs.iter().any(|r| r["id"] == run_id),
        "the claimed call's run is listed: {listed}"
    );
    assert!(
        runs.iter()
            .all(|r| r["event"]["name"] == "offload/cron.tick")
    );

    // Removed: no more runs, and the run already started keeps going.
    let reply = app.delete("/v1/functions/ticker").await;
    assert!(reply.status.is_success(), "{reply:?}");
    assert_eq!(app.run(run_id).await["state"], "running");
}
