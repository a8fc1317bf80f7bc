//! Leader election: one holder per lease, terms that grow with each change of hands, resign frees at once.

use offload_core::state::add;

use crate::{LeaderElectParams, LeaderResignParams};

use super::{Harness, secs, t0};

/// A leader lease is taken only when free or expired; the term grows with each change of hands; resigning
/// frees it at once.
pub async fn leader_election_takeover_and_resign(h: Harness) {
    let elect = |node: &str| {
        let p = LeaderElectParams {
            name: "maintenance".into(),
            node_id: node.into(),
            ttl: secs(30),
        };
        let store = h.store.clone();
        async move { store.leader_attempt_elect(p).await.unwrap() }
    };
    let a = elect("a").await;
    assert!(a.is_leader);
    assert_eq!(a.expires_at, add(t0(), secs(30)));
    let b = elect("b").await;
    assert!(!b.is_leader);
    assert_eq!(
        (b.term, b.expires_at),
        (a.term, a.expires_at),
        "reports the holder's lease"
    );

    h.advance(secs(20));
    let renewed = elect("a").await;
    assert!(renewed.is_leader);
    assert_eq!(
        (renewed.term, renewed.expires_at),
        (a.term, add(h.now(), secs(30))),
        "renewal keeps the term"
    );
    h.advance(secs(29));
    assert!(!elect("b").await.is_leader, "not before expiry");

    h.advance(secs(1));
    let b = elect("b").await;
    assert!(b.is_leader, "taken over at expiry");
    assert!(b.term > a.term);
    assert!(!elect("a").await.is_leader);

    let other = h.store.leader_attempt_elect(LeaderElectParams {
        name: "cron".into(),
        node_id: "a".into(),
        ttl: secs(30),
    });
    assert!(other.await.unwrap().is_leader, "leases are per name");

    h.store
        .leader_resign(LeaderResignParams {
            name: "maintenance".into(),
            node_id: "a".into(),
        })
        .await
        .unwrap();
    assert!(
        !elect("a").await.is_leader,
        "resigning a lease one does not hold changes nothing"
    );
    h.store
        .leader_resign(LeaderResignParams {
            name: "maintenance".into(),
            node_id: "b".into(),
        })
        .await
        .unwrap();
    let a2 = elect("a").await;
    assert!(a2.is_leader, "free at once after resign");
    assert!(a2.term > b.term);
}
