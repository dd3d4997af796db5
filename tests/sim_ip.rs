//! Stack-to-stack tests of the IP layers over the in-memory link under virtual time.

mod common;

use common::*;
use etherparse::IpNumber;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tapstack::core::{Reassembler, SocketId};
use tapstack::phy::FaultConfig;
use tapstack::time::Instant;
use tapstack::wire::MacAddr;

const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn bind(node: &mut Node, port: u16) -> SocketId {
    node.iface
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
        .expect("bind")
}

fn drain(node: &mut Node, id: SocketId) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(r) = node.iface.udp_recv(id) {
        out.push(r.expect("datagram").0);
    }
    out
}

#[test]
fn udp_datagrams_of_every_size_class_cross_intact() {
    let mut sim = Sim::pair();
    let sa = bind(&mut sim.a, 5000);
    let sb = bind(&mut sim.b, 7);
    for size in [0, 1, 1472, 1473, 2961, 8000, 65507] {
        let data = pattern(size, size as u8);
        let now = sim.now;
        sim.a
            .iface
            .udp_send(now, sa, &data, Some(SocketAddrV4::new(B, 7).into()))
            .expect("send");
        sim.advance(Duration::from_millis(1));
        let got = drain(&mut sim.b, sb);
        assert_eq!(got.len(), 1, "size {size}");
        assert_eq!(sha256(&got[0]), sha256(&data), "size {size}");
    }
    let c = sim.a.iface.counters();
    assert_eq!(c.arp_tx_requests, 2, "gratuitous ARP plus one resolution");
    assert!(c.ip_frag_created > 40);
    assert_eq!(sim.b.iface.counters().reasm_ok, 4);
}

#[test]
fn oversized_or_df_datagrams_fail_with_emsgsize() {
    let mut sim = Sim::pair();
    let s = bind(&mut sim.a, 5000);
    let to = Some(SocketAddrV4::new(B, 7));
    let err = sim
        .a
        .iface
        .udp_send(sim.now, s, &[0; 65508], to.map(Into::into))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
    sim.a.iface.udp_set_dont_fragment(s, true).unwrap();
    assert!(sim
        .a
        .iface
        .udp_send(sim.now, s, &[0; 1472], to.map(Into::into))
        .is_ok());
    let err = sim
        .a
        .iface
        .udp_send(sim.now, s, &[0; 1473], to.map(Into::into))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
    assert_eq!(
        sim.a.iface.counters().ip_tx_needs_frag_df,
        1,
        "the oversized one never reached IP"
    );
}

#[test]
fn arp_asks_once_a_second_three_times_then_reports_host_unreachable() {
    let mut sim = Sim::pair();
    let s = bind(&mut sim.a, 5000);
    let ghost = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 99), 7);
    sim.a.iface.udp_connect(s, ghost.into()).unwrap();
    sim.a.iface.udp_send(sim.now, s, b"hello?", None).unwrap();
    let requests = |sim: &Sim| sim.a.iface.counters().arp_tx_requests - 1;
    sim.settle();
    assert_eq!(requests(&sim), 1);
    sim.run_until(Instant::from_millis(999));
    assert_eq!(requests(&sim), 1, "no second request within the second");
    sim.run_until(Instant::from_millis(2500));
    assert_eq!(requests(&sim), 3);
    assert!(sim.a.iface.udp_recv(s).is_none(), "still resolving");
    sim.run_until(Instant::from_millis(3000));
    assert_eq!(requests(&sim), 3, "gives up after three");
    let c = sim.a.iface.counters();
    assert_eq!(c.arp_resolution_failures, 1);
    assert_eq!(c.arp_pending_dropped, 1);
    let err = sim.a.iface.udp_recv(s).expect("error pending").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HostUnreachable);
    assert_eq!(
        sim.b.iface.counters().arp_rx_not_for_us,
        4,
        "a's gratuitous ARP and its three requests"
    );
    assert_eq!(sim.a.iface.poll_at(), None, "nothing left to do");
}

#[test]
fn arp_pending_queue_is_bounded_and_flushed_on_resolution() {
    let mut sim = Sim::pair();
    let s = bind(&mut sim.a, 5000);
    let sb = bind(&mut sim.b, 7);
    let to = Some(SocketAddrV4::new(B, 7));
    for i in 0..100u8 {
        sim.a
            .iface
            .udp_send(sim.now, s, &[i], to.map(Into::into))
            .unwrap();
    }
    sim.settle();
    let got = drain(&mut sim.b, sb);
    assert_eq!(got.len(), 64, "the per-address queue holds 64");
    assert_eq!(got.first().unwrap()[0], 36, "the oldest were dropped");
    assert_eq!(sim.a.iface.counters().arp_pending_overflow, 36);
}

