//! The DNS resolver of the delivery client: resolves names with the system resolver, then keeps only the
//! addresses the outbound policy allows. The client connects to nothing else, so the check happens on the
//! exact addresses used, at connect time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::policy::AddressPolicy;

/// A name resolved only to refused addresses. Delivery recognises it (in the client error's sources) and
/// fails the attempt without retry.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RefusedAddress(pub(crate) String);

/// [`Resolve`] filtered by an [`AddressPolicy`].
#[derive(Debug, Clone)]
pub(crate) struct PolicyResolver {
    pub(crate) policy: Arc<AddressPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused) = filter(&policy, &host, found);
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| format!("{host} resolved to no address"));
                return Err(
                    Box::new(RefusedAddress(why)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The allowed addresses, and the reason for the first refusal (if any address was refused).
fn filter(
    policy: &AddressPolicy,
    host: &str,
    found: Vec<SocketAddr>,
) -> (Vec<SocketAddr>, Option<String>) {
    let mut refused = None;
    let allowed = found
        .into_iter()
        .filter(|addr| match policy.explain(addr.ip()) {
            Ok(()) => true,
            Err(why) => {
                refused.get_or_insert_with(|| format!("{host} resolves to {why}"));
                false
            }
        })
        .collect();
    (allowed, refused)
}

/// Checks an IP literal host (the client does not resolve those, so the resolver never sees them).
pub(crate) fn check_literal(policy: &AddressPolicy, ip: IpAddr) -> Result<(), RefusedAddress> {
    policy.explain(ip).map_err(RefusedAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_allowed_addresses() {
        let found: Vec<SocketAddr> = vec![
            "127.0.0.1:0".parse().unwrap(),
            "93.184.216.34:0".parse().unwrap(),
        ];
        let (allowed, refused) = filter(&AddressPolicy::default(), "mixed.example", found);
        assert_eq!(
            allowed,
            vec!["93.184.216.34:0".parse::<SocketAddr>().unwrap()]
        );
        assert!(
            refused
                .unwrap()
                .starts_with("mixed.example resolves to 127.0.0.1 is a loopback")
        );
    }

    #[tokio::test]
    async fn localhost_is_refused_unless_private_is_allowed() {
        let strict = PolicyResolver {
            policy: Arc::new(AddressPolicy::default()),
        };
        let err = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<RefusedAddress>().is_some(), "{err}");
        let dev = PolicyResolver {
            policy: Arc::new(AddressPolicy::allow_private()),
        };
        let addrs: Vec<SocketAddr> = dev
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
