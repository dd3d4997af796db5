//! Catch-all interception in virtual time over the in-memory link: a client stack (10.0.0.1,
//! its gateway 10.0.0.2) dials addresses no one has, and the intercepting stack (10.0.0.2)
//! offers each connection and flow to the application, which decides before the handshake.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tapstack::config::{EchoMode, InterceptConfig, OverLimit};
use tapstack::core::{EchoOffer, EchoVerdict, FlowDecision, Interface, SocketId, UdpOffer};
use tapstack::phy::FaultConfig;
use tapstack::tcp::intercept::{TcpOffer, Verdict};
use tapstack::tcp::State;

const FAR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

fn sim_with(intercept: InterceptConfig) -> Sim {
    let mut client = config(1, 1);
    client.gateway = Some(Ipv4Addr::new(10, 0, 0, 2));
    let mut proxy = config(2, 2);
    proxy.intercept = Some(intercept);
    Sim::new(client, proxy, FaultConfig::default())
}

fn sim() -> Sim {
    sim_with(InterceptConfig::default())
}

fn next_tcp(iface: &Interface) -> Option<TcpOffer> {
    iface.intercept_io()?.lock().tcp.pop_front()
}

fn next_udp(iface: &Interface) -> Option<UdpOffer> {
    iface.intercept_io()?.lock().udp.pop_front()
}

fn decide(sim: &mut Sim, id: SocketId, verdict: Verdict) {
    let now = sim.now;
    let buffers = sim.b.iface.config().tcp.buffers();
    sim.b.iface.intercept_tcp(now, id, verdict, None, buffers);
    sim.settle();
}

fn dial(sim: &mut Sim, port: u16) -> SocketId {
    let now = sim.now;
    let c = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(FAR, port))
        .unwrap();
    sim.advance(Duration::from_millis(10));
    c
}

/// Sends `datagrams` from a new socket of the client to `to`, and lets them arrive: the socket.
fn send_datagrams(sim: &mut Sim, to: SocketAddrV4, datagrams: &[&[u8]]) -> SocketId {
    let sock = sim
        .a
        .iface
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into())
        .unwrap();
    let now = sim.now;
    for data in datagrams {
        sim.a
            .iface
            .udp_send(now, sock, data, Some(to.into()))
            .unwrap();
    }
    sim.settle();
    sock
}

#[test]
fn a_syn_to_any_address_waits_for_the_verdict_and_its_retransmission_is_absorbed() {
    let mut sim = sim();
    let c = dial(&mut sim, 80);
    let offer = next_tcp(&sim.b.iface).expect("offered");
    assert_eq!(offer.local, SocketAddrV4::new(FAR, 80).into());
    assert_eq!(offer.remote, sim.a.iface.tcp_addrs(c).unwrap().0.into());
    // No SYN-ACK before the verdict: the client retransmits its SYN, which is absorbed.
    sim.advance(Duration::from_millis(1500));
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::SynSent));
    let counters = sim.b.iface.counters();
    assert_eq!(counters.icpt_tcp_offered, 1);
    assert!(counters.icpt_tcp_syn_absorbed >= 1, "{counters:?}");
    assert!(next_tcp(&sim.b.iface).is_none(), "offered twice");

    decide(&mut sim, offer.id, Verdict::Accept);
    sim.advance(Duration::from_millis(10));
    assert!(matches!(sim.a.iface.tcp_connect_result(c), Some(Ok(()))));
    let (local, remote) = sim.b.iface.tcp_addrs(offer.id).unwrap();
    assert_eq!(local, SocketAddrV4::new(FAR, 80), "the dialled address");
    assert_eq!(std::net::SocketAddr::from(remote), offer.remote);

    // A megabyte each way, checked.
    exchange(&mut sim, c, offer.id, 1 << 20);
    assert_eq!(sim.b.iface.counters().icpt_tcp_conns, 1);
}

