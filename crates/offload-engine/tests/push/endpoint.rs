//! A real HTTP endpoint on 127.0.0.1 for delivery tests: an axum app that records every request it gets and
//! answers from a per-path script (200 `ok` when the script is empty).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::{Notify, mpsc};

/// One request the endpoint received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Received {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Status, headers, body.
    Reply(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Waits, then answers 200.
    Slow(Duration),
    /// Waits until [`Endpoint::release`], then answers 200.
    Hold,
}

impl Answer {
    /// A status with a short text body.
    pub(crate) fn status(code: u16, body: &str) -> Self {
        Answer::Reply(code, Vec::new(), body.as_bytes().to_vec())
    }
}

#[derive(Default)]
struct Shared {
    scripts: Mutex<HashMap<String, VecDeque<Answer>>>,
    seen: Mutex<Vec<Received>>,
    in_flight: Mutex<(u32, u32)>,
    release: Notify,
}

/// The running endpoint.
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    shared: Arc<Shared>,
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    arrivals: mpsc::UnboundedSender<Received>,
}

impl Endpoint {
    /// Starts an endpoint on a free port of 127.0.0.1.
    pub(crate) async fn start() -> Endpoint {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(handle).with_state(AppState {
            shared: shared.clone(),
            arrivals: tx,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Endpoint {
            addr,
            shared,
            arrivals: tokio::sync::Mutex::new(rx),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Queues answers for `path`, used in order.
    pub(crate) fn script(&self, path: &str, answers: impl IntoIterator<Item = Answer>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .extend(answers);
    }

    /// Waits for the next request (any path).
    pub(crate) async fn next(&self) -> Received {
        tokio::time::timeout(Duration::from_secs(20), self.arrivals.lock().await.recv())
            .await
            .expect("a request within 20 s")
            .expect("endpoint running")
    }

    /// Every request received so far for `path`.
    pub(crate) fn seen(&self, path: &str) -> Vec<Received> {
        self.shared
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The most requests that were being answered at once.
    pub(crate) fn max_concurrent(&self) -> u32 {
        self.shared.in_flight.lock().unwrap().1
    }

    /// Lets every held request (and every later one) answer.
    pub(crate) fn release(&self) {
        self.shared.release.notify_waiters();
        self.shared
            .scripts
            .lock()
            .unwrap()
            .values_mut()
            .for_each(|q| q.retain(|a| !matches!(a, Answer::Hold)));
    }
}

async fn handle(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let received = Received {
        method,
        path: path.clone(),
        headers,
        body,
    };
    app.shared.seen.lock().unwrap().push(received.clone());
    {
        let mut n = app.shared.in_flight.lock().unwrap();
        n.0 += 1;
        n.1 = n.1.max(n.0);
    }
    // Held answers register before the arrival is announced, so a release after `next()` reaches them.
    let answer = app
        .shared
        .scripts
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(|q| q.pop_front())
        .unwrap_or(Answer::status(200, "ok"));
    let released = app.shared.release.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    let _ = app.arrivals.send(received);
    let response = match answer {
        Answer::Reply(code, headers, body) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), body).into_response();
            for (name, value) in headers {
                r.headers_mut().insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            r
        }
        Answer::Slow(d) => {
            tokio::time::sleep(d).await;
            "late".into_response()
        }
        Answer::Hold => {
            released.await;
            "released".into_response()
        }
    };
    app.shared.in_flight.lock().unwrap().0 -= 1;
    response
}
