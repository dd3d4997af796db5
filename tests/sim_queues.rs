//! Two queues of one link, each an interface of its own (as `Stack::new_queues` runs them),
//! fed frames by hand: what one queue's connections and sockets do not take is passed on,
//! not answered, and the last queue of the round answers it as a lone stack would; ARP is
//! copied to the other queue, which learns and does not answer; IPv6 goes to queue 0;
//! ephemeral ports are split between the queues.

mod common;

use common::{arp_request, config, ipv4_frames, udp_segment, TcpCalls};
use etherparse::{EtherType, Ethernet2Header, IpNumber, PacketBuilder};
use std::net::{Ipv4Addr, SocketAddrV4};
use tapstack::core::{Interface, PassOn};
use tapstack::time::Instant;
use tapstack::wire::MacAddr;

const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 9]);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Queue `k` of two, with IPv6 on (it runs on queue 0 alone).
fn queue(k: usize) -> Interface {
    let mut cfg = config(2, 7 + k as u64);
    cfg.queues = 2;
    cfg.queue = k;
    cfg.ipv6 = Some(tapstack::Ipv6Config {
        dad_transmits: 0,
        ..Default::default()
    });
    let mut iface = Interface::new(cfg, Instant::ZERO);
    while iface.pop_transmit().is_some() {}
    iface
}

/// A TCP segment from the peer to `port` with `syn`/`ack` flags.
fn tcp_frame(port: u16, syn: bool, ack: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(PEER_MAC.0, [0x02, 0, 0, 0, 0, 2])
        .ipv4(PEER.octets(), US.octets(), 64)
        .tcp(40000, port, 1000, 65535);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(5000);
    }
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    f
}

/// An ICMPv6 echo request from the peer's link-local address to `dst` at `dst_mac`.
fn ping6(dst_mac: [u8; 6], dst: &str) -> Vec<u8> {
    let src: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    let dst: std::net::Ipv6Addr = dst.parse().unwrap();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC.0, dst_mac)
        .ipv6(src.octets(), dst.octets(), 255)
        .icmpv6_echo_request(1, 1)
        .write(&mut f, b"x")
        .unwrap();
    f
}

fn udp_frame(port: u16) -> Vec<u8> {
    let seg = udp_segment(PEER, US, 5000, port, b"hello");
    ipv4_frames(
        PEER_MAC,
        MacAddr([0x02, 0, 0, 0, 0, 2]),
        PEER,
        US,
        IpNumber::UDP,
        1,
        &seg,
        1500,
    )
    .remove(0)
}

/// What the interface sent: (ethertype, IP protocol or 0).
fn sent(iface: &mut Interface) -> Vec<(EtherType, u8)> {
    std::iter::from_fn(|| iface.pop_transmit())
        .map(|f| {
            let (eth, rest) = Ethernet2Header::from_slice(&f).unwrap();
            let proto = if eth.ether_type == EtherType::IPV4 {
                rest[9]
            } else {
                0
            };
            (eth.ether_type, proto)
        })
        .collect()
}

#[test]
fn a_segment_of_no_connection_here_is_passed_on_and_the_last_queue_resets_it() {
    let (mut q0, mut q1) = (queue(0), queue(1));
    let now = Instant::ZERO;
    // Learned first, so that answers need no resolution.
    q1.receive(now, &arp_request(PEER_MAC, PEER, US));
    assert_eq!(q1.take_pass_on(), PassOn::Everyone, "ARP is copied");
    sent(&mut q1);
    let frame = tcp_frame(80, false, true);
    q1.receive(now, &frame);
    assert_eq!(q1.take_pass_on(), PassOn::Next);
    assert!(
        sent(&mut q1).is_empty(),
        "no reset from a queue that passes it on"
    );
    // The ARP copy taught queue 0 the peer's address, without an answer of its own.
    q0.receive_neighbour_copy(now, &arp_request(PEER_MAC, PEER, US));
    assert!(sent(&mut q0).is_empty(), "a copy is not answered");
    q0.receive_passed(now, &frame, 1, false);
    assert_eq!(
        q0.take_pass_on(),
        PassOn::Keep,
        "the last queue of the round keeps it"
    );
    assert_eq!(
        sent(&mut q0),
        vec![(EtherType::IPV4, IpNumber::TCP.0)],
        "the last queue resets it, to the address the copy taught"
    );
    let c = q0.counters();
    assert_eq!((c.queue_taken_over, c.tcp_no_port), (1, 1));
    assert_eq!(q1.counters().queue_passed_on, 1);
}