/// `len` bytes each way between the client's connection `c` and the proxy's `p`, checked.
fn exchange(sim: &mut Sim, c: SocketId, p: SocketId, len: usize) {
    let up = pattern(len, 3);
    let down = pattern(len, 5);
    let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
    let (mut sent_up, mut sent_down) = (0, 0);
    let mut buf = vec![0u8; 65536];
    for _ in 0..10_000 {
        let now = sim.now;
        if sent_up < up.len() {
            sent_up += sim.a.iface.tcp_send(now, c, &up[sent_up..]).unwrap_or(0);
        }
        if sent_down < down.len() {
            sent_down += sim
                .b
                .iface
                .tcp_send(now, p, &down[sent_down..])
                .unwrap_or(0);
        }
        sim.advance(Duration::from_millis(1));
        while let Ok(n) = sim.b.iface.tcp_recv(sim.now, p, &mut buf) {
            got_up.extend_from_slice(&buf[..n]);
        }
        while let Ok(n) = sim.a.iface.tcp_recv(sim.now, c, &mut buf) {
            got_down.extend_from_slice(&buf[..n]);
        }
        if got_up.len() == up.len() && got_down.len() == down.len() {
            break;
        }
    }
    assert_eq!(sha256(&got_up), sha256(&up));
    assert_eq!(sha256(&got_down), sha256(&down));
}

#[test]
fn refused_and_unreachable_verdicts_reach_the_client_as_such() {
    let mut sim = sim();
    let c = dial(&mut sim, 81);
    let offer = next_tcp(&sim.b.iface).unwrap();
    decide(&mut sim, offer.id, Verdict::Reset);
    sim.advance(Duration::from_millis(10));
    let refused = sim.a.iface.tcp_connect_result(c).unwrap().unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::ECONNREFUSED));

    let c = dial(&mut sim, 82);
    let offer = next_tcp(&sim.b.iface).unwrap();
    decide(&mut sim, offer.id, Verdict::Unreachable);
    sim.advance(Duration::from_millis(10));
    let unreachable = sim.a.iface.tcp_connect_result(c).unwrap().unwrap_err();
    assert_eq!(unreachable.raw_os_error(), Some(libc::EHOSTUNREACH));
    let counters = sim.b.iface.counters();
    assert_eq!(
        (counters.icpt_tcp_refused, counters.icpt_tcp_unreachable),
        (1, 1)
    );
}

#[test]
fn an_undecided_syn_expires_and_the_clients_next_syn_is_offered_again() {
    let mut sim = sim_with(InterceptConfig {
        decision_timeout: Duration::from_secs(2),
        ..InterceptConfig::default()
    });
    let c = dial(&mut sim, 443);
    let first = next_tcp(&sim.b.iface).unwrap();
    sim.advance(Duration::from_secs(4));
    assert_eq!(sim.b.iface.counters().icpt_tcp_expired, 1);
    let second = next_tcp(&sim.b.iface).expect("offered again after expiry");
    assert_ne!(first.id, second.id);
    // A verdict on the expired offer changes nothing; the new one opens the connection.
    decide(&mut sim, first.id, Verdict::Accept);
    decide(&mut sim, second.id, Verdict::Accept);
    sim.advance(Duration::from_millis(10));
    assert!(matches!(sim.a.iface.tcp_connect_result(c), Some(Ok(()))));
}

#[test]
fn the_connection_cap_refuses_the_next_syn_and_counts_it() {
    let mut sim = sim_with(InterceptConfig {
        max_connections: 2,
        over_limit: OverLimit::Reset,
        ..InterceptConfig::default()
    });
    for port in [1000, 1001] {
        let c = dial(&mut sim, port);
        let offer = next_tcp(&sim.b.iface).unwrap();
        decide(&mut sim, offer.id, Verdict::Accept);
        sim.advance(Duration::from_millis(10));
        assert!(matches!(sim.a.iface.tcp_connect_result(c), Some(Ok(()))));
    }
    let c = dial(&mut sim, 1002);
    assert!(next_tcp(&sim.b.iface).is_none(), "offered past the cap");
    let err = sim.a.iface.tcp_connect_result(c).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    let counters = sim.b.iface.counters();
    assert_eq!(counters.icpt_tcp_over_limit, 1);
    assert_eq!(counters.icpt_tcp_conns, 2);
}

