//! The per-destination cap of push claims: which waiting push jobs a claim may start, given how many jobs of
//! each destination run now.
//!
//! A store counts the running push jobs of each destination it considers (the truth: the `jobs` rows, counted in
//! the claim's transaction, under a lock that serialises push claims across servers), lists candidates in claim
//! order, and asks [`pick`] which to start. Every way a running push job ends (complete, fail, cancel, rescue of
//! an expired lease, delete) takes its row out of `running`, so it frees its slot in the same transaction.
//!
//! Invariant: [`pick`] never takes more jobs of one destination than the cap minus its running jobs, nor more
//! than asked; it is pure, so two servers handed the same facts decide the same.

use std::collections::HashMap;

/// How many more jobs of a destination may start: the cap minus the jobs of it already running (zero when it
/// runs as many or more, e.g. after another server's larger cap).
pub fn budget(cap: u32, running: u32) -> u32 {
    cap.saturating_sub(running)
}

/// Picks, from `candidates` (each a destination, in claim order), the indices to start, in that order: at most
/// `max_jobs` in all and at most [`budget`] per destination, given `running` (absent: none run).
pub fn pick(
    cap: u32,
    running: &HashMap<String, u32>,
    candidates: &[&str],
    max_jobs: u32,
) -> Vec<usize> {
    let mut taken: HashMap<&str, u32> = HashMap::new();
    let mut out = Vec::new();
    for (i, destination) in candidates.iter().enumerate() {
        if out.len() >= max_jobs as usize {
            break;
        }
        let n = taken.entry(destination).or_default();
        let now = running.get(*destination).copied().unwrap_or(0);
        if *n >= budget(cap, now) {
            continue;
        }
        *n += 1;
        out.push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(pairs: &[(&str, u32)]) -> HashMap<String, u32> {
        pairs.iter().map(|(d, n)| ((*d).to_owned(), *n)).collect()
    }

    #[test]
    fn the_budget_is_the_cap_minus_what_runs_never_below_zero() {
        assert_eq!(budget(4, 0), 4);
        assert_eq!(budget(4, 3), 1);
        assert_eq!(budget(4, 4), 0);
        assert_eq!(budget(2, 5), 0, "another server's larger cap filled it");
    }

    #[test]
    fn a_destination_gets_only_its_free_slots_counting_every_server() {
        let candidates = ["a", "a", "b", "a", "b", "c"];
        let picked = pick(2, &running(&[("a", 1), ("c", 2)]), &candidates, 10);
        assert_eq!(picked, vec![0, 2, 4], "a has one slot, b two, c none");
    }

    #[test]
    fn at_most_max_jobs_in_claim_order() {
        let candidates = ["a", "b", "a", "b"];
        assert_eq!(pick(5, &HashMap::new(), &candidates, 3), vec![0, 1, 2]);
        assert!(pick(5, &HashMap::new(), &candidates, 0).is_empty());
        assert!(pick(0, &HashMap::new(), &candidates, 4).is_empty());
    }

    #[test]
    fn a_full_destination_does_not_hold_back_others() {
        let candidates = ["a", "a", "a", "b"];
        assert_eq!(pick(1, &running(&[("a", 1)]), &candidates, 1), vec![3]);
    }
}
