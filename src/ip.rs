//! What the transports need to know of an address's family, in one place. TCP and the sockets
//! carry `IpAddr` and `SocketAddr` and ask these functions, not the family itself; the two IP
//! layers that answer them sit beside each other in [`crate::core`] (`ipv4.rs` with ARP and
//! fragmentation, `ipv6.rs` with Neighbour Discovery, autoconfiguration and Packet Too Big),
//! and UDP's entry points there check each family's header and checksum rules before one
//! socket table takes the datagram. The one place above this module that must still tell
//! the families apart is the dual-stack socket (`IPV6_V6ONLY`), whose meaning is the
//! difference between them.

use crate::time::Instant;
use crate::wire::ipv6::is_link_local;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};

/// IPv4's header without options, IPv6's fixed header.
pub fn header_len(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(_) => 20,
        IpAddr::V6(_) => 40,
    }
}

/// The smallest packet every host of the family takes: IPv4's 576-byte datagram (RFC 1122
/// §3.3.3, RFC 9293 §3.7.1's default MSS of 536 comes from it) and IPv6's minimum link MTU
/// (RFC 8200 §5).
pub fn min_mtu(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(_) => 576,
        IpAddr::V6(_) => 1280,
    }
}

/// The smallest path MTU believed from an ICMP error: a forged "fragmentation needed" below
/// Linux's `ip_rt_min_pmtu` (552) is taken as it; IPv6's never goes under its minimum MTU
/// (RFC 8201 §4).
pub fn min_path_mtu(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(_) => 552,
        IpAddr::V6(_) => 1280,
    }
}

/// Whether `ip` is its family's limited broadcast address (IPv6 has none).
pub fn is_broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_broadcast(),
        IpAddr::V6(_) => false,
    }
}

/// Our addresses in use: the IPv4 one, and the IPv6 ones the IP layer keeps current (link-local
/// included).
#[derive(Debug)]
pub struct LocalAddrs {
    v4: IpAddr,
    v6: Vec<Ipv6Addr>,
}

impl LocalAddrs {
    /// `v4`, and no IPv6 address yet.
    pub fn new(v4: IpAddr) -> LocalAddrs {
        LocalAddrs { v4, v6: Vec::new() }
    }

    /// The IPv6 addresses in use from now on.
    pub fn set_v6(&mut self, addrs: Vec<Ipv6Addr>) {
        self.v6 = addrs;
    }

    /// Whether `ip` is one of ours.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => ip == self.v4,
            IpAddr::V6(a) => self.v6.contains(&a),
        }
    }

    /// Our source address towards `remote`: the IPv4 one, or for IPv6 a link-local one
    /// towards a link-local peer, else a global one (RFC 6724's first rules).
    pub fn source_for(&self, remote: IpAddr) -> Option<IpAddr> {
        let IpAddr::V6(r) = remote else {
            return Some(self.v4);
        };
        let pick = if is_link_local(r) {
            self.v6.iter().find(|a| is_link_local(**a))
        } else {
            self.v6
                .iter()
                .find(|a| !is_link_local(**a))
                .or_else(|| self.v6.first())
        };
        pick.map(|a| IpAddr::V6(*a))
    }
}

/// As many destinations' path MTUs as are kept (the IP layer's and TCP's each).
pub const MAX_PATH_MTUS: usize = 1024;

/// Puts `value`, believed until `until`, under `key` in `map`, which holds at most `max`
/// entries: to make room for a new key, expired entries go first, else the one expiring
/// soonest.
pub fn insert_expiring<K: Hash + Eq + Copy, V>(
    map: &mut HashMap<K, (V, Instant)>,
    now: Instant,
    max: usize,
    key: K,
    value: V,
    until: Instant,
) {
    if map.len() >= max && !map.contains_key(&key) {
        map.retain(|_, (_, t)| *t > now);
        if map.len() >= max {
            let soonest = map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k);
            if let Some(k) = soonest {
                map.remove(&k);
            }
        }
    }
    map.insert(key, (value, until));
}

/// The MTUs towards each destination, as the IP layer learned them, for TCP's segment sizes:
/// the device's; over IPv6 less if a Router Advertisement said so (RFC 4861 §6.3.4), and
/// less again towards a destination a Packet Too Big about a TCP segment named, once TCP
/// found it quotes data in flight (RFC 8201 §5.2, RFC 5927), until it expires. (Over IPv4 a
/// connection learns its path MTU for itself, RFC 1191.)
#[derive(Debug)]
pub struct PathMtus {
    device: u32,
    link6: Option<u32>,
    path: HashMap<IpAddr, (u32, Instant)>,
}

impl PathMtus {
    /// A device of `mtu` bytes, nothing learned.
    pub fn new(mtu: usize) -> PathMtus {
        PathMtus {
            device: u32::try_from(mtu).unwrap_or(u32::MAX),
            link6: None,
            path: HashMap::new(),
        }
    }

    /// The MTU towards `dst` at `now`.
    pub fn mtu(&self, now: Instant, dst: IpAddr) -> u32 {
        let mut mtu = self.device;
        if dst.is_ipv6() {
            mtu = mtu.min(self.link6.unwrap_or(u32::MAX));
        }
        match self.path.get(&dst) {
            Some(&(m, until)) if until > now => mtu.min(m),
            _ => mtu,
        }
    }

    /// The IPv6 link MTU a Router Advertisement gave.
    pub fn set_link6(&mut self, mtu: usize) {
        self.link6 = Some(u32::try_from(mtu).unwrap_or(u32::MAX));
    }

    /// The path MTU towards `dst` a Packet Too Big taught, believed until `until`.
    pub fn learn(&mut self, now: Instant, dst: IpAddr, mtu: usize, until: Instant) {
        let mtu = u32::try_from(mtu).unwrap_or(u32::MAX);
        insert_expiring(&mut self.path, now, MAX_PATH_MTUS, dst, mtu, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_mtu_takes_the_least_of_device_link_and_path_until_the_path_expires() {
        let now = Instant::from_secs(10);
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let other6: IpAddr = "2001:db8::9".parse().unwrap();
        let mut m = PathMtus::new(1500);
        assert_eq!((m.mtu(now, v4), m.mtu(now, v6)), (1500, 1500));
        m.set_link6(1400);
        assert_eq!((m.mtu(now, v4), m.mtu(now, v6)), (1500, 1400));
        let until = now + Duration::from_secs(600);
        m.learn(now, v6, 1300, until);
        assert_eq!((m.mtu(now, v6), m.mtu(now, other6)), (1300, 1400));
        assert_eq!(m.mtu(until, v6), 1400, "expired");
    }

    #[test]
    fn sources_follow_the_peers_scope() {
        let mut l = LocalAddrs::new("10.0.0.2".parse().unwrap());
        assert!(l.source_for("2001:db8::1".parse().unwrap()).is_none());
        l.set_v6(vec![
            "fe80::2".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        ]);
        let pick = |r: &str| l.source_for(r.parse().unwrap()).unwrap().to_string();
        assert_eq!(pick("10.0.0.1"), "10.0.0.2");
        assert_eq!(pick("fe80::1"), "fe80::2");
        assert_eq!(pick("2001:db8::1"), "2001:db8::2");
        assert!(l.contains("2001:db8::2".parse().unwrap()));
        assert!(!l.contains("10.0.0.3".parse().unwrap()));
    }
}
