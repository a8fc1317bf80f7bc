//! Group commit: concurrent commands of one kind share a transaction.
//!
//! Every commit waits for PostgreSQL to flush its write-ahead log, so committing each enqueue (or each
//! completion) alone would cost one flush per request. A [`Batcher`] queues commands; a driver task takes
//! whatever is queued (up to a size bound) as one group and hands it to the group's work function, which runs
//! the whole group in as few statements as it can and answers every command on its own. At most `parallel`
//! groups run at once: while they commit, new commands queue up and form the next, larger group, so group
//! size grows with load and a lone command waits for nobody.
//!
//! Invariant: a caller hears `Ok` only after the commit that holds its command returned.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use offload_store::Result;
use offload_store::StoreError;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs one group; answers one result per command, in order.
pub(crate) type Work<C, T> = Arc<dyn Fn(Vec<C>) -> BoxFuture<Vec<Result<T>>> + Send + Sync>;

/// Bounds on one group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most commands in one group.
    pub(crate) max_commands: usize,
    /// Most total weight (e.g. jobs) in one group; a single heavier command still runs, alone.
    pub(crate) max_weight: usize,
    /// Groups running at once.
    pub(crate) parallel: usize,
}

enum Msg<C, T> {
    Run(C, oneshot::Sender<Result<T>>),
    Close(oneshot::Sender<()>),
}

/// The sending side; cheap to share.
pub(crate) struct Batcher<C, T> {
    tx: mpsc::Sender<Msg<C, T>>,
}

impl<C: Send + 'static, T: Send + 'static> Batcher<C, T> {
    /// Starts the driver task.
    pub(crate) fn start(limits: Limits, weight: fn(&C) -> usize, work: Work<C, T>) -> Self {
        let (tx, rx) = mpsc::channel(limits.max_commands * 4);
        tokio::spawn(drive(rx, limits, weight, work));
        Self { tx }
    }

    /// Runs `command` in the next group and returns its answer.
    pub(crate) async fn run(&self, command: C) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Run(command, reply))
            .await
            .map_err(|_| StoreError::closed())?;
        answer.await.map_err(|_| StoreError::closed())?
    }

    /// Lets every command already sent finish, then stops; later commands fail with `Unavailable`.
    pub(crate) async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Msg::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

type Pending<C, T> = (C, oneshot::Sender<Result<T>>);

async fn drive<C: Send + 'static, T: Send + 'static>(
    mut rx: mpsc::Receiver<Msg<C, T>>,
    limits: Limits,
    weight: fn(&C) -> usize,
    work: Work<C, T>,
) {
    let permits = Arc::new(Semaphore::new(limits.parallel.max(1)));
    let mut closers = Vec::new();
    let mut carried: Option<Pending<C, T>> = None;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(Msg::Run(c, reply)) => (c, reply),
                Some(Msg::Close(reply)) => {
                    // Refuse new commands; those already queued are still received and run.
                    rx.close();
                    closers.push(reply);
                    continue;
                }
                None => break,
            },
        };
        let mut total = weight(&first.0);
        let mut group = vec![first];
        while group.len() < limits.max_commands && total < limits.max_weight {
            match rx.try_recv() {
                Ok(Msg::Run(c, reply)) => {
                    let w = weight(&c);
                    if total + w > limits.max_weight {
                        carried = Some((c, reply));
                        break;
                    }
                    total += w;
                    group.push((c, reply));
                }
                Ok(Msg::Close(reply)) => {
                    rx.close();
                    closers.push(reply);
                }
                Err(_) => break,
            }
        }
        let work = work.clone();
        tokio::spawn(async move {
            let (commands, replies): (Vec<C>, Vec<_>) = group.into_iter().unzip();
            let answers = work(commands).await;
            let mut answers = answers.into_iter();
            for reply in replies {
                let answer = answers.next().unwrap_or_else(|| {
                    Err(offload_store::StoreError::Internal(
                        "a group answered too few commands".to_owned(),
                    ))
                });
                let _ = reply.send(answer);
            }
            drop(permit);
        });
    }
    // Every group already started finishes before the closers hear back.
    let _ = permits.acquire_many(limits.parallel.max(1) as u32).await;
    for reply in closers {
        let _ = reply.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn groups_answer_each_command_and_close_waits() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let work: Work<u32, u32> = Arc::new(move |cmds: Vec<u32>| {
            let seen = seen.clone();
            Box::pin(async move {
                seen.lock().unwrap().push(cmds.len());
                tokio::task::yield_now().await;
                cmds.into_iter().map(|c| Ok(c * 2)).collect()
            })
        });
        let limits = Limits {
            max_commands: 8,
            max_weight: 100,
            parallel: 1,
        };
        let b = Arc::new(Batcher::start(limits, |c: &u32| *c as usize, work));
        let mut tasks = Vec::new();
        for i in 1..=40u32 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move { (i, b.run(i).await.unwrap()) }));
        }
        for t in tasks {
            let (i, doubled) = t.await.unwrap();
            assert_eq!(doubled, i * 2);
        }
        assert!(sizes.lock().unwrap().iter().all(|n| *n <= 8));
        b.close().await;
        assert!(b.run(1).await.is_err(), "closed batchers refuse work");
    }
}
