//! Segmentation offload: TCP's (TSO) and UDP's (USO), and GSO, the same split done in
//! software. The core may hand a device one "super-segment" of up to 64 KB with the payload
//! size of its pieces: a TCP segment to be cut at the MSS, or a UDP super-datagram to be cut
//! into datagrams of one size (Linux's `UDP_SEGMENT`). A device that cannot split it in
//! hardware or in its kernel splits it here into wire-sized frames.

use super::transport_checksum;
use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, TcpHeader, UdpHeader,
};

/// Offset of the checksum field in the TCP header (RFC 9293 §3.1).
pub const TCP_CHECKSUM_OFFSET: usize = 16;

/// Offset of the checksum field in the UDP header (RFC 768).
pub const UDP_CHECKSUM_OFFSET: usize = 6;

/// Most datagrams one UDP super-datagram may become: Linux's `UDP_MAX_SEGMENTS` (128 since
/// 6.11 and its stable backports, 64 before). A kernel with the older limit refuses a virtio
/// UDP super-datagram past 64; the tap then cuts those in software and offers it no more
/// than 64 at a time.
pub const UDP_MAX_SEGMENTS: usize = 128;

/// Largest TCP payload of a super-segment: what an IPv4 total length of 65535 leaves after the
/// IP header and the largest TCP header.
pub const TSO_MAX_PAYLOAD: usize = 65535 - Ipv4Header::MIN_LEN - TcpHeader::MAX_LEN;

/// The folded, uncomplemented pseudo-header sum (RFC 9293 §3.1) for a TCP segment of
/// `tcp_len` bytes: what the checksum field of an offloaded segment holds, for the device to
/// complete over the bytes (virtio's `NEEDS_CSUM`, Linux's `CHECKSUM_PARTIAL`).
pub fn pseudo_header_partial(src: [u8; 4], dst: [u8; 4], tcp_len: usize) -> [u8; 2] {
    partial_v4(src, dst, IpNumber::TCP, tcp_len)
}

fn partial_v4(src: [u8; 4], dst: [u8; 4], proto: IpNumber, len: usize) -> [u8; 2] {
    let sum = etherparse::checksum::Sum16BitWords::new()
        .add_4bytes(src)
        .add_4bytes(dst)
        .add_2bytes([0, proto.0])
        .add_2bytes((len as u16).to_be_bytes())
        .ones_complement();
    (!sum).to_ne_bytes()
}

fn partial_v6(src: [u8; 16], dst: [u8; 16], proto: IpNumber, len: usize) -> [u8; 2] {
    let sum = etherparse::checksum::Sum16BitWords::new()
        .add_16bytes(src)
        .add_16bytes(dst)
        .add_4bytes((len as u32).to_be_bytes())
        .add_4bytes([0, 0, 0, proto.0])
        .ones_complement();
    (!sum).to_ne_bytes()
}

/// Where the headers of an Ethernet/IP frame carrying TCP or UDP end: the transport header's
/// and the payload's byte offsets, and the end of the payload. `None` for anything else or a
/// truncated frame.
pub fn segment_offsets(frame: &[u8]) -> Option<(usize, usize, usize)> {
    header_offsets(frame, frame.len())
}

/// [`segment_offsets`] of a frame `len` bytes long of which `head` holds the start, through
/// the transport header at least: a frame written in parts, its payload elsewhere.
pub fn header_offsets(head: &[u8], len: usize) -> Option<(usize, usize, usize)> {
    let frame = head;
    let ip_at = Ethernet2Header::LEN;
    let (proto, l4_at, end) = if is_ipv6(frame) {
        // IPv6 with the transport header right behind its fixed header (the stack's own
        // super-segments).
        let (ip, _) = Ipv6Header::from_slice(frame.get(ip_at..)?).ok()?;
        let l4_at = ip_at + Ipv6Header::LEN;
        (
            ip.next_header,
            l4_at,
            l4_at + usize::from(ip.payload_length),
        )
    } else {
        let (ip, _) = Ipv4Header::from_slice(frame.get(ip_at..)?).ok()?;
        (
            ip.protocol,
            ip_at + ip.header_len(),
            ip_at + usize::from(ip.total_len),
        )
    };
    let rest = frame.get(l4_at..)?;
    let payload_at = l4_at
        + match proto {
            IpNumber::TCP => TcpHeader::from_slice(rest).ok()?.0.header_len(),
            IpNumber::UDP => UdpHeader::from_slice(rest).ok()?.0.header_len(),
            _ => return None,
        };
    (payload_at <= frame.len() && payload_at <= end && end <= len)
        .then_some((l4_at, payload_at, end))
}