#[test]
fn arp_cache_entries_are_refreshed_while_in_use_and_expire_when_not() {
    let mut sim = Sim::pair();
    let s = bind(&mut sim.a, 5000);
    let to = Some(SocketAddrV4::new(B, 7));
    sim.a
        .iface
        .udp_send(sim.now, s, b"x", to.map(Into::into))
        .unwrap();
    sim.settle();
    let base = sim.a.iface.counters().arp_tx_requests;
    // Used every 10 s: the entry is confirmed by a unicast request after 45 s and never lapses.
    for _ in 0..12 {
        sim.advance(Duration::from_secs(10));
        sim.a
            .iface
            .udp_send(sim.now, s, b"x", to.map(Into::into))
            .unwrap();
        sim.settle();
    }
    let c = sim.a.iface.counters();
    assert!(c.arp_tx_requests - base >= 2, "refreshes were sent");
    assert_eq!(c.arp_pending_overflow + c.arp_resolution_failures, 0);
    // Unused for longer than the entry lifetime, it has to be resolved again (a broadcast).
    let b_before = sim.b.iface.counters().arp_tx_replies;
    sim.advance(Duration::from_secs(61));
    sim.a
        .iface
        .udp_send(sim.now, s, b"x", to.map(Into::into))
        .unwrap();
    sim.settle();
    assert_eq!(sim.b.iface.counters().arp_tx_replies, b_before + 1);
}

#[test]
fn off_link_destinations_go_through_the_gateway_or_fail() {
    let mut with_gw = config(1, 1);
    with_gw.gateway = Some(B);
    let mut sim = Sim::new(with_gw, config(2, 2), FaultConfig::default());
    let s = bind(&mut sim.a, 5000);
    let far = Some(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 7));
    sim.a
        .iface
        .udp_send(sim.now, s, b"via the gateway", far.map(Into::into))
        .unwrap();
    sim.settle();
    // The gateway (b) was resolved and got the frame, which it does not forward.
    assert_eq!(sim.b.iface.counters().arp_tx_replies, 1);
    assert_eq!(sim.b.iface.counters().ip_rx_not_for_us, 1);

    let mut sim = Sim::pair();
    let s = bind(&mut sim.a, 5000);
    let err = sim
        .a
        .iface
        .udp_send(sim.now, s, b"x", far.map(Into::into))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH));
    assert_eq!(sim.a.iface.counters().ip_tx_no_route, 1);
}

#[test]
fn port_unreachable_reaches_the_connected_socket_only() {
    let mut sim = Sim::pair();
    let connected = bind(&mut sim.a, 5000);
    let unconnected = bind(&mut sim.a, 5001);
    let closed = SocketAddrV4::new(B, 9);
    sim.a.iface.udp_connect(connected, closed.into()).unwrap();
    sim.a
        .iface
        .udp_send(sim.now, connected, b"x", None)
        .unwrap();
    sim.a
        .iface
        .udp_send(sim.now, unconnected, b"x", Some(closed.into()))
        .unwrap();
    sim.settle();
    let err = sim.a.iface.udp_recv(connected).expect("error").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert!(sim.a.iface.udp_recv(connected).is_none(), "reported once");
    assert!(sim.a.iface.udp_recv(unconnected).is_none());
    assert_eq!(sim.b.iface.counters().icmp_tx_port_unreachable, 2);
    assert_eq!(sim.a.iface.counters().icmp_rx_errors_delivered, 1);
}

/// Injects frames from a fake host at 10.0.0.50 into `b` and returns what `b` sent back.
fn exchange(sim: &mut Sim, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let now = sim.now;
    for f in frames {
        sim.b.iface.receive(now, f);
    }
    let mut out = Vec::new();
    while let Some(f) = sim.b.iface.pop_transmit() {
        out.push(f);
    }
    out
}

const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
const HOST_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 50]);
const B_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

fn learn_host(sim: &mut Sim) {
    // An ARP request from the host teaches b its address.
    let f = arp_request(HOST_MAC, HOST, B);
    sim.b.iface.pop_transmit(); // gratuitous ARP
    let replies = exchange(sim, &[f]);
    assert_eq!(replies.len(), 1, "ARP reply");
}

