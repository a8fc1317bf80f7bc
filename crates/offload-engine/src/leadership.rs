//! Singleton work under a named leader lease in the store.
//!
//! Invariant: `lead` only runs while this node holds the lease. Every election is timed from the moment its
//! request was sent, which is no later than the instant the store started the lease: the node works until a
//! third of the lease has passed, then renews; if the renewal fails or does not answer within that third, it
//! stops at once, and work stuck on the store is abandoned before the lease would end. So a node that cannot
//! renew has stepped down well before another node may take the lease. A node that is not leader tries again
//! just after the holder's lease ends (at most a third of a lease later), so a dead leader is replaced within
//! one lease period. The work must be idempotent anyway: leases bound overlap, they do not exclude it.

use std::future::Future;
use std::time::Duration;

use offload_store::{DynStore, LeaderElectParams, LeaderResignParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::signal::Flag;

/// One named lease and what it takes to hold it: the store, this node's id, the lease length, when to stop,
/// and the flag that tells whether this node holds it now.
pub(crate) struct LeaderLease {
    pub(crate) store: DynStore,
    /// The lease's name (and the work's, in logs).
    pub(crate) name: &'static str,
    pub(crate) node_id: String,
    pub(crate) ttl: Duration,
    pub(crate) stop: CancellationToken,
    pub(crate) leader: Flag,
}

impl LeaderLease {
    /// Elects, renews and runs `lead(renew_at)` while leader, until `stop`; then resigns the lease so another
    /// node can take over at once.
    pub(crate) async fn run_while_leader<F, Fut>(self, mut lead: F)
    where
        F: FnMut(Instant) -> Fut,
        Fut: Future<Output = ()>,
    {
        let LeaderLease {
            store,
            name,
            node_id,
            ttl,
            stop,
            leader,
        } = self;
        let mut was_leader = false;
        while !stop.is_cancelled() {
            let elect = LeaderElectParams {
                name: name.to_owned(),
                node_id: node_id.clone(),
                ttl,
            };
            let sent = Instant::now();
            let renew_at = sent + ttl / 3;
            let answer = tokio::time::timeout_at(renew_at, store.leader_attempt_elect(elect)).await;
            let (is_leader, next_try) = match answer {
                Ok(Ok(l)) if l.is_leader => (true, renew_at),
                Ok(Ok(l)) => {
                    // Try again just after the holder's lease ends, or at the usual rhythm if that is sooner.
                    let until_free = store.now().duration_until(l.expires_at);
                    let until_free = Duration::try_from(until_free).unwrap_or(Duration::ZERO);
                    let retry = until_free + Duration::from_millis(fastrand::u64(10..60));
                    (false, renew_at.min(Instant::now() + retry))
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, work = name, "leader election failed; paused on this node");
                    (false, renew_at)
                }
                Err(_) => {
                    tracing::warn!(
                        work = name,
                        "leader election did not answer in time; paused on this node"
                    );
                    (false, renew_at)
                }
            };
            if is_leader != was_leader {
                tracing::info!(node = %node_id, work = name, leader = is_leader, "leadership changed");
                was_leader = is_leader;
                leader.set(is_leader);
            }
            if is_leader {
                // Abandon work stuck on the store before the lease (started no earlier than `sent`) ends.
                let lease_end = sent + ttl.mul_f64(0.9);
                if tokio::time::timeout_at(lease_end, lead(renew_at))
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        work = name,
                        "leader work outlasted the lease; stepping down"
                    );
                }
            } else {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_try) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
        if was_leader {
            leader.set(false);
            let resign = LeaderResignParams {
                name: name.to_owned(),
                node_id: node_id.clone(),
            };
            if let Err(e) = store.leader_resign(resign).await {
                tracing::debug!(error = %e, work = name, "could not resign the lease");
            }
        }
    }
}
