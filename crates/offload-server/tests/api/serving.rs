//! `offload_server::serve` over real sockets on 127.0.0.1: slow or silent clients are cut off by the
//! header, body and idle deadlines, the connection cap holds new connections back without starving
//! the open ones, and an over-long request line gets a problem+json 414.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use offload_server::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestApp;

/// Longest any test waits for the server to act on a deadline.
const PATIENCE: Duration = Duration::from_secs(10);

/// Serves a test app with `limits` on 127.0.0.1; the server runs until the test's runtime ends.
async fn serve(limits: ConnectionLimits) -> (SocketAddr, TestApp) {
    let app = TestApp::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(offload_server::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    (addr, app)
}

fn limits(header: u64, body: u64, idle: u64) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(header),
        body_read_timeout: Duration::from_millis(body),
        idle_timeout: Duration::from_millis(idle),
        max_connections: 10_000,
    }
}

/// Reads one response (head and `content-length` body) from `stream`: `None` if the connection closed first.
async fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= head_end + 4 + length {
                return Some(text);
            }
        }
        match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no answer and no close within {PATIENCE:?}"),
        }
    }
}

/// Waits until the server closes `stream` (reads until end of file or reset), returning what it sent.
async fn closed(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&bytes).into_owned(),
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("the connection was not closed within {PATIENCE:?}"),
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n";

#[tokio::test]
async fn partial_headers_are_closed_after_the_header_timeout() {
    let (addr, _app) = serve(limits(300, 20_000, 20_000)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n")
        .await
        .unwrap();
    let sent = closed(&mut stream).await;
    assert!(
        sent.is_empty(),
        "no answer to a request never finished: {sent}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "closed too early: {waited:?}"
    );
}

#[tokio::test]
async fn headers_without_the_body_are_answered_408_and_closed() {
    let (addr, app) = serve(limits(20_000, 300, 20_000)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST /v1/jobs HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"queue\":",
        )
        .await
        .unwrap();
    let sent = closed(&mut stream).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains("\"code\":\"request_timeout\""), "{sent}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(app.list_ids("").await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let (addr, _app) = serve(limits(20_000, 20_000, 400)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        stream.write_all(HEALTHZ).await.unwrap();
        let answer = read_response(&mut stream).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let idle_since = Instant::now();
    let sent = closed(&mut stream).await;
    assert!(sent.is_empty(), "{sent}");
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(350),
        "closed too early: {idle:?}"
    );
}

#[tokio::test]
async fn a_slow_but_steady_long_poll_is_not_cut_off() {
    // A handler that runs longer than every deadline (a long poll) keeps its connection.
    let (addr, _app) = serve(limits(200, 200, 200)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = r#"{"worker_id":"w","wait":"1s"}"#;
    let request = format!(
        "POST /v1/queues/empty/claim HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_response(&mut stream)
        .await
        .expect("the long poll's answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
}

#[tokio::test]
async fn at_the_cap_new_connections_wait_while_open_ones_keep_working() {
    let (addr, _app) = serve(ConnectionLimits {
        max_connections: 2,
        ..limits(20_000, 20_000, 20_000)
    })
    .await;
    let mut open = TcpStream::connect(addr).await.unwrap();
    open.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut open).await.is_some());
    let mut holder = TcpStream::connect(addr).await.unwrap();
    holder.write_all(HEALTHZ).await.unwrap();
    assert!(
        read_response(&mut holder).await.is_some(),
        "both slots taken"
    );

    // A third connection is held in the backlog: its request is not answered while both slots are taken.
    let waiting = tokio::spawn(async move {
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(HEALTHZ).await.unwrap();
        read_response(&mut third).await
    });
    for _ in 0..3 {
        open.write_all(HEALTHZ).await.unwrap();
        let answer = read_response(&mut open)
            .await
            .expect("the open connection still works");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert!(
        !waiting.is_finished(),
        "the third connection was served past the cap"
    );
    drop(holder);
    let answer = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn healthz_answers_while_hundreds_of_slow_connections_are_open() {
    let (addr, _app) = serve(ConnectionLimits::default()).await;
    let mut slow = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let partial = if i % 2 == 0 {
            &b"GET /healthz HTTP/1.1\r\nhost:"[..]
        } else {
            &b"POST /v1/jobs HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 9999\r\n\r\n{"[..]
        };
        stream.write_all(partial).await.unwrap();
        slow.push(stream);
    }
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(HEALTHZ).await.unwrap();
    let answer = read_response(&mut stream).await.expect("healthz answers");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(slow);
}

#[tokio::test]
async fn an_over_long_request_line_gets_a_problem_414() {
    let (addr, _app) = serve(ConnectionLimits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /v1/jobs?queue={} HTTP/1.1\r\nhost: t\r\n\r\n",
        "q".repeat(70_000)
    );
    // The server may close before it has read everything: a failed write is fine, the answer is what counts.
    let _ = stream.write_all(request.as_bytes()).await;
    let sent = closed(&mut stream).await;
    assert!(sent.starts_with("HTTP/1.1 414"), "{sent:.200}");
    assert!(
        sent.contains("content-type: application/problem+json"),
        "{sent:.300}"
    );
    let body = &sent[sent.find("\r\n\r\n").unwrap() + 4..];
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["code"], "uri_too_long");
    assert_eq!(problem["status"], 414);
}
