//! The dashboard in a real headless Chromium, driven through chromedriver against the real `offload` binary.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and `chromium-driver`; `scripts/test`
//! installs them; `CHROMIUM` and `CHROMEDRIVER` override the paths). A screenshot of every page visited is
//! saved under `target/ui-screenshots/` for people to look at. Push deliveries go to an endpoint of the test's
//! own on 127.0.0.1, which the server allows because it listens on loopback itself.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::Server;

/// What a hostile user can put in every field the dashboard shows.
const XSS: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=1\">";
/// The same for tag keys (at most 64 bytes).
const XSS_SHORT: &str = "<svg onload=\"window.__xss=1\">";

/// A running chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's `chromium` and `chromium-driver` (`scripts/test` does), or set {env}"
    );
    path
}

fn start_driver() -> Driver {
    let driver = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A fresh headless browser session with its own profile directory.
/// A plain HTTP client for the API; TLS needs the process's crypto provider installed first.
fn http_client() -> reqwest::Client {
    offload_engine::push::install_crypto_provider();
    reqwest::Client::new()
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let chromium = tool("CHROMIUM", "/usr/bin/chromium");
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({"binary": chromium, "args": args}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("open a browser session")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits (up to 20 s) until the element matching `css` exists, following htmx's swaps.
async fn find(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element `{css}`: {e}"))
}

/// Waits until `css`'s text is `text`.
async fn wait_text(client: &Client, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(el) = client.find(Locator::Css(css)).await
            && el.text().await.is_ok_and(|t| t.trim() == text)
        {
            return;
        }
        assert!(Instant::now() < deadline, "`{css}` never read `{text}`");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small HTTP client for the API.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client for `server`'s API.
    fn of(server: &Server) -> Self {
        Api {
            http: http_client(),
            base: server.url.clone(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    async fn put(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .put(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    /// Waits (up to 30 s) until job `id` is in `state`; returns it.
    async fn wait_state(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.get(&format!("/v1/jobs/{id}")).await;
            if job["state"] == state {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never became {state}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn enqueue(&self, body: Value) -> String {
        self.post("/v1/jobs", body).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Claims `n` jobs of `queue` as `worker`.
    async fn claim(&self, queue: &str, worker: &str, n: u32) -> Vec<Value> {
        let claimed = self
            .post(
                &format!("/v1/queues/{queue}/claim"),
                json!({"worker_id": worker, "max_jobs": n}),
            )
            .await;
        claimed["jobs"].as_array().unwrap().clone()
    }
}

fn id(job: &Value) -> &str {
    job["id"].as_str().unwrap()
}

/// An HTTP endpoint on 127.0.0.1 that answers every request with 500 and `body`; returns its URL.
async fn failing_endpoint(body: &'static str) -> String {
    let app = axum::Router::new()
        .fallback(move || async move { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, body) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Enqueues a push job to `url` with one attempt and waits until its delivery failed (the job is dead).
async fn push_and_fail(api: &Api, url: &str) -> String {
    let id = api
        .enqueue(
            json!({"queue": "hooks", "max_attempts": 1, "payload": {"event": "signup"},
            "target": {"url": url}}),
        )
        .await;
    let job = api.wait_state(&id, "dead").await;
    assert_eq!(job["attempts"][0]["outcome"], "failed", "{job}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_and_steers_jobs_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let api = Api::of(&server);
    // One job that will die, one that succeeds, and one left waiting.
    api.enqueue(
        json!({"queue": "emails", "name": "welcome", "max_attempts": 1,
        "payload": {"to": "grace@example.com"}}),
    )
    .await;
    api.enqueue(json!({"queue": "emails", "name": "digest", "payload": {"week": 47}}))
        .await;
    let claimed = api.claim("emails", "worker-7", 2).await;
    let (dying, done) = (&claimed[0], &claimed[1]);
    api.post(
        &format!("/v1/jobs/{}/fail", id(dying)),
        json!({"lease_token": dying["lease_token"], "error": "SMTP 550: mailbox unavailable"}),
    )
    .await;
    api.post(
        &format!("/v1/jobs/{}/complete", id(done)),
        json!({"lease_token": done["lease_token"], "result": {"sent": 1200}}),
    )
    .await;
    let waiting = api
        .enqueue(
            json!({"queue": "emails", "name": "reminder", "payload": {"user": 42},
            "tags": {"tenant": "acme"}}),
        )
        .await;
    api.enqueue(json!({"queue": "reports", "delay": "1h", "payload": {"month": "2026-11"}}))
        .await;

    let driver = start_driver();
    let client = browser(&driver, &dir.path().join("profile")).await;

    // The overview lists the queue with its counts.
    client.goto(&format!("{}/ui", server.url)).await.unwrap();
    let row = find(&client, "#queue-emails").await;
    let text = row.text().await.unwrap();
    assert!(text.contains("emails"), "{text}");
    screenshot(&client, "overview").await;

    // The jobs page shows the enqueued job; its detail page shows its payload.
    client
        .goto(&format!("{}/ui/jobs", server.url))
        .await
        .unwrap();
    let link = find(&client, &format!("a[href='/ui/jobs/{waiting}']")).await;
    screenshot(&client, "jobs").await;
    link.click().await.unwrap();
    let payload = find(&client, "#payload").await.text().await.unwrap();
    assert!(payload.contains("\"user\": 42"), "{payload}");
    wait_text(&client, "#job-state", "available").await;
    screenshot(&client, "job").await;

    // The dead job, retried from its page, is available again.
    client
        .goto(&format!("{}/ui/dead", server.url))
        .await
        .unwrap();
    let link = find(&client, &format!("a[href='/ui/jobs/{}']", id(dying))).await;
    screenshot(&client, "dead").await;
    link.click().await.unwrap();
    wait_text(&client, "#job-state", "dead").await;
    let error = find(&client, "#last-error").await.text().await.unwrap();
    assert_eq!(error, "SMTP 550: mailbox unavailable");
    screenshot(&client, "dead-job").await;
    find(&client, "#retry").await.click().await.unwrap();
    wait_text(&client, "#job-state", "available").await;
    screenshot(&client, "retried").await;
    let job = api.get(&format!("/v1/jobs/{}", id(dying))).await;
    assert_eq!(job["state"], "available");

    // Pausing a queue from the overview.
    client.goto(&format!("{}/ui", server.url)).await.unwrap();
    find(&client, "#queue-emails button[value=pause]")
        .await
        .click()
        .await
        .unwrap();
    find(&client, "#queue-emails .badge.paused").await;
    screenshot(&client, "paused").await;
    let queues = api.get("/v1/queues").await;
    let emails = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "emails")
        .unwrap();
    assert_eq!(emails["paused"], true);

    // A schedule: its expression in words, paused and triggered from the schedules page.
    api.put(
        "/v1/schedules/weekday-report",
        json!({"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin",
            "job": {"queue": "reports", "name": "weekday", "payload": {"kind": "daily"}}}),
    )
    .await;
    client
        .goto(&format!("{}/ui/schedules", server.url))
        .await
        .unwrap();
    let row = "#schedule-weekday-report";
    wait_text(
        &client,
        &format!("{row} .cron-words"),
        "At 09:00, Monday through Friday",
    )
    .await;
    let expression = find(&client, &format!("{row} code")).await.text().await;
    assert_eq!(
        expression.unwrap(),
        "0 9 * * 1-5",
        "the expression stays visible"
    );
    screenshot(&client, "schedules").await;
    find(&client, &format!("{row} form[action$='/pause'] button"))
        .await
        .click()
        .await
        .unwrap();
    find(&client, &format!("{row} .badge.paused")).await;
    assert_eq!(
        api.get("/v1/schedules/weekday-report").await["paused"],
        true
    );
    find(&client, &format!("{row} form[action$='/trigger'] button"))
        .await
        .click()
        .await
        .unwrap();
    client.accept_alert().await.expect("the trigger asks first");
    // Only a tick makes a badge in a list of the row (a paused schedule lists no next fire times).
    let ticks = find(&client, &format!("{row} ul.plain li .badge"))
        .await
        .find(Locator::XPath(".."))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ticks.contains("(manual)"), "{ticks}");
    find(&client, &format!("{row} .badge.paused")).await;
    screenshot(&client, "schedules-triggered").await;

    // Push targets: empty at first, then the failed delivery to a 127.0.0.1 endpoint that answers 500.
    client
        .goto(&format!("{}/ui/push", server.url))
        .await
        .unwrap();
    find(&client, "#no-push-failures").await;
    let hook = failing_endpoint("upstream exploded\nstack trace follows").await;
    let pushed = push_and_fail(&api, &hook).await;
    client.refresh().await.unwrap();
    let row = find(&client, "table.push-failures tr.push-failure").await;
    let destination = hook.trim_end_matches("/hook");
    let cell = |css: &'static str| {
        let row = row.clone();
        async move {
            row.find(Locator::Css(css))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(cell(".destination").await, destination);
    assert_eq!(cell(".failures").await, "1");
    assert_eq!(cell(".status").await, "HTTP 500");
    assert_eq!(cell(".excerpt").await, "upstream exploded…");
    screenshot(&client, "push").await;
    row.find(Locator::Css("a.job"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&client, "#job-state", "dead").await;
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with(&pushed)
    );

    client.close().await.unwrap();
}

/// Asserts that no markup users sent became live on the current page.
async fn assert_inert(client: &Client, page: &str) {
    let inert = client
        .execute(
            "return [window.__xss === undefined, \
               document.querySelectorAll('script:not([src]), img[src=x], svg[onload], [onerror]').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        inert,
        json!([true, 0]),
        "{page}: markup from users became live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_of_a_function_is_shown_cancelled_and_retried_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let api = Api::of(&server);
    // A function whose first call records one step and fails the next (retried in an hour), on an event that
    // carries markup.
    api.put(
        "/v1/functions/charge",
        json!({"triggers": [{"event": "shop/order.paid"}], "backoff": {"base": "1h", "jitter": 0.0}}),
    )
    .await;
    let sent = api
        .post(
            "/v1/events",
            json!({"name": "shop/order.paid", "data": {"order": 42, "note": XSS}}),
        )
        .await;
    let run = sent["runs"][0][0].as_str().unwrap().to_owned();
    let call = &api.claim("charge", "worker-1", 1).await[0];
    api.post(
        &format!("/v1/jobs/{}/complete", id(call)),
        json!({"lease_token": call["lease_token"], "result": {"steps": [
            {"id": "reserve", "op": "run", "data": {"held": true}},
            {"id": "pay", "op": "run", "error": {"name": "CardDeclined", "message": "insufficient funds"}}
        ]}}),
    )
    .await;
    let state = api.get(&format!("/v1/runs/{run}")).await["state"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !["cancelled", "failed", "succeeded"].contains(&state.as_str()),
        "{state}"
    );

    let driver = start_driver();
    let client = browser(&driver, &dir.path().join("profile")).await;

    // Functions → the function's runs → the run.
    client
        .goto(&format!("{}/ui/functions", server.url))
        .await
        .unwrap();
    let row = find(&client, "#function-charge").await;
    assert!(row.text().await.unwrap().contains("shop/order.paid"));
    screenshot(&client, "functions").await;
    find(&client, "#function-charge a.runs-link")
        .await
        .click()
        .await
        .unwrap();
    let link = find(&client, &format!("a[href='/ui/runs/{run}']")).await;
    screenshot(&client, "runs").await;
    link.click().await.unwrap();
    wait_text(&client, "#run-state", &state).await;

    // The timeline: the recorded step with its data, the failing one with its attempt's error.
    let reserve = find(&client, "li.step[data-step='reserve']").await;
    let text = reserve.text().await.unwrap();
    assert!(
        text.contains("succeeded") && text.contains("\"held\": true"),
        "{text}"
    );
    wait_text(&client, "li.step[data-step='pay'] .step-status", "retrying").await;
    let error = find(
        &client,
        "li.step[data-step='pay'] tr.failed-attempt pre.error",
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(error, "CardDeclined: insufficient funds");
    let event = find(&client, "#event").await.text().await.unwrap();
    assert!(
        event.contains("<script>window.__xss=1</script>"),
        "the event's markup is text: {event}"
    );
    assert_inert(&client, "the run page").await;
    screenshot(&client, "run").await;

    // Cancel (it asks first), then retry: the page and the API agree.
    find(&client, "#cancel").await.click().await.unwrap();
    client.accept_alert().await.expect("the cancel asks first");
    wait_text(&client, "#run-state", "cancelled").await;
    find(&client, ".notice.ok").await;
    assert_eq!(
        api.get(&format!("/v1/runs/{run}")).await["state"],
        "cancelled"
    );
    screenshot(&client, "run-cancelled").await;
    find(&client, "#retry").await.click().await.unwrap();
    wait_text(&client, "#run-state", "queued").await;
    assert_eq!(api.get(&format!("/v1/runs/{run}")).await["state"], "queued");
    let recorded = find(&client, "li.step[data-step='reserve'] .step-status")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(recorded, "succeeded", "the recorded step is kept");
    screenshot(&client, "run-retried").await;

    // Events: the event lists the run it started, linked to its page.
    client
        .goto(&format!("{}/ui/events", server.url))
        .await
        .unwrap();
    let link = find(&client, &format!("a.run-link[href='/ui/runs/{run}']")).await;
    assert_inert(&client, "the events page").await;
    screenshot(&client, "events").await;
    link.click().await.unwrap();
    wait_text(&client, "#run-state", "queued").await;

    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_inert_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let api = Api::of(&server);
    // Markup in every field the dashboard shows (queue names cannot hold any: the API refuses them).
    let refused = api
        .http
        .post(format!("{}/v1/jobs", server.url))
        .json(&json!({"queue": XSS}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    for key in ["a", "b"] {
        api.enqueue(
            json!({"queue": "xss", "name": XSS, "payload": {XSS: XSS, "list": [XSS]},
            "tags": {XSS_SHORT: XSS}, "idempotency_key": format!("{XSS}{key}"), "max_attempts": 1}),
        )
        .await;
    }
    let jobs = api.claim("xss", XSS, 2).await;
    for job in &jobs {
        api.post(
            &format!("/v1/jobs/{}/heartbeat", id(job)),
            json!({"lease_token": job["lease_token"], "progress": 40, "message": XSS}),
        )
        .await;
    }
    let (done, dead) = (&jobs[0], &jobs[1]);
    api.post(
        &format!("/v1/jobs/{}/complete", id(done)),
        json!({"lease_token": done["lease_token"], "result": {XSS: [XSS]}}),
    )
    .await;
    api.post(
        &format!("/v1/jobs/{}/fail", id(dead)),
        json!({"lease_token": dead["lease_token"], "error": XSS}),
    )
    .await;
    // One more, still running, with its progress message on show.
    let running = api
        .enqueue(json!({"queue": "xss", "name": XSS, "payload": XSS}))
        .await;
    let claimed = api.claim("xss", XSS, 1).await;
    assert_eq!(id(&claimed[0]), running);
    api.post(
        &format!("/v1/jobs/{running}/heartbeat"),
        json!({"lease_token": claimed[0]["lease_token"], "progress": 70, "message": XSS}),
    )
    .await;

    // A schedule whose job carries markup (its name cannot: names are validated), and a push endpoint whose
    // error response is markup, shown on the push targets page.
    api.put(
        "/v1/schedules/xss",
        json!({"cron": "*/5 * * * *", "job": {"queue": "xss", "name": XSS, "payload": {XSS: XSS}}}),
    )
    .await;
    let hook = failing_endpoint(XSS).await;
    push_and_fail(&api, &hook).await;

    let driver = start_driver();
    let client = browser(&driver, &dir.path().join("profile")).await;
    let encoded: String = form_urlencoded_name(XSS);
    let pages = [
        ("xss-overview", "/ui".to_owned()),
        ("xss-jobs", "/ui/jobs?queue=xss".to_owned()),
        ("xss-jobs-by-name", format!("/ui/jobs?name={encoded}")),
        ("xss-dead", "/ui/dead".to_owned()),
        ("xss-succeeded-job", format!("/ui/jobs/{}", id(done))),
        ("xss-dead-job", format!("/ui/jobs/{}", id(dead))),
        ("xss-running-job", format!("/ui/jobs/{running}")),
        ("xss-schedules", "/ui/schedules".to_owned()),
        ("xss-push", "/ui/push".to_owned()),
    ];
    for (name, path) in pages {
        client.goto(&format!("{}{path}", server.url)).await.unwrap();
        find(&client, "main#main").await;
        assert_inert(&client, &path).await;
        screenshot(&client, name).await;
    }
    // The hostile text is shown as text, where it belongs.
    client
        .goto(&format!("{}/ui/jobs/{}", server.url, id(dead)))
        .await
        .unwrap();
    let error = find(&client, "#last-error").await.text().await.unwrap();
    assert_eq!(error, XSS);
    let payload = find(&client, "#payload").await.text().await.unwrap();
    assert!(
        payload.contains("<script>window.__xss=1</script>"),
        "{payload}"
    );
    client
        .goto(&format!("{}/ui/jobs/{running}", server.url))
        .await
        .unwrap();
    let progress = find(&client, ".progress").await.text().await.unwrap();
    assert!(progress.contains(XSS), "{progress}");
    client
        .goto(&format!("{}/ui/push", server.url))
        .await
        .unwrap();
    let excerpt = find(&client, "tr.push-failure .excerpt")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(excerpt, XSS, "the response is shown as text");

    // A payload larger than the page shows: its start, inert, and a link to download the whole of it.
    let large = XSS.repeat(100 * 1024 / XSS.len());
    let big = api.enqueue(json!({"queue": "xss", "payload": large})).await;
    client
        .goto(&format!("{}/ui/jobs/{big}", server.url))
        .await
        .unwrap();
    let shown = find(&client, "#payload").await.text().await.unwrap();
    assert!(shown.starts_with("\"<script>"), "{}", &shown[..80]);
    assert!(shown.len() <= 64 * 1024, "{} bytes shown", shown.len());
    let link = find(&client, "p.cut a").await;
    assert_eq!(
        link.attr("href").await.unwrap().as_deref(),
        Some(format!("/ui/jobs/{big}/raw/payload").as_str())
    );
    assert!(link.attr("download").await.unwrap().is_some());
    let inert = client
        .execute(
            "return [window.__xss === undefined, \
               document.querySelectorAll('script:not([src]), img[src=x], svg[onload], [onerror]').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(inert, json!([true, 0]), "the cut payload stays text");
    client.close().await.unwrap();
}

/// `text` encoded for a query string.
fn form_urlencoded_name(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
