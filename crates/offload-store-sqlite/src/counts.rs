//! Jobs per (queue, state), maintained by the writer.
//!
//! Invariant: `queue_counts.n` equals the number of jobs in that queue and state, at every commit. Every write
//! that creates, moves or deletes jobs records the move here; the writer keeps an operation's moves only if
//! the operation succeeded (its other writes stay too), and adds them all to `queue_counts` with one statement
//! just before the group's COMMIT. Counting in the writer rather than with row triggers keeps the bookkeeping
//! at one statement per group instead of one or two extra writes per job moved.
//!
//! The same bookkeeping keeps `queue_throughput`: every move out of `running` is an ended attempt, added to
//! the (queue, minute) row of the group's commit time by one more statement per group.

use std::collections::HashMap;

use offload_core::{JobState, Timestamp};
use offload_store::Result;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};

use crate::batch::{self, add as bind};
use crate::codec::micros;

/// Count changes not yet written.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Per queue, the change of each state's count (in [`JobState::ALL`] order).
    states: HashMap<String, [i64; JobState::ALL.len()]>,
    /// Per queue, attempts ended: `[succeeded, failed]`.
    ended: HashMap<String, [i64; 2]>,
    /// The state changes of the operations before this one in the writer's group, not yet in `queue_counts`:
    /// read by [`Counts::pending`], never merged or flushed (the group's own counts hold them).
    prior: HashMap<String, [i64; JobState::ALL.len()]>,
}

fn slot(state: JobState) -> usize {
    JobState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

impl Counts {
    /// Empty changes for an operation that runs after the changes in `group` (see [`Counts::pending`]).
    pub(crate) fn after(group: &Counts) -> Self {
        Self {
            prior: group.states.clone(),
            ..Self::default()
        }
    }

    /// How much `queue`'s count of `state` has changed in the writer's group so far (the operations before this
    /// one, and this one's own changes), on top of what `queue_counts` says.
    pub(crate) fn pending(&self, queue: &str, state: JobState) -> i64 {
        let of = |m: &HashMap<String, [i64; JobState::ALL.len()]>| {
            m.get(queue).map_or(0, |row| row[slot(state)])
        };
        of(&self.prior) + of(&self.states)
    }

    /// `n` jobs of `queue` entered `state` (negative: left it).
    pub(crate) fn add(&mut self, queue: &str, state: JobState, n: i64) {
        match self.states.get_mut(queue) {
            Some(row) => row[slot(state)] += n,
            None => {
                let mut row = [0; JobState::ALL.len()];
                row[slot(state)] = n;
                self.states.insert(queue.to_owned(), row);
            }
        }
    }

    /// `n` jobs of `queue` moved from `from` to `to`. A move out of `running` ends an attempt: it counts as
    /// succeeded or failed in the throughput (a cancellation the worker acknowledged is neither).
    pub(crate) fn moved(&mut self, queue: &str, from: JobState, to: JobState, n: i64) {
        if from != to {
            self.add(queue, from, -n);
            self.add(queue, to, n);
        }
        if from == JobState::Running && to != JobState::Running && to != JobState::Cancelled {
            let i = usize::from(to != JobState::Succeeded);
            match self.ended.get_mut(queue) {
                Some(row) => row[i] += n,
                None => {
                    let mut row = [0; 2];
                    row[i] = n;
                    self.ended.insert(queue.to_owned(), row);
                }
            }
        }
    }

    /// Takes over another operation's changes.
    pub(crate) fn merge(&mut self, other: Counts) {
        for (queue, row) in other.states {
            let mine = self.states.entry(queue).or_insert([0; JobState::ALL.len()]);
            for (m, o) in mine.iter_mut().zip(row) {
                *m += o;
            }
        }
        for (queue, row) in other.ended {
            let mine = self.ended.entry(queue).or_insert([0; 2]);
            mine[0] += row[0];
            mine[1] += row[1];
        }
    }

    /// Adds the changes to `queue_counts`, and the ended attempts to `queue_throughput` at `now`'s minute.
    pub(crate) async fn flush(self, conn: &mut SqliteConnection, now: Timestamp) -> Result<()> {
        write_throughput(conn, now, self.ended).await?;
        let rows: Vec<(String, JobState, i64)> = self
            .states
            .into_iter()
            .flat_map(|(queue, row)| {
                JobState::ALL
                    .into_iter()
                    .zip(row)
                    .filter(|(_, n)| *n != 0)
                    .map(move |(s, n)| (queue.clone(), s, n))
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let sql = |n: usize| {
            format!(
                "INSERT INTO queue_counts (queue, state, n) VALUES {} \
                 ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
                batch::values(n, 3)
            )
        };
        let row = |args: &mut SqliteArguments, (queue, state, n): &(String, JobState, i64)| {
            bind(args, queue.as_str())?;
            bind(args, state.as_str())?;
            bind(args, *n)
        };
        batch::execute(conn, &rows, 3, &sql, &row).await?;
        Ok(())
    }
}

/// Adds ended attempts to their queues' row for the minute holding `now`.
async fn write_throughput(
    conn: &mut SqliteConnection,
    now: Timestamp,
    ended: HashMap<String, [i64; 2]>,
) -> Result<()> {
    if ended.is_empty() {
        return Ok(());
    }
    let minute = micros(now).div_euclid(MICROS_PER_MINUTE);
    let rows: Vec<(String, [i64; 2])> = ended.into_iter().collect();
    let sql = |n: usize| {
        format!(
            "INSERT INTO queue_throughput (queue, minute, succeeded, failed) VALUES {} \
             ON CONFLICT (queue, minute) DO UPDATE SET succeeded = succeeded + excluded.succeeded, \
               failed = failed + excluded.failed",
            batch::values(n, 4)
        )
    };
    let row = |args: &mut SqliteArguments, (queue, [ok, failed]): &(String, [i64; 2])| {
        bind(args, queue.as_str())?;
        bind(args, minute)?;
        bind(args, *ok)?;
        bind(args, *failed)
    };
    batch::execute(conn, &rows, 4, &sql, &row).await?;
    Ok(())
}

/// Microseconds in a minute: `queue_throughput.minute` is `micros / MICROS_PER_MINUTE`.
pub(crate) const MICROS_PER_MINUTE: i64 = 60_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_cancel_out_and_merge_adds_up() {
        let mut a = Counts::default();
        a.add("q", JobState::Available, 3);
        a.moved("q", JobState::Available, JobState::Running, 2);
        a.moved("q", JobState::Running, JobState::Running, 5);
        let mut b = Counts::default();
        b.moved("q", JobState::Running, JobState::Succeeded, 1);
        a.merge(b);
        let row = a.states["q"];
        assert_eq!(row[slot(JobState::Available)], 1);
        assert_eq!(row[slot(JobState::Running)], 1);
        assert_eq!(row[slot(JobState::Succeeded)], 1);
        assert_eq!(a.ended["q"], [1, 0], "one attempt ended, successfully");
        a.moved("q", JobState::Running, JobState::Retrying, 2);
        a.moved("q", JobState::Running, JobState::Cancelled, 1);
        assert_eq!(
            a.ended["q"],
            [1, 2],
            "failures count; acknowledged cancellations do not"
        );
    }
}