#[test]
fn a_syn_opens_where_a_listener_is_and_goes_on_where_none_is() {
    let (mut q0, mut q1) = (queue(0), queue(1));
    let now = Instant::ZERO;
    for q in [&mut q0, &mut q1] {
        q.receive(now, &arp_request(PEER_MAC, PEER, US));
        q.take_pass_on();
        sent(q);
    }
    q0.tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    // Queue 1 has no listener: on to queue 0, which answers with a SYN-ACK.
    let syn = tcp_frame(80, true, false);
    q1.receive(now, &syn);
    assert_eq!(q1.take_pass_on(), PassOn::Next);
    q0.receive_passed(now, &syn, 1, false);
    assert_eq!(q0.take_pass_on(), PassOn::Keep);
    assert_eq!(sent(&mut q0), vec![(EtherType::IPV4, IpNumber::TCP.0)]);
    // A SYN to queue 0 itself opens there.
    q0.receive(now, &tcp_frame(80, true, false));
    assert_eq!(q0.take_pass_on(), PassOn::Keep);
}

#[test]
fn the_ack_of_a_syn_cookie_opens_where_the_listener_is_not_passed_on_to_a_reset() {
    // Queue 0 alone listens, and answers every SYN with a cookie (no SYN queue).
    let mut cfg = config(2, 7);
    cfg.queues = 2;
    cfg.tcp.syn_backlog = 0;
    let mut q0 = Interface::new(cfg, Instant::ZERO);
    let now = Instant::ZERO;
    q0.receive(now, &arp_request(PEER_MAC, PEER, US));
    q0.take_pass_on();
    sent(&mut q0);
    q0.tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    q0.receive(now, &tcp_frame(80, true, false));
    let syn_ack = q0.pop_transmit().expect("a SYN-ACK");
    let cookie = etherparse::TcpSlice::from_slice(&syn_ack[34..])
        .unwrap()
        .sequence_number();
    assert_eq!(q0.counters().tcp_syncookies_sent, 1);
    let ack = |ack: u32| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(PEER_MAC.0, [0x02, 0, 0, 0, 0, 2])
            .ipv4(PEER.octets(), US.octets(), 64)
            .tcp(40000, 80, 1001, 65535)
            .ack(ack)
            .write(&mut f, &[])
            .unwrap();
        f
    };
    // An ACK that is no cookie of ours may be another queue's connection.
    q0.receive(now, &ack(cookie.wrapping_add(7)));
    assert_eq!(q0.take_pass_on(), PassOn::Next);
    q0.receive(now, &ack(cookie.wrapping_add(1)));
    assert_eq!(
        q0.take_pass_on(),
        PassOn::Keep,
        "the cookie checks: the connection opens here"
    );
    let c = q0.counters();
    assert_eq!((c.tcp_syncookies_recv, c.tcp_passive_opens), (1, 1), "{c}");
}

#[test]
fn udp_to_no_socket_here_goes_on_and_the_last_queue_answers_port_unreachable() {
    let (mut q0, mut q1) = (queue(0), queue(1));
    let now = Instant::ZERO;
    q0.receive(now, &arp_request(PEER_MAC, PEER, US));
    sent(&mut q0);
    q0.udp_bind("0.0.0.0:53".parse().unwrap()).unwrap();
    let to_53 = udp_frame(53);
    q1.receive(now, &to_53);
    assert_eq!(q1.take_pass_on(), PassOn::Next, "queue 0's socket takes it");
    q0.receive_passed(now, &to_53, 1, false);
    assert_eq!(q0.take_pass_on(), PassOn::Keep);
    assert_eq!(q0.counters().udp_rx_datagrams, 1);
    let to_54 = udp_frame(54);
    q0.receive_passed(now, &to_54, 1, false);
    assert_eq!(
        sent(&mut q0),
        vec![(EtherType::IPV4, IpNumber::ICMP.0)],
        "port unreachable from the last queue"
    );
}

