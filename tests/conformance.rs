//! RFC 9293 Appendix B MUSTs checked at the IP boundary of one core, frame in and frames out
//! (the TCP-only ones are in src/tcp/conformance.rs; the map is docs/conformance.md).

mod common;

use common::*;
use etherparse::{Icmpv4Type, PacketBuilder, TcpOptionElement};
use std::net::{Ipv4Addr, SocketAddrV4};
use tapstack::core::Interface;
use tapstack::time::Instant;
use tapstack::wire::MacAddr;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const US_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const ETH: usize = 14;
/// Where the TOS byte and the protocol sit in a frame's IPv4 header (RFC 791).
const IP_TOS_AT: usize = ETH + 1;
const IP_PROTOCOL_AT: usize = ETH + 9;

/// A core listening on port 80 that knows the peer's MAC (so it answers without ARP).
fn server() -> Interface {
    let mut iface = Interface::new(config(2, 7), Instant::ZERO);
    iface
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    iface.receive(Instant::ZERO, &arp_request(PEER_MAC, PEER, US));
    while iface.pop_transmit().is_some() {}
    iface
}

/// A SYN from the peer to `dst` (link destination `dst_mac`) on port 80.
fn syn(dst: Ipv4Addr, dst_mac: MacAddr) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC.0, dst_mac.0)
        .ipv4(PEER.octets(), dst.octets(), 64)
        .tcp(40000, 80, 1000, 64240)
        .syn()
        .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap()
        .write(&mut f, &[])
        .unwrap();
    f
}

/// `frame` with `options` inserted into its IPv4 header (lengths and checksum fixed).
fn with_ip_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut f = frame[..ETH + 20].to_vec();
    f.extend_from_slice(options);
    f.extend_from_slice(&frame[ETH + 20..]);
    f[ETH] = 0x40 | ((20 + options.len()) / 4) as u8;
    let total = (f.len() - ETH) as u16;
    f[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
    f[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
    let sum = tapstack::wire::checksum_bytes(&f[ETH..ETH + 20 + options.len()]);
    f[ETH + 10..ETH + 12].copy_from_slice(&sum);
    f
}

fn sent(iface: &mut Interface) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| iface.pop_transmit()).collect()
}

/// The SYN-ACK among `frames`, parsed: (IP source, TCP flags SYN and ACK).
fn syn_ack(frames: &[Vec<u8>]) -> Option<Ipv4Addr> {
    frames.iter().find_map(|f| {
        let p = etherparse::SlicedPacket::from_ethernet(f).ok()?;
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            return None;
        };
        match p.transport {
            Some(etherparse::TransportSlice::Tcp(t)) if t.syn() && t.ack() => {
                Some(ip.header().source_addr())
            }
            _ => None,
        }
    })
}

/// MUST-45: segments of a connection carry its local address as their source.
#[test]
fn must_45_a_connection_sends_from_its_local_address() {
    let mut iface = server();
    iface.receive(Instant::ZERO, &syn(US, US_MAC));
    assert_eq!(syn_ack(&sent(&mut iface)), Some(US));
}

/// MUST-50: IP options TCP does not understand are ignored, not a reason to drop.
#[test]
fn must_50_ip_options_are_ignored() {
    let mut iface = server();
    // Record Route with one empty slot, then End of Options List.
    let rr = [7, 7, 4, 0, 0, 0, 0, 0];
    iface.receive(Instant::ZERO, &with_ip_options(&syn(US, US_MAC), &rr));
    assert_eq!(
        syn_ack(&sent(&mut iface)),
        Some(US),
        "answered despite the option"
    );
}

/// MUST-55: a Source Quench is discarded silently: the connection goes on as before.
#[test]
fn must_55_source_quench_is_discarded() {
    let mut iface = server();
    iface.receive(Instant::ZERO, &syn(US, US_MAC));
    let ours = sent(&mut iface).remove(0);
    let before = iface.counters();
    let ip_len = 20;
    let quote = &ours[ETH..ETH + ip_len + 8];
    let quench = Icmpv4Type::Unknown {
        type_u8: 4,
        code_u8: 0,
        bytes5to8: [0; 4],
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC.0, US_MAC.0)
        .ipv4(PEER.octets(), US.octets(), 64)
        .icmpv4(quench)
        .write(&mut f, quote)
        .unwrap();
    iface.receive(Instant::ZERO, &f);
    assert!(
        sent(&mut iface).is_empty(),
        "nothing answers a Source Quench"
    );
    let after = iface.counters();
    assert_eq!(after.icmp_rx_other, before.icmp_rx_other + 1);
    assert_eq!(after.tcp_attempt_fails, before.tcp_attempt_fails);
    // The handshake completes as if nothing happened.
    let mut ack = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC.0, US_MAC.0)
        .ipv4(PEER.octets(), US.octets(), 64)
        .tcp(40000, 80, 1001, 64240)
        .ack(u32::from_be_bytes(ours[ETH + 24..ETH + 28].try_into().unwrap()) + 1)
        .write(&mut ack, &[])
        .unwrap();
    iface.receive(Instant::ZERO, &ack);
    assert_eq!(iface.counters().tcp_curr_estab, 1);
}

