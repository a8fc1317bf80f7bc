//! Singleton work under a named leader lease in the store.
//!
//! Invariant: `lead` only runs while this node holds the lease, and each call returns by the renewal point
//! it is given (a third of the lease), so a node that fails to renew stops before its lease can have passed
//! to another node. The work must be idempotent anyway: leases bound overlap, they do not exclude it.

use std::future::Future;
use std::sync::Arc;

use offload_store::{LeaderElectParams, LeaderResignParams};
use tokio::time::Instant;

use crate::engine::Inner;

/// Elects, renews and runs `lead(renew_at)` while leader, until the engine's loops stop; then resigns the
/// lease so another node can take over at once. `name` names the lease and the work in logs.
pub(crate) async fn run_while_leader<F, Fut>(inner: Arc<Inner>, name: &'static str, mut lead: F)
where
    F: FnMut(Instant) -> Fut,
    Fut: Future<Output = ()>,
{
    let ttl = inner.config.leader_ttl;
    let mut was_leader = false;
    while !inner.stop_loops.is_cancelled() {
        let elect = LeaderElectParams {
            name: name.to_owned(),
            node_id: inner.config.node_id.clone(),
            ttl,
        };
        let is_leader = match inner.store.leader_attempt_elect(elect).await {
            Ok(l) => l.is_leader,
            Err(e) => {
                tracing::warn!(error = %e, work = name, "leader election failed; paused on this node");
                false
            }
        };
        if is_leader != was_leader {
            tracing::info!(node = %inner.config.node_id, work = name, leader = is_leader, "leadership changed");
            was_leader = is_leader;
        }
        let renew_at = Instant::now() + ttl / 3;
        if is_leader {
            lead(renew_at).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until(renew_at) => {}
                _ = inner.stop_loops.cancelled() => {}
            }
        }
    }
    if was_leader {
        let resign = LeaderResignParams {
            name: name.to_owned(),
            node_id: inner.config.node_id.clone(),
        };
        if let Err(e) = inner.store.leader_resign(resign).await {
            tracing::debug!(error = %e, work = name, "could not resign the lease");
        }
    }
}
