//! How the server judges an IP address: the one place that decides what an address is.
//!
//! Invariant: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged as the IPv4 address it carries, by
//! the listener check (is this server reachable from other machines?) and by the push address policy alike.

use std::net::IpAddr;

/// An IPv4-mapped IPv6 address as the IPv4 address it reaches; any other address unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// True when `ip` (as [`canonical_ip`] reads it) only reaches this machine: `127.0.0.0/8`, `::1`, and
/// `::ffff:127.x.y.z`.
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical_ip(ip).is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_addresses_are_judged_as_their_ipv4() {
        for local in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip(local)), "{local}");
        }
        for reachable in [
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:0.0.0.0",
            "2001:db8::1",
        ] {
            assert!(!is_loopback(ip(reachable)), "{reachable}");
        }
        assert_eq!(canonical_ip(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(canonical_ip(ip("::1")), ip("::1"));
    }
}
