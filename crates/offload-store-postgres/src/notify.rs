//! LISTEN/NOTIFY: telling every server sharing the database that a queue got available jobs.
//!
//! Sending ([`Notifier`]): after a write that made jobs available commits, the store hands the queue names to
//! a task that sends them with `pg_notify` on a connection of its own, coalescing whatever is pending into
//! one statement. That connection commits asynchronously (`synchronous_commit = off`): a notification is a
//! hint, so it need not wait for a disk flush, and keeping NOTIFY out of the job-writing transactions keeps
//! PostgreSQL's notification lock (held from NOTIFY's pre-commit to the end of the commit) from serialising
//! their flushes. The SQL function `enqueue` notifies inside the caller's transaction instead, so its
//! notification is delivered exactly when that transaction commits.
//!
//! Receiving ([`Listener`]): started on the first subscription, one connection runs `LISTEN` and forwards
//! each queue name as a [`Wakeup::Queue`] ([`PUSH`] as [`Wakeup::Push`]). Whenever it (re)connects it sends [`Wakeup::All`], since
//! notifications sent while it was away are lost; claimers' jittered polls cover the rest.
//!
//! Invariant: nothing here is needed for correctness; failures are logged and retried, never returned.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use offload_store::Wakeup;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

/// The payload announcing available push jobs: `*` is in no queue name, so it cannot be mistaken for one.
pub(crate) const PUSH: &str = "*push";

/// Wake-ups buffered per subscriber before it lags (a lagging subscriber wakes every queue).
const BUFFER: usize = 1024;

/// Wait before reconnecting a lost listener.
const RECONNECT: Duration = Duration::from_secs(1);

/// Sends queue names with `pg_notify`; cheap to share.
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    tx: mpsc::UnboundedSender<String>,
}

impl Notifier {
    /// Starts the sending task on its own lazily opened connection.
    pub(crate) fn start(options: PgConnectOptions, channel: String) -> (Self, AbortHandle) {
        let options = options.options([("synchronous_commit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(send_loop(pool, channel, rx));
        (Self { tx }, task.abort_handle())
    }

    /// Announces that `queues` got available jobs (after the commit that made them available).
    pub(crate) fn notify<'a>(&self, queues: impl IntoIterator<Item = &'a str>) {
        for q in queues {
            let _ = self.tx.send(q.to_owned());
        }
    }
}

async fn send_loop(pool: sqlx::PgPool, channel: String, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(first) = rx.recv().await {
        let mut queues = BTreeSet::from([first]);
        while let Ok(q) = rx.try_recv() {
            queues.insert(q);
        }
        let queues: Vec<String> = queues.into_iter().collect();
        let sent = sqlx::query("SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q")
            .bind(&channel)
            .bind(&queues)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "could not send job notifications; other servers poll instead");
        }
    }
}

/// Receives queue names from `LISTEN`, started on first use.
pub(crate) struct Listener {
    options: PgConnectOptions,
    channel: String,
    tx: broadcast::Sender<Wakeup>,
    task: Mutex<Option<AbortHandle>>,
}

impl Listener {
    /// A listener for `channel`; connects on the first [`Listener::subscribe`].
    pub(crate) fn new(options: PgConnectOptions, channel: String) -> Self {
        Self {
            options,
            channel,
            tx: broadcast::channel(BUFFER).0,
            task: Mutex::new(None),
        }
    }

    /// A new receiver of wake-ups; starts listening if nobody did yet.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        let rx = self.tx.subscribe();
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.is_none() {
            let run = listen_loop(self.options.clone(), self.channel.clone(), self.tx.clone());
            *task = Some(tokio::spawn(run).abort_handle());
        }
        rx
    }

    /// Stops listening.
    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn listen_loop(options: PgConnectOptions, channel: String, tx: broadcast::Sender<Wakeup>) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    loop {
        let e = listen(&pool, &channel, &tx).await;
        tracing::warn!(error = %e, "job notifications interrupted; reconnecting");
        let _ = tx.send(Wakeup::All);
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Listens until the connection fails in a way the listener does not recover from by itself.
async fn listen(pool: &sqlx::PgPool, channel: &str, tx: &broadcast::Sender<Wakeup>) -> sqlx::Error {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => return e,
    };
    if let Err(e) = listener.listen(channel).await {
        return e;
    }
    // Listening from here on; anything before may have been missed.
    let _ = tx.send(Wakeup::All);
    loop {
        let wakeup = match listener.try_recv().await {
            Ok(Some(n)) if n.payload() == PUSH => Wakeup::Push,
            Ok(Some(n)) => Wakeup::Queue(n.payload().to_owned()),
            // The connection was lost and re-established (LISTEN again): notifications in between are lost.
            Ok(None) => Wakeup::All,
            Err(e) => return e,
        };
        // No subscriber at the moment is fine: engines subscribe and go (tests), the listener stays.
        let _ = tx.send(wakeup);
    }
}
