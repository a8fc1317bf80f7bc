//! The single writer: one connection, one task, group commit.
//!
//! Every write goes through [`Writer`]: callers send a command over a channel and wait for its answer. The
//! writer task takes whatever is queued (up to [`MAX_GROUP`] commands), runs it all inside one
//! `BEGIN IMMEDIATE ... COMMIT`, and only then answers each caller, so the cost of the fsync is paid once per
//! group rather than once per command.
//!
//! Invariants:
//! - No caller hears `Ok` before the COMMIT of its group returned (with `synchronous=FULL`: is on disk).
//! - A command that fails leaves nothing behind: it either decided its failure before writing, or ran inside
//!   a savepoint that is rolled back. The other commands of the group are unaffected.
//! - If the transaction itself is lost (COMMIT fails, or SQLite rolled it back after an I/O error), every
//!   command of the group gets an error, including those that had succeeded.
//! - Inserts of one group are coalesced into a few multi-row statements; so are job completions and failures.
//! - The per-queue counts change only with the operations that succeeded, in the same transaction.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use offload_core::function::record::RecordLimits;
use offload_core::{Clock, NewJob, Timestamp};
use offload_store::{FinishItem, FinishOutcome, Inserted, Result, StoreError};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use crate::counts::Counts;
use crate::error::db;
use crate::{jobs_finish, jobs_insert};

/// Most commands committed together.
pub(crate) const MAX_GROUP: usize = 512;

/// Commands waiting for the writer before senders wait too (backpressure).
const QUEUE_CAPACITY: usize = 4 * MAX_GROUP;

/// A boxed future borrowing the write connection.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Tells a caller how its command ended, once the group's fate is known (`Some` = the group failed).
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// A command that is neither an insert nor a finish: runs alone (in a savepoint unless it is one statement).
trait Op: Send {
    /// Runs the command, recording its count changes in `counts`; reports whether it failed, and how to answer.
    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
        counts: &'c mut Counts,
        now: Timestamp,
    ) -> BoxFuture<'c, (bool, Answer)>;
    /// Answers without running (the group failed before this command's turn).
    fn abort(self: Box<Self>, e: &StoreError);
}

/// A write given to [`Writer::run`], with its caller's reply channel.
struct FnOp<T, F> {
    f: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Op for FnOp<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(
            &'c mut SqliteConnection,
            &'c mut Counts,
            Timestamp,
        ) -> BoxFuture<'c, Result<T>>
        + Send
        + 'static,
{
    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
        counts: &'c mut Counts,
        now: Timestamp,
    ) -> BoxFuture<'c, (bool, Answer)> {
        let FnOp { f, reply } = *self;
        Box::pin(async move {
            let result = f(conn, counts, now).await;
            let failed = result.is_err();
            (failed, answer(reply, result))
        })
    }

    fn abort(self: Box<Self>, e: &StoreError) {
        let _ = self.reply.send(Err(e.again()));
    }
}

fn answer<T: Send + 'static>(reply: oneshot::Sender<Result<T>>, result: Result<T>) -> Answer {
    Box::new(move |group: Option<&StoreError>| {
        let _ = reply.send(match group {
            Some(e) => Err(e.again()),
            None => result,
        });
    })
}

enum Command {
    Insert {
        jobs: Vec<NewJob>,
        reply: oneshot::Sender<Result<Vec<Inserted>>>,
    },
    Finish {
        items: Vec<FinishItem>,
        limits: RecordLimits,
        reply: oneshot::Sender<Result<Vec<FinishOutcome>>>,
    },
    Op {
        op: Box<dyn Op>,
        savepoint: bool,
    },
    Close(oneshot::Sender<()>),
}

/// The sending side of the writer; cheap to share.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Command>,
}

