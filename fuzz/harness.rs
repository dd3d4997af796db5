//! Fuzzing harness shared by the cargo-fuzz targets and `tests/fuzz_regressions.rs`: turns
//! arbitrary bytes into frames or TCP segments for a core under virtual time: a server, an
//! intercepting (catch-all) core, or two queues of one link passing frames on. A crash, a
//! hang, an unbounded queue or a frame passed round the queues more than once is a bug;
//! nothing else is asserted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tapstack::core::{EchoVerdict, FlowDecision, Interface, PassOn, SocketId};
use tapstack::tcp::intercept::Verdict;
use tapstack::time::Instant;
use tapstack::wire::MacAddr;
use tapstack::{EchoMode, InterceptConfig, StackConfig};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const US_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The interface under test and its sockets: a TCP listener on 80, UDP on 7, and UDP on 53
/// connected to the peer.
struct Sockets {
    listener: SocketId,
    udp: Option<SocketId>,
    connected: Option<SocketId>,
}

/// The configuration every core starts from: IPv4, and IPv6 too, its addresses in use at
/// once, so that frames reach its parsers.
fn config() -> StackConfig {
    let mut cfg = StackConfig::new(US, 24);
    cfg.mac = MacAddr(US_MAC);
    cfg.seed = 1;
    cfg.ipv6 = Some(tapstack::Ipv6Config {
        addrs: vec![(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2), 64)],
        dad_transmits: 0,
        ..Default::default()
    });
    cfg
}

fn stack() -> (Interface, Sockets) {
    serve(config())
}

/// An interface of `cfg` with its sockets open.
fn serve(cfg: StackConfig) -> (Interface, Sockets) {
    let mut iface = Interface::new(cfg, Instant::ZERO);
    // One dual-stack UDP socket on 7: both families' datagrams reach it (IPv4 only on a
    // queue without IPv6).
    let udp = iface
        .udp_bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 7)))
        .or_else(|_| iface.udp_bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 7))))
        .ok();
    // One connected to the peer's port 53: what others send to 53 no socket takes.
    let connected = iface
        .udp_bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53)))
        .ok();
    if let Some(c) = connected {
        let _ = iface.udp_connect(c, SocketAddr::from((PEER, 53)));
    }
    let (listener, _) = iface
        .with_tcp(Instant::ZERO, |tcp, _| {
            // One dual-stack listener: both families' SYNs reach it.
            tcp.listen(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80)), 8)
        })
        .expect("listen");
    (
        iface,
        Sockets {
            listener,
            udp,
            connected,
        },
    )
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
    drive_flows(iface, sockets, conns, &mut Vec::new(), now);
}

