//! Admission: which of a queue's waiting jobs a claim may start under the queue's limits.
//!
//! A store reads a bounded list of candidates (in claim order: priority, then due time, then id), the queue's
//! usage counters (running jobs, running jobs per candidate group, throttle TATs), and asks [`admit`] which to
//! start. It then writes the claims and the updated counters in the same transaction, so limits hold across every
//! worker and server. Every way a running job ends gives its slot back through [`Usage::release`] in the
//! transaction that ends it.
//!
//! - `concurrency`: at most N running jobs of the queue; when full, nothing more starts.
//! - `group_concurrency`: at most N running jobs per group; jobs without a group are not limited by it.
//! - `throttle`: GCRA starts per period, for the queue or per group (jobs without a group share one bucket);
//!   held jobs keep their place and start as soon as the bucket allows.
//! - `fair`: groups take turns — the first candidate of each group, then the second of each, and so on, with
//!   groups in the order the store lists them (least recently served first) — so a group with a large backlog
//!   delays a small one by at most a round.
//!
//! Invariant: [`admit`] never admits a job that would exceed a limit given the usage it was handed, and never
//! admits more than asked; it is pure, so two servers handed the same facts decide the same.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::gcra::Gcra;
use super::limits::QueueLimits;

/// One waiting job, as admission sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The job's group, if any.
    pub group: Option<&'a str>,
}

/// A queue's usage counters, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Running jobs of the queue.
    pub running: u32,
    /// Running jobs per group (at least the candidates' groups; absent means 0).
    pub group_running: BTreeMap<String, u32>,
    /// The queue throttle's TAT.
    pub queue_tat: Option<Timestamp>,
    /// Per-group throttle TATs (absent means never used). Jobs without a group use the key `""`.
    pub group_tats: BTreeMap<String, Timestamp>,
}

impl Usage {
    /// Gives back the slot of a running job of `group` that ended (completed, failed, snoozed, cancelled,
    /// rescued after its lease, deleted or pruned). Saturates at zero: a counter never goes negative.
    pub fn release(&mut self, group: Option<&str>) {
        self.running = self.running.saturating_sub(1);
        if let Some(g) = group
            && let Some(n) = self.group_running.get_mut(g)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.group_running.remove(g);
            }
        }
    }
}

/// Why a job that is due did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WaitingFor {
    /// The queue runs as many jobs as its `concurrency` allows.
    Concurrency,
    /// The job's group runs as many jobs as `group_concurrency` allows.
    GroupConcurrency,
    /// The throttle allows the next start at `until`.
    Throttle {
        /// When the throttle allows the next start.
        until: Timestamp,
    },
}

/// What a claim may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Indices (into the candidates) of the jobs to start, in the order to hand them out.
    pub admitted: Vec<usize>,
    /// Candidates held back, with the reason (not listed: candidates not examined because enough were admitted).
    pub held: Vec<(usize, WaitingFor)>,
    /// The usage after the admitted jobs started: write it with the claims.
    pub usage: Usage,
    /// The earliest instant a throttle lets a held job start, for the claimer's next wake-up.
    pub wake_at: Option<Timestamp>,
}

/// Decides which candidates start, at most `want`.
pub fn admit(
    limits: &QueueLimits,
    mut usage: Usage,
    candidates: &[Candidate<'_>],
    want: usize,
    now: Timestamp,
) -> Admission {
    let order = if limits.fair {
        fair_order(candidates)
    } else {
        (0..candidates.len()).collect()
    };
    let throttle = limits
        .throttle
        .map(|t| (Gcra::new(t.limit, t.period.0, t.burst), t.per_group));
    let mut admitted = Vec::new();
    let mut held = Vec::new();
    let mut wake_at: Option<Timestamp> = None;
    for (pos, &i) in order.iter().enumerate() {
        if admitted.len() >= want {
            break;
        }
        let group = candidates[i].group;
        if limits.concurrency.is_some_and(|c| usage.running >= c) {
            held.extend(order[pos..].iter().map(|&j| (j, WaitingFor::Concurrency)));
            break;
        }
        if let (Some(limit), Some(g)) = (limits.group_concurrency, group)
            && usage.group_running.get(g).copied().unwrap_or(0) >= limit
        {
            held.push((i, WaitingFor::GroupConcurrency));
            continue;
        }
        if let Some((gcra, per_group)) = &throttle {
            let tat = if *per_group {
                usage.group_tats.get(group.unwrap_or("")).copied()
            } else {
                usage.queue_tat
            };
            match gcra.check(tat, now) {
                Ok(next) => {
                    if *per_group {
                        usage
                            .group_tats
                            .insert(group.unwrap_or("").to_owned(), next);
                    } else {
                        usage.queue_tat = Some(next);
                    }
                }
                Err(until) => {
                    wake_at = Some(wake_at.map_or(until, |w| w.min(until)));
                    if *per_group {
                        held.push((i, WaitingFor::Throttle { until }));
                        continue;
                    }
                    held.extend(
                        order[pos..]
                            .iter()
                            .map(|&j| (j, WaitingFor::Throttle { until })),
                    );
                    break;
                }
            }
        }
        usage.running += 1;
        if let Some(g) = group {
            *usage.group_running.entry(g.to_owned()).or_insert(0) += 1;
        }
        admitted.push(i);
    }
    Admission {
        admitted,
        held,
        usage,
        wake_at,
    }
}

/// Round robin across groups: the first candidate of each group (groups in order of first appearance), then the
/// second of each, and so on. Jobs without a group form one group of their own.
fn fair_order(candidates: &[Candidate<'_>]) -> Vec<usize> {
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| *g == c.group) {
            Some((_, members)) => members.push(i),
            None => groups.push((c.group, vec![i])),
        }
    }
    let rounds = groups.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|round| {
            groups
                .iter()
                .filter_map(move |(_, m)| m.get(round).copied())
        })
        .collect()
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
