//! IPv6 addressing on a link: the modified EUI-64 interface identifier, solicited-node
//! multicast groups and the Ethernet addresses of multicast groups (RFC 4291, RFC 2464).

use super::MacAddr;
use std::net::Ipv6Addr;

/// The all-nodes link-local multicast group (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The link-local address `fe80::/64` with the modified EUI-64 identifier of `mac`: the
/// universal/local bit inverted and `ff:fe` in the middle (RFC 4291 §2.5.1, appendix A).
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The solicited-node multicast group of `addr`: `ff02::1:ff00:0/104` with its low 24 bits
/// (RFC 4291 §2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address a multicast group's packets go to: `33:33` and the group's low 32
/// bits (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Whether `addr` is link-local unicast (`fe80::/10`).
pub fn is_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// Whether `a` and `b` share their first `prefix_len` bits.
pub fn same_prefix(a: Ipv6Addr, b: Ipv6Addr, prefix_len: u8) -> bool {
    let bits = u32::from(prefix_len.min(128));
    if bits == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - bits);
    u128::from(a) & mask == u128::from(b) & mask
}

/// The ones'-complement sum over the IPv6 pseudo-header (RFC 8200 §8.1) and `data`, as the
/// checksum field's bytes.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, data: &[u8]) -> [u8; 2] {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(data.len() as u32).to_be_bytes());
    add(&[0, 0, 0, next_header]);
    add(data);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    (!(sum as u16)).to_be_bytes()
}

/// Whether `data` (checksum field included) sums to zero with the pseudo-header.
pub fn checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, data: &[u8]) -> bool {
    checksum(src, dst, next_header, data) == [0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_link_local_flips_the_universal_bit() {
        let mac = MacAddr([0x02, 0x00, 0x0a, 0x00, 0x00, 0x02]);
        assert_eq!(
            link_local(mac),
            "fe80::aff:fe00:2".parse::<Ipv6Addr>().unwrap()
        );
        let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(
            link_local(mac),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn solicited_node_group_and_its_mac() {
        let a: Ipv6Addr = "2001:db8::a:ff:fe00:2".parse().unwrap();
        let g = solicited_node(a);
        assert_eq!(g, "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            multicast_mac(g),
            MacAddr([0x33, 0x33, 0xff, 0x00, 0x00, 0x02])
        );
        assert_eq!(multicast_mac(ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    }

    #[test]
    fn prefixes_and_link_locals() {
        let a: Ipv6Addr = "2001:db8:1::5".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1::9".parse().unwrap();
        assert!(same_prefix(a, b, 64));
        assert!(!same_prefix(a, "2001:db8:2::5".parse().unwrap(), 48));
        assert!(same_prefix(a, b, 0));
        assert!(is_link_local("fe80::1".parse().unwrap()));
        assert!(!is_link_local(a));
    }

    #[test]
    fn checksum_round_trips() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap());
        let mut msg = vec![128, 0, 0, 0, 0, 1, 0, 1, b'h', b'i', b'!'];
        let c = checksum(s, d, 58, &msg);
        msg[2..4].copy_from_slice(&c);
        assert!(checksum_ok(s, d, 58, &msg));
        msg[8] ^= 1;
        assert!(!checksum_ok(s, d, 58, &msg));
    }
}