impl Writer {
    /// Starts the writer task on `conn`, which must be the only connection that writes.
    pub(crate) async fn start(mut conn: SqliteConnection, clock: Arc<dyn Clock>) -> Result<Self> {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        // SQLite calls this when a transaction is rolled back, explicitly or after an error; not for
        // ROLLBACK TO a savepoint. That is how the writer learns that a failed statement took the group with it.
        conn.lock_handle()
            .await
            .map_err(db)?
            .set_rollback_hook(move || flag.store(true, Ordering::SeqCst));
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(conn, rx, clock, lost));
        Ok(Self { tx })
    }

    /// Inserts jobs (coalesced with the other inserts of the group).
    pub(crate) async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Insert { jobs, reply }).await?;
        rx.await.map_err(|_| StoreError::closed())?
    }

    /// Completes or fails attempts (coalesced with the other finishes of the group); `limits` bound what the
    /// answers of call jobs record.
    pub(crate) async fn finish(
        &self,
        items: Vec<FinishItem>,
        limits: RecordLimits,
    ) -> Result<Vec<FinishOutcome>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Finish {
            items,
            limits,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StoreError::closed())?
    }

    /// Runs `f` on the write connection inside the next group. `f` runs in a savepoint unless `one_statement`
    /// says it issues a single write statement (which SQLite already makes atomic).
    pub(crate) async fn run<T, F>(&self, one_statement: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
                &'c mut Counts,
                Timestamp,
            ) -> BoxFuture<'c, Result<T>>
            + Send
            + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Op {
            op: Box::new(FnOp { f, reply }),
            savepoint: !one_statement,
        })
        .await?;
        rx.await.map_err(|_| StoreError::closed())?
    }

    /// Lets the writer finish every command already sent, then stops it and closes its connection. Commands
    /// sent afterwards fail with [`StoreError::Unavailable`].
    pub(crate) async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn send(&self, command: Command) -> Result<()> {
        self.tx
            .send(command)
            .await
            .map_err(|_| StoreError::closed())
    }
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Command>,
    clock: Arc<dyn Clock>,
    lost: Arc<AtomicBool>,
) {
    let mut closers = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut group = Vec::with_capacity(16);
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let mut commands = Vec::with_capacity(group.len());
        for c in group {
            match c {
                Command::Close(reply) => {
                    // Refuse new commands; those already queued are still received and run.
                    rx.close();
                    closers.push(reply);
                }
                c => commands.push(c),
            }
        }
        if !commands.is_empty() {
            run_group(&mut conn, &*clock, &lost, commands).await;
        }
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite write connection failed");
    }
    for reply in closers {
        let _ = reply.send(());
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(conn).await.map(drop).map_err(db)
}

fn lost_transaction() -> StoreError {
    StoreError::Unavailable("the transaction was rolled back by the database".to_owned())
}

