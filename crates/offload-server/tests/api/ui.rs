//! The dashboard in-process: pages render, sessions and CSRF tokens guard every action, logins need an API
//! token when tokens are configured, and everything users sent is escaped. (The real browser tests are in
//! the binary's crate: `crates/offload/tests/ui_browser.rs`.)

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use offload_server::ServerConfig;

use crate::common::{Reply, TestApp};

mod functions;

/// A browser's view of the dashboard: its session cookie and the CSRF token of the last page.
struct Browser<'a> {
    app: &'a TestApp,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookie: None,
            csrf: None,
        }
    }

    fn remember(&mut self, reply: &Reply) {
        if let Some(set) = reply.headers.get(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        let html = String::from_utf8_lossy(&reply.body);
        if let Some(at) = html.find("name=\"csrf\" value=\"") {
            let rest = &html[at + 19..];
            self.csrf = Some(rest[..rest.find('"').unwrap()].to_owned());
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        let mut request = Request::builder().method(Method::GET).uri(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let reply = self.app.call(request.body(Body::empty()).unwrap()).await;
        self.remember(&reply);
        reply
    }

    /// Posts a form; `with_csrf` adds the page's token.
    async fn post(&mut self, path: &str, form: &str, with_csrf: bool) -> Reply {
        let mut body = form.to_owned();
        if with_csrf {
            let token = self.csrf.clone().expect("a page was loaded");
            body = format!("csrf={token}&{body}");
        }
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "localhost")
            .header(header::ORIGIN, "http://localhost");
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let reply = self.app.call(request.body(Body::from(body)).unwrap()).await;
        self.remember(&reply);
        reply
    }
}

fn html(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    String::from_utf8(reply.body.to_vec()).unwrap()
}

fn location(reply: &Reply) -> &str {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{reply:?}");
    reply.headers[header::LOCATION].to_str().unwrap()
}

#[tokio::test]
async fn open_dashboard_still_needs_csrf_tokens() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"ui-open","name":"resize"}"#).await;
    let mut browser = Browser::new(&app);
    let page = html(&browser.get("/ui").await);
    assert!(page.contains("ui-open"));
    assert!(browser.cookie.is_some(), "a session is handed out");
    let csp = browser.get("/ui").await.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    // Without the token (a forged form from another page): refused, nothing changes.
    let cancel = format!("/ui/jobs/{}/cancel", job.id);
    assert_eq!(
        browser.post(&cancel, "", false).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.job(job.id).await.state.as_str(), "available");
    // Another site's form is refused even with a token.
    let mut forged = Request::builder()
        .method(Method::POST)
        .uri(&cancel)
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, browser.cookie.clone().unwrap())
        .body(Body::from(format!(
            "csrf={}",
            browser.csrf.clone().unwrap()
        )))
        .unwrap();
    forged.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    assert_eq!(app.call(forged).await.status, StatusCode::FORBIDDEN);

    let reply = browser.post(&cancel, "", true).await;
    assert_eq!(
        location(&reply),
        format!("/ui/jobs/{}?done=cancel&n=1", job.id)
    );
    assert_eq!(app.job(job.id).await.state.as_str(), "cancelled");
    let page = html(&browser.get(location(&reply)).await);
    assert!(page.contains("Cancelled 1 job."), "{page}");
}

