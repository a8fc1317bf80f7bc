//! What inserting a command decides: for each new job, insert it, answer the job already holding its
//! idempotency key (a duplicate), or refuse the command (a conflict). The same for every store, so that the
//! stores only differ in how they read the keys' holders and write the accepted rows.
//!
//! Invariant: pure. A command is decided whole or not at all: its jobs are decided in order against the
//! stored holders and the jobs accepted earlier in the group (and earlier in the same command); the same key
//! with the same request fingerprint answers the holder, with another fingerprint fails the command, and a
//! failed command leaves the group's holders as they were. An accepted job's first state follows
//! [`offload_core::state::due_state`].

use std::collections::HashMap;

use offload_core::state::{add, due_state};
use offload_core::{JobId, JobState, NewJob, RunAt, Timestamp};

use crate::{Inserted, Result, StoreError};

/// What a store read about the job holding an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The job.
    pub id: JobId,
    /// The fingerprint of the request that created it.
    pub fingerprint: Option<String>,
    /// Its current state.
    pub state: JobState,
    /// When it is (or was) due.
    pub run_at: Timestamp,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Holder {
    /// The answer to a request that repeats the one that created this job.
    pub fn replay(&self) -> Inserted {
        Inserted {
            id: self.id,
            state: self.state,
            run_at: self.run_at,
            created_at: self.created_at,
            duplicate: true,
            debounced: false,
        }
    }
}

/// What to do with one new job, given the holder of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No job holds the key (or the job has none): insert it.
    Insert,
    /// The same request again: answer the holder.
    Duplicate(Inserted),
    /// Another request holds the key: the command fails.
    Conflict {
        /// The job holding the key.
        existing: JobId,
    },
}

/// The decision for one job: `holder` is the job holding its key (stored or accepted earlier), `fingerprint`
/// the new request's.
pub fn decide(holder: Option<&Holder>, fingerprint: Option<&str>) -> Decision {
    match holder {
        None => Decision::Insert,
        Some(h) if h.fingerprint.as_deref() == fingerprint => Decision::Duplicate(h.replay()),
        Some(h) => Decision::Conflict { existing: h.id },
    }
}

/// When a new job first becomes due: relative delays count from `now`; instants in the past mean now.
/// `stored` rounds a computed instant to what the store keeps.
pub fn resolve(run_at: RunAt, now: Timestamp, stored: fn(Timestamp) -> Timestamp) -> Timestamp {
    match run_at {
        RunAt::Now => now,
        RunAt::At(t) => stored(t.max(now)),
        RunAt::After(d) => stored(add(now, d)),
    }
}

/// A job of a command accepted for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Its position in the command.
    pub index: usize,
    /// Its first state.
    pub state: JobState,
    /// When it first becomes due.
    pub run_at: Timestamp,
}

/// One command's decision: the answer for each job, and the jobs to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One answer per job, in order.
    pub answers: Vec<Inserted>,
    /// The jobs to insert, in order.
    pub accepted: Vec<Accepted>,
}

/// The holders of a group's idempotency keys: those the store read, then those the group accepted.
#[derive(Debug, Clone, Default)]
pub struct Holders {
    by_key: HashMap<String, Holder>,
}

impl Holders {
    /// The holders the store read, by key.
    pub fn new(stored: impl IntoIterator<Item = (String, Holder)>) -> Self {
        Self {
            by_key: stored.into_iter().collect(),
        }
    }