/// MUST-57: a SYN to a broadcast or multicast address is discarded silently.
#[test]
fn must_57_syns_to_broadcast_or_multicast_are_discarded() {
    let mut iface = server();
    for (dst, mac) in [
        (Ipv4Addr::new(10, 0, 0, 255), MacAddr::BROADCAST),
        (Ipv4Addr::BROADCAST, MacAddr::BROADCAST),
        (Ipv4Addr::new(224, 0, 0, 1), MacAddr([1, 0, 0x5e, 0, 0, 1])),
        // Our address, but sent to the link's broadcast address.
        (US, MacAddr::BROADCAST),
    ] {
        iface.receive(Instant::ZERO, &syn(dst, mac));
        assert!(
            sent(&mut iface).is_empty(),
            "answered a SYN to {dst} via {mac}"
        );
    }
    assert_eq!(iface.tcp().table_len(), 0, "no connection was made");
}

/// MUST-48: the application sets the Diffserv field of a connection's segments.
#[test]
fn must_48_the_application_sets_the_diffserv_field() {
    let mut iface = server();
    iface.receive(Instant::ZERO, &syn(US, US_MAC));
    assert_eq!(sent(&mut iface)[0][ETH + 1], 0, "0 by default");
    let mut client = Interface::new(config(2, 8), Instant::ZERO);
    client.receive(Instant::ZERO, &arp_request(PEER_MAC, PEER, US));
    while client.pop_transmit().is_some() {}
    let c = client
        .with_tcp(Instant::ZERO, |tcp, stats| {
            tcp.connect(
                Instant::ZERO,
                None,
                SocketAddrV4::new(PEER, 80).into(),
                stats,
            )
        })
        .unwrap();
    assert_eq!(
        sent(&mut client)[0][ETH + 1],
        0,
        "the first SYN, before the call"
    );
    client
        .with_tcp(Instant::ZERO, |tcp, _| tcp.set_dscp(c, 46))
        .unwrap();
    assert!(client
        .with_tcp(Instant::ZERO, |tcp, _| tcp.set_dscp(c, 64))
        .is_err());
    // A retransmitted SYN carries it: DSCP 46 (EF) is TOS byte 0xb8.
    client.poll(Instant::from_millis(1100));
    let frames = sent(&mut client);
    assert!(!frames.is_empty());
    assert!(
        frames.iter().all(|f| f[ETH + 1] == 0xb8),
        "{:x?}",
        frames[0][ETH + 1]
    );
}

/// MUST-48 with SHLD-21 and Linux's `IP_TOS` semantics: a Diffserv field set before the
/// connect is in the SYN already; a listener's is in its SYN-ACKs and in every segment of the
/// connections it opens; and a connection may change it at any time.
#[test]
fn must_48_the_diffserv_field_before_the_syn_from_the_listener_and_changed_later() {
    let mut client = Interface::new(config(2, 8), Instant::ZERO);
    client.receive(Instant::ZERO, &arp_request(PEER_MAC, PEER, US));
    while client.pop_transmit().is_some() {}
    let buffers = client.config().tcp.buffers();
    client
        .with_tcp(Instant::ZERO, |tcp, stats| {
            let peer = SocketAddrV4::new(PEER, 80);
            let opts = tapstack::tcp::SocketOpts {
                buffers,
                dscp: 46,
                ..Default::default()
            };
            tcp.connect_with(Instant::ZERO, None, peer.into(), opts, stats)
        })
        .unwrap();
    assert_eq!(sent(&mut client)[0][IP_TOS_AT], 0xb8, "the first SYN: EF");

    // a listens with DSCP 10 (AF11, TOS byte 0x28); b connects with the default.
    let mut sim = Sim::pair();
    let tos = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = tos.clone();
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        if f.get(IP_PROTOCOL_AT) == Some(&6) {
            seen.borrow_mut().push(f[IP_TOS_AT]);
        }
        true
    }));
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80);
    let (l, _) = sim.a.iface.tcp_listen(any, 8).unwrap();
    let now = sim.now;
    sim.a
        .iface
        .with_tcp(now, |tcp, _| tcp.set_dscp(l, 10))
        .unwrap();
    let c = sim
        .b
        .iface
        .tcp_connect(now, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80))
        .unwrap();
    sim.advance(std::time::Duration::from_millis(10));
    assert!(matches!(sim.b.iface.tcp_connect_result(c), Some(Ok(()))));
    let (s, _) = sim.a.iface.tcp_accept(l).expect("accepted").unwrap();
    let now = sim.now;
    sim.a.iface.tcp_send(now, s, b"inherited").unwrap();
    sim.advance(std::time::Duration::from_millis(10));
    assert!(tos.borrow().len() >= 2, "a SYN-ACK and data");
    assert!(
        tos.borrow().iter().all(|&t| t == 0x28),
        "{:x?}",
        tos.borrow()
    );

    tos.borrow_mut().clear();
    let now = sim.now;
    sim.a
        .iface
        .with_tcp(now, |tcp, _| tcp.set_dscp(s, 46))
        .unwrap();
    sim.a.iface.tcp_send(now, s, b"changed").unwrap();
    sim.advance(std::time::Duration::from_millis(10));
    assert!(!tos.borrow().is_empty());
    assert!(
        tos.borrow().iter().all(|&t| t == 0xb8),
        "{:x?}",
        tos.borrow()
    );
}