#[test]
fn a_closed_intercepted_connection_leaves_the_cap_at_time_wait() {
    let mut sim = sim();
    let c = dial(&mut sim, 80);
    let offer = next_tcp(&sim.b.iface).unwrap();
    decide(&mut sim, offer.id, Verdict::Accept);
    sim.advance(Duration::from_millis(10));
    assert_eq!(sim.b.iface.counters().icpt_tcp_conns, 1);
    // The intercepting side closes first, so it is the one in TIME-WAIT.
    let now = sim.now;
    sim.b.iface.tcp_close(now, offer.id);
    sim.advance(Duration::from_millis(10));
    let now = sim.now;
    sim.a.iface.tcp_close(now, c);
    sim.advance(Duration::from_millis(10));
    assert_eq!(sim.b.iface.tcp_state(offer.id), Some(State::TimeWait));
    assert_eq!(sim.b.iface.counters().icpt_tcp_conns, 0);
}

#[test]
fn without_interception_other_addresses_are_not_ours_and_closed_ports_still_reset() {
    let mut client = config(1, 1);
    client.gateway = Some(Ipv4Addr::new(10, 0, 0, 2));
    let mut sim = Sim::new(client, config(2, 2), FaultConfig::default());
    assert!(sim.b.iface.intercept_io().is_none());
    let c = dial(&mut sim, 80);
    sim.advance(Duration::from_millis(500));
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::SynSent));
    assert!(sim.b.iface.counters().ip_rx_not_for_us >= 1);
    let now = sim.now;
    let own = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 9))
        .unwrap();
    sim.advance(Duration::from_millis(10));
    let err = sim.a.iface.tcp_connect_result(own).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
}

/// An offer left undecided past the decision timeout is dropped with its datagrams; its shared
/// state, which the offer carries, says so: a late accept reads `ETIMEDOUT`, not a queue that
/// nothing will ever fill or wake.
#[test]
fn an_undecided_udp_offer_expires_and_a_late_accept_reads_timed_out() {
    let mut sim = sim_with(InterceptConfig {
        decision_timeout: Duration::from_secs(2),
        ..InterceptConfig::default()
    });
    let dns = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 53), 53);
    send_datagrams(&mut sim, dns, &[b"query"]);
    let offer = next_udp(&sim.b.iface).expect("offered");
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.b.iface.counters().icpt_udp_ignored, 1);
    let now = sim.now;
    sim.b
        .iface
        .udp_flow_decide(now, offer.id, FlowDecision::Accept);
    let late = tapstack::core::lock_udp(&offer.io).recv();
    let err = late.expect("an answer, not a wait").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
}