/// One group: BEGIN IMMEDIATE, inserts, other commands in arrival order, finishes, COMMIT, answers.
async fn run_group(
    conn: &mut SqliteConnection,
    clock: &dyn Clock,
    lost: &AtomicBool,
    commands: Vec<Command>,
) {
    let mut inserts = Vec::new();
    let mut finishes = Vec::new();
    let mut ops = Vec::new();
    for c in commands {
        match c {
            Command::Insert { jobs, reply } => inserts.push((jobs, reply)),
            Command::Finish {
                items,
                limits,
                reply,
            } => finishes.push(((items, limits), reply)),
            Command::Op { op, savepoint } => ops.push((op, savepoint)),
            Command::Close(_) => {}
        }
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(inserts.len() + finishes.len() + ops.len());
    let mut counts = Counts::default();
    lost.store(false, Ordering::SeqCst);
    let mut failure = exec(conn, "BEGIN IMMEDIATE").await.err();
    // One instant for the whole group: due times, leases and creation times all agree within it.
    // Truncated to the stored precision, so what a write answers equals what a later read returns.
    let now = offload_store::codec::stored_precision(clock.now());

    failure = bulk_unless_failed(
        failure,
        conn,
        now,
        lost,
        inserts,
        &mut counts,
        &mut answers,
        insert_work,
    )
    .await;
    for (op, savepoint) in ops {
        match &failure {
            Some(e) => op.abort(e),
            None => {
                failure = run_op(conn, now, lost, op, savepoint, &mut counts, &mut answers)
                    .await
                    .err()
            }
        }
    }
    failure = bulk_unless_failed(
        failure,
        conn,
        now,
        lost,
        finishes,
        &mut counts,
        &mut answers,
        finish_work,
    )
    .await;

    if failure.is_none() {
        failure = counts.flush(conn, now).await.err();
    }
    if failure.is_none() {
        failure = exec(conn, "COMMIT").await.err();
    }
    if let Some(e) = &failure {
        tracing::error!(error = %e, commands = answers.len(), "SQLite group commit failed; rolling back");
        let _ = exec(conn, "ROLLBACK").await;
    }
    for a in answers {
        a(failure.as_ref());
    }
}

/// Ends savepoint `names` after its work: rolled back unless `ok`, then released. `Err`: the group is lost.
async fn end_savepoint(
    conn: &mut SqliteConnection,
    lost: &AtomicBool,
    names: (&'static str, &'static str, &'static str),
    ok: bool,
) -> Result<()> {
    if lost.load(Ordering::SeqCst) {
        return Err(lost_transaction());
    }
    if !ok {
        exec(conn, names.1).await?;
    }
    exec(conn, names.2).await
}

const OP_SAVEPOINT: (&str, &str, &str) = ("SAVEPOINT op", "ROLLBACK TO op", "RELEASE op");
const BULK_SAVEPOINT: (&str, &str, &str) = ("SAVEPOINT bulk", "ROLLBACK TO bulk", "RELEASE bulk");

async fn run_op(
    conn: &mut SqliteConnection,
    now: Timestamp,
    lost: &AtomicBool,
    op: Box<dyn Op>,
    savepoint: bool,
    counts: &mut Counts,
    answers: &mut Vec<Answer>,
) -> Result<()> {
    if savepoint && let Err(e) = exec(conn, OP_SAVEPOINT.0).await {
        op.abort(&e);
        return Err(e);
    }
    let mut mine = Counts::after(counts);
    let (failed, a) = op.run(conn, &mut mine, now).await;
    answers.push(a);
    if !failed {
        counts.merge(mine);
    }
    if lost.load(Ordering::SeqCst) {
        return Err(lost_transaction());
    }
    if savepoint {
        if failed {
            exec(conn, OP_SAVEPOINT.1).await?;
        }
        exec(conn, OP_SAVEPOINT.2).await?;
    }
    Ok(())
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// Runs a merged step unless an earlier step of the group already failed, in which case every command of
/// this step gets that error. Returns the group's failure afterwards.
#[allow(clippy::too_many_arguments)] // the group's state, passed through to `run_bulk` unchanged
async fn bulk_unless_failed<C, T, W>(
    failure: Option<StoreError>,
    conn: &mut SqliteConnection,
    now: Timestamp,
    lost: &AtomicBool,
    cmds: Vec<(C, Reply<T>)>,
    counts: &mut Counts,
    answers: &mut Vec<Answer>,
    work: W,
) -> Option<StoreError>
where
    T: Send + 'static,
    W: for<'a> Fn(
        &'a mut SqliteConnection,
        Timestamp,
        &'a [C],
        &'a mut Counts,
    ) -> BoxFuture<'a, Result<Vec<Result<T>>>>,
{
    if cmds.is_empty() {
        return failure;
    }
    match failure {
        Some(e) => {
            cmds.into_iter()
                .for_each(|(_, reply)| answer(reply, Err(e.again()))(None));
            Some(e)
        }
        None => run_bulk(conn, now, lost, cmds, counts, answers, work)
            .await
            .err(),
    }
}

/// Commands of one kind run together: `work` does all of them in as few statements as possible, answering each
/// command on its own. If the statements fail as a whole, each command is run alone, so that one bad command
/// cannot fail the others.
async fn run_bulk<C, T, W>(
    conn: &mut SqliteConnection,
    now: Timestamp,
    lost: &AtomicBool,
    cmds: Vec<(C, Reply<T>)>,
    counts: &mut Counts,
    answers: &mut Vec<Answer>,
    work: W,
) -> Result<()>
where
    T: Send + 'static,
    W: for<'a> Fn(
        &'a mut SqliteConnection,
        Timestamp,
        &'a [C],
        &'a mut Counts,
    ) -> BoxFuture<'a, Result<Vec<Result<T>>>>,
{
    let (cmds, replies): (Vec<C>, Vec<Reply<T>>) = cmds.into_iter().unzip();
    let mut mine = Counts::default();
    let together = bulk_once(conn, now, lost, &cmds, &mut mine, &work).await;
    let error = match together {
        Err(lost) => {
            replies
                .into_iter()
                .for_each(|r| answers.push(answer(r, Err(lost.again()))));
            return Err(lost);
        }
        Ok(Ok(results)) if results.len() == replies.len() => {
            counts.merge(mine);
            answers.extend(
                replies
                    .into_iter()
                    .zip(results)
                    .map(|(reply, result)| answer(reply, result)),
            );
            return Ok(());
        }
        Ok(Ok(_)) => {
            StoreError::Internal("a bulk write answered the wrong number of commands".to_owned())
        }
        Ok(Err(e)) => e,
    };
    tracing::warn!(error = %error, "coalesced write failed; retrying command by command");
    let mut replies = replies.into_iter();
    for one in cmds.chunks(1) {
        let Some(reply) = replies.next() else { break };
        let mut mine = Counts::default();
        match bulk_once(conn, now, lost, one, &mut mine, &work).await {
            Err(lost) => {
                answers.push(answer(reply, Err(lost.again())));
                replies.for_each(|r| answers.push(answer(r, Err(lost.again()))));
                return Err(lost);
            }
            Ok(Ok(mut results)) if results.len() == 1 => {
                counts.merge(mine);
                answers.push(answer(reply, results.remove(0)));
            }
            Ok(Ok(_)) => answers.push(answer(reply, Err(error.again()))),
            Ok(Err(e)) => answers.push(answer(reply, Err(e))),
        }
    }
    Ok(())
}

/// `work` on `cmds` inside a savepoint. `Ok(Err(e))`: it failed and left nothing. `Err(e)`: the group is lost.
async fn bulk_once<C, T, W>(
    conn: &mut SqliteConnection,
    now: Timestamp,
    lost: &AtomicBool,
    cmds: &[C],
    counts: &mut Counts,
    work: &W,
) -> Result<Result<Vec<Result<T>>>>
where
    W: for<'a> Fn(
        &'a mut SqliteConnection,
        Timestamp,
        &'a [C],
        &'a mut Counts,
    ) -> BoxFuture<'a, Result<Vec<Result<T>>>>,
{
    exec(conn, BULK_SAVEPOINT.0).await?;
    let result = work(conn, now, cmds, counts).await;
    end_savepoint(conn, lost, BULK_SAVEPOINT, result.is_ok()).await?;
    Ok(result)
}

/// The inserts of a group, for [`run_bulk`].
fn insert_work<'a>(
    conn: &'a mut SqliteConnection,
    now: Timestamp,
    cmds: &'a [Vec<NewJob>],
    counts: &'a mut Counts,
) -> BoxFuture<'a, Result<Vec<Result<Vec<Inserted>>>>> {
    Box::pin(jobs_insert::insert(conn, now, cmds, counts))
}

/// The finishes of a group, for [`run_bulk`] (each command's items are answered one by one).
fn finish_work<'a>(
    conn: &'a mut SqliteConnection,
    now: Timestamp,
    cmds: &'a [jobs_finish::FinishCommand],
    counts: &'a mut Counts,
) -> BoxFuture<'a, Result<Vec<Result<Vec<FinishOutcome>>>>> {
    Box::pin(async move {
        let results = jobs_finish::finish(conn, now, cmds, counts).await?;
        Ok(results.into_iter().map(Ok).collect())
    })
}