/// Whether an Ethernet/IP frame carries UDP (as opposed to TCP, for a super-segment).
pub fn is_udp(frame: &[u8]) -> bool {
    let at = if is_ipv6(frame) {
        Ethernet2Header::LEN + 6
    } else {
        Ethernet2Header::LEN + 9
    };
    frame.get(at) == Some(&IpNumber::UDP.0)
}

/// Where the checksum field lies in the transport header of a super-segment `frame`.
pub fn checksum_offset(frame: &[u8]) -> usize {
    if is_udp(frame) {
        UDP_CHECKSUM_OFFSET
    } else {
        TCP_CHECKSUM_OFFSET
    }
}

/// Splits a super-segment into frames carrying at most `mss` payload bytes each: every piece
/// gets its own IP total length, identification (consecutive, as Linux's GSO gives them) and
/// header checksum, its sequence number, FIN and PSH on the last piece only, and a complete
/// TCP checksum. A UDP super-datagram becomes datagrams of `mss` payload bytes (the last
/// shorter), each with its own UDP length and complete checksum. `None` if `frame` is no TCP
/// or UDP frame, or `mss` is zero.
pub fn segment(frame: &[u8], mss: usize) -> Option<Vec<Vec<u8>>> {
    if mss == 0 {
        return None;
    }
    if is_udp(frame) {
        return segment_udp(frame, mss);
    }
    if is_ipv6(frame) {
        return segment_v6(frame, mss);
    }
    let (tcp_at, payload_at, end) = segment_offsets(frame)?;
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
        let t = piece_header(&tcp, i, mss, last);
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

/// [`segment`] for a UDP super-datagram of either family: IPv4 pieces get consecutive
/// identifications, as Linux's UDP GSO gives them.
fn segment_udp(frame: &[u8], size: usize) -> Option<Vec<Vec<u8>>> {
    let (udp_at, payload_at, end) = segment_offsets(frame)?;
    let (udp, _) = UdpHeader::from_slice(&frame[udp_at..]).ok()?;
    let ip_at = Ethernet2Header::LEN;
    /// The super-datagram's IP header, parsed once.
    enum Ip {
        V4(Ipv4Header),
        V6(Ipv6Header),
    }
    let ip = if is_ipv6(frame) {
        Ip::V6(Ipv6Header::from_slice(&frame[ip_at..]).ok()?.0)
    } else {
        Ip::V4(Ipv4Header::from_slice(&frame[ip_at..]).ok()?.0)
    };
    let payload = &frame[payload_at..end];
    let count = payload.len().div_ceil(size).max(1);
    let mut pieces = Vec::with_capacity(count);
    for (i, chunk) in payload
        .chunks(size)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let udp_len = UdpHeader::LEN + chunk.len();
        let mut header = UdpHeader {
            length: udp_len as u16,
            checksum: 0,
            ..udp.clone()
        };
        let mut out = Vec::with_capacity(payload_at + chunk.len());
        out.extend_from_slice(&frame[..ip_at]);
        // Each piece's checksum complete, a computed zero sent as all ones (RFC 768; RFC 8200
        // §8.1), as `calc_checksum_*_raw` give it.
        match &ip {
            Ip::V4(v4) => {
                let mut v4 = v4.clone();
                v4.total_len = (v4.header_len() + udp_len) as u16;
                v4.identification = v4.identification.wrapping_add(i as u16);
                v4.header_checksum = v4.calc_header_checksum();
                header.checksum = header
                    .calc_checksum_ipv4_raw(v4.source, v4.destination, chunk)
                    .ok()?;
                out.extend_from_slice(&v4.to_bytes());
            }
            Ip::V6(v6) => {
                let mut v6 = v6.clone();
                v6.payload_length = udp_len as u16;
                header.checksum = header
                    .calc_checksum_ipv6_raw(v6.source, v6.destination, chunk)
                    .ok()?;
                out.extend_from_slice(&v6.to_bytes());
            }
        }
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(chunk);
        pieces.push(out);
    }
    Some(pieces)
}

/// The TCP header of piece `i` of a super-segment cut at `mss`, its checksum zero: its
/// sequence number moved on, FIN and PSH on the last piece only, CWR on the first only
/// (Linux's `tcp_gso_segment`, RFC 3168 §6.1.2).
fn piece_header(tcp: &TcpHeader, i: usize, mss: usize, last: bool) -> TcpHeader {
    let mut t = tcp.clone();
    t.sequence_number = t.sequence_number.wrapping_add((i * mss) as u32);
    t.fin &= last;
    t.psh &= last;
    t.cwr &= i == 0;
    t.checksum = 0;
    t
}

/// Whether an Ethernet frame carries IPv6.
pub fn is_ipv6(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&EtherType::IPV6.0.to_be_bytes()[..])
}

/// The IPv6 counterpart of [`pseudo_header_partial`] (RFC 8200 §8.1).
pub fn pseudo_header_partial_v6(src: [u8; 16], dst: [u8; 16], tcp_len: usize) -> [u8; 2] {
    partial_v6(src, dst, IpNumber::TCP, tcp_len)
}