#[test]
fn udp_flows_are_offered_answered_from_the_destination_and_idle_out() {
    let mut sim = sim_with(InterceptConfig {
        udp_timeout: Duration::from_secs(5),
        ..InterceptConfig::default()
    });
    let dns = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 53), 53);
    let sock = send_datagrams(&mut sim, dns, &[b"query 1", b"query 2"]);
    let offer = next_udp(&sim.b.iface).expect("offered");
    assert_eq!(offer.local, dns.into());
    assert!(next_udp(&sim.b.iface).is_none(), "one offer per flow");
    let now = sim.now;
    sim.b
        .iface
        .udp_flow_decide(now, offer.id, FlowDecision::Accept);
    for want in [&b"query 1"[..], b"query 2"] {
        let (data, from) = sim.b.iface.udp_recv(offer.id).unwrap().unwrap();
        assert_eq!((&data[..], from), (want, offer.remote));
    }
    sim.b
        .iface
        .udp_send(now, offer.id, b"answer", None)
        .unwrap();
    sim.settle();
    let (data, from) = sim.a.iface.udp_recv(sock).unwrap().unwrap();
    assert_eq!(
        (&data[..], from),
        (&b"answer"[..], dns.into()),
        "from the destination"
    );

    // Activity keeps it; silence ends it.
    sim.advance(Duration::from_secs(3));
    let now = sim.now;
    sim.a
        .iface
        .udp_send(now, sock, b"query 3", Some(dns.into()))
        .unwrap();
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.b.iface.counters().icpt_udp_flows, 1);
    assert_eq!(
        &sim.b.iface.udp_recv(offer.id).unwrap().unwrap().0[..],
        b"query 3"
    );
    sim.advance(Duration::from_secs(6));
    let counters = sim.b.iface.counters();
    assert_eq!((counters.icpt_udp_flows, counters.icpt_udp_expired), (0, 1));
    let err = sim.b.iface.udp_recv(offer.id).unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    // The next datagram is a new flow.
    let now = sim.now;
    sim.a
        .iface
        .udp_send(now, sock, b"query 4", Some(dns.into()))
        .unwrap();
    sim.settle();
    assert!(next_udp(&sim.b.iface).is_some());
}

#[test]
fn a_refused_flow_answers_port_unreachable_and_the_flow_cap_holds() {
    let mut sim = sim_with(InterceptConfig {
        max_udp_flows: 1,
        ..InterceptConfig::default()
    });
    let sock = sim
        .a
        .iface
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into())
        .unwrap();
    let dst = SocketAddrV4::new(FAR, 9999);
    sim.a.iface.udp_connect(sock, dst.into()).unwrap();
    let now = sim.now;
    sim.a.iface.udp_send(now, sock, b"x", None).unwrap();
    sim.settle();
    let offer = next_udp(&sim.b.iface).unwrap();
    let now = sim.now;
    sim.b
        .iface
        .udp_flow_decide(now, offer.id, FlowDecision::Refuse);
    sim.settle();
    let err = sim.a.iface.udp_recv(sock).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    // The refused flow still counts against the cap until it idles out.
    send_datagrams(&mut sim, SocketAddrV4::new(FAR, 1), &[b"y"]);
    assert!(next_udp(&sim.b.iface).is_none());
    let counters = sim.b.iface.counters();
    assert_eq!(
        (counters.icpt_udp_refused, counters.icpt_udp_over_limit),
        (1, 1)
    );
}

