//! The outbound address policy: which addresses deliveries may connect to.
//!
//! Public addresses are always allowed. *Internal* addresses (loopback, private ranges, carrier-grade NAT,
//! link-local and unique-local) are allowed only when `allow_private` is on. *Special* addresses (cloud
//! metadata endpoints, unspecified, multicast, broadcast and reserved ranges) are refused even then. An
//! operator can allow any range, special ones included, by listing it in `allow`.
//!
//! Invariant: every decision is made on an IP address (IPv4-mapped IPv6 addresses are judged as the IPv4
//! address they carry); the engine applies it to the addresses a name resolved to, right before connecting,
//! so a DNS answer that changes between checks (rebinding) cannot slip past it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Which addresses deliveries may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow loopback, private, carrier-grade NAT, link-local and unique-local addresses.
    pub allow_private: bool,
    /// Ranges always allowed, whatever their kind (e.g. one internal subnet, or a metadata address).
    pub allow: Vec<IpNet>,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An internal address while `allow_private` is off.
    Internal(&'static str),
    /// A special address, refused unless listed in `allow`.
    Special(&'static str),
}

impl AddressPolicy {
    /// Allows everything internal (local development).
    pub fn allow_private() -> Self {
        Self {
            allow_private: true,
            allow: Vec::new(),
        }
    }

    /// Decides one address.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match classify(ip) {
            Kind::Public => Ok(()),
            Kind::Internal(_) if self.allow_private => Ok(()),
            Kind::Internal(what) => Err(Refusal::Internal(what)),
            Kind::Special(what) => Err(Refusal::Special(what)),
        }
    }

    /// Like [`AddressPolicy::check`], with the refusal as a sentence naming the address and the setting that
    /// would allow it.
    pub fn explain(&self, ip: IpAddr) -> Result<(), String> {
        self.check(ip).map_err(|refusal| match refusal {
            Refusal::Internal(what) => format!(
                "{ip} is {what}; allow internal addresses with `[push] allow_private = true` or list the range in \
                 `[push] allow_cidrs`"
            ),
            Refusal::Special(what) => format!(
                "{ip} is {what}; only a range listed in `[push] allow_cidrs` allows it"
            ),
        })
    }
}

/// The kinds of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Public,
    Internal(&'static str),
    Special(&'static str),
}

/// An IPv4-mapped IPv6 address as the IPv4 address it reaches (the rule the listener check shares).
fn canonical(ip: IpAddr) -> IpAddr {
    offload_core::net::canonical_ip(ip)
}

/// Cloud metadata endpoints: AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle (169.254.169.254); AWS over
/// IPv6 (fd00:ec2::254); Alibaba (100.100.100.200).
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

fn classify(ip: IpAddr) -> Kind {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Kind {
    let [a, b, ..] = ip.octets();
    if METADATA_V4.contains(&ip) {
        Kind::Special("a cloud metadata address")
    } else if ip.is_unspecified() || a == 0 {
        Kind::Special("an unspecified address (\"this network\")")
    } else if ip.is_broadcast() {
        Kind::Special("the broadcast address")
    } else if ip.is_multicast() {
        Kind::Special("a multicast address")
    } else if a >= 240 {
        Kind::Special("a reserved address")
    } else if ip.is_loopback() {
        Kind::Internal("a loopback address")
    } else if ip.is_private() {
        Kind::Internal("a private address")
    } else if a == 100 && (64..128).contains(&b) {
        Kind::Internal("a carrier-grade NAT address")
    } else if ip.is_link_local() {
        Kind::Internal("a link-local address")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Kind::Special("an IETF protocol assignment address")
    } else if a == 198 && (b == 18 || b == 19) {
        Kind::Special("a benchmarking address")
    } else {
        Kind::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Kind {
    let first = ip.segments()[0];
    if METADATA_V6.contains(&ip) {
        Kind::Special("a cloud metadata address")
    } else if ip.is_unspecified() {
        Kind::Special("an unspecified address")
    } else if ip.is_multicast() {
        Kind::Special("a multicast address")
    } else if ip.is_loopback() {
        Kind::Internal("a loopback address")
    } else if ip.is_unique_local() {
        Kind::Internal("a unique-local address")
    } else if ip.is_unicast_link_local() {
        Kind::Internal("a link-local address")
    } else if first & 0xffc0 == 0xfec0 {
        Kind::Internal("a site-local address")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 (64:ff9b::/96 and 64:ff9b:1::/48) reaches IPv4 addresses the policy cannot see here.
        Kind::Special("a NAT64 address")
    } else if first == 0x2002 {
        Kind::Special("a 6to4 address")
    } else if ip.segments()[..6] == [0; 6] {
        // IPv4-compatible (deprecated) ::a.b.c.d
        Kind::Special("an IPv4-compatible address")
    } else {
        Kind::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_need_allow_private() {
        let strict = AddressPolicy::default();
        let dev = AddressPolicy::allow_private();
        for a in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                matches!(strict.check(ip(a)), Err(Refusal::Internal(_))),
                "{a}"
            );
            assert_eq!(dev.check(ip(a)), Ok(()), "{a}");
        }
    }

    #[test]
    fn special_addresses_are_refused_even_with_allow_private() {
        let dev = AddressPolicy::allow_private();
        for a in [
            "169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
            "::ffff:169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "240.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
        ] {
            assert!(matches!(dev.check(ip(a)), Err(Refusal::Special(_))), "{a}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert_eq!(AddressPolicy::default().check(ip(a)), Ok(()), "{a}");
        }
    }

    #[test]
    fn allow_list_wins_over_every_kind() {
        let policy = AddressPolicy {
            allow_private: false,
            allow: vec![
                "10.1.0.0/16".parse().unwrap(),
                "169.254.169.254/32".parse().unwrap(),
            ],
        };
        assert_eq!(policy.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(policy.check(ip("::ffff:10.1.2.3")), Ok(()));
        assert!(policy.check(ip("10.2.0.1")).is_err());
        assert_eq!(policy.check(ip("169.254.169.254")), Ok(()));
        let why = policy.explain(ip("10.2.0.1")).unwrap_err();
        assert!(
            why.contains("10.2.0.1 is a private address") && why.contains("allow_private"),
            "{why}"
        );
        let why = AddressPolicy::allow_private()
            .explain(ip("169.254.169.254"))
            .unwrap_err();
        assert!(
            why.contains("metadata") && why.contains("allow_cidrs"),
            "{why}"
        );
    }
}