/// The partial pseudo-header sum of a TCP super-segment between `src` and `dst`, of one
/// family ([`pseudo_header_partial`] or [`pseudo_header_partial_v6`]); zero for a mixed pair,
/// which no segment has.
pub fn pseudo_header_partial_ip(
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    tcp_len: usize,
) -> [u8; 2] {
    pseudo_header_partial_for(IpNumber::TCP, src, dst, tcp_len)
}

/// [`pseudo_header_partial_ip`] for a segment of transport `proto` (a UDP super-datagram's
/// checksum field holds it, the length being the whole super-datagram's).
pub fn pseudo_header_partial_for(
    proto: IpNumber,
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    len: usize,
) -> [u8; 2] {
    use std::net::IpAddr;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => partial_v4(s.octets(), d.octets(), proto, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => partial_v6(s.octets(), d.octets(), proto, len),
        _ => [0, 0],
    }
}

/// [`segment`] for an IPv6 super-segment: every piece gets its own payload length, sequence
/// number, FIN and PSH on the last piece only, and a complete TCP checksum.
fn segment_v6(frame: &[u8], mss: usize) -> Option<Vec<Vec<u8>>> {
    let (tcp_at, payload_at, end) = segment_offsets(frame)?;
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
        let t = piece_header(&tcp, i, mss, last);
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
        assert_eq!(segment_offsets(&frame), Some((54, 74, 54 + 20 + 5000)));
    }

    /// A UDP super-datagram with its partial checksum, in either family, split in software:
    /// datagrams of the segment size (the last shorter) with their own lengths and complete
    /// checksums, IPv4 identifications consecutive; the payload whole across them.
    #[test]
    fn a_udp_super_datagram_splits_into_valid_datagrams() {
        use std::net::IpAddr;
        let data: Vec<u8> = (0..4500u32).map(|i| (i * 7) as u8).collect();
        for (src, dst) in [("10.0.0.1", "10.0.0.2"), ("2001:db8::1", "2001:db8::2")] {
            let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let len = UdpHeader::LEN + data.len();
            let mut udp = UdpHeader {
                source_port: 4000,
                destination_port: 53,
                length: len as u16,
                checksum: 0,
            }
            .to_bytes()
            .to_vec();
            udp[UDP_CHECKSUM_OFFSET..UDP_CHECKSUM_OFFSET + 2]
                .copy_from_slice(&pseudo_header_partial_for(IpNumber::UDP, src, dst, len));
            udp.extend_from_slice(&data);
            let mut frame = vec![0u8; 12];
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    frame.extend_from_slice(&EtherType::IPV4.0.to_be_bytes());
                    let mut ip =
                        Ipv4Header::new(0, 64, IpNumber::UDP, s.octets(), d.octets()).unwrap();
                    ip.set_payload_len(len).unwrap();
                    ip.identification = 100;
                    frame.extend_from_slice(&ip.to_bytes());
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    frame.extend_from_slice(&EtherType::IPV6.0.to_be_bytes());
                    let ip = Ipv6Header {
                        payload_length: len as u16,
                        next_header: IpNumber::UDP,
                        hop_limit: 64,
                        source: s.octets(),
                        destination: d.octets(),
                        ..Default::default()
                    };
                    frame.extend_from_slice(&ip.to_bytes());
                }
                _ => unreachable!(),
            }
            frame.extend_from_slice(&udp);
            assert!(is_udp(&frame));
            assert_eq!(checksum_offset(&frame), UDP_CHECKSUM_OFFSET);
            let pieces = segment(&frame, 1000).expect("a UDP frame");
            assert_eq!(pieces.len(), 5);
            let mut joined = Vec::new();
            for (i, p) in pieces.iter().enumerate() {
                let (l4_at, payload_at, end) = segment_offsets(p).expect("a UDP datagram");
                assert_eq!(end, p.len());
                let udp = &p[l4_at..];
                assert_eq!(
                    super::super::transport_checksum_ip(src, dst, 17, udp),
                    [0, 0],
                    "piece {i}"
                );
                let (h, _) = UdpHeader::from_slice(udp).unwrap();
                assert_eq!(usize::from(h.length), udp.len());
                assert_eq!((h.source_port, h.destination_port), (4000, 53));
                if src.is_ipv4() {
                    let (ip, _) = Ipv4Header::from_slice(&p[14..]).unwrap();
                    assert_eq!(ip.identification, 100 + i as u16);
                    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                }
                joined.extend_from_slice(&p[payload_at..]);
            }
            assert_eq!(
                pieces[4].len(),
                segment_offsets(&pieces[4]).unwrap().1 + 500
            );
            assert_eq!(joined, data);
        }
    }
}