#[test]
fn echo_requests_to_any_address_are_answered_from_it() {
    let mut sim = sim();
    // The client's traffic through its gateway teaches the proxy its link address.
    dial(&mut sim, 80);
    let mac_a = sim.a.iface.config().mac;
    let mac_b = sim.b.iface.config().mac;
    let request = echo_request(7, 1, b"ping");
    for frame in ipv4_frames(
        mac_a,
        mac_b,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(203, 0, 113, 9),
        etherparse::IpNumber::ICMP,
        1,
        &request,
        1500,
    ) {
        sim.b.iface.receive(sim.now, &frame);
    }
    let reply = sim.b.iface.pop_transmit().expect("a reply");
    let ip = etherparse::Ipv4HeaderSlice::from_slice(&reply[14..]).unwrap();
    assert_eq!(ip.source_addr(), Ipv4Addr::new(203, 0, 113, 9));
    assert_eq!(ip.destination_addr(), Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(reply[14 + ip.slice().len()], 0, "an echo reply");
    assert_eq!(sim.b.iface.counters().icpt_echo_replies, 1);
}

/// Sends the proxy an echo request from the client to `dst`.
fn ping(sim: &mut Sim, dst: Ipv4Addr, seq: u16) {
    let (mac_a, mac_b) = (sim.a.iface.config().mac, sim.b.iface.config().mac);
    let request = echo_request(7, seq, b"ping data");
    for frame in ipv4_frames(
        mac_a,
        mac_b,
        Ipv4Addr::new(10, 0, 0, 1),
        dst,
        etherparse::IpNumber::ICMP,
        seq,
        &request,
        1500,
    ) {
        sim.b.iface.receive(sim.now, &frame);
    }
}

fn next_echo(iface: &Interface) -> Option<EchoOffer> {
    iface.intercept_io()?.lock().echo.pop_front()
}

/// The ICMP message of the proxy's next frame, with its IP source and destination.
fn sent_icmp(sim: &mut Sim) -> Option<(Ipv4Addr, Ipv4Addr, Vec<u8>)> {
    let frame = sim.b.iface.pop_transmit()?;
    let ip = etherparse::Ipv4HeaderSlice::from_slice(&frame[14..]).unwrap();
    assert_eq!(ip.protocol(), etherparse::IpNumber::ICMP);
    let icmp = frame[14 + ip.slice().len()..].to_vec();
    Some((ip.source_addr(), ip.destination_addr(), icmp))
}

#[test]
fn delivered_echo_requests_wait_for_the_application_which_replies_or_answers_unreachable() {
    let mut sim = sim_with(InterceptConfig {
        echo: EchoMode::Deliver,
        max_pending: 2,
        ..InterceptConfig::default()
    });
    dial(&mut sim, 80);
    while sim.b.iface.pop_transmit().is_some() {}
    let up = Ipv4Addr::new(203, 0, 113, 9);
    let down = Ipv4Addr::new(203, 0, 113, 10);
    ping(&mut sim, up, 1);
    ping(&mut sim, down, 2);
    ping(&mut sim, up, 3); // past max_pending
    assert!(
        sim.b.iface.pop_transmit().is_none(),
        "nothing answered by the stack"
    );
    let c = sim.b.iface.counters();
    assert_eq!((c.icpt_echo_offered, c.icpt_echo_pending_full), (2, 1));

    let first = next_echo(&sim.b.iface).expect("the first request");
    assert_eq!(
        (first.src, first.dst),
        (Ipv4Addr::new(10, 0, 0, 1).into(), up.into())
    );
    assert_eq!(first.message, echo_request(7, 1, b"ping data"));
    let second = next_echo(&sim.b.iface).expect("the second request");
    assert!(next_echo(&sim.b.iface).is_none());

    let now = sim.now;
    sim.b
        .iface
        .intercept_echo_answer(now, &first, EchoVerdict::Reply);
    let (src, dst, reply) = sent_icmp(&mut sim).expect("an echo reply");
    assert_eq!((src, dst), (up, Ipv4Addr::new(10, 0, 0, 1)));
    let mut expected = echo_request(7, 1, b"ping data");
    expected[0] = 0; // echo reply
    expected[2..4].copy_from_slice(&reply[2..4]);
    assert_eq!(reply, expected);
    assert!(etherparse::Icmpv4Slice::from_slice(&reply).is_ok());

    sim.b
        .iface
        .intercept_echo_answer(now, &second, EchoVerdict::Unreachable);
    let (src, _, unreachable) = sent_icmp(&mut sim).expect("host unreachable");
    assert_eq!(src, down, "the error comes from the address pinged");
    assert_eq!(&unreachable[..2], &[3, 1], "destination unreachable, host");
    let quoted = etherparse::Ipv4HeaderSlice::from_slice(&unreachable[8..]).unwrap();
    assert_eq!(quoted.destination_addr(), down);
    assert_eq!(
        &unreachable[8 + quoted.slice().len()..][..8],
        &echo_request(7, 2, b"ping data")[..8],
        "the request's first eight octets are quoted"
    );

    let c = sim.b.iface.counters();
    assert_eq!((c.icpt_echo_replies, c.icpt_echo_unreachable), (1, 1));
}

#[test]
fn ignored_echo_requests_are_counted_and_unanswered() {
    let mut sim = sim_with(InterceptConfig {
        echo: EchoMode::Ignore,
        ..InterceptConfig::default()
    });
    dial(&mut sim, 80);
    while sim.b.iface.pop_transmit().is_some() {}
    ping(&mut sim, Ipv4Addr::new(203, 0, 113, 9), 1);
    assert!(sim.b.iface.pop_transmit().is_none());
    assert!(next_echo(&sim.b.iface).is_none(), "nothing handed over");
    let c = sim.b.iface.counters();
    assert_eq!((c.icpt_echo_ignored, c.icpt_echo_replies), (1, 0));
}

/// An address beyond the client's link, IPv6.
const FAR6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 7);