    /// Decides one command at `now`. On success its new keys hold for the rest of the group; on a conflict
    /// nothing of the command is kept.
    pub fn command<'a>(
        &mut self,
        jobs: impl IntoIterator<Item = &'a NewJob>,
        now: Timestamp,
        stored: fn(Timestamp) -> Timestamp,
    ) -> Result<Plan> {
        let mut taken: HashMap<&str, Holder> = HashMap::new();
        let mut plan = Plan {
            answers: Vec::new(),
            accepted: Vec::new(),
        };
        for (index, job) in jobs.into_iter().enumerate() {
            let key = job.idempotency_key.as_deref();
            let holder = key.and_then(|k| taken.get(k).or_else(|| self.by_key.get(k)));
            match decide(holder, job.request_fingerprint.as_deref()) {
                Decision::Duplicate(answer) => {
                    plan.answers.push(answer);
                    continue;
                }
                Decision::Conflict { existing } => {
                    return Err(StoreError::IdempotencyConflict {
                        key: key.unwrap_or_default().to_owned(),
                        existing,
                    });
                }
                Decision::Insert => {}
            }
            let run_at = resolve(job.run_at, now, stored);
            let state = due_state(run_at, now, JobState::Scheduled);
            if let Some(key) = key {
                let holder = Holder {
                    id: job.id,
                    fingerprint: job.request_fingerprint.clone(),
                    state,
                    run_at,
                    created_at: now,
                };
                taken.insert(key, holder);
            }
            plan.accepted.push(Accepted {
                index,
                state,
                run_at,
            });
            plan.answers.push(Inserted {
                id: job.id,
                state,
                run_at,
                created_at: now,
                duplicate: false,
                debounced: false,
            });
        }
        self.by_key
            .extend(taken.into_iter().map(|(k, h)| (k.to_owned(), h)));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use offload_core::spec::{EnqueueRequest, Limits};

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A validated job carrying `key`, from a request whose fingerprint is `fingerprint`.
    fn keyed(key: &str, fingerprint: &str) -> NewJob {
        let job = serde_json::from_str::<EnqueueRequest>(r#"{"queue":"q","payload":1}"#)
            .unwrap()
            .validate(&Limits::default(), None, at(NOW))
            .unwrap();
        NewJob {
            idempotency_key: Some(key.to_owned()),
            request_fingerprint: Some(fingerprint.to_owned()),
            ..job
        }
    }

    fn holder(fingerprint: &str) -> Holder {
        Holder {
            id: JobId::new(),
            fingerprint: Some(fingerprint.to_owned()),
            state: JobState::Running,
            run_at: at("2026-01-01T00:00:00Z"),
            created_at: at("2026-01-01T00:00:00Z"),
        }
    }

    fn same(t: Timestamp) -> Timestamp {
        t
    }

    const NOW: &str = "2026-01-02T00:00:00Z";

    #[test]
    fn no_holder_inserts_same_request_replays_other_request_conflicts() {
        let h = holder("fp");
        assert_eq!(decide(None, Some("fp")), Decision::Insert);
        assert_eq!(
            decide(Some(&h), Some("fp")),
            Decision::Duplicate(h.replay())
        );
        assert_eq!(
            decide(Some(&h), Some("other")),
            Decision::Conflict { existing: h.id }
        );
        assert_eq!(
            decide(Some(&h), None),
            Decision::Conflict { existing: h.id }
        );
    }

    #[test]
    fn a_replay_answers_the_holders_current_state() {
        let h = holder("fp");
        let mut holders = Holders::new([("k".to_owned(), h.clone())]);
        let plan = holders.command(&[keyed("k", "fp")], at(NOW), same).unwrap();
        assert_eq!(plan.answers, vec![h.replay()]);
        assert_eq!(plan.answers[0].state, JobState::Running);
        assert!(plan.accepted.is_empty());
    }

    #[test]
    fn the_same_key_twice_in_one_command_inserts_once() {
        let jobs = [keyed("k", "fp"), keyed("k", "fp")];
        let plan = Holders::default().command(&jobs, at(NOW), same).unwrap();
        assert_eq!(plan.accepted.len(), 1);
        assert_eq!(plan.accepted[0].index, 0);
        assert_eq!(
            (plan.answers[1].id, plan.answers[1].duplicate),
            (jobs[0].id, true)
        );
    }

    #[test]
    fn a_conflicting_command_fails_alone_and_keeps_nothing() {
        let mut holders = Holders::default();
        let bad = [keyed("a", "fp"), keyed("a", "other")];
        let err = holders.command(&bad, at(NOW), same).unwrap_err();
        assert!(
            matches!(err, StoreError::IdempotencyConflict { ref key, existing } if key == "a" && existing == bad[0].id),
            "{err:?}"
        );
        // The failed command's key does not hold for the next command of the group.
        let next = [keyed("a", "other")];
        let plan = holders.command(&next, at(NOW), same).unwrap();
        assert_eq!(plan.accepted.len(), 1);
        // An accepted command's key does.
        let again = holders
            .command(&[keyed("a", "other")], at(NOW), same)
            .unwrap();
        assert_eq!(
            (again.answers[0].id, again.answers[0].duplicate),
            (next[0].id, true)
        );
        let err = holders
            .command(&[keyed("a", "fp")], at(NOW), same)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::IdempotencyConflict { existing, .. } if existing == next[0].id)
        );
    }

    #[test]
    fn first_state_and_due_time_follow_run_at() {
        let now = at(NOW);
        let mut later = keyed("later", "fp");
        later.run_at = RunAt::After(Duration::from_secs(60));
        let mut past = keyed("past", "fp");
        past.run_at = RunAt::At(at("2020-01-01T00:00:00Z"));
        let plan = Holders::default()
            .command(&[later, past], now, same)
            .unwrap();
        assert_eq!(
            (plan.accepted[0].state, plan.accepted[0].run_at),
            (JobState::Scheduled, at("2026-01-02T00:01:00Z"))
        );
        assert_eq!(
            (plan.accepted[1].state, plan.accepted[1].run_at),
            (JobState::Available, now)
        );
    }

    #[test]
    fn computed_due_times_are_rounded_as_stored() {
        fn whole_seconds(t: Timestamp) -> Timestamp {
            Timestamp::from_second(t.as_second()).unwrap()
        }
        let due = at("2026-01-03T00:00:00.5Z");
        assert_eq!(
            resolve(RunAt::At(due), at(NOW), whole_seconds),
            at("2026-01-03T00:00:00Z")
        );
        assert_eq!(resolve(RunAt::Now, at(NOW), whole_seconds), at(NOW));
    }
}