/// Reassembles the echo reply b sent and returns its ICMP message.
fn reassemble_reply(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut r = Reassembler::new(Default::default());
    let mut stats = tapstack::Counters::default();
    for f in frames {
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
        assert!(tapstack::wire::checksum_ok(ip.slice()));
        let payload = &f[14 + ip.slice().len()..14 + ip.total_len() as usize];
        if !ip.is_fragmenting_payload() {
            return payload.to_vec();
        }
        let frag = tapstack::core::Fragment {
            key: tapstack::core::FragKey {
                src: ip.source_addr().into(),
                dst: ip.destination_addr().into(),
                proto: ip.protocol().0,
                id: ip.identification().into(),
            },
            header: ip.slice(),
            offset: ip.fragments_offset().byte_offset() as usize,
            more: ip.more_fragments(),
            payload,
        };
        if let Some(dg) = r.insert(Instant::ZERO, frag, &mut stats) {
            return dg.payload;
        }
    }
    panic!("reply incomplete");
}

#[test]
fn echo_requests_of_any_size_in_any_fragment_order_are_answered() {
    let mut sim = Sim::pair();
    learn_host(&mut sim);
    for (i, size) in [0usize, 56, 1472, 1473, 8000, 65507]
        .into_iter()
        .enumerate()
    {
        let req = echo_request(77, i as u16, &pattern(size, 9));
        let mut frames = ipv4_frames(
            HOST_MAC,
            B_MAC,
            HOST,
            B,
            IpNumber::ICMP,
            1000 + i as u16,
            &req,
            1500,
        );
        frames.reverse();
        let reply_frames = exchange(&mut sim, &frames);
        let reply = reassemble_reply(&reply_frames);
        assert_eq!(reply[0], 0, "echo reply");
        assert_eq!(&reply[4..], &req[4..], "same id, sequence and data");
        assert!(tapstack::wire::checksum_ok(&reply));
    }
    assert_eq!(sim.b.iface.counters().icmp_tx_echo_replies, 6);
}

#[test]
fn no_icmp_errors_about_broadcasts_fragments_or_icmp_errors() {
    let mut sim = Sim::pair();
    learn_host(&mut sim);
    let bcast = Ipv4Addr::new(10, 0, 0, 255);
    // UDP to a closed port at a broadcast address: silence.
    let seg = udp_segment(HOST, bcast, 1, 9, b"x");
    let f = ipv4_frames(
        HOST_MAC,
        MacAddr::BROADCAST,
        HOST,
        bcast,
        IpNumber::UDP,
        1,
        &seg,
        1500,
    );
    assert!(exchange(&mut sim, &f).is_empty());
    // An ICMP error about something: silence, even for an unknown protocol inside.
    let err = {
        let t = etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        );
        let quote = [0x45u8; 28];
        let h = etherparse::Icmpv4Header::with_checksum(t, &quote);
        let mut m = h.to_bytes().to_vec();
        m.extend_from_slice(&quote);
        m
    };
    let f = ipv4_frames(HOST_MAC, B_MAC, HOST, B, IpNumber(200), 2, &err, 1500);
    let out = exchange(&mut sim, &f);
    assert_eq!(out.len(), 1, "protocol unreachable for protocol 200");
    let f = ipv4_frames(HOST_MAC, B_MAC, HOST, B, IpNumber::ICMP, 3, &err, 1500);
    assert!(
        exchange(&mut sim, &f).is_empty(),
        "never an error about an error"
    );
    // An echo request to the broadcast address: ignored like Linux.
    let req = echo_request(1, 1, b"ping");
    let f = ipv4_frames(
        HOST_MAC,
        MacAddr::BROADCAST,
        HOST,
        bcast,
        IpNumber::ICMP,
        4,
        &req,
        1500,
    );
    assert!(exchange(&mut sim, &f).is_empty());
    let c = sim.b.iface.counters();
    assert_eq!(c.icmp_tx_suppressed, 1, "the broadcast");
    assert_eq!(c.icmp_rx_echo_broadcast, 1);
    assert_eq!(c.icmp_tx_protocol_unreachable, 1);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let mut sim = Sim::pair();
    learn_host(&mut sim);
    let frames: Vec<Vec<u8>> = (0..200u16)
        .flat_map(|i| {
            let seg = udp_segment(HOST, B, 1000 + i, 9, b"x");
            ipv4_frames(HOST_MAC, B_MAC, HOST, B, IpNumber::UDP, i, &seg, 1500)
        })
        .collect();
    let out = exchange(&mut sim, &frames);
    assert_eq!(out.len(), 50, "the burst");
    assert_eq!(sim.b.iface.counters().icmp_tx_rate_limited, 150);
    sim.now += Duration::from_millis(10);
    let out = exchange(&mut sim, &frames[..20]);
    assert_eq!(out.len(), 10, "1000/s refills 10 in 10 ms");
}

