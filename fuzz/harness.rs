//! Fuzzing harness shared by the cargo-fuzz targets and `tests/fuzz_regressions.rs`: turns
//! arbitrary bytes into frames or TCP segments for one core under virtual time. A crash, a
//! hang or an unbounded queue is a bug; nothing else is asserted.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tapstack::core::{Interface, SocketId};
use tapstack::time::Instant;
use tapstack::wire::MacAddr;
use tapstack::StackConfig;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const US_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The interface under test and its sockets: a TCP listener on 80 and UDP echo on 7.
struct Sockets {
    listener: SocketId,
    udp: Option<SocketId>,
}

fn stack() -> (Interface, Sockets) {
    let mut cfg = StackConfig::new(US, 24);
    cfg.mac = MacAddr(US_MAC);
    cfg.seed = 1;
    // IPv6 too, its addresses in use at once, so that frames reach its parsers.
    cfg.ipv6 = Some(tapstack::Ipv6Config {
        addrs: vec![(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2), 64)],
        dad_transmits: 0,
        ..Default::default()
    });
    let mut iface = Interface::new(cfg, Instant::ZERO);
    // One dual-stack UDP socket on 7: both families' datagrams reach it.
    let udp = iface
        .udp_bind(std::net::SocketAddr::from((
            std::net::Ipv6Addr::UNSPECIFIED,
            7,
        )))
        .ok();
    let (listener, _) = iface
        .with_tcp(Instant::ZERO, |tcp, _| {
            // One dual-stack listener: both families' SYNs reach it.
            tcp.listen(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80)), 8)
        })
        .expect("listen");
    (iface, Sockets { listener, udp })
}

/// Splits `data` into length-prefixed pieces (one length byte, pieces up to 255 bytes; a
/// length byte of 0 takes the two next bytes as a big-endian length).
fn pieces(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (&first, rest) = data.split_first()?;
        let (len, rest) = match first {
            0 if rest.len() >= 2 => (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            ),
            n => (usize::from(n), rest),
        };
        let len = len.min(rest.len());
        let (piece, rest) = rest.split_at(len);
        data = rest;
        Some(piece)
    })
}

/// Keeps the application side busy: accept, read everything, answer a little.
fn drive(iface: &mut Interface, sockets: &Sockets, conns: &mut Vec<SocketId>, now: Instant) {
    while let Some(Ok((c, _))) = iface.with_tcp(now, |tcp, _| tcp.accept(sockets.listener)) {
        conns.push(c);
    }
    let mut buf = [0u8; 4096];
    for &c in conns.iter() {
        iface.with_tcp(now, |tcp, stats| {
            while matches!(tcp.recv(c, now, &mut buf, stats), Ok(n) if n > 0) {}
            let _ = tcp.send(c, now, b"reply", stats);
        });
    }
    if let Some(udp) = sockets.udp {
        while iface.udp_recv(udp).is_some() {}
    }
    while iface.pop_transmit().is_some() {}
    while iface.pop_event().is_some() {}
}

/// Runs timers for an hour of virtual time. Some never stop by design (zero-window probes go
/// on forever), so the bug looked for is a spin: many timer runs at the same instant.
fn settle(iface: &mut Interface, start: Instant) {
    let horizon = start + Duration::from_secs(3600);
    let mut now = start;
    let mut same_instant = 0;
    while let Some(t) = iface.poll_at().filter(|t| *t <= horizon) {
        if t <= now {
            same_instant += 1;
            assert!(same_instant < 1000, "timers spin at {now}");
        } else {
            same_instant = 0;
            now = t;
        }
        iface.poll(now);
        while iface.pop_transmit().is_some() {}
        while iface.pop_event().is_some() {}
    }
}