/// The client (2001:db8::1) and the intercepting proxy (2001:db8::2), which a Router
/// Advertisement from its link-local address makes the client's default router.
fn sim6_with(intercept: InterceptConfig) -> Sim {
    use std::net::Ipv6Addr;
    let mut proxy = config_v6(2, 2);
    proxy.intercept = Some(intercept);
    let mut sim = Sim::new(config_v6(1, 1), proxy, FaultConfig::default());
    sim.settle();
    let router = sim
        .b
        .iface
        .ipv6()
        .unwrap()
        .addrs()
        .iter()
        .map(|a| a.addr)
        .find(|a| tapstack::wire::ipv6::is_link_local(*a))
        .expect("the proxy's link-local address");
    let mac = sim.b.iface.config().mac;
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    // Router Advertisement (RFC 4861 §4.2): hop limit 64, lifetime 1800 s, its link address.
    let mut ra = vec![134, 0, 0, 0, 64, 0];
    ra.extend_from_slice(&1800u16.to_be_bytes());
    ra.extend_from_slice(&[0; 8]);
    ra.extend_from_slice(&[1, 1]);
    ra.extend_from_slice(&mac.0);
    let sum = tapstack::wire::ipv6::checksum(router, all_nodes, 58, &ra);
    ra[2..4].copy_from_slice(&sum);
    let frame = ipv6_frame(
        mac.0,
        [0x33, 0x33, 0, 0, 0, 1],
        router,
        all_nodes,
        58,
        255,
        &ra,
    );
    let now = sim.now;
    sim.a.iface.receive(now, &frame);
    sim.settle();
    sim
}

/// An Ethernet frame with an IPv6 header and `payload`.
fn ipv6_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&etherparse::EtherType::IPV6.0.to_be_bytes());
    let h = etherparse::Ipv6Header {
        payload_length: payload.len() as u16,
        next_header: etherparse::IpNumber(next_header),
        hop_limit,
        source: src.octets(),
        destination: dst.octets(),
        ..Default::default()
    };
    f.extend_from_slice(&h.to_bytes());
    f.extend_from_slice(payload);
    f
}

/// The client dials `[FAR6]:port`.
fn dial6(sim: &mut Sim, port: u16) -> SocketId {
    let now = sim.now;
    let remote = std::net::SocketAddr::from((FAR6, port));
    let c = sim
        .a
        .iface
        .with_tcp(now, |tcp, st| tcp.connect(now, None, remote, st))
        .unwrap();
    sim.advance(Duration::from_millis(10));
    c
}

/// The proxy's next ICMPv6 message: source, destination, message.
fn sent_icmp6(sim: &mut Sim) -> Option<(std::net::Ipv6Addr, std::net::Ipv6Addr, Vec<u8>)> {
    while let Some(frame) = sim.b.iface.pop_transmit() {
        let Ok((ip, rest)) = etherparse::Ipv6Header::from_slice(&frame[14..]) else {
            continue;
        };
        if ip.next_header.0 == 58 {
            return Some((ip.source.into(), ip.destination.into(), rest.to_vec()));
        }
    }
    None
}