#[test]
fn incomplete_datagram_times_out_with_time_exceeded() {
    let mut sim = Sim::pair();
    learn_host(&mut sim);
    let seg = udp_segment(HOST, B, 1, 7, &pattern(4000, 1));
    let frames = ipv4_frames(HOST_MAC, B_MAC, HOST, B, IpNumber::UDP, 5, &seg, 1500);
    assert!(exchange(&mut sim, &frames[..2]).is_empty());
    // A second datagram of which only a later fragment arrives: it times out silently, since
    // there is no first fragment to quote (RFC 1122 §3.3.2).
    let frames2 = ipv4_frames(HOST_MAC, B_MAC, HOST, B, IpNumber::UDP, 6, &seg, 1500);
    assert!(exchange(&mut sim, &frames2[1..2]).is_empty());
    assert_eq!(
        sim.b.iface.poll_at(),
        Some(Instant::ZERO + Duration::from_secs(30))
    );
    sim.now = Instant::from_secs(30);
    sim.b.iface.poll(sim.now);
    let out = exchange(&mut sim, &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][14 + 20], 11, "time exceeded");
    assert_eq!(out[0][14 + 21], 1, "fragment reassembly time exceeded");
    assert_eq!(sim.b.iface.counters().reasm_timeouts, 2);
    assert_eq!(sim.b.iface.counters().icmp_tx_time_exceeded, 1);
    assert_eq!(sim.b.iface.reassembly_mem(), 0);
}

/// Sends `count` numbered datagrams of `size` bytes from a to b through faults and checks that
/// whatever arrives is intact and delivered at most once.
fn transfer_under_faults(
    faults: FaultConfig,
    size: usize,
    count: u32,
) -> (u32, tapstack::Counters) {
    let mut sim = Sim::new(config(1, 11), config(2, 12), faults);
    let sa = bind(&mut sim.a, 5000);
    let sb = bind(&mut sim.b, 7);
    let mut seen = std::collections::HashSet::new();
    for seq in 0..count {
        let mut data = pattern(size, seq as u8);
        data[..4].copy_from_slice(&seq.to_be_bytes());
        let now = sim.now;
        sim.a
            .iface
            .udp_send(now, sa, &data, Some(SocketAddrV4::new(B, 7).into()))
            .expect("send");
        sim.advance(Duration::from_millis(2));
        for got in drain(&mut sim.b, sb) {
            let n = u32::from_be_bytes(got[..4].try_into().unwrap());
            let mut want = pattern(size, n as u8);
            want[..4].copy_from_slice(&n.to_be_bytes());
            assert_eq!(sha256(&got), sha256(&want), "datagram {n} corrupted");
            seen.insert(n);
        }
    }
    sim.advance(Duration::from_secs(31));
    assert_eq!(sim.b.iface.reassembly_mem(), 0, "timeouts freed everything");
    let mut c = sim.b.iface.counters().clone();
    sim.a.dev.add_counters(&mut c);
    (seen.len() as u32, c)
}

#[test]
fn fragmented_datagrams_survive_loss_reordering_and_duplication() {
    for seed in 0..4 {
        let faults = FaultConfig {
            drop_pct: 5.0,
            duplicate_pct: 10.0,
            reorder_pct: 20.0,
            corrupt_pct: 0.0,
            mark_pct: 0.0,
            seed,
        };
        let (delivered, c) = transfer_under_faults(faults, 8000, 300);
        // Each datagram is 6 fragments; with 5% loss about 74% arrive whole.
        assert!(
            delivered > 150,
            "seed {seed}: only {delivered} of 300 delivered"
        );
        assert!(c.fault_reordered > 100 && c.fault_duplicated > 50 && c.fault_dropped > 50);
        assert!(c.reasm_timeouts > 0 && c.reasm_duplicates > 0);
    }
}

