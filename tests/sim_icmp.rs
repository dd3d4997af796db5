//! ICMP errors about TCP segments: path MTU discovery (RFC 1191, RFC 5927) and soft errors
//! (RFC 1122 §4.2.3.9, RFC 5461), between two cores over the in-memory link, with a "router"
//! on a's side that drops frames over its MTU and answers with "fragmentation needed".

mod common;

use common::*;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{Icmpv4Type, PacketBuilder};
use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;
use tapstack::core::SocketId;
use tapstack::tcp::State;

const ROUTER: [u8; 4] = [10, 0, 0, 254];
const ETH: usize = 14;

/// An ICMP error from the router to the sender of `frame` (an Ethernet frame a sent), quoting
/// its IP header and first 8 bytes of TCP, as RFC 792 asks.
fn icmp_about(frame: &[u8], t: Icmpv4Type) -> Vec<u8> {
    let ip = etherparse::Ipv4HeaderSlice::from_slice(&frame[ETH..]).unwrap();
    let quote = &frame[ETH..ETH + ip.slice().len() + 8];
    let (dst_mac, src_mac) = (&frame[6..12], &frame[0..6]);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src_mac.try_into().unwrap(), dst_mac.try_into().unwrap())
        .ipv4(ROUTER, ip.source(), 64)
        .icmpv4(t)
        .write(&mut f, quote)
        .unwrap();
    f
}

fn is_ipv4(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&etherparse::EtherType::IPV4.0.to_be_bytes()[..])
}

/// Errors the router has to send, shared between its filter and the test.
type Pending = Rc<RefCell<Vec<Vec<u8>>>>;

/// A router on a's side with a 1000-byte MTU: bigger frames are dropped and answered.
fn narrow_path(sim: &mut Sim, mtu: u16) -> Pending {
    let pending: Pending = Rc::default();
    let answers = pending.clone();
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        if f.len() - ETH <= usize::from(mtu) {
            return true;
        }
        let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: mtu,
        });
        answers.borrow_mut().push(icmp_about(f, t));
        false
    }));
    pending
}

/// Sends `data` from a to b, delivering the router's errors to a; the virtual time it took.
fn transfer_through(
    sim: &mut Sim,
    pending: &Pending,
    c: SocketId,
    s: SocketId,
    data: &[u8],
) -> Duration {
    let start = sim.now;
    let (mut sent, mut got) = (0, Vec::new());
    let mut buf = vec![0u8; 1 << 16];
    while got.len() < data.len() {
        assert!(
            sim.now - start < Duration::from_secs(60),
            "stalled at {} bytes",
            got.len()
        );
        let now = sim.now;
        if sent < data.len() {
            sent += sim.a.iface.tcp_send(now, c, &data[sent..]).unwrap_or(0);
        }
        sim.advance(Duration::from_millis(1));
        for f in pending.borrow_mut().drain(..) {
            let now = sim.now;
            sim.a.iface.receive(now, &f);
        }
        let now = sim.now;
        while let Ok(n) = sim.b.iface.tcp_recv(now, s, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(sha256(&got), sha256(data));
    sim.now - start
}

#[test]
fn fragmentation_needed_shrinks_the_mss_and_the_transfer_goes_on() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    assert_eq!(sim.a.iface.tcp_info(c).unwrap().snd.mss, 1460);
    let pending = narrow_path(&mut sim, 1000);
    let data = pattern(1 << 20, 3);
    let took = transfer_through(&mut sim, &pending, c, s, &data);
    let info = sim.a.iface.tcp_info(c).unwrap();
    assert_eq!(info.snd.mss, 960, "the path MTU less 40 bytes of headers");
    let counters = sim.a.iface.counters();
    assert_eq!(counters.tcp_pmtu_reductions, 1, "{counters}");
    assert_eq!(counters.tcp_timeouts, 0, "no black hole: {counters}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_forged_fragmentation_needed_is_ignored() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    // A frame from a, to quote: a 1-byte segment.
    let now = sim.now;
    let seen: Pending = Rc::default();
    let keep = seen.clone();
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        keep.borrow_mut().push(f.to_vec());
        true
    }));
    sim.a.iface.tcp_send(now, c, b"x").unwrap();
    sim.advance(Duration::from_millis(50));
    let frame = seen.borrow().last().cloned().expect("a segment");
    // The same segment, acknowledged by now: its sequence number is no longer in flight, as
    // an attacker's guess would not be (RFC 5927 §4.1).
    let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 600,
    });
    let now = sim.now;
    sim.a.iface.receive(now, &icmp_about(&frame, t));
    assert_eq!(sim.a.iface.tcp_info(c).unwrap().snd.mss, 1460);
    assert_eq!(sim.a.iface.counters().tcp_icmp_out_of_window, 1);
    let _ = s;
}

