//! TCP segmentation offload (TSO, and GSO: the same split done in software). The core may hand
//! a device one TCP "super-segment" of up to 64 KB with the MSS its pieces carry; a device that
//! cannot split it in hardware or in its kernel splits it here into wire-sized frames.

use super::transport_checksum;
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, TcpHeader};

/// Offset of the checksum field in the TCP header (RFC 9293 §3.1).
pub const TCP_CHECKSUM_OFFSET: usize = 16;

/// Largest TCP payload of a super-segment: what an IPv4 total length of 65535 leaves after the
/// IP header and the largest TCP header.
pub const TSO_MAX_PAYLOAD: usize = 65535 - Ipv4Header::MIN_LEN - TcpHeader::MAX_LEN;

/// The folded, uncomplemented pseudo-header sum (RFC 9293 §3.1) for a TCP segment of
/// `tcp_len` bytes: what the checksum field of an offloaded segment holds, for the device to
/// complete over the bytes (virtio's `NEEDS_CSUM`, Linux's `CHECKSUM_PARTIAL`).
pub fn pseudo_header_partial(src: [u8; 4], dst: [u8; 4], tcp_len: usize) -> [u8; 2] {
    let sum = etherparse::checksum::Sum16BitWords::new()
        .add_4bytes(src)
        .add_4bytes(dst)
        .add_2bytes([0, IpNumber::TCP.0])
        .add_2bytes((tcp_len as u16).to_be_bytes())
        .ones_complement();
    (!sum).to_ne_bytes()
}

/// Where the headers of an Ethernet/IPv4/TCP frame end: (IP header, TCP header) byte offsets,
/// and the end of the TCP payload. `None` for anything else or a truncated frame.
pub fn tcp_offsets(frame: &[u8]) -> Option<(usize, usize, usize)> {
    header_offsets(frame, frame.len())
}

/// [`tcp_offsets`] of a frame `len` bytes long of which `head` holds the start, through the
/// TCP header at least: a frame written in parts, its payload elsewhere.
pub fn header_offsets(head: &[u8], len: usize) -> Option<(usize, usize, usize)> {
    let frame = head;
    let ip_at = Ethernet2Header::LEN;
    if is_ipv6(frame) {
        // IPv6 with TCP right behind its fixed header (the stack's own super-segments).
        let (ip, rest) = Ipv6Header::from_slice(frame.get(ip_at..)?).ok()?;
        if ip.next_header != IpNumber::TCP {
            return None;
        }
        let tcp_at = ip_at + Ipv6Header::LEN;
        let (tcp, _) = TcpHeader::from_slice(rest).ok()?;
        let end = tcp_at + usize::from(ip.payload_length);
        let payload_at = tcp_at + tcp.header_len();
        return (payload_at <= frame.len() && payload_at <= end && end <= len)
            .then_some((tcp_at, payload_at, end));
    }
    let (ip, rest) = Ipv4Header::from_slice(frame.get(ip_at..)?).ok()?;
    if ip.protocol != IpNumber::TCP {
        return None;
    }
    let tcp_at = ip_at + ip.header_len();
    let (tcp, _) = TcpHeader::from_slice(rest).ok()?;
    let end = ip_at + usize::from(ip.total_len);
    let payload_at = tcp_at + tcp.header_len();
    (payload_at <= frame.len() && payload_at <= end && end <= len)
        .then_some((tcp_at, payload_at, end))
}

/// Splits a super-segment into frames carrying at most `mss` payload bytes each: every piece
/// gets its own IP total length, identification (consecutive, as Linux's GSO gives them) and
/// header checksum, its sequence number, FIN and PSH on the last piece only, and a complete
/// TCP checksum. `None` if `frame` is not an IPv4 TCP frame or `mss` is zero.
pub fn segment(frame: &[u8], mss: usize) -> Option<Vec<Vec<u8>>> {
    if mss == 0 {
        return None;
    }
    if is_ipv6(frame) {
        return segment_v6(frame, mss);
    }
    let (tcp_at, payload_at, end) = tcp_offsets(frame)?;
    let (ip, _) = Ipv4Header::from_slice(&frame[Ethernet2Header::LEN..]).ok()?;
    let (tcp, _) = TcpHeader::from_slice(&frame[tcp_at..]).ok()?;
    let payload = &frame[payload_at..end];
    let count = payload.len().div_ceil(mss).max(1);
    let mut pieces = Vec::with_capacity(count);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let last = i + 1 == count;
        let mut ip = ip.clone();
        ip.total_len = (ip.header_len() + tcp.header_len() + chunk.len()) as u16;
        ip.identification = ip.identification.wrapping_add(i as u16);
        ip.header_checksum = ip.calc_header_checksum();
        let mut t = tcp.clone();
        t.sequence_number = t.sequence_number.wrapping_add((i * mss) as u32);
        t.fin &= last;
        t.psh &= last;
        // CWR goes on the first piece only (Linux's `tcp_gso_segment`, RFC 3168 §6.1.2).
        t.cwr &= i == 0;
        t.checksum = 0;
        let mut out = Vec::with_capacity(payload_at + chunk.len());
        out.extend_from_slice(&frame[..Ethernet2Header::LEN]);
        out.extend_from_slice(&ip.to_bytes());
        let at = out.len();
        out.extend_from_slice(&t.to_bytes());
        out.extend_from_slice(chunk);
        let sum = transport_checksum(ip.source, ip.destination, IpNumber::TCP.0, &out[at..]);
        out[at + TCP_CHECKSUM_OFFSET..at + TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&sum);
        pieces.push(out);
    }
    Some(pieces)
}
/// Whether an Ethernet frame carries IPv6.
pub fn is_ipv6(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&EtherType::IPV6.0.to_be_bytes()[..])
}

