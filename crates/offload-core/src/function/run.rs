//! Runs: their identity and states.
//!
//! ```text
//! queued --(call claimed)--> running --(step recorded)--> queued
//!                               |--(sleep planned)--> sleeping --(time reached)--> queued
//!                               |--(wait or invoke planned)--> waiting --(event, child end or timeout)--> queued
//!                               |--(done)--> succeeded
//!                               |--(call job dead, or uncaught step error)--> failed
//! any state but succeeded/failed --(cancel, or a cancel_on event)--> cancelled
//! failed --(retry)--> queued (finished steps keep their results)
//! ```
//!
//! Invariant: a finished run (`succeeded`, `failed`, `cancelled`) changes only by an explicit retry of a failed
//! or cancelled run; every other answer for it is ignored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A run's identity. UUIDv7, so runs sort by start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub Uuid);

impl RunId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RunId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A call is enqueued (or several, for parallel steps) and waits for a worker or a delivery.
    Queued,
    /// A call is being executed.
    Running,
    /// The next call is enqueued for a later time (`sleep`, or a step's retry backoff).
    Sleeping,
    /// The run waits for an event or for an invoked run to end (or for the timeout).
    Waiting,
    /// The code returned; the run's output is recorded.
    Succeeded,
    /// A call job died, or a step's error was not caught.
    Failed,
    /// Cancelled by a user or by a `cancel_on` event.
    Cancelled,
}

impl RunState {
    /// Every state, in lifecycle order.
    pub const ALL: [RunState; 7] = [
        RunState::Queued,
        RunState::Running,
        RunState::Sleeping,
        RunState::Waiting,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
    ];

    /// The state's name as the API and the stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Sleeping => "sleeping",
            RunState::Waiting => "waiting",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Whether the run has ended (only an explicit retry changes it then).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }

    /// Whether a user (or a `cancel_on` event) may cancel a run in this state.
    pub fn is_cancellable(self) -> bool {
        !self.is_final()
    }

    /// Whether `POST /v1/runs/{id}/retry` may resume a run in this state.
    pub fn is_retryable(self) -> bool {
        matches!(self, RunState::Failed | RunState::Cancelled)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!("unknown run state `{s}`; use queued, running, sleeping, waiting, succeeded, failed or cancelled")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(state));
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
        }
        assert!("done".parse::<RunState>().is_err());
    }

    #[test]
    fn only_failed_or_cancelled_runs_are_retried_and_only_live_runs_cancelled() {
        let retryable: Vec<_> = RunState::ALL
            .into_iter()
            .filter(|s| s.is_retryable())
            .collect();
        assert_eq!(retryable, [RunState::Failed, RunState::Cancelled]);
        let cancellable: Vec<_> = RunState::ALL
            .into_iter()
            .filter(|s| s.is_cancellable())
            .collect();
        assert_eq!(
            cancellable,
            [
                RunState::Queued,
                RunState::Running,
                RunState::Sleeping,
                RunState::Waiting
            ]
        );
    }
}