#[test]
fn an_unreachable_error_is_soft_for_an_established_connection_and_fatal_for_a_connect() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let seen: Pending = Rc::default();
    let keep = seen.clone();
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        keep.borrow_mut().push(f.to_vec());
        false // lost: the data stays in flight
    }));
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, b"data").unwrap();
    sim.advance(Duration::from_millis(1));
    let frame = seen.borrow().last().cloned().expect("a segment");
    let unreachable = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host);
    let now = sim.now;
    sim.a
        .iface
        .receive(now, &icmp_about(&frame, unreachable.clone()));
    assert_eq!(
        sim.a.iface.tcp_state(c),
        Some(State::Established),
        "a soft error"
    );
    let shared = sim.a.iface.tcp().io(c).unwrap();
    assert_eq!(shared.lock().soft_error, Some(libc::EHOSTUNREACH));
    // The path heals: the data arrives, the connection never noticed.
    sim.a_out_filter = None;
    sim.advance(Duration::from_secs(2));
    let mut buf = [0u8; 16];
    let now = sim.now;
    assert_eq!(sim.b.iface.tcp_recv(now, s, &mut buf).unwrap(), 4);

    // A connection attempt fails at once, with the error's errno.
    let mut sim = Sim::pair();
    let seen: Pending = Rc::default();
    let keep = seen.clone();
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        if !is_ipv4(f) {
            return true; // ARP goes through
        }
        keep.borrow_mut().push(f.to_vec());
        false
    }));
    let now = sim.now;
    let c = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80))
        .unwrap();
    sim.advance(Duration::from_millis(1));
    let syn = seen.borrow().last().cloned().expect("a SYN");
    let now = sim.now;
    sim.a.iface.receive(now, &icmp_about(&syn, unreachable));
    assert_eq!(
        sim.a
            .iface
            .tcp_connect_result(c)
            .map(|r| r.map_err(|e| e.raw_os_error())),
        Some(Err(Some(libc::EHOSTUNREACH)))
    );
}

/// `IP_TTL` per socket: a connection's segments and a UDP socket's datagrams carry the TTL
/// set on them; others keep the stack's 64.
#[test]
fn each_socket_sends_with_its_own_ttl() {
    let mut sim = Sim::pair();
    let (c, _s) = connect(&mut sim);
    let ttls: Pending = Rc::default();
    let keep = ttls.clone();
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        if let Ok(ip) = etherparse::Ipv4HeaderSlice::from_slice(&f[ETH..]) {
            keep.borrow_mut().push(vec![ip.protocol().0, ip.ttl()]);
        }
        true
    }));
    let now = sim.now;
    sim.a
        .iface
        .with_tcp(now, |tcp, _| tcp.set_ttl(c, Some(7)))
        .unwrap();
    assert!(sim
        .a
        .iface
        .with_tcp(now, |tcp, _| tcp.set_ttl(c, Some(0)))
        .is_err());
    sim.a.iface.tcp_send(now, c, b"low").unwrap();
    let u = sim
        .a
        .iface
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000).into())
        .unwrap();
    sim.a.iface.udp_set_ttl(u, Some(9)).unwrap();
    assert_eq!(sim.a.iface.udp_ttl(u).unwrap(), 9);
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7);
    sim.a
        .iface
        .udp_send(now, u, b"hi", Some(dst.into()))
        .unwrap();
    let v = sim
        .a
        .iface
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5001).into())
        .unwrap();
    sim.a
        .iface
        .udp_send(now, v, b"default", Some(dst.into()))
        .unwrap();
    sim.advance(Duration::from_millis(10));
    let seen = ttls.borrow();
    let tcp: Vec<u8> = seen
        .iter()
        .filter(|p| p[0] == etherparse::IpNumber::TCP.0)
        .map(|p| p[1])
        .collect();
    let udp: Vec<u8> = seen
        .iter()
        .filter(|p| p[0] == etherparse::IpNumber::UDP.0)
        .map(|p| p[1])
        .collect();
    assert_eq!(tcp, [7], "the data segment");
    assert_eq!(udp, [9, 64], "the socket with IP_TTL, then one without");
}

/// TCP talks to one host (RFC 9293 MUST-46): connecting to a broadcast or multicast address,
/// the subnet's directed broadcast included, fails with ENETUNREACH (as Linux) and sends nothing.
#[test]
fn no_connection_to_a_broadcast_or_multicast_address() {
    let mut sim = Sim::pair();
    sim.advance(Duration::from_millis(10));
    let sent = Rc::new(RefCell::new(0));
    let count = sent.clone();
    sim.a_out_filter = Some(Box::new(move |_: &[u8]| {
        *count.borrow_mut() += 1;
        true
    }));
    for ip in [[10, 0, 0, 255], [255, 255, 255, 255], [224, 0, 0, 1]] {
        let now = sim.now;
        let err = sim
            .a
            .iface
            .tcp_connect(now, SocketAddrV4::new(Ipv4Addr::from(ip), 80))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{ip:?}");
    }
    sim.advance(Duration::from_millis(10));
    assert_eq!(*sent.borrow(), 0, "nothing sent");
}

/// RFC 9293 MUST-23: a SYN is retransmitted for at least 3 minutes before a connect fails.
#[test]
fn a_connect_keeps_trying_for_three_minutes() {
    let mut sim = Sim::pair();
    sim.advance(Duration::from_millis(10));
    sim.a_out_filter = Some(Box::new(|f: &[u8]| !is_ipv4(f)));
    let now = sim.now;
    let c = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80))
        .unwrap();
    sim.advance(Duration::from_secs(180));
    assert_eq!(
        sim.a.iface.tcp_connect_result(c).map(|r| r.is_ok()),
        None,
        "still trying"
    );
    sim.advance(Duration::from_secs(120));
    let err = sim.a.iface.tcp_connect_result(c).unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}