/// Arbitrary packets into the stack. Each piece's first byte steers the fix-ups that let the
/// rest reach past the first checks: bit 0 ARP or IPv4, bit 1 broadcast or our MAC, bit 2 a
/// correct IPv4 header checksum, bit 3 a correct UDP/TCP/ICMP checksum, bits 4-7 the time step.
/// Lengths and every other field stay the fuzzer's.
pub fn frames(data: &[u8]) {
    let (mut iface, sockets) = stack();
    let mut conns = Vec::new();
    let mut now = Instant::ZERO;
    for piece in pieces(data) {
        let Some((&ctl, packet)) = piece.split_first() else {
            continue;
        };
        let mut frame = etherparse::Ethernet2Header {
            source: PEER_MAC,
            destination: if ctl & 2 != 0 { [0xff; 6] } else { US_MAC },
            ether_type: if ctl & 1 != 0 {
                etherparse::EtherType::ARP
            } else {
                etherparse::EtherType::IPV4
            },
        }
        .to_bytes()
        .to_vec();
        frame.extend_from_slice(packet);
        if ctl & 1 == 0 {
            fix_checksums(&mut frame[14..], ctl & 4 != 0, ctl & 8 != 0);
        }
        now += Duration::from_millis(u64::from(ctl >> 4) * 16);
        iface.receive(now, &frame);
        iface.poll(now);
        drive(&mut iface, &sockets, &mut conns, now);
    }
    settle(&mut iface, now);
}