/// [`drive`], and for an intercepting core: a verdict on every offer (the client's port
/// picks which), and an answer on every intercepted UDP flow accepted (`flows`).
fn drive_flows(
    iface: &mut Interface,
    sockets: &Sockets,
    conns: &mut Vec<SocketId>,
    flows: &mut Vec<SocketId>,
    now: Instant,
) {
    if let Some(io) = iface.intercept_io() {
        let (tcp, udp, echo) = {
            let mut offers = io.lock();
            let tcp: Vec<_> = offers.tcp.drain(..).collect();
            let udp: Vec<_> = offers.udp.drain(..).collect();
            let echo: Vec<_> = offers.echo.drain(..).collect();
            (tcp, udp, echo)
        };
        let buffers = iface.config().tcp.buffers();
        for offer in tcp {
            let verdict = match offer.remote.port() % 4 {
                0 => Verdict::Accept,
                1 => Verdict::Reset,
                2 => Verdict::Unreachable,
                _ => Verdict::Ignore,
            };
            iface.intercept_tcp(now, offer.id, verdict, None, buffers);
            if verdict == Verdict::Accept {
                conns.push(offer.id);
            }
        }
        for offer in udp {
            let decision = match offer.remote.port() % 3 {
                0 => FlowDecision::Accept,
                1 => FlowDecision::Refuse,
                _ => FlowDecision::Ignore,
            };
            iface.udp_flow_decide(now, offer.id, decision);
            if decision == FlowDecision::Accept {
                flows.push(offer.id);
            }
        }
        for offer in echo {
            let verdict = match offer.message.len() % 3 {
                0 => EchoVerdict::Reply,
                1 => EchoVerdict::Unreachable,
                _ => EchoVerdict::Ignore,
            };
            iface.intercept_echo_answer(now, &offer, verdict);
        }
    }
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
    for udp in [sockets.udp, sockets.connected].into_iter().flatten() {
        while iface.udp_recv(udp).is_some() {}
    }
    for &f in flows.iter() {
        if iface.udp_recv(f).is_some() {
            while iface.udp_recv(f).is_some() {}
            let _ = iface.udp_send(now, f, b"reply", None);
        }
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

/// A core of the fuzzed setup and what its application holds.
struct Core {
    iface: Interface,
    sockets: Sockets,
    conns: Vec<SocketId>,
    /// Intercepted UDP flows accepted.
    flows: Vec<SocketId>,
}

impl Core {
    fn new(cfg: StackConfig) -> Core {
        let (iface, sockets) = serve(cfg);
        Core {
            iface,
            sockets,
            conns: Vec::new(),
            flows: Vec::new(),
        }
    }
}

/// The cores an input meets, by its first byte: 0 a server (a listener on 80, UDP on 7 and
/// a connected socket on 53); 1 and 2 the same intercepting every flow, pings answered by the
/// stack (1) or handed to the application (2); 3 two queues of one link, each such a server
/// answering every SYN with a cookie, passing frames on.
fn setup(choice: u8) -> Vec<Core> {
    match choice % 4 {
        0 => vec![Core::new(config())],
        choice @ (1 | 2) => {
            let mut cfg = config();
            cfg.intercept = Some(InterceptConfig {
                echo: if choice == 1 {
                    EchoMode::Answer
                } else {
                    EchoMode::Deliver
                },
                ..InterceptConfig::default()
            });
            vec![Core::new(cfg)]
        }
        _ => (0..2)
            .map(|queue| {
                let mut cfg = config();
                cfg.queues = 2;
                cfg.queue = queue;
                cfg.tcp.syn_backlog = 0;
                Core::new(cfg)
            })
            .collect(),
    }
}

/// `frame` arrives on queue `at` and goes round the queues as the runtime passes it on
/// (`runtime::Stack::take_passed`): a queue that does not take it hands it to the next, the
/// last of the round answers it, and an ARP message is copied to every other queue.
fn deliver(cores: &mut [Core], at: usize, now: Instant, frame: &[u8]) {
    let n = cores.len();
    cores[at].iface.receive(now, frame);
    let mut verdict = cores[at].iface.take_pass_on();
    let (mut queue, mut hops, mut frame) = (at, 0, frame.to_vec());
    loop {
        if verdict == PassOn::Keep {
            return;
        }
        if let Some(rebuilt) = cores[queue].iface.take_rebuilt() {
            frame = rebuilt;
        }
        if verdict == PassOn::Everyone {
            for k in 1..n {
                cores[(queue + k) % n]
                    .iface
                    .receive_neighbour_copy(now, &frame);
            }
            return;
        }
        hops += 1;
        assert!(hops < n, "a frame went round all {n} queues and on");
        queue = (queue + 1) % n;
        cores[queue].iface.receive_passed(now, &frame, hops, false);
        verdict = cores[queue].iface.take_pass_on();
    }
}

/// Arbitrary packets into the cores [`setup`] chooses by the input's first byte, which then
/// takes each piece in turn (two queues: on alternate queues). Each piece's first byte steers
/// the fix-ups that let the rest reach past the first checks: bits 0-1 the EtherType (IPv4,
/// ARP, IPv6, or the piece's next two bytes), bit 2 a broadcast (IPv6: multicast) or our
/// MAC, bit 3 correct IPv4 header and UDP/TCP/ICMP/ICMPv6 checksums, bits 4-7 the time step.
/// Lengths and every other field stay the fuzzer's.
pub fn frames(data: &[u8]) {
    let Some((&choice, data)) = data.split_first() else {
        return;
    };
    let mut cores = setup(choice);
    let mut now = Instant::ZERO;
    for (i, piece) in pieces(data).enumerate() {
        let Some((&ctl, mut packet)) = piece.split_first() else {
            continue;
        };
        let ether_type = match ctl & 3 {
            0 => etherparse::EtherType::IPV4,
            1 => etherparse::EtherType::ARP,
            2 => etherparse::EtherType::IPV6,
            _ => match packet {
                [a, b, rest @ ..] => {
                    packet = rest;
                    etherparse::EtherType(u16::from_be_bytes([*a, *b]))
                }
                _ => continue,
            },
        };
        let destination = match (ctl & 4 != 0, ether_type) {
            (false, _) => US_MAC,
            // The group of the packet's destination address (RFC 2464 §7).
            (true, etherparse::EtherType::IPV6) => match packet.get(36..40) {
                Some(&[a, b, c, d]) => [0x33, 0x33, a, b, c, d],
                _ => [0x33, 0x33, 0, 0, 0, 1],
            },
            (true, _) => [0xff; 6],
        };
        let mut frame = etherparse::Ethernet2Header {
            source: PEER_MAC,
            destination,
            ether_type,
        }
        .to_bytes()
        .to_vec();
        frame.extend_from_slice(packet);
        if ctl & 8 != 0 {
            match ether_type {
                etherparse::EtherType::IPV4 => fix_checksums(&mut frame[14..]),
                etherparse::EtherType::IPV6 => fix_checksums6(&mut frame[14..]),
                _ => {}
            }
        }
        now += Duration::from_millis(u64::from(ctl >> 4) * 16);
        let at = i % cores.len();
        deliver(&mut cores, at, now, &frame);
        for core in &mut cores {
            core.iface.poll(now);
            let Core {
                iface,
                sockets,
                conns,
                flows,
            } = core;
            drive_flows(iface, sockets, conns, flows, now);
        }
    }
    for core in &mut cores {
        settle(&mut core.iface, now);
    }
}

/// Repairs the UDP, TCP or ICMPv6 checksum of an IPv6 packet whose first header is one of
/// them, over what the payload length covers, where the packet is long enough to have it.
fn fix_checksums6(p: &mut [u8]) {
    const HEADER: usize = 40;
    if p.len() < HEADER || p[0] >> 4 != 6 {
        return;
    }
    let addr = |at: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&p[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let (src, dst) = (addr(8), addr(24));
    let next = p[6];
    let len = usize::from(u16::from_be_bytes([p[4], p[5]])).min(p.len() - HEADER);
    let at = match next {
        6 => 16,
        17 => 6,
        58 => 2,
        _ => return,
    };
    let seg = &mut p[HEADER..HEADER + len];
    if seg.len() < at + 2 {
        return;
    }
    seg[at] = 0;
    seg[at + 1] = 0;
    let mut sum = tapstack::wire::transport_checksum_ip(src, dst, next, seg);
    if next == 17 && sum == [0, 0] {
        // A UDP checksum of zero is sent as all ones (RFC 768; RFC 8200 §8.1).
        sum = [0xff, 0xff];
    }
    seg[at..at + 2].copy_from_slice(&sum);
}

/// Repairs the IPv4 header checksum and, for UDP, TCP and ICMP, the transport checksum over
/// what the total length covers, where the packet is long enough to have them and is not a
/// fragment.
fn fix_checksums(p: &mut [u8]) {
    if p.len() < 20 {
        return;
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    if ihl < 20 || ihl > p.len() {
        return;
    }
    p[10] = 0;
    p[11] = 0;
    let sum = tapstack::wire::checksum_bytes(&p[..ihl]);
    p[10..12].copy_from_slice(&sum);
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    // A fragment holds part of a datagram, whose checksum covers the whole.
    let fragment = u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0;
    if total <= ihl || fragment {
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

/// The peer's IPv6 address, on our prefix.
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Ours, as [`config`] gives it.
const US6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// A Neighbour Solicitation for our address from the peer, with its link-layer address
/// (RFC 4861 §4.3): the stack learns the peer from it, as it would from an ARP request.
fn neighbour_solicitation() -> Vec<u8> {
    let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&US6.octets());
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&PEER_MAC);
    let sum = tapstack::wire::transport_checksum_ip(PEER6.into(), group.into(), 58, &ns);
    ns[2..4].copy_from_slice(&sum);
    let ip = etherparse::Ipv6Header {
        payload_length: ns.len() as u16,
        next_header: etherparse::IpNumber::IPV6_ICMP,
        hop_limit: 255,
        source: PEER6.octets(),
        destination: group.octets(),
        ..Default::default()
    };
    let mut f = etherparse::Ethernet2Header {
        source: PEER_MAC,
        destination: [0x33, 0x33, 0xff, 0, 0, 2],
        ether_type: etherparse::EtherType::IPV6,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(&ip.to_bytes());
    f.extend_from_slice(&ns);
    f
}

/// A frame from the peer to us carrying `h` and `payload` over IPv6, its checksum made.
fn frame_for6(mut h: etherparse::TcpHeader, payload: &[u8]) -> Vec<u8> {
    let ip = etherparse::Ipv6Header {
        payload_length: (h.header_len() + payload.len()) as u16,
        next_header: etherparse::IpNumber::TCP,
        hop_limit: 64,
        source: PEER6.octets(),
        destination: US6.octets(),
        ..Default::default()
    };
    h.checksum = h.calc_checksum_ipv6(&ip, payload).unwrap_or(0);
    let mut f = etherparse::Ethernet2Header {
        source: PEER_MAC,
        destination: US_MAC,
        ether_type: etherparse::EtherType::IPV6,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(&ip.to_bytes());
    f.extend_from_slice(&h.to_bytes());
    f.extend_from_slice(payload);
    f
}

/// Segments for an established connection over IPv4: a real handshake first, then each
/// fuzzer piece becomes a TCP segment (at least a header) whose ports are the connection's,
/// whose sequence and acknowledgement numbers are the fuzzer's offsets from the expected
/// ones, and whose checksum is correct, so it reaches the state machine.
pub fn segments(data: &[u8]) {
    segments_over(data, false);
}

/// [`segments`] over IPv6, the peer taught by a Neighbour Solicitation.
pub fn segments6(data: &[u8]) {
    segments_over(data, true);
}

fn segments_over(data: &[u8], v6: bool) {
    let (mut iface, sockets) = stack();
    let mut conns = Vec::new();
    let mut now = Instant::ZERO;
    if v6 {
        iface.receive(now, &neighbour_solicitation());
        while iface.pop_transmit().is_some() {}
    }
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
            if v6 {
                iface.receive(now, &frame_for6(h, payload));
                return;
            }
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
    // Where the TCP header of our SYN-ACK starts: behind the Ethernet and IP headers.
    let tcp_at = if v6 { 54 } else { 34 };
    while let Some(f) = iface.pop_transmit() {
        if let Ok(t) = etherparse::TcpSlice::from_slice(&f[tcp_at.min(f.len())..]) {
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