/// One flipped bit per frame is always caught by the checksums. (Two flips in different
/// fragments of one datagram can cancel in the internet checksum, for Linux too, so this test
/// keeps datagrams to one frame.)
#[test]
fn corrupted_frames_are_dropped_never_delivered() {
    let faults = FaultConfig {
        corrupt_pct: 20.0,
        seed: 5,
        ..Default::default()
    };
    let (delivered, c) = transfer_under_faults(faults, 1400, 500);
    assert!(delivered > 300, "only {delivered} delivered");
    assert!(c.fault_corrupted > 100);
    let caught = c.ip_rx_bad_checksum
        + c.udp_rx_bad_checksum
        + c.eth_rx_not_for_us
        + c.eth_rx_unknown_ethertype
        + c.reasm_overlaps
        + c.ip_rx_bad_length
        + c.ip_rx_not_for_us
        + c.ip_rx_bad_version
        + c.ip_rx_bad_ihl;
    assert!(caught > 50, "corruption was caught and counted: {c}");
}

/// Over a bare-IP link (a TUN) the core speaks no ARP: no announcement, no request before
/// answering a peer it has never heard from, and packets are taken whatever the made-up link
/// header's addresses, ARP frames ignored.
#[test]
fn a_bare_ip_link_answers_without_arp() {
    let mut cfg = config(2, 2);
    cfg.medium = tapstack::wire::Medium::Ip;
    let mut iface = tapstack::core::Interface::new(cfg, Instant::ZERO);
    assert!(iface.pop_transmit().is_none(), "no gratuitous ARP");
    let peer = Ipv4Addr::new(192, 168, 7, 1);
    iface.receive(Instant::ZERO, &arp_request(MacAddr([2; 6]), peer, B));
    assert!(iface.pop_transmit().is_none(), "ARP answered on an IP link");
    let zero = MacAddr([0; 6]);
    let ping = echo_request(9, 1, b"over a tun");
    for frame in ipv4_frames(zero, zero, peer, B, IpNumber::ICMP, 1, &ping, 1500) {
        iface.receive(Instant::ZERO, &frame);
    }
    let reply = iface
        .pop_transmit()
        .expect("an echo reply, with no ARP request first");
    let (ip, rest) = etherparse::Ipv4Header::from_slice(&reply[14..]).unwrap();
    assert_eq!(ip.protocol, IpNumber::ICMP);
    assert_eq!(
        Ipv4Addr::from(ip.destination),
        peer,
        "off-link, yet sent on the link"
    );
    assert_eq!(rest[0], 0, "echo reply");
    assert_eq!(&rest[8..], b"over a tun");
    assert!(iface.pop_transmit().is_none());
}

/// Each queued datagram is charged its data and its queue entry: a flood of empty datagrams
/// fills the receive buffer and is counted as dropped like any other, and reading them gives
/// the room back whole.
#[test]
fn a_flood_of_empty_datagrams_is_bounded_and_the_room_comes_back() {
    let mut sim = Sim::pair();
    learn_host(&mut sim);
    let id = bind(&mut sim.b, 9);
    let rcvbuf = sim.b.iface.config().udp_rcvbuf;
    let flood = 20_000u16;
    for i in 0..flood {
        let seg = udp_segment(HOST, B, 1000, 9, b"");
        let f = ipv4_frames(
            HOST_MAC,
            sim.b.iface.config().mac,
            HOST,
            B,
            IpNumber::UDP,
            i,
            &seg,
            1500,
        );
        exchange(&mut sim, &f);
    }
    let dropped = sim.b.iface.counters().udp_rx_buffer_full;
    let queued = drain(&mut sim.b, id);
    assert!(queued.iter().all(|d| d.is_empty()));
    assert_eq!(queued.len() as u64 + dropped, u64::from(flood));
    assert!(dropped > 0, "the flood was bounded");
    assert!(
        queued.len() < rcvbuf / 16,
        "{} empty datagrams queued",
        queued.len()
    );
    // Drained, the buffer takes as many again.
    for i in 0..flood {
        let seg = udp_segment(HOST, B, 1000, 9, b"");
        let f = ipv4_frames(
            HOST_MAC,
            sim.b.iface.config().mac,
            HOST,
            B,
            IpNumber::UDP,
            i,
            &seg,
            1500,
        );
        exchange(&mut sim, &f);
    }
    assert_eq!(drain(&mut sim.b, id).len(), queued.len());
}