#[test]
fn a_datagram_the_socket_here_does_not_take_goes_on_to_one_that_does() {
    let (mut q0, mut q1) = (queue(0), queue(1));
    let now = Instant::ZERO;
    // Queue 1's socket on 53 is connected to another peer; queue 0's takes anyone's.
    let connected = q1.udp_bind("0.0.0.0:53".parse().unwrap()).unwrap();
    q1.udp_connect(connected, "10.0.0.77:53".parse().unwrap())
        .unwrap();
    q0.udp_bind("0.0.0.0:53".parse().unwrap()).unwrap();
    let to_53 = udp_frame(53);
    q1.receive(now, &to_53);
    assert_eq!(q1.take_pass_on(), PassOn::Next);
    assert!(sent(&mut q1).is_empty(), "no port unreachable from queue 1");
    q0.receive_passed(now, &to_53, 1, false);
    assert_eq!(q0.take_pass_on(), PassOn::Keep);
    assert_eq!(q0.counters().udp_rx_datagrams, 1);
}

#[test]
fn ipv6_goes_to_queue_0_and_ephemeral_ports_are_split() {
    let (mut q0, mut q1) = (queue(0), queue(1));
    let now = Instant::ZERO;
    let ping6 = ping6([0x02, 0, 0, 0, 0, 2], "fe80::2");
    q1.receive(now, &ping6);
    assert_eq!(q1.take_pass_on(), PassOn::Next, "queue 1 runs no IPv6");
    assert!(sent(&mut q1).is_empty());
    for (k, q) in [(0, &mut q0), (1, &mut q1)] {
        for _ in 0..20 {
            let id = q.udp_bind("0.0.0.0:0".parse().unwrap()).unwrap();
            let port = q.udp_local_addr(id).unwrap().port();
            assert_eq!(usize::from(port) % 2, k, "UDP port {port} on queue {k}");
            let c = q.tcp_connect(now, SocketAddrV4::new(PEER, 80)).unwrap();
            let port = q.tcp_addrs(c).unwrap().0.port();
            assert_eq!(usize::from(port) % 2, k, "TCP port {port} on queue {k}");
        }
    }
}

/// A datagram that arrives in fragments on a queue without its socket goes on whole: the
/// next queue gets one frame with the datagram, not the last fragment.
#[test]
fn a_fragmented_datagram_for_another_queue_goes_on_whole() {
    let (mut q0, mut q1) = (queue(0), queue(1));
    let now = Instant::ZERO;
    q0.udp_bind("0.0.0.0:53".parse().unwrap()).unwrap();
    let data = common::pattern(4000, 3);
    let seg = udp_segment(PEER, US, 5000, 53, &data);
    let frames = ipv4_frames(
        PEER_MAC,
        MacAddr([0x02, 0, 0, 0, 0, 2]),
        PEER,
        US,
        IpNumber::UDP,
        77,
        &seg,
        1500,
    );
    assert_eq!(frames.len(), 3);
    for (i, f) in frames.iter().enumerate() {
        q1.receive(now, f);
        let verdict = q1.take_pass_on();
        if i + 1 < frames.len() {
            assert_eq!(verdict, PassOn::Keep, "fragment {i} waits for the rest");
        } else {
            assert_eq!(verdict, PassOn::Next);
        }
    }
    let whole = q1.take_rebuilt().expect("the datagram, whole");
    assert_eq!(whole.len(), 14 + 20 + 8 + 4000);
    q0.receive_passed(now, &whole, 1, false);
    assert_eq!(q0.take_pass_on(), PassOn::Keep);
    let c = q0.counters();
    assert_eq!((c.udp_rx_datagrams, c.udp_rx_bad_checksum), (1, 0));
}

/// IPv6 group frames (a neighbour solicitation's `33:33:…`) reach queue 0 from the others;
/// with IPv6 off on the link nothing is passed around.
#[test]
fn ipv6_group_frames_go_to_queue_0_and_none_without_ipv6() {
    let now = Instant::ZERO;
    let mut q1 = queue(1);
    // To our solicited-node group.
    let group = ping6([0x33, 0x33, 0xff, 0, 0, 2], "ff02::1:ff00:2");
    q1.receive(now, &group);
    assert_eq!(q1.take_pass_on(), PassOn::Next);
    let mut cfg = config(2, 7);
    cfg.queues = 2;
    cfg.queue = 1;
    let mut v4_only = Interface::new(cfg.clone(), now);
    v4_only.receive(now, &group);
    assert_eq!(v4_only.take_pass_on(), PassOn::Keep);
    // IPv6 asked for on a link too small for it: queue 0 runs none, so nothing goes to it.
    cfg.ipv6 = Some(tapstack::Ipv6Config::default());
    cfg.mtu = 1200;
    let mut small = Interface::new(cfg, now);
    small.receive(now, &group);
    assert_eq!(small.take_pass_on(), PassOn::Keep);
}
