//! Serving the router over TCP, with limits that keep slow or idle clients from holding the server.
//!
//! Invariant: every open connection is either running a request (no deadline: long polls and slow handlers
//! are the server's own business) or waiting on its client, and then it has a deadline: the rest of the
//! request head ([`ConnectionLimits::header_read_timeout`], from its first byte), the promised body
//! ([`ConnectionLimits::body_read_timeout`], from the end of the head) or the next request
//! ([`ConnectionLimits::idle_timeout`], from the last answer). A missed deadline closes the connection (a body
//! that stops arriving fails the request, which is answered 408 first). At most
//! [`ConnectionLimits::max_connections`] connections are open; further ones wait in the listen backlog until
//! one closes. Each connection's phase is kept by one [`Watch`] shared by its socket and its requests.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::Request;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::error::AppError;

/// Longest request line (method, URI, version) read; a longer one is answered 414 problem+json and the
/// connection closed. Just above the longest URI hyper parses (65,534 bytes), whose own 414 has no body.
pub(crate) const MAX_REQUEST_LINE: usize = 64 * 1024;

/// How long a connection may wait on its client, and how many may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request to the end of its head (default 10 s).
    pub header_read_timeout: Duration,
    /// From the end of a request's head to the end of its body (default 30 s).
    pub body_read_timeout: Duration,
    /// From an answer (or the connection's opening) to the first byte of the next request (default 60 s).
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait in the listen backlog (default 10,000).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes; then stops accepting, lets
/// requests in flight finish, closes idle connections and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let (stream, slot) = match accepted {
            Ok(accepted) => accepted,
            // Per-connection failures (reset before accept, out of file descriptors) must not stop the server.
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(Watch::new());
        let io = TokioIo::new(Watched::new(stream, watch.clone(), limits));
        let service = hyper::service::service_fn({
            let router = router.clone();
            move |request: Request<Incoming>| respond(router.clone(), watch.clone(), request)
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            // The deadlines are `Watched`'s: hyper's own header timer also runs while idle.
            .header_read_timeout(None)
            .keep_alive(true)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Waits for a free slot, then for a connection.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> io::Result<(TcpStream, tokio::sync::OwnedSemaphorePermit)> {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| io::Error::other("connection slots closed"))?;
    let (stream, _) = listener.accept().await?;
    Ok((stream, slot))
}

/// Runs one request through the router, keeping the connection's phase.
async fn respond(
    router: Router,
    watch: Arc<Watch>,
    request: Request<Incoming>,
) -> Result<axum::response::Response, std::convert::Infallible> {
    watch.set(if request.body().is_end_stream() {
        Phase::Handling
    } else {
        Phase::Body(Instant::now())
    });
    let request = request.map(|body| {
        Body::new(WatchedBody {
            inner: body,
            watch: watch.clone(),
        })
    });
    let response = router.oneshot(request).await;
    watch.set(Phase::Idle(Instant::now()));
    response
}

/// What a connection is waiting for, and since when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for the first byte of a request.
    Idle(Instant),
    /// Reading a request head whose first byte came at this instant.
    Head(Instant),
    /// Reading a body whose head ended at this instant.
    Body(Instant),
    /// A handler runs: no deadline.
    Handling,
}

/// One connection's phase, shared by its socket and its requests, with the waker of the last read that
/// found nothing: a new phase brings a new deadline, which that read must see.
#[derive(Debug)]
struct Watch(Mutex<(Phase, Option<Waker>)>);

impl Watch {
    fn new() -> Self {
        Self(Mutex::new((Phase::Idle(Instant::now()), None)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Phase, Option<Waker>)> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves to `phase` and wakes the pending read, so it re-arms its timer.
    fn set(&self, phase: Phase) {
        let waker = {
            let mut state = self.lock();
            state.0 = phase;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Bytes arrived: an idle connection starts reading a head. True when this starts a new request.
    fn bytes_arrived(&self) -> bool {
        let mut state = self.lock();
        let starts = matches!(state.0, Phase::Idle(_));
        if starts {
            state.0 = Phase::Head(Instant::now());
        }
        starts
    }

    /// The instant by which the client must have sent what the connection waits for; remembers `waker` to
    /// wake when that changes.
    fn deadline(&self, limits: &ConnectionLimits, waker: &Waker) -> Option<Instant> {
        let mut state = self.lock();
        state.1 = Some(waker.clone());
        match state.0 {
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Body(since) => Some(since + limits.body_read_timeout),
            Phase::Handling => None,
        }
    }
}

/// A socket whose reads fail with `TimedOut` once its connection's deadline has passed, and which answers
/// 414 itself when a request line is longer than [`MAX_REQUEST_LINE`].
struct Watched {
    io: TcpStream,
    watch: Arc<Watch>,
    limits: ConnectionLimits,
    timer: Pin<Box<Sleep>>,
    /// Bytes of the current request line read so far; `None` once its end was seen.
    request_line: Option<usize>,
}

impl Watched {
    fn new(io: TcpStream, watch: Arc<Watch>, limits: ConnectionLimits) -> Self {
        Self {
            io,
            watch,
            limits,
            timer: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            request_line: None,
        }
    }

    /// Counts newly read bytes towards the request line; false when it is too long.
    fn request_line_fits(&mut self, read: &[u8]) -> bool {
        if self.watch.bytes_arrived() {
            self.request_line = Some(0);
        }
        let Some(so_far) = self.request_line else {
            return true;
        };
        match read.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.request_line = None;
                so_far + end <= MAX_REQUEST_LINE
            }
            None => {
                self.request_line = Some(so_far + read.len());
                so_far + read.len() <= MAX_REQUEST_LINE
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        if let Poll::Ready(read) = Pin::new(&mut this.io).poll_read(cx, buf) {
            let fresh = &buf.filled()[before..];
            if !fresh.is_empty() && !this.request_line_fits(fresh) {
                // A best-effort answer: a small write into an empty socket buffer does not block.
                let _ = this.io.try_write(&AppError::UriTooLong.http1_bytes());
                // Read what the client already sent, so that closing sends FIN, not a reset that could
                // discard the answer before the client reads it.
                let mut scratch = [0u8; 16 * 1024];
                for _ in 0..64 {
                    if !matches!(this.io.try_read(&mut scratch), Ok(n) if n > 0) {
                        break;
                    }
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "request line too long",
                )));
            }
            return Poll::Ready(read);
        }
        let Some(deadline) = this.watch.deadline(&this.limits, cx.waker()) else {
            return Poll::Pending;
        };
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        ready!(this.timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client sent nothing in time",
        )))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body that moves its connection to [`Phase::Handling`] once it has been read to the end.
struct WatchedBody {
    inner: Incoming,
    watch: Arc<Watch>,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() || self.inner.is_end_stream() {
            self.watch.set(Phase::Handling);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
