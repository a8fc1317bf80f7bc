//! Jobs per (queue, state), maintained by the writer.
//!
//! Invariant: `queue_counts.n` equals the number of jobs in that queue and state, at every commit. Every write
//! that creates, moves or deletes jobs records the move here; the writer keeps an operation's moves only if
//! the operation succeeded (its other writes stay too), and adds them all to `queue_counts` with one statement
//! just before the group's COMMIT. Counting in the writer rather than with row triggers keeps the bookkeeping
//! at one statement per group instead of one or two extra writes per job moved.

use std::collections::HashMap;

use offload_core::JobState;
use offload_store::Result;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};

use crate::batch::{self, add as bind};

/// Count changes not yet written.
#[derive(Debug, Default)]
pub(crate) struct Counts(HashMap<String, [i64; JobState::ALL.len()]>);

fn slot(state: JobState) -> usize {
    JobState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

impl Counts {
    /// `n` jobs of `queue` entered `state` (negative: left it).
    pub(crate) fn add(&mut self, queue: &str, state: JobState, n: i64) {
        match self.0.get_mut(queue) {
            Some(row) => row[slot(state)] += n,
            None => {
                let mut row = [0; JobState::ALL.len()];
                row[slot(state)] = n;
                self.0.insert(queue.to_owned(), row);
            }
        }
    }

    /// `n` jobs of `queue` moved from `from` to `to`.
    pub(crate) fn moved(&mut self, queue: &str, from: JobState, to: JobState, n: i64) {
        if from != to {
            self.add(queue, from, -n);
            self.add(queue, to, n);
        }
    }

    /// Takes over another operation's changes.
    pub(crate) fn merge(&mut self, other: Counts) {
        for (queue, row) in other.0 {
            let mine = self.0.entry(queue).or_insert([0; JobState::ALL.len()]);
            for (m, o) in mine.iter_mut().zip(row) {
                *m += o;
            }
        }
    }

    /// Adds the changes to `queue_counts`.
    pub(crate) async fn flush(self, conn: &mut SqliteConnection) -> Result<()> {
        let rows: Vec<(String, JobState, i64)> = self
            .0
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
        let row = a.0["q"];
        assert_eq!(row[slot(JobState::Available)], 1);
        assert_eq!(row[slot(JobState::Running)], 1);
        assert_eq!(row[slot(JobState::Succeeded)], 1);
    }
}