/// Repairs the IPv4 header checksum and, for UDP, TCP and ICMP, the transport checksum over
/// what the total length covers, where the packet is long enough to have them.
fn fix_checksums(p: &mut [u8], ip: bool, transport: bool) {
    if p.len() < 20 {
        return;
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    if ihl < 20 || ihl > p.len() {
        return;
    }
    if ip {
        p[10] = 0;
        p[11] = 0;
        let sum = tapstack::wire::checksum_bytes(&p[..ihl]);
        p[10..12].copy_from_slice(&sum);
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if !transport || total <= ihl {
        return;
    }
    let (src, dst) = ([p[12], p[13], p[14], p[15]], [p[16], p[17], p[18], p[19]]);
    let proto = p[9];
    let seg = &mut p[ihl..total];
    let at = match proto {
        1 => 2,
        6 => 16,
        17 => 6,
        _ => return,
    };
    if seg.len() < at + 2 {
        return;
    }
    seg[at] = 0;
    seg[at + 1] = 0;
    let sum = if proto == 1 {
        tapstack::wire::checksum_bytes(seg)
    } else {
        tapstack::wire::transport_checksum(src, dst, proto, seg)
    };
    seg[at..at + 2].copy_from_slice(&sum);
}

fn frame_for(tcp: &[u8]) -> Vec<u8> {
    let ip = etherparse::Ipv4Header::new(
        tcp.len() as u16,
        64,
        etherparse::IpNumber::TCP,
        PEER.octets(),
        US.octets(),
    )
    .expect("header");
    let mut f = Vec::with_capacity(54 + tcp.len());
    f.extend_from_slice(
        &etherparse::Ethernet2Header {
            source: PEER_MAC,
            destination: US_MAC,
            ether_type: etherparse::EtherType::IPV4,
        }
        .to_bytes(),
    );
    let mut ip = ip;
    ip.header_checksum = ip.calc_header_checksum();
    f.extend_from_slice(&ip.to_bytes());
    f.extend_from_slice(tcp);
    f
}

/// Segments for an established connection: a real handshake first, then each fuzzer piece
/// becomes a TCP segment (at least a header) whose ports are the connection's, whose sequence
/// and acknowledgement numbers are the fuzzer's offsets from the expected ones, and whose
/// checksum is correct, so it reaches the state machine.
pub fn segments(data: &[u8]) {
    let (mut iface, sockets) = stack();
    let mut conns = Vec::new();
    let mut now = Instant::ZERO;
    // Teach the stack the peer's address, then open a connection.
    let mut arp = etherparse::Ethernet2Header {
        source: PEER_MAC,
        destination: [0xff; 6],
        ether_type: etherparse::EtherType::ARP,
    }
    .to_bytes()
    .to_vec();
    arp.extend_from_slice(
        &etherparse::ArpEthIpv4Packet {
            operation: etherparse::ArpOperation::REQUEST,
            sender_mac: PEER_MAC,
            sender_ipv4: PEER.octets(),
            target_mac: [0; 6],
            target_ipv4: US.octets(),
        }
        .to_bytes(),
    );
    iface.receive(now, &arp);
    while iface.pop_transmit().is_some() {}
    let mut syn = etherparse::TcpHeader::new(40000, 80, 1000, 64240);
    syn.syn = true;
    let _ = syn.set_options(&[
        etherparse::TcpOptionElement::MaximumSegmentSize(1460),
        etherparse::TcpOptionElement::SelectiveAcknowledgementPermitted,
        etherparse::TcpOptionElement::Timestamp(1, 0),
        etherparse::TcpOptionElement::WindowScale(7),
    ]);
    let mut our_seq = 1001u32;
    let mut their_seq = 0u32;
    let send =
        |iface: &mut Interface, now: Instant, mut h: etherparse::TcpHeader, payload: &[u8]| {
            let ipv4 = etherparse::Ipv4Header::new(
                0,
                64,
                etherparse::IpNumber::TCP,
                PEER.octets(),
                US.octets(),
            )
            .expect("header");
            h.checksum = h.calc_checksum_ipv4(&ipv4, payload).unwrap_or(0);
            let mut tcp = h.to_bytes().to_vec();
            tcp.extend_from_slice(payload);
            iface.receive(now, &frame_for(&tcp));
        };
    send(&mut iface, now, syn, &[]);
    while let Some(f) = iface.pop_transmit() {
        if let Ok(t) = etherparse::TcpSlice::from_slice(&f[34..]) {
            if t.syn() && t.ack() {
                their_seq = t.sequence_number().wrapping_add(1);
            }
        }
    }
    let mut ack = etherparse::TcpHeader::new(40000, 80, our_seq, 502);
    ack.ack = true;
    ack.acknowledgment_number = their_seq;
    send(&mut iface, now, ack, &[]);
    drive(&mut iface, &sockets, &mut conns, now);

    for piece in pieces(data) {
        if piece.len() < 8 {
            continue;
        }
        // Bytes 0-1: seq offset, 2-3: ack offset, 4: flags, 5: time step, 6-7: window, rest: payload.
        let seq_off = i16::from_be_bytes([piece[0], piece[1]]) as i32;
        let ack_off = i16::from_be_bytes([piece[2], piece[3]]) as i32;
        let mut h = etherparse::TcpHeader::new(
            40000,
            80,
            our_seq.wrapping_add(seq_off as u32),
            u16::from_be_bytes([piece[6], piece[7]]),
        );
        let flags = piece[4];
        h.fin = flags & 1 != 0;
        h.syn = flags & 2 != 0;
        h.rst = flags & 4 != 0;
        h.psh = flags & 8 != 0;
        h.ack = flags & 16 != 0;
        h.acknowledgment_number = their_seq.wrapping_add(ack_off as u32);
        if flags & 32 != 0 {
            let _ = h.set_options(&[etherparse::TcpOptionElement::Timestamp(
                u32::from(piece[5]),
                0,
            )]);
        }
        if flags & 64 != 0 {
            let l = our_seq.wrapping_add(1000);
            let _ = h.set_options(&[etherparse::TcpOptionElement::SelectiveAcknowledgement(
                (l, l.wrapping_add(500)),
                [None, None, None],
            )]);
        }
        let payload = &piece[8..];
        send(&mut iface, now, h, payload);
        if seq_off == 0 && !payload.is_empty() {
            our_seq = our_seq.wrapping_add(payload.len() as u32);
        }
        now += Duration::from_millis(u64::from(piece[5]));
        iface.poll(now);
        drive(&mut iface, &sockets, &mut conns, now);
        their_seq = conns
            .first()
            .and_then(|c| iface.tcp().info(*c))
            .map_or(their_seq, |t| t.snd.nxt.0);
    }
    settle(&mut iface, now);
}
