//! Wire formats: thin helpers over `etherparse`, which does the parsing, building and checksums.

pub mod ecn;
pub mod gso;
pub mod ipv6;
mod mac;

pub use mac::MacAddr;

/// What a device's frames carry at the bottom (smoltcp's `Medium`).
///
/// The core always builds and parses Ethernet II frames. A device whose link carries bare IP
/// packets (a TUN) maps them at its boundary without a copy: it writes a made-up Ethernet
/// header into the 14 bytes in front of each packet it receives and leaves the header out of
/// what it sends; the core then neither filters by MAC address nor speaks ARP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Medium {
    /// Ethernet II frames with ARP (a TAP).
    #[default]
    Ethernet,
    /// IPv4 packets with no link header and no neighbours to resolve (a TUN): every
    /// destination is the one peer at the other end of the link.
    Ip,
}

/// Bytes of the Ethernet II header the core puts in front of every IP packet.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Bytes a transport layer leaves free at the front of a datagram it builds (an Ethernet II
/// header and an IPv4 header without options), so that the lower layers write their headers in
/// place and the buffer becomes the frame without a copy.
pub const FRAME_HEADROOM: usize = 14 + 20;

/// The same room for a datagram over IPv6 (its fixed header is 40 bytes).
pub const FRAME_HEADROOM_V6: usize = 14 + 40;

/// The headroom a transport layer leaves in front of a datagram to `dst`.
pub fn headroom(dst: std::net::IpAddr) -> usize {
    if dst.is_ipv6() {
        FRAME_HEADROOM_V6
    } else {
        FRAME_HEADROOM
    }
}

/// The UDP/TCP checksum of `segment` (its checksum field zero) under the pseudo-header of
/// either family (RFC 768, RFC 8200 §8.1); `src` and `dst` are of one family.
pub fn transport_checksum_ip(
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    proto: u8,
    segment: &[u8],
) -> [u8; 2] {
    use std::net::IpAddr;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            transport_checksum(s.octets(), d.octets(), proto, segment)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::checksum(s, d, proto, segment),
        _ => [0, 0],
    }
}

/// An IPv4-mapped IPv6 socket address as the IPv4 one it maps (RFC 4291 §2.5.5.2); others as
/// given. Sockets keep addresses in this form inside.
pub fn canonical(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::SocketAddr;
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, a.port())),
            None => addr,
        },
        v4 => v4,
    }
}

/// `addr` as an IPv6 socket shows it: an IPv4 one IPv4-mapped (RFC 3493 §3.7) when `mapped`.
pub fn presented(addr: std::net::SocketAddr, mapped: bool) -> std::net::SocketAddr {
    use std::net::{SocketAddr, SocketAddrV6};
    match addr {
        SocketAddr::V4(a) if mapped => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        a => a,
    }
}

/// The pseudo-header's bytes of `ip` for hashing (ISNs, cookies): its octets, of either size.
pub fn ip_octets(ip: std::net::IpAddr) -> ([u8; 16], usize) {
    match ip {
        std::net::IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        std::net::IpAddr::V6(a) => (a.octets(), 16),
    }
}

use etherparse::checksum::Sum16BitWords;

/// True when `data` (a header or message that includes its own checksum field) sums to zero,
/// the internet checksum's validity test (RFC 1071).
pub fn checksum_ok(data: &[u8]) -> bool {
    Sum16BitWords::new().add_slice(data).ones_complement() == 0
}

/// The internet checksum of `data` as it goes on the wire (RFC 1071). `Sum16BitWords` sums
/// native-endian words, so the native bytes of its result are the network-order checksum.
pub fn checksum_bytes(data: &[u8]) -> [u8; 2] {
    Sum16BitWords::new()
        .add_slice(data)
        .ones_complement()
        .to_ne_bytes()
}

/// The ones' complement of the sum of the IPv4 pseudo-header and `segment` (RFC 768, RFC 9293
/// §3.1): zero for a segment with a valid checksum, the checksum for one whose field is zero.
fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let len = segment.len() as u16;
    Sum16BitWords::new()
        .add_4bytes(src)
        .add_4bytes(dst)
        .add_2bytes([0, proto])
        .add_2bytes(len.to_be_bytes())
        .add_slice(segment)
        .ones_complement()
}

/// Completes a checksum left partial (virtio `NEEDS_CSUM`, Linux `CHECKSUM_PARTIAL`): the
/// field at `start + offset` holds the pseudo-header sum, and the checksum covers everything
/// from `start` to the end of `frame`. False if the offsets do not fit the frame.
pub fn complete_partial_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    if at + 2 > frame.len() || start >= frame.len() {
        return false;
    }
    let sum = checksum_bytes(&frame[start..]);
    frame[at..at + 2].copy_from_slice(&sum);
    true
}

/// The UDP/TCP pseudo-header checksum test over a transport segment (header and payload).
pub fn transport_checksum_ok(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> bool {
    pseudo_header_sum(src, dst, proto, segment) == 0
}

/// The UDP/TCP checksum of `segment` (whose checksum field is zero) under the IPv4
/// pseudo-header, as it goes on the wire.
pub fn transport_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> [u8; 2] {
    pseudo_header_sum(src, dst, proto, segment).to_ne_bytes()
}