/// IPv6 as IPv4: a connection to any address is offered, accepted from the address dialled
/// (1 MiB each way), refused with a reset, or answered with ICMPv6 address unreachable; a
/// UDP flow is answered from its destination, and a refused one with port unreachable; an
/// echo request to any address is answered from it, or handed to the application. The
/// proxy's own address, and link-local ones, are not intercepted.
#[test]
fn ipv6_connections_flows_and_pings_to_any_address_are_intercepted() {
    use std::net::{SocketAddr, SocketAddrV6};
    let mut sim = sim6_with(InterceptConfig {
        echo: EchoMode::Deliver,
        ..InterceptConfig::default()
    });
    let c = dial6(&mut sim, 443);
    let offer = next_tcp(&sim.b.iface).expect("offered");
    assert_eq!(offer.local, SocketAddr::from((FAR6, 443)));
    decide(&mut sim, offer.id, Verdict::Accept);
    sim.advance(Duration::from_millis(10));
    assert!(matches!(sim.a.iface.tcp_connect_result(c), Some(Ok(()))));
    let (local, _) = sim.b.iface.tcp().addrs(offer.id).unwrap();
    assert_eq!(local, SocketAddr::from((FAR6, 443)), "the dialled address");
    exchange(&mut sim, c, offer.id, 1 << 20);

    let c = dial6(&mut sim, 444);
    let offer = next_tcp(&sim.b.iface).unwrap();
    decide(&mut sim, offer.id, Verdict::Reset);
    sim.advance(Duration::from_millis(10));
    let refused = sim.a.iface.tcp_connect_result(c).unwrap().unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::ECONNREFUSED));
    let c = dial6(&mut sim, 445);
    let offer = next_tcp(&sim.b.iface).unwrap();
    while sim.b.iface.pop_transmit().is_some() {}
    let now = sim.now;
    let buffers = sim.b.iface.config().tcp.buffers();
    sim.b
        .iface
        .intercept_tcp(now, offer.id, Verdict::Unreachable, None, buffers);
    let (src, dst, msg) = sent_icmp6(&mut sim).expect("address unreachable");
    assert_eq!(
        (src, &msg[..2]),
        (FAR6, &[1, 3][..]),
        "from the address dialled"
    );
    assert_eq!(dst, "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap());
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::SynSent));

    // UDP: a flow answered from its destination, and a refused one.
    let dns = SocketAddr::V6(SocketAddrV6::new(FAR6, 53, 0, 0));
    let sock = sim
        .a
        .iface
        .udp_bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)))
        .unwrap();
    let now = sim.now;
    sim.a
        .iface
        .udp_send(now, sock, b"query", Some(dns))
        .unwrap();
    sim.settle();
    let flow = next_udp(&sim.b.iface).expect("a flow offered");
    assert_eq!(flow.local, dns);
    sim.b
        .iface
        .udp_flow_decide(now, flow.id, FlowDecision::Accept);
    let (data, _) = sim.b.iface.udp_recv(flow.id).unwrap().unwrap();
    assert_eq!(&data[..], b"query");
    sim.b.iface.udp_send(now, flow.id, b"answer", None).unwrap();
    sim.settle();
    let (data, from) = sim.a.iface.udp_recv(sock).unwrap().unwrap();
    assert_eq!(
        (&data[..], from),
        (&b"answer"[..], dns),
        "from the destination"
    );
    let closed = SocketAddr::V6(SocketAddrV6::new(FAR6, 9999, 0, 0));
    let refused = sim
        .a
        .iface
        .udp_bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)));
    let refused = refused.unwrap();
    sim.a.iface.udp_connect(refused, closed).unwrap();
    sim.a.iface.udp_send(now, refused, b"x", None).unwrap();
    sim.settle();
    let flow = next_udp(&sim.b.iface).unwrap();
    let now = sim.now;
    sim.b
        .iface
        .udp_flow_decide(now, flow.id, FlowDecision::Refuse);
    sim.settle();
    let err = sim.a.iface.udp_recv(refused).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));

    // An echo request to any address, handed over, then answered from it.
    let (client_mac, proxy_mac) = (sim.a.iface.config().mac, sim.b.iface.config().mac);
    let client: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut request = vec![128, 0, 0, 0, 0, 7, 0, 1];
    request.extend_from_slice(b"ping6");
    let sum = tapstack::wire::ipv6::checksum(client, FAR6, 58, &request);
    request[2..4].copy_from_slice(&sum);
    let frame = ipv6_frame(client_mac.0, proxy_mac.0, client, FAR6, 58, 64, &request);
    while sim.b.iface.pop_transmit().is_some() {}
    sim.b.iface.receive(sim.now, &frame);
    assert!(sent_icmp6(&mut sim).is_none(), "left to the application");
    let echo = next_echo(&sim.b.iface).expect("handed over");
    assert_eq!((echo.src, echo.dst), (client.into(), FAR6.into()));
    let now = sim.now;
    sim.b
        .iface
        .intercept_echo_answer(now, &echo, EchoVerdict::Reply);
    let (src, dst, reply) = sent_icmp6(&mut sim).expect("an echo reply");
    assert_eq!((src, dst, reply[0]), (FAR6, client, 129));
    assert_eq!(&reply[4..], &request[4..], "identifier, sequence and data");
    sim.b
        .iface
        .intercept_echo_answer(now, &echo, EchoVerdict::Unreachable);
    let (src, _, error) = sent_icmp6(&mut sim).expect("address unreachable");
    assert_eq!((src, &error[..2]), (FAR6, &[1, 3][..]));

    // Not intercepted: a SYN to a link-local or an IPv4-mapped address, one in a link-layer
    // multicast frame, one from an unspecified source; nor is a Neighbour Solicitation for
    // an intercepted address answered (the proxy claims no address on the link).
    while sim.b.iface.pop_transmit().is_some() {}
    let syn = |src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr| {
        let mut tcp = etherparse::TcpHeader::new(40000, 80, 1, 65535);
        tcp.syn = true;
        tcp.checksum = tcp
            .calc_checksum_ipv6_raw(src.octets(), dst.octets(), &[])
            .unwrap();
        tcp.to_bytes().to_vec()
    };
    let mapped: std::net::Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
    let link_local: std::net::Ipv6Addr = "fe80::99".parse().unwrap();
    let unspecified = std::net::Ipv6Addr::UNSPECIFIED;
    let multicast_mac = [0x33, 0x33, 0, 0, 0, 7];
    for (src, dst, mac) in [
        (client, link_local, proxy_mac.0),
        (client, mapped, proxy_mac.0),
        (client, FAR6, multicast_mac),
        (unspecified, FAR6, proxy_mac.0),
    ] {
        let frame = ipv6_frame(client_mac.0, mac, src, dst, 6, 64, &syn(src, dst));
        sim.b.iface.receive(sim.now, &frame);
    }
    let target: std::net::Ipv6Addr = "2001:db8::99".parse().unwrap();
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&target.octets());
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&client_mac.0);
    let sum = tapstack::wire::ipv6::checksum(client, target, 58, &ns);
    ns[2..4].copy_from_slice(&sum);
    sim.b.iface.receive(
        sim.now,
        &ipv6_frame(client_mac.0, proxy_mac.0, client, target, 58, 255, &ns),
    );
    assert!(sim.b.iface.pop_transmit().is_none(), "nothing answered");
    assert!(next_tcp(&sim.b.iface).is_none(), "nothing offered");

    // The proxy's own address is its own: a closed port resets, nothing is offered.
    let c = {
        let now = sim.now;
        let own = SocketAddr::from(("2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap(), 81));
        sim.a
            .iface
            .with_tcp(now, |tcp, st| tcp.connect(now, None, own, st))
            .unwrap()
    };
    sim.advance(Duration::from_millis(10));
    let err = sim.a.iface.tcp_connect_result(c).unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    assert!(next_tcp(&sim.b.iface).is_none());
    let counters = sim.b.iface.counters();
    assert_eq!(
        (counters.icpt_tcp_offered, counters.icpt_udp_offered),
        (3, 2),
        "{counters:?}"
    );
}
