//! Client address ranges: `inbound_smtp_server.trusted_proxies` (who may send the PROXY
//! protocol or XCLIENT) and `inbound_smtp_server.allowed_clients` (who may connect at all).
//!
//! A dual-stack listener (`ip = "::"`) sees IPv4 clients as IPv4-mapped IPv6 addresses
//! (`::ffff:192.0.2.1`); an operator writes `192.0.2.0/24`. [`Cidrs::contains`] treats the two
//! spellings of one address as the same address, so a range matches however the socket
//! reports the peer.

use std::net::IpAddr;

use ipnet::IpNet;

/// A list of address ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cidrs(Vec<IpNet>);

impl Cidrs {
    pub fn new(nets: Vec<IpNet>) -> Cidrs {
        Cidrs(nets)
    }

    /// Whether `addr` is in one of the ranges. An empty list contains no address: the
    /// meaning for `trusted_proxies` (nobody is trusted unless listed).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let canonical = addr.to_canonical();
        let mapped = match canonical {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => None,
        };
        self.0.iter().any(|net| {
            // Both spellings, so that a range written either way (`192.0.2.0/24` or
            // `::ffff:192.0.2.0/120`) matches an address reported either way.
            net.contains(&canonical) || mapped.is_some_and(|m| net.contains(&m))
        })
    }

    /// Whether a client at `addr` may connect when this list is `allowed_clients`: an empty
    /// list allows everyone (the default), otherwise only the listed ranges.
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.0.is_empty() || self.contains(addr)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }
}

impl From<Vec<IpNet>> for Cidrs {
    fn from(nets: Vec<IpNet>) -> Cidrs {
        Cidrs(nets)
    }
}

impl From<&[IpNet]> for Cidrs {
    fn from(nets: &[IpNet]) -> Cidrs {
        Cidrs(nets.to_vec())
    }
}

impl FromIterator<IpNet> for Cidrs {
    fn from_iter<I: IntoIterator<Item = IpNet>>(iter: I) -> Cidrs {
        Cidrs(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Cidrs {
        list.iter().map(|s| s.parse::<IpNet>().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_range() {
        let c = cidrs(&["10.0.0.0/8", "192.0.2.7/32"]);
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("192.0.2.7")));
        assert!(!c.contains(ip("192.0.2.8")));
        assert!(!c.contains(ip("11.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_ipv6_matches_a_v4_range() {
        let c = cidrs(&["10.0.0.0/8"]);
        assert!(c.contains(ip("::ffff:10.9.8.7")));
        assert!(!c.contains(ip("::ffff:11.9.8.7")));
        // The IPv4-compatible form (deprecated) is a different address and does not match.
        assert!(!c.contains(ip("::10.9.8.7")));
    }

    #[test]
    fn v4_address_matches_a_mapped_range() {
        let c = cidrs(&["::ffff:10.0.0.0/104"]);
        assert!(c.contains(ip("10.200.0.1")));
        assert!(c.contains(ip("::ffff:10.200.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
    }

    #[test]
    fn v6_range() {
        let c = cidrs(&["2001:db8::/32", "::1/128"]);
        assert!(c.contains(ip("2001:db8:1::5")));
        assert!(c.contains(ip("::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("127.0.0.1")));
    }

    #[test]
    fn everything_ranges() {
        let c = cidrs(&["0.0.0.0/0"]);
        assert!(c.contains(ip("203.0.113.1")));
        assert!(c.contains(ip("::ffff:203.0.113.1")));
        assert!(!c.contains(ip("2001:db8::1")));
        let c = cidrs(&["::/0"]);
        assert!(c.contains(ip("2001:db8::1")));
        assert!(c.contains(ip("203.0.113.1")), "::/0 covers the mapped form");
    }

    #[test]
    fn empty_contains_nobody_but_allows_everyone() {
        let c = Cidrs::default();
        assert!(c.is_empty());
        assert!(!c.contains(ip("127.0.0.1")));
        assert!(c.allows(ip("127.0.0.1")));
        assert!(c.allows(ip("2001:db8::1")));
    }

    #[test]
    fn non_empty_allows_only_listed() {
        let c = cidrs(&["127.0.0.0/8"]);
        assert!(c.allows(ip("127.0.0.1")));
        assert!(c.allows(ip("::ffff:127.0.0.1")));
        assert!(!c.allows(ip("192.0.2.1")));
        assert!(!c.allows(ip("::1")));
    }

    #[test]
    fn from_settings_lists() {
        let s = crate::config::Settings::from_toml_str(
            "[inbound_smtp_server]\ntrusted_proxies = [\"10.0.0.0/8\"]\nallowed_clients = []\n",
        )
        .unwrap();
        let trusted = Cidrs::from(s.inbound_smtp_server.trusted_proxies.as_slice());
        let allowed = Cidrs::from(s.inbound_smtp_server.allowed_clients.clone());
        assert!(trusted.contains(ip("::ffff:10.1.1.1")));
        assert!(allowed.allows(ip("198.51.100.1")));
        assert_eq!(trusted.nets().len(), 1);
    }
}