#[tokio::test]
async fn tokens_require_a_login() {
    let config = ServerConfig {
        api_tokens: vec!["s3cret".to_owned()],
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let mut browser = Browser::new(&app);
    let reply = browser.get("/ui/jobs?queue=a").await;
    assert_eq!(location(&reply), "/ui/login?next=%2Fui%2Fjobs%3Fqueue%3Da");
    assert!(browser.cookie.is_none(), "no session without a login");
    let login = html(&browser.get("/ui/login?next=%2Fui%2Fjobs").await);
    assert!(login.contains("type=\"password\""));

    let wrong = browser
        .post("/ui/login", "token=nope&next=%2Fui", false)
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(browser.cookie.is_none());
    let reply = browser
        .post(
            "/ui/login",
            "token=s3cret&next=https%3A%2F%2Fevil.example",
            false,
        )
        .await;
    assert_eq!(location(&reply), "/ui", "never an open redirect");
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let page = html(&browser.get("/ui").await);
    assert!(page.contains("Log out"));
    let reply = browser.post("/ui/queues/ui-auth/pause", "", true).await;
    assert_eq!(location(&reply), "/ui?done=pause");
    let queues = app.get("/v1/queues").await;
    assert_eq!(
        queues.status,
        StatusCode::UNAUTHORIZED,
        "the API still wants its bearer token"
    );

    let reply = browser.post("/ui/logout", "", true).await;
    assert_eq!(location(&reply), "/ui/login");
    // The old cookie no longer opens anything.
    let reply = browser.get("/ui").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn bulk_actions_apply_to_a_selection_or_a_filter() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let job = app
            .enqueue(&format!(r#"{{"queue":"ui-bulk","name":"n{}"}}"#, i % 2))
            .await;
        ids.push(job.id.to_string());
    }
    let mut browser = Browser::new(&app);
    let page = html(&browser.get("/ui/jobs?queue=ui-bulk").await);
    assert_eq!(page.matches("aria-label=\"select job").count(), 5);

    // A selection: two cancelled.
    let form = format!(
        "action=cancel&back=%2Fui%2Fjobs%3Fqueue%3Dui-bulk&id={}&id={}",
        ids[0], ids[1]
    );
    let reply = browser.post("/ui/jobs/bulk", &form, true).await;
    assert_eq!(location(&reply), "/ui/jobs?queue=ui-bulk&done=cancel&n=2");
    // The whole filter (name n0: jobs 0, 2, 4): retry-all retries the cancelled one, refuses the others.
    let form = "action=retry-all&queue=ui-bulk&name=n0&state=&tag=&back=%2Fui%2Fjobs";
    let reply = browser.post("/ui/jobs/bulk", form, true).await;
    assert_eq!(location(&reply), "/ui/jobs?done=retry&n=1&refused=2");
    let page = html(&browser.get(location(&reply)).await);
    assert!(page.contains("Retried 1 job. 2 could not be"), "{page}");
    // Delete everything in the queue.
    let form = "action=delete-all&queue=ui-bulk&back=%2Fui%2Fjobs";
    let reply = browser.post("/ui/jobs/bulk", form, true).await;
    assert_eq!(location(&reply), "/ui/jobs?done=delete&n=5");
    assert!(app.list_ids("queue=ui-bulk").await.is_empty());
}

#[tokio::test]
async fn job_list_pages_by_keyset() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(app.enqueue(r#"{"queue":"ui-pages"}"#).await.id.to_string());
    }
    let mut browser = Browser::new(&app);
    let first = html(&browser.get("/ui/jobs?queue=ui-pages").await);
    assert_eq!(first.matches("aria-label=\"select job").count(), 50);
    assert!(
        first.contains(&ids[59]) && !first.contains(&ids[9]),
        "newest first"
    );
    let at = first.find("id=\"next-page\"").expect("a next page link");
    let href_start = first[..at].rfind("href=\"").unwrap() + 6;
    let href = first[href_start..at]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let second = html(&browser.get(&href).await);
    assert_eq!(second.matches("aria-label=\"select job").count(), 10);
    let row = |id: &str| format!("value=\"{id}\" aria-label");
    assert!(second.contains(&row(&ids[0])) && !second.contains(&row(&ids[10])));
    assert!(
        !second.contains("id=\"next-page\""),
        "the last page has no next link"
    );
    // Searching by id opens the job.
    let reply = browser.get(&format!("/ui/jobs?id={}", ids[3])).await;
    assert_eq!(location(&reply), format!("/ui/jobs/{}", ids[3]));
    let detail = html(&browser.get(&format!("/ui/jobs/{}", ids[3])).await);
    assert!(detail.contains(&ids[3]));
    let missing = browser
        .get("/ui/jobs/01890000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// What a hostile user can put in every field the dashboard shows.
pub(crate) const XSS: &str =
    "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=1\">";
/// The same for tag keys, which are at most 64 bytes.
pub(crate) const XSS_SHORT: &str = "<svg onload=\"window.__xss=1\">";

#[tokio::test]
async fn everything_users_sent_is_escaped() {
    let app = TestApp::new().await;
    // Queue names cannot carry markup at all.
    let refused = app
        .post("/v1/jobs", serde_json::json!({"queue": XSS}).to_string())
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (queue, _done, dead) = crate::ui::hostile_jobs(&app).await;

    let mut browser = Browser::new(&app);
    let pages = [
        "/ui".to_owned(),
        format!("/ui/jobs?queue={queue}"),
        format!("/ui/jobs?name={}", urlencode(XSS)),
        format!("/ui/jobs?tag={}", urlencode(&format!("{XSS}:{XSS}"))),
        "/ui/dead".to_owned(),
        format!("/ui/jobs/{}", _done),
        format!("/ui/jobs/{dead}"),
    ];
    for path in pages {
        let page = html(&browser.get(&path).await);
        assert!(!page.contains("<script>window"), "{path}: raw script tag");
        assert!(!page.contains("<img src=x"), "{path}: raw img tag");
        assert!(!page.contains("onerror=\"window"), "{path}: raw handler");
        assert!(!page.contains("<svg onload"), "{path}: raw svg tag");
        if path.contains("/ui/jobs/") {
            assert!(
                page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
                "{path}: the text is shown, escaped"
            );
        }
    }
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Jobs with [`XSS`] in every field the dashboard shows: name, payload, tag key and value, idempotency key,
/// worker id, progress message, result (a succeeded job) and errors (a dead job). Returns the queue and the
/// two jobs' ids.
pub(crate) async fn hostile_jobs(app: &TestApp) -> (String, String, String) {
    let queue = "xss-q".to_owned();
    let mut ids = Vec::new();
    for key in ["a", "b"] {
        let body = serde_json::json!({
            "queue": queue, "name": XSS, "payload": {XSS: XSS, "list": [XSS]},
            "tags": {XSS_SHORT: XSS}, "idempotency_key": format!("{XSS}{key}"), "max_attempts": 1,
        });
        let reply = app.post("/v1/jobs", body.to_string()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        ids.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    let claim = app
        .post(
            &format!("/v1/queues/{queue}/claim"),
            serde_json::json!({"worker_id": XSS, "max_jobs": 2}).to_string(),
        )
        .await;
    let jobs = claim.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    let token = |i: usize| jobs[i]["lease_token"].as_str().unwrap().to_owned();
    let id = |i: usize| jobs[i]["id"].as_str().unwrap().to_owned();
    let beat = app
        .post(
            &format!("/v1/jobs/{}/heartbeat", id(0)),
            serde_json::json!({"lease_token": token(0), "progress": 40, "message": XSS})
                .to_string(),
        )
        .await;
    assert_eq!(beat.status, StatusCode::OK, "{beat:?}");
    let beat = app
        .post(
            &format!("/v1/jobs/{}/heartbeat", id(1)),
            serde_json::json!({"lease_token": token(1), "progress": 70, "message": XSS})
                .to_string(),
        )
        .await;
    assert_eq!(beat.status, StatusCode::OK);
    let done = app
        .post(
            &format!("/v1/jobs/{}/complete", id(0)),
            serde_json::json!({"lease_token": token(0), "result": {XSS: [XSS]}}).to_string(),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    let failed = app
        .post(
            &format!("/v1/jobs/{}/fail", id(1)),
            serde_json::json!({"lease_token": token(1), "error": XSS}).to_string(),
        )
        .await;
    assert_eq!(failed.status, StatusCode::OK, "{failed:?}");
    (queue, id(0), id(1))
}

#[tokio::test]
async fn schedules_page_shows_fire_times_and_ticks_and_pauses_resumes_and_triggers() {
    let app = TestApp::new().await;
    let body = serde_json::json!({
        "cron": "30 2 * * *", "timezone": "Europe/Berlin",
        "job": {"queue": "reports", "name": XSS, "payload": {XSS: XSS}},
    });
    let put = app
        .call(crate::common::json_request(
            Method::PUT,
            "/v1/schedules/nightly",
            body.to_string(),
        ))
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{put:?}");

    let mut browser = Browser::new(&app);
    let page = html(&browser.get("/ui/schedules").await);
    assert!(page.contains("href=\"/ui/schedules\""), "in the navigation");
    assert!(page.contains("nightly"));
    assert!(page.contains("30 2 * * *"));
    assert!(
        page.contains("At 02:30 every day"),
        "the expression in words"
    );
    assert!(page.contains("Europe/Berlin"));
    assert!(page.contains("none yet"), "no ticks yet");
    assert!(!page.contains("badge paused"));

    // Without the CSRF token: refused, nothing changes.
    assert_eq!(
        browser
            .post("/ui/schedules/nightly/pause", "", false)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/v1/schedules/nightly").await.json()["paused"],
        false
    );

    let paused = browser.post("/ui/schedules/nightly/pause", "", true).await;
    assert_eq!(location(&paused), "/ui/schedules?done=schedule_pause");
    assert_eq!(
        app.get("/v1/schedules/nightly").await.json()["paused"],
        true
    );
    let page = html(&browser.get("/ui/schedules?done=schedule_pause").await);
    assert!(page.contains("badge paused"));
    assert!(page.contains("Schedule paused"));
    assert!(page.contains("/ui/schedules/nightly/resume"));

    let triggered = browser
        .post("/ui/schedules/nightly/trigger", "", true)
        .await;
    assert_eq!(location(&triggered), "/ui/schedules?done=trigger");
    let ticks = app.get("/v1/schedules/nightly").await.json()["recent_ticks"].clone();
    let job_id = ticks[0]["job_id"].as_str().unwrap().to_owned();
    let page = html(&browser.get("/ui/schedules").await);
    assert!(page.contains("fired"));
    assert!(page.contains("(manual)"));
    assert!(page.contains(&format!("href=\"/ui/jobs/{job_id}\"")));

    let resumed = browser.post("/ui/schedules/nightly/resume", "", true).await;
    assert_eq!(location(&resumed), "/ui/schedules?done=schedule_resume");
    assert_eq!(
        app.get("/v1/schedules/nightly").await.json()["paused"],
        false
    );

    // What the schedule's template carried is inert on the schedules page and on its job's page.
    for path in ["/ui/schedules".to_owned(), format!("/ui/jobs/{job_id}")] {
        let page = html(&browser.get(&path).await);
        assert!(!page.contains("<script>window"), "{path}: raw script tag");
        assert!(!page.contains("<img src=x"), "{path}: raw img tag");
        assert!(!page.contains("onerror=\"window"), "{path}: raw handler");
    }
    // Unknown actions and schedules are refused.
    assert_eq!(
        browser
            .post("/ui/schedules/nightly/explode", "", true)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser
            .post("/ui/schedules/missing/trigger", "", true)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn push_page_lists_failed_deliveries_per_destination() {
    use offload_store::{Finish, FinishItem, JobClaimPushParams, JobFinishParams};

    let app = crate::push::app(offload_engine::AddressPolicy::default()).await;
    let mut browser = Browser::new(&app);
    let page = html(&browser.get("/ui/push").await);
    assert!(page.contains("href=\"/ui/push\""), "in the navigation");
    assert!(page.contains("No push delivery failed in the last hour."));

    // Two deliveries to one destination fail (the second with a hostile response), one to another times out.
    for url in [
        "https://hooks.example/in",
        "https://hooks.example/other",
        "http://slow.example:8080/in",
    ] {
        let body = serde_json::json!({"queue": "hooks", "max_attempts": 1, "target": {"url": url}});
        let reply = app.post("/v1/jobs", body.to_string()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    let store = app.engine.store();
    let claimed = store
        .job_claim_push(JobClaimPushParams {
            worker_id: "push:test".into(),
            max_jobs: 10,
            per_destination: 10,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let mut hostile_job = String::new();
    let mut items = Vec::new();
    for p in &claimed {
        let error = if p.destination.starts_with("http://slow") {
            "request timed out".to_owned()
        } else if p.target.url.ends_with("/other") {
            hostile_job = p.job.id.to_string();
            format!("HTTP 502: {XSS}")
        } else {
            "HTTP 500: down".to_owned()
        };
        items.push(FinishItem {
            id: p.job.id,
            lease_token: p.job.lease_token,
            finish: Finish::Fail(offload_core::state::Failure {
                error,
                retry_after: None,
                retryable: true,
                cause: offload_core::state::FailureCause::Worker,
            }),
        });
    }
    // The hostile one last, so it is its destination's latest failure.
    items.sort_by_key(|i| i.id.to_string() == hostile_job);
    for item in items {
        store
            .job_finish(JobFinishParams { items: vec![item] })
            .await
            .unwrap()
            .remove(0)
            .unwrap();
    }

    let page = html(&browser.get("/ui/push").await);
    assert!(!page.contains("No push delivery failed"));
    assert!(page.contains("https://hooks.example:443"));
    assert!(page.contains("http://slow.example:8080"));
    assert!(page.contains("HTTP 502"));
    assert!(page.contains("timeout"));
    assert!(page.contains(&format!("href=\"/ui/jobs/{hostile_job}\"")));
    assert!(
        page.contains("<td class=\"num bad failures\">2</td>"),
        "two failures of hooks.example"
    );
    assert!(!page.contains("<script>window"), "raw script tag");
    assert!(!page.contains("<img src=x"), "raw img tag");
    assert!(
        page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
        "the response is shown, escaped"
    );
}

/// A job with `payload` written through the store directly, as a server before the depth limit stored it
/// (the API refuses such values now).
async fn store_job(app: &TestApp, queue: &str, payload: String) -> offload_core::JobId {
    use offload_core::spec::{EnqueueRequest, Limits};

    let request: EnqueueRequest =
        serde_json::from_value(serde_json::json!({"queue": queue, "max_attempts": 1})).unwrap();
    let mut job = request
        .validate(&Limits::default(), None, offload_core::Timestamp::now())
        .unwrap();
    job.payload = serde_json::value::RawValue::from_string(payload).unwrap();
    let id = job.id;
    app.engine
        .store()
        .job_insert(offload_store::JobInsertParams { jobs: vec![job] })
        .await
        .unwrap();
    id
}

/// Claims the one job of `queue` and completes it with `result`, through the store.
async fn complete_with(app: &TestApp, queue: &str, result: String) {
    use offload_store::{Finish, FinishItem, JobClaimParams, JobFinishParams};

    let store = app.engine.store();
    let claimed = store
        .job_claim(JobClaimParams {
            queue: queue.to_owned(),
            worker_id: "w".into(),
            max_jobs: 1,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .job_finish(JobFinishParams {
            items: vec![FinishItem {
                id: claimed[0].id,
                lease_token: claimed[0].lease_token,
                finish: Finish::Complete {
                    result: Some(serde_json::value::RawValue::from_string(result).unwrap()),
                },
            }],
        })
        .await
        .unwrap()
        .remove(0)
        .unwrap();
}

/// Most bytes a job page may take, whatever the job holds: two values of 64 KiB, escaping, the frame.
const PAGE_BOUND: usize = 512 * 1024;

#[tokio::test]
async fn deeply_nested_values_render_cut_in_bounded_output() {
    let app = TestApp::new().await;
    let depth = 100_000;
    let deep_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let id = store_job(&app, "deep", deep_array.clone()).await;
    complete_with(&app, "deep", deep_object.clone()).await;

    let mut browser = Browser::new(&app);
    let page = html(&browser.get(&format!("/ui/jobs/{id}")).await);
    assert!(page.len() < PAGE_BOUND, "the page is {} bytes", page.len());
    assert!(page.contains("<pre class=\"json\" id=\"payload\">[\n  [\n    ["));
    for part in ["payload", "result"] {
        let href = format!("href=\"/ui/jobs/{id}/raw/{part}\"");
        assert!(page.contains(&href), "a link to the whole {part}");
    }
    assert!(page.contains("of 195 KiB are shown"), "the payload's size");

    // The whole values, exactly as stored, are a download away.
    let raw = browser.get(&format!("/ui/jobs/{id}/raw/payload")).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        raw.headers[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"job-{id}-payload.json\"").as_str()
    );
    assert_eq!(raw.body, deep_array.as_bytes());
    let raw = browser.get(&format!("/ui/jobs/{id}/raw/result")).await;
    assert_eq!(raw.body, deep_object.as_bytes());
    // A part the job does not have, or that does not exist, is a 404 page.
    let none = browser.get(&format!("/ui/jobs/{id}/raw/error")).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let none = browser.get(&format!("/ui/jobs/{id}/raw/secrets")).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn megabyte_values_render_cut_in_bounded_output() {
    let app = TestApp::new().await;
    let numbers: Vec<String> = (0..170_000).map(|i| i.to_string()).collect();
    let big = format!("[{}]", numbers.join(","));
    assert!(big.len() > 1_000_000);
    let id = store_job(&app, "big", big.clone()).await;

    let mut browser = Browser::new(&app);
    let page = html(&browser.get(&format!("/ui/jobs/{id}")).await);
    assert!(page.len() < PAGE_BOUND, "the page is {} bytes", page.len());
    assert!(
        page.contains("[\n  0,\n  1,\n  2,"),
        "the start, pretty-printed"
    );
    assert!(!page.contains("169999"), "not the end");
    assert!(page.contains(&format!("href=\"/ui/jobs/{id}/raw/payload\"")));
    assert!(page.contains("of 1.0 MiB are shown"));
    let raw = browser.get(&format!("/ui/jobs/{id}/raw/payload")).await;
    assert_eq!(raw.body, big.as_bytes());

    // A small value is shown whole, without a download link.
    let small = app
        .enqueue(r#"{"queue":"big","payload":{"a":[1,2]}}"#)
        .await;
    let page = html(&browser.get(&format!("/ui/jobs/{}", small.id)).await);
    assert!(
        page.contains("<pre class=\"json\" id=\"payload\">{\n  &quot;a&quot;")
            || page.contains("{\n  &#34;a&#34;"),
        "{page}"
    );
    assert!(!page.contains("/raw/payload"));
}

#[tokio::test]
async fn cross_site_forms_are_refused_even_with_a_valid_token() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"ui-xsite"}"#).await;
    let mut browser = Browser::new(&app);
    html(&browser.get("/ui").await);
    let cancel = format!("/ui/jobs/{}/cancel", job.id);
    for site in ["cross-site", "same-site"] {
        let forged = Request::builder()
            .method(Method::POST)
            .uri(&cancel)
            .header(header::HOST, "localhost")
            .header(header::ORIGIN, "http://localhost")
            .header("sec-fetch-site", site)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, browser.cookie.clone().unwrap())
            .body(Body::from(format!(
                "csrf={}",
                browser.csrf.clone().unwrap()
            )))
            .unwrap();
        let reply = app.call(forged).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "Sec-Fetch-Site: {site}"
        );
        assert_eq!(
            String::from_utf8_lossy(&reply.body),
            "403 Forbidden: the form was sent from another site\n"
        );
        assert_eq!(app.job(job.id).await.state.as_str(), "available");
    }

    // The same form from the dashboard's own page goes through.
    let own = Request::builder()
        .method(Method::POST)
        .uri(&cancel)
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, "http://localhost")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, browser.cookie.clone().unwrap())
        .body(Body::from(format!(
            "csrf={}",
            browser.csrf.clone().unwrap()
        )))
        .unwrap();
    assert_eq!(app.call(own).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.job(job.id).await.state.as_str(), "cancelled");
}

#[tokio::test]
async fn cross_site_logins_are_refused() {
    let app = TestApp::with_config(ServerConfig {
        api_tokens: vec!["a-long-enough-token".into()],
        ..ServerConfig::default()
    })
    .await;
    let login = Request::builder()
        .method(Method::POST)
        .uri("/ui/login")
        .header(header::HOST, "localhost")
        .header("sec-fetch-site", "cross-site")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("token=a-long-enough-token&next=%2Fui"))
        .unwrap();
    let reply = app.call(login).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply.headers.get(header::SET_COOKIE).is_none(),
        "no session"
    );
}

#[tokio::test]
async fn queue_page_shows_limits_usage_and_groups_and_the_job_page_why_it_waits() {
    let app = TestApp::new().await;
    let reply = app
        .call(crate::common::json_request(
            Method::PATCH,
            "/v1/queues/sync",
            r#"{"group_concurrency": 1, "throttle": {"limit": 5, "period": "1s"}}"#,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    app.enqueue(r#"{"queue":"sync","group":"<b>acme</b>"}"#)
        .await;
    let held = app
        .enqueue(r#"{"queue":"sync","group":"<b>acme</b>"}"#)
        .await;
    app.claim_one("sync").await;

    let mut browser = Browser::new(&app);
    let overview = html(&browser.get("/ui").await);
    assert!(
        overview.contains("href=\"/ui/queues/sync\""),
        "the overview links the queue page"
    );
    assert!(
        overview.contains("1 per group, 5 starts per 1s"),
        "{overview}"
    );
    let page = html(&browser.get("/ui/queues/sync").await);
    assert!(page.contains("1 per group"), "{page}");
    assert!(page.contains("acme"), "the waiting group: {page}");
    assert!(!page.contains("<b>acme</b>"), "groups are escaped: {page}");
    let job = html(&browser.get(&format!("/ui/jobs/{}", held.id)).await);
    assert!(
        job.contains("its group&#39;s concurrency limit")
            || job.contains("its group's concurrency limit"),
        "{job}"
    );
    let missing = browser.get("/ui/queues/nothing-here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
}
