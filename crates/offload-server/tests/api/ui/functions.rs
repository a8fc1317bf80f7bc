//! The durable functions' dashboard pages in-process, over runs made the real way: functions registered and
//! events sent through the engine, call jobs claimed and completed with call responses through the HTTP API.
//! The pages show what the store holds (triggers, runs, steps with their failed attempts, output, events and
//! the runs they started), cut large values with a download, escape what users sent, and the run page's
//! cancel and retry buttons act under the dashboard's session and CSRF rules.

use axum::http::StatusCode;
use offload_core::function::definition::FunctionSpec;
use offload_core::function::event::EventRequest;
use offload_core::function::run::{RunId, RunState};
use serde_json::{Value, json};

use super::{Browser, html, location};
use crate::common::TestApp;

/// Markup a hostile sender can put into an event.
const XSS: &str = "<script>window.__xss=1</script>";

/// Registers `spec` as function `id`.
async fn register(app: &TestApp, id: &str, spec: Value) {
    let spec: FunctionSpec = serde_json::from_value(spec).unwrap();
    app.engine.functions().put(spec, id).await.unwrap();
}

/// Sends one event; returns its id and the runs it started.
async fn send(app: &TestApp, event: Value) -> (String, Vec<RunId>) {
    let event: EventRequest = serde_json::from_value(event).unwrap();
    let report = app
        .engine
        .functions()
        .send_events(vec![event])
        .await
        .unwrap();
    let sent = &report.events[0];
    (sent.id.to_string(), sent.runs.clone())
}