/// The IPv6 counterpart of [`pseudo_header_partial`] (RFC 8200 §8.1).
pub fn pseudo_header_partial_v6(src: [u8; 16], dst: [u8; 16], tcp_len: usize) -> [u8; 2] {
    let sum = etherparse::checksum::Sum16BitWords::new()
        .add_16bytes(src)
        .add_16bytes(dst)
        .add_4bytes((tcp_len as u32).to_be_bytes())
        .add_4bytes([0, 0, 0, IpNumber::TCP.0])
        .ones_complement();
    (!sum).to_ne_bytes()
}

/// The partial pseudo-header sum of a TCP super-segment between `src` and `dst`, of one
/// family ([`pseudo_header_partial`] or [`pseudo_header_partial_v6`]); zero for a mixed pair,
/// which no segment has.
pub fn pseudo_header_partial_ip(
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    tcp_len: usize,
) -> [u8; 2] {
    use std::net::IpAddr;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_partial(s.octets(), d.octets(), tcp_len),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_partial_v6(s.octets(), d.octets(), tcp_len),
        _ => [0, 0],
    }
}

/// [`segment`] for an IPv6 super-segment: every piece gets its own payload length, sequence
/// number, FIN and PSH on the last piece only, and a complete TCP checksum.
fn segment_v6(frame: &[u8], mss: usize) -> Option<Vec<Vec<u8>>> {
    let (tcp_at, payload_at, end) = tcp_offsets(frame)?;
    let (ip, _) = Ipv6Header::from_slice(&frame[Ethernet2Header::LEN..]).ok()?;
    let (tcp, _) = TcpHeader::from_slice(&frame[tcp_at..]).ok()?;
    let payload = &frame[payload_at..end];
    let count = payload.len().div_ceil(mss).max(1);
    let (src, dst) = (ip.source.into(), ip.destination.into());
    let mut pieces = Vec::with_capacity(count);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let last = i + 1 == count;
        let mut ip = ip.clone();
        ip.payload_length = (tcp.header_len() + chunk.len()) as u16;
        let mut t = tcp.clone();
        t.sequence_number = t.sequence_number.wrapping_add((i * mss) as u32);
        t.fin &= last;
        t.psh &= last;
        // CWR goes on the first piece only (Linux's `tcp_gso_segment`, RFC 3168 §6.1.2).
        t.cwr &= i == 0;
        t.checksum = 0;
        let mut out = Vec::with_capacity(payload_at + chunk.len());
        out.extend_from_slice(&frame[..Ethernet2Header::LEN]);
        out.extend_from_slice(&ip.to_bytes());
        let at = out.len();
        out.extend_from_slice(&t.to_bytes());
        out.extend_from_slice(chunk);
        let sum = super::ipv6::checksum(src, dst, IpNumber::TCP.0, &out[at..]);
        out[at + TCP_CHECKSUM_OFFSET..at + TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&sum);
        pieces.push(out);
    }
    Some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// An IPv6 super-segment of `data` with a partial checksum, as TCP output builds it, split
    /// in software: each piece has its payload length, its sequence number, a complete
    /// checksum, and FIN and PSH only on the last.
    #[test]
    fn an_ipv6_super_segment_splits_into_valid_pieces() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
        let mut tcp = TcpHeader::new(1000, 80, 7, 65535);
        tcp.ack = true;
        tcp.psh = true;
        tcp.fin = true;
        tcp.cwr = true;
        let mut seg = tcp.to_bytes().to_vec();
        seg.extend_from_slice(&data);
        let sum = pseudo_header_partial_v6(src.octets(), dst.octets(), seg.len());
        seg[TCP_CHECKSUM_OFFSET..TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&sum);
        let ip = Ipv6Header {
            payload_length: seg.len() as u16,
            next_header: IpNumber::TCP,
            hop_limit: 64,
            source: src.octets(),
            destination: dst.octets(),
            ..Default::default()
        };
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&EtherType::IPV6.0.to_be_bytes());
        frame.extend_from_slice(&ip.to_bytes());
        frame.extend_from_slice(&seg);
        assert!(is_ipv6(&frame));
        let pieces = segment(&frame, 1400).expect("an IPv6 TCP frame");
        assert_eq!(pieces.len(), 4);
        let mut joined = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let (ip, rest) = Ipv6Header::from_slice(&p[14..]).unwrap();
            assert_eq!(usize::from(ip.payload_length), rest.len());
            assert_eq!(
                super::super::ipv6::checksum(src, dst, 6, rest),
                [0, 0],
                "piece {i}"
            );
            let (t, payload) = TcpHeader::from_slice(rest).unwrap();
            assert_eq!(t.sequence_number, 7 + (i * 1400) as u32);
            let last = i == pieces.len() - 1;
            assert_eq!((t.fin, t.psh), (last, last));
            assert_eq!(t.cwr, i == 0, "CWR on the first piece only");
            joined.extend_from_slice(payload);
        }
        assert_eq!(joined, data);
        assert_eq!(tcp_offsets(&frame), Some((54, 74, 54 + 20 + 5000)));
    }
}