/// Claims the one call job of `queue` and completes it with `response` (a call response).
async fn answer(app: &TestApp, queue: &str, response: Value) -> RunId {
    let job = app.claim_one(queue).await;
    let request: Value = serde_json::from_str(job.payload.get()).unwrap();
    let reply = app
        .post(
            &format!("/v1/jobs/{}/complete", job.id),
            json!({"lease_token": job.lease_token, "result": response}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    request["run_id"].as_str().unwrap().parse().unwrap()
}

async fn run_state(app: &TestApp, id: RunId) -> RunState {
    app.engine.store().run_get(id).await.unwrap().unwrap().state
}

/// Two functions on one event: `charge` has a recorded step and a failed attempt of its next step,
/// `receipt` succeeded with an output.
struct Seeded {
    event: String,
    charge: RunId,
    receipt: RunId,
}

async fn seed(app: &TestApp) -> Seeded {
    register(
        app,
        "charge",
        json!({"name": "Charge the card",
            "triggers": [{"event": "shop/order.paid", "if": {"data.amount": {"gte": 10}}}],
            "retries": 3, "backoff": {"base": "1h", "jitter": 0.0},
            "cancel_on": [{"event": "shop/order.refunded", "match": "data.order"}]}),
    )
    .await;
    register(
        app,
        "receipt",
        json!({"triggers": [{"event": "shop/order.paid"}, {"cron": "0 9 * * 1", "timezone": "Europe/Berlin"}],
            "queue": "mail"}),
    )
    .await;
    let (event, runs) = send(
        app,
        json!({"name": "shop/order.paid", "data": {"order": 42, "amount": 30, "note": XSS}, "id": "o-42"}),
    )
    .await;
    assert_eq!(runs.len(), 2, "both functions start a run");
    let charge = answer(
        app,
        "charge",
        json!({"steps": [
            {"id": "reserve stock", "op": "run", "data": {"held": true, "sku": XSS}},
            {"id": "pay", "op": "run", "error": {"name": "CardDeclined", "message": "insufficient funds"}}
        ]}),
    )
    .await;
    let receipt = answer(
        app,
        "mail",
        json!({"done": true, "output": {"receipt": "r-42"}}),
    )
    .await;
    assert!(runs.contains(&charge) && runs.contains(&receipt));
    Seeded {
        event,
        charge,
        receipt,
    }
}

#[tokio::test]
async fn function_pages_show_functions_runs_steps_and_events() {
    let app = TestApp::new().await;
    let seeded = seed(&app).await;
    let mut browser = Browser::new(&app);

    // Functions: triggers, where calls go, the last hour's runs, a link to the runs.
    let page = html(&browser.get("/ui/functions").await);
    assert!(page.contains("id=\"function-charge\""), "{page}");
    assert!(page.contains("Charge the card"));
    assert!(page.contains("shop/order.paid"));
    assert!(
        page.contains("if {&#34;data.amount&#34;:{&#34;gte&#34;:10}}"),
        "{page}"
    );
    assert!(page.contains("0 9 * * 1") && page.contains("Europe/Berlin"));
    assert!(page.contains("href=\"/ui/jobs?queue=mail\""));
    assert!(page.contains("shop/order.refunded (match data.order)"));
    assert!(page.contains("href=\"/ui/runs?function=charge\""));
    assert_eq!(
        page.matches("<td class=\"num recent-runs\">1</td>").count(),
        2
    );
    assert!(
        page.contains("href=\"/ui/functions\" class=\"active\""),
        "nav marks the page"
    );

    // Runs: newest first, filtered by function, state and event; bad filters are said on the page.
    let all = html(&browser.get("/ui/runs").await);
    for id in [seeded.charge, seeded.receipt] {
        assert!(all.contains(&format!("href=\"/ui/runs/{id}\"")), "{all}");
    }
    let charge_only = html(&browser.get("/ui/runs?function=charge").await);
    assert!(charge_only.contains(&seeded.charge.to_string()));
    assert!(!charge_only.contains(&seeded.receipt.to_string()));
    let succeeded = html(&browser.get("/ui/runs?state=succeeded").await);
    assert!(succeeded.contains(&seeded.receipt.to_string()));
    assert!(!succeeded.contains(&seeded.charge.to_string()));
    let by_event = html(
        &browser
            .get(&format!("/ui/runs?event={}", seeded.event))
            .await,
    );
    assert_eq!(by_event.matches("<tr class=\"run\"").count(), 2);
    let bad = html(&browser.get("/ui/runs?state=done").await);
    assert!(bad.contains("State: unknown run state `done`"), "{bad}");
    let jump = browser
        .get(&format!("/ui/runs?id={}", seeded.receipt))
        .await;
    assert_eq!(location(&jump), format!("/ui/runs/{}", seeded.receipt));

    // A run's page: the event, every step with its failed attempts, the cancel button.
    let run = html(&browser.get(&format!("/ui/runs/{}", seeded.charge)).await);
    assert!(
        run.contains("<code class=\"step-id\">reserve stock</code>"),
        "{run}"
    );
    assert!(run.contains("&#34;held&#34;: true"));
    assert!(run.contains("<code class=\"step-id\">pay</code>"));
    assert!(run.contains("step-status\">retrying</span>"), "{run}");
    assert!(run.contains("CardDeclined: insufficient funds"));
    assert!(run.contains("id=\"cancel\""));
    assert!(!run.contains("id=\"retry\""));
    assert!(run.contains(&format!("href=\"/ui/events/{}\"", seeded.event)));
    assert!(!run.contains(XSS), "user data is escaped");
    let calls = format!("/ui/jobs?tag=offload.run%3A{}", seeded.charge);
    assert!(run.contains(&format!("href=\"{calls}\"")), "{run}");
    let jobs = html(&browser.get(&calls).await);
    assert_eq!(
        jobs.matches("aria-label=\"select job").count(),
        2,
        "the run's two calls"
    );
    assert!(run.contains("&#60;script&#62;window.__xss=1"), "{run}");

    // The succeeded run: its output, no buttons.
    let done = html(&browser.get(&format!("/ui/runs/{}", seeded.receipt)).await);
    assert!(done.contains("id=\"run-state\">succeeded</span>"), "{done}");
    assert!(done.contains("&#34;receipt&#34;: &#34;r-42&#34;"));
    assert!(!done.contains("id=\"cancel\"") && !done.contains("id=\"retry\""));

    // Events: the name filter, the runs each started, the event's own page.
    let events = html(&browser.get("/ui/events").await);
    assert!(events.contains(&format!("href=\"/ui/events/{}\"", seeded.event)));
    assert!(events.contains("o-42"));
    for id in [seeded.charge, seeded.receipt] {
        assert!(
            events.contains(&format!("href=\"/ui/runs/{id}\"")),
            "{events}"
        );
    }
    assert!(!events.contains(XSS));
    let other = html(&browser.get("/ui/events?name=shop/other").await);
    assert!(other.contains("No events match."));
    let bad = html(&browser.get("/ui/events?name=%3Cbad%3E").await);
    assert!(bad.contains("Name: must start with"), "{bad}");
    let event = html(&browser.get(&format!("/ui/events/{}", seeded.event)).await);
    assert!(event.contains("&#34;amount&#34;: 30"), "{event}");
    assert_eq!(event.matches("class=\"mono run-link\"").count(), 2);

    // Unknown ids are the dashboard's 404 page.
    let missing = browser.get(&format!("/ui/runs/{}", RunId::new())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        browser.get("/ui/events/not-an-id").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn runs_are_cancelled_and_retried_from_their_page() {
    let app = TestApp::new().await;
    let seeded = seed(&app).await;
    let mut browser = Browser::new(&app);
    let page = format!("/ui/runs/{}", seeded.charge);
    html(&browser.get(&page).await);
    let cancel = format!("{page}/cancel");

    // A forged form (no token) changes nothing.
    assert_eq!(
        browser.post(&cancel, "", false).await.status,
        StatusCode::FORBIDDEN
    );
    assert_ne!(run_state(&app, seeded.charge).await, RunState::Cancelled);

    let reply = browser.post(&cancel, "", true).await;
    assert_eq!(location(&reply), format!("{page}?done=run_cancel&n=1"));
    assert_eq!(run_state(&app, seeded.charge).await, RunState::Cancelled);
    let shown = html(&browser.get(location(&reply)).await);
    assert!(shown.contains("Run cancelled"), "{shown}");
    assert!(shown.contains("id=\"run-state\">cancelled</span>"));
    assert!(shown.contains("id=\"retry\"") && !shown.contains("id=\"cancel\""));

    // An ended run is not cancelled again: the page says so.
    let again = browser.post(&cancel, "", true).await;
    assert_eq!(
        location(&again),
        format!("{page}?done=run_cancel&n=0&refused=1")
    );
    let shown = html(&browser.get(location(&again)).await);
    assert!(shown.contains("The run was not cancelled: it has already ended."));

    // Retry resumes it: a call is queued, the recorded step kept.
    let reply = browser.post(&format!("{page}/retry"), "", true).await;
    assert_eq!(location(&reply), format!("{page}?done=run_retry&n=1"));
    assert_eq!(run_state(&app, seeded.charge).await, RunState::Queued);
    let shown = html(&browser.get(location(&reply)).await);
    assert!(shown.contains("Run retried"), "{shown}");
    assert!(shown.contains("reserve stock"));
    let call = app.claim_one("charge").await;
    let request: Value = serde_json::from_str(call.payload.get()).unwrap();
    assert_eq!(request["steps"]["reserve stock"]["data"]["held"], true);

    // A succeeded run cannot be retried; unknown actions and runs are 404s.
    let refused = browser
        .post(&format!("/ui/runs/{}/retry", seeded.receipt), "", true)
        .await;
    assert!(location(&refused).ends_with("done=run_retry&n=0&refused=1"));
    assert_eq!(run_state(&app, seeded.receipt).await, RunState::Succeeded);
    assert_eq!(
        browser
            .post(&format!("{page}/explode"), "", true)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser
            .post(&format!("/ui/runs/{}/cancel", RunId::new()), "", true)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn large_step_values_are_cut_with_a_download_and_runs_page() {
    let app = TestApp::new().await;
    register(&app, "big", json!({"triggers": [{"event": "big/go"}]})).await;
    // More runs than one page shows.
    let events: Vec<EventRequest> = (0..52)
        .map(|i| serde_json::from_value(json!({"name": "big/go", "data": {"i": i}})).unwrap())
        .collect();
    app.engine.functions().send_events(events).await.unwrap();
    let large = "x".repeat(100 * 1024);
    let run = answer(
        &app,
        "big",
        json!({"steps": [{"id": "make/it big", "op": "run", "data": {"blob": large}}]}),
    )
    .await;
    let mut browser = Browser::new(&app);
    let page = html(&browser.get(&format!("/ui/runs/{run}")).await);
    let link = format!("/ui/runs/{run}/raw/step?step=make%2Fit+big");
    assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
    assert!(page.contains("Only the first 8192 bytes of"));
    assert!(page.len() < 64 * 1024, "the step's data is cut");
    let raw = browser.get(&link).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.headers["content-type"], "application/json");
    let whole: Value = serde_json::from_slice(&raw.body).unwrap();
    assert_eq!(whole["blob"].as_str().unwrap().len(), large.len());
    let event = browser.get(&format!("/ui/runs/{run}/raw/event")).await;
    let event: Value = serde_json::from_slice(&event.body).unwrap();
    assert_eq!(event["name"], "big/go");
    assert_eq!(
        browser
            .get(&format!("/ui/runs/{run}/raw/step?step=nope"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Paging: 50 runs, then the older ones.
    let first = html(&browser.get("/ui/runs?function=big").await);
    assert_eq!(first.matches("<tr class=\"run\"").count(), 50);
    let at = first.find("id=\"next-page\"").expect("an older page");
    let href_start = first[..at].rfind("href=\"").unwrap() + 6;
    let next = first[href_start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    assert!(next.starts_with("/ui/runs?function=big&cursor="), "{next}");
    let second = html(&browser.get(&next).await);
    assert_eq!(second.matches("<tr class=\"run\"").count(), 2);
    assert!(!second.contains("id=\"next-page\""));
}

#[tokio::test]
async fn a_sleeping_run_shows_when_it_wakes() {
    let app = TestApp::new().await;
    register(&app, "nap", json!({"triggers": [{"event": "nap/start"}]})).await;
    send(&app, json!({"name": "nap/start"})).await;
    let until = offload_core::Timestamp::now()
        .checked_add(offload_core::SignedDuration::from_hours(2))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap();
    let run = answer(
        &app,
        "nap",
        json!({"steps": [{"id": "rest", "op": "sleep", "until": until.to_string()}]}),
    )
    .await;
    assert_eq!(run_state(&app, run).await, RunState::Sleeping);
    let mut browser = Browser::new(&app);
    let page = html(&browser.get(&format!("/ui/runs/{run}")).await);
    assert!(page.contains("id=\"run-state\">sleeping</span>"), "{page}");
    let shown = until.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    assert!(
        page.contains(&format!("<dt>Wakes</dt><dd>{shown}")),
        "{page}"
    );
    assert!(page.contains("<span class=\"badge\">sleep</span>"));
    assert!(page.contains("step-status\">sleeping</span>"), "{page}");
    assert!(
        page.contains(&format!("until <time>{shown}</time>")),
        "{page}"
    );
}

#[tokio::test]
async fn a_waiting_run_shows_its_wait_and_then_the_event() {
    let app = TestApp::new().await;
    register(
        &app,
        "approve",
        json!({"triggers": [{"event": "doc/sent"}]}),
    )
    .await;
    send(&app, json!({"name": "doc/sent", "data": {"doc": 7}})).await;
    let run = answer(
        &app,
        "approve",
        json!({"steps": [{"id": "approval", "op": "wait_for_event", "event": "doc/approved",
            "match": "data.doc", "timeout": "1h"}]}),
    )
    .await;
    assert_eq!(run_state(&app, run).await, RunState::Waiting);
    let mut browser = Browser::new(&app);
    let page = html(&browser.get(&format!("/ui/runs/{run}")).await);
    assert!(
        page.contains("<span class=\"badge\">wait_for_event</span>"),
        "{page}"
    );
    assert!(page.contains("step-status\">waiting</span>"), "{page}");
    assert!(page.contains("until <time>"), "{page}");

    send(
        &app,
        json!({"name": "doc/approved", "data": {"doc": 7, "by": "grace"}}),
    )
    .await;
    let page = html(&browser.get(&format!("/ui/runs/{run}")).await);
    assert!(page.contains("step-status\">succeeded</span>"), "{page}");
    assert!(page.contains("&#34;by&#34;: &#34;grace&#34;"), "{page}");
    assert!(
        !page.contains("until <time>"),
        "a resolved wait waits no more"
    );
}
