//! IPv6 as a host, one crafted frame in and the frames out (RFC 8200, RFC 4861, RFC 4862,
//! RFC 4443): DAD before an address is used and a duplicate never used, Neighbour
//! Solicitation answered, resolution with the packet waiting, echo (unicast and to all
//! nodes), and the extension-header rules with their parameter problems.

mod common;

use common::{config, TcpCalls};
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv6Header};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tapstack::config::Ipv6Config;
use tapstack::core::{AddrState, Interface, NudState, SocketId};
use tapstack::time::Instant;
use tapstack::wire::ipv6::{checksum, link_local, multicast_mac, solicited_node, ALL_NODES};
use tapstack::wire::MacAddr;

const OURS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const HOST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const ICMPV6: u8 = 58;

fn at(ms: u64) -> Instant {
    Instant::ZERO + Duration::from_millis(ms)
}

/// An interface with 2001:db8::2/64 and its link-local address, DAD's one probe each.
fn iface() -> Interface {
    let mut cfg = config(2, 2);
    cfg.ipv6 = Some(Ipv6Config {
        addrs: vec![(OURS, 64)],
        ..Ipv6Config::default()
    });
    Interface::new(cfg, Instant::ZERO)
}

/// An interface past DAD, its queue emptied.
fn ready() -> Interface {
    let mut i = iface();
    i.poll(at(0));
    i.poll(at(1000));
    drain(&mut i);
    assert!(i
        .ipv6()
        .unwrap()
        .addrs()
        .iter()
        .all(|a| a.state == AddrState::Preferred));
    i
}

fn drain(i: &mut Interface) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| i.pop_transmit()).collect()
}

/// The IPv6 frames sent, as (Ethernet destination, IPv6 header, payload after it).
fn sent6(i: &mut Interface) -> Vec<(MacAddr, Ipv6Header, Vec<u8>)> {
    drain(i)
        .into_iter()
        .filter(|f| f[12..14] == [0x86, 0xdd])
        .map(|f| {
            let (h, rest) = Ipv6Header::from_slice(&f[14..]).unwrap();
            let mut dst = [0u8; 6];
            dst.copy_from_slice(&f[..6]);
            (MacAddr(dst), h, rest.to_vec())
        })
        .collect()
}

/// A frame from the host carrying `payload` after an IPv6 header with `next_header`.
fn frame(
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop: u8,
    payload: &[u8],
) -> Vec<u8> {
    let eth = Ethernet2Header {
        source: HOST_MAC.0,
        destination: dst_mac.0,
        ether_type: EtherType::IPV6,
    };
    let ip = Ipv6Header {
        payload_length: payload.len() as u16,
        next_header: IpNumber(next_header),
        hop_limit: hop,
        source: src.octets(),
        destination: dst.octets(),
        ..Default::default()
    };
    let mut f = eth.to_bytes().to_vec();
    f.extend_from_slice(&ip.to_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ICMPv6 message of `body` after type and code, its checksum for `src` → `dst`.
fn icmp(src: Ipv6Addr, dst: Ipv6Addr, kind: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(body);
    let c = checksum(src, dst, ICMPV6, &m);
    m[2..4].copy_from_slice(&c);
    m
}

fn echo_request(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    icmp(src, dst, 128, 0, &[0x12, 0x34, 0, 7, b'h', b'i'])
}

/// A Neighbour Solicitation for `target` from `src` (with the host's link address unless
/// `src` is unspecified), to `dst`.
fn solicitation(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    if !src.is_unspecified() {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&HOST_MAC.0);
    }
    icmp(src, dst, 135, 0, &body)
}

fn advertisement(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, flags: u8) -> Vec<u8> {
    let mut body = vec![flags, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&HOST_MAC.0);
    icmp(src, dst, 136, 0, &body)
}

fn our_mac(i: &Interface) -> MacAddr {
    i.config().mac
}

/// The host resolves our address and pings it: the answer goes to the address it learned.
fn resolve_and_ping(i: &mut Interface, now: Instant) -> Vec<(MacAddr, Ipv6Header, Vec<u8>)> {
    let ns = solicitation(HOST, solicited_node(OURS), OURS);
    i.receive(
        now,
        &frame(
            multicast_mac(solicited_node(OURS)),
            HOST,
            solicited_node(OURS),
            ICMPV6,
            255,
            &ns,
        ),
    );
    let mac = our_mac(i);
    i.receive(
        now,
        &frame(mac, HOST, OURS, ICMPV6, 64, &echo_request(HOST, OURS)),
    );
    // Router discovery's solicitations are not what these tests look at.
    sent6(i)
        .into_iter()
        .filter(|(_, _, m)| m[0] != 133)
        .collect()
}

#[test]
fn addresses_wait_for_dad_then_answer_solicitations_and_echo() {
    let mut i = iface();
    let ll = link_local(our_mac(&i));
    i.poll(at(0));
    let mut probes = sent6(&mut i);
    assert_eq!(
        probes.len(),
        3,
        "an MLD report, then one DAD probe per address"
    );
    // First the groups are joined: an MLDv2 Report from the unspecified address (the
    // link-local one is still tentative) to ff02::16, hop limit 1, Router Alert, one
    // change-to-exclude record per solicited-node group (RFC 4862 §5.4.2, RFC 3810).
    let (mac, h, p) = probes.remove(0);
    assert_eq!(mac, multicast_mac("ff02::16".parse().unwrap()));
    assert_eq!(
        (Ipv6Addr::from(h.source), h.hop_limit, h.next_header.0),
        (Ipv6Addr::UNSPECIFIED, 1, 0)
    );
    assert_eq!(
        &p[..8],
        &[ICMPV6, 0, 5, 2, 0, 0, 1, 0],
        "hop-by-hop, router alert"
    );
    let mld = &p[8..];
    // Both addresses end in 00:00:02: they share one solicited-node group.
    assert_eq!((mld[0], u16::from_be_bytes([mld[6], mld[7]])), (143, 1));
    assert_eq!(
        checksum(
            Ipv6Addr::UNSPECIFIED,
            "ff02::16".parse().unwrap(),
            ICMPV6,
            mld
        ),
        [0, 0]
    );
    let groups: Vec<Ipv6Addr> = mld[8..]
        .chunks(20)
        .map(|r| {
            assert_eq!(&r[..4], &[4, 0, 0, 0], "change to exclude, no sources");
            Ipv6Addr::from(<[u8; 16]>::try_from(&r[4..20]).unwrap())
        })
        .collect();
    assert!(groups.contains(&solicited_node(OURS)) && groups.contains(&solicited_node(ll)));
    for (mac, h, m) in &probes {
        assert_eq!(Ipv6Addr::from(h.source), Ipv6Addr::UNSPECIFIED);
        let target = Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).unwrap());
        assert!(target == OURS || target == ll);
        assert_eq!(Ipv6Addr::from(h.destination), solicited_node(target));
        assert_eq!(*mac, multicast_mac(solicited_node(target)));
        assert_eq!(
            (h.hop_limit, m[0], m.len()),
            (255, 135, 24),
            "no link-layer option"
        );
    }
    // Tentative: an echo to it is not answered.
    let mac = our_mac(&i);
    i.receive(
        at(500),
        &frame(mac, HOST, OURS, ICMPV6, 64, &echo_request(HOST, OURS)),
    );
    assert!(sent6(&mut i).is_empty());
    i.poll(at(1000));
    assert_eq!(i.counters().ip6_addrs_preferred, 2);

    let out = resolve_and_ping(&mut i, at(1100));
    assert_eq!(out.len(), 2, "an advertisement and an echo reply");
    let (mac, h, na) = &out[0];
    assert_eq!(
        (*mac, Ipv6Addr::from(h.destination), h.hop_limit),
        (HOST_MAC, HOST, 255)
    );
    assert_eq!(na[0], 136);
    assert_eq!(na[4], 0x60, "solicited and override, not a router");
    assert_eq!(&na[8..24], &OURS.octets());
    assert_eq!(
        &na[24..32],
        &[2, 1, 2, 0, 0, 0, 0, 2],
        "our link-layer address"
    );
    let (mac, h, reply) = &out[1];
    assert_eq!((*mac, Ipv6Addr::from(h.source)), (HOST_MAC, OURS));
    assert_eq!(
        reply,
        &icmp(OURS, HOST, 129, 0, &[0x12, 0x34, 0, 7, b'h', b'i'])
    );
    let c = i.counters();
    assert_eq!(
        (c.icmp6_rx_echo_requests, c.icmp6_tx_echo_replies),
        (1, 1),
        "the tentative one unseen"
    );
}

#[test]
fn a_duplicate_address_is_never_used() {
    let mut i = iface();
    i.poll(at(0));
    drain(&mut i);
    // Another node answers for our tentative address.
    let na = advertisement(OURS, ALL_NODES, OURS, 0x20);
    i.receive(
        at(100),
        &frame(multicast_mac(ALL_NODES), OURS, ALL_NODES, ICMPV6, 255, &na),
    );
    i.poll(at(1000));
    let ip6 = i.ipv6().unwrap();
    assert_eq!(
        ip6.addrs().iter().find(|a| a.addr == OURS).unwrap().state,
        AddrState::Duplicate
    );
    assert_eq!(i.counters().ip6_dad_duplicates, 1);
    let out = resolve_and_ping(&mut i, at(1100));
    assert!(out.is_empty(), "{out:?}");

    // A DAD probe from another node for the same tentative address: a duplicate too.
    let mut i = iface();
    i.poll(at(0));
    let probe = solicitation(Ipv6Addr::UNSPECIFIED, solicited_node(OURS), OURS);
    i.receive(
        at(10),
        &frame(
            multicast_mac(solicited_node(OURS)),
            Ipv6Addr::UNSPECIFIED,
            solicited_node(OURS),
            ICMPV6,
            255,
            &probe,
        ),
    );
    assert_eq!(i.counters().ip6_dad_duplicates, 1);
}

#[test]
fn a_reply_waits_for_resolution_and_leaves_on_the_advertisement() {
    let mut i = ready();
    let mac = our_mac(&i);
    // An echo from a host we never heard a solicitation from.
    i.receive(
        at(2000),
        &frame(mac, HOST, OURS, ICMPV6, 64, &echo_request(HOST, OURS)),
    );
    let out = sent6(&mut i);
    assert_eq!(out.len(), 1, "only a solicitation: the reply waits");
    let (dst_mac, h, ns) = &out[0];
    assert_eq!(*dst_mac, multicast_mac(solicited_node(HOST)));
    assert_eq!(
        (Ipv6Addr::from(h.source), Ipv6Addr::from(h.destination)),
        (OURS, solicited_node(HOST))
    );
    assert_eq!((ns[0], &ns[8..24]), (135, &HOST.octets()[..]));
    assert!(matches!(
        i.ipv6().unwrap().neighbor(HOST),
        Some((None, NudState::Incomplete { .. }))
    ));
    let na = advertisement(HOST, OURS, HOST, 0x60);
    i.receive(at(2010), &frame(mac, HOST, OURS, ICMPV6, 255, &na));
    let out = sent6(&mut i);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].0, out[0].2[0]),
        (HOST_MAC, 129),
        "the echo reply, to the address learned"
    );
    assert!(matches!(
        i.ipv6().unwrap().neighbor(HOST),
        Some((Some(HOST_MAC), NudState::Reachable { .. }))
    ));

    // Unanswered, resolution gives up after three solicitations and drops what waited.
    let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9);
    i.receive(
        at(3000),
        &frame(mac, other, OURS, ICMPV6, 64, &echo_request(other, OURS)),
    );
    for t in [4000, 5000, 6000] {
        i.poll(at(t));
    }
    let sols = sent6(&mut i).iter().filter(|(_, _, m)| m[0] == 135).count();
    assert_eq!(sols, 3);
    assert_eq!(i.counters().nd_resolution_failures, 1);
    assert!(i.ipv6().unwrap().neighbor(other).is_none());
}

#[test]
fn echo_to_all_nodes_is_answered_from_the_link_local_address() {
    let mut i = ready();
    let ll = link_local(our_mac(&i));
    let host_ll = link_local(HOST_MAC);
    let ns = solicitation(host_ll, solicited_node(ll), ll);
    i.receive(
        at(2000),
        &frame(
            multicast_mac(solicited_node(ll)),
            host_ll,
            solicited_node(ll),
            ICMPV6,
            255,
            &ns,
        ),
    );
    drain(&mut i);
    i.receive(
        at(2000),
        &frame(
            multicast_mac(ALL_NODES),
            host_ll,
            ALL_NODES,
            ICMPV6,
            64,
            &echo_request(host_ll, ALL_NODES),
        ),
    );
    let out = sent6(&mut i);
    assert_eq!(out.len(), 1);
    assert_eq!(Ipv6Addr::from(out[0].1.source), ll);
    assert_eq!(out[0].2[0], 129);
}

/// Sends `payload` after `next_header` to our address; the ICMPv6 error sent back, if any, as
/// (type, code, parameter).
/// An interface past DAD whose host has resolved it and pinged it: the host is in its
/// neighbour cache, so answers and errors leave at once.
fn resolved() -> Interface {
    let mut i = ready();
    resolve_and_ping(&mut i, at(1500));
    i
}

fn error_for(i: &mut Interface, next_header: u8, payload: &[u8]) -> Option<(u8, u8, u32)> {
    let mac = our_mac(i);
    i.receive(at(2000), &frame(mac, HOST, OURS, next_header, 64, payload));
    let out = sent6(i);
    let (_, _, m) = out.iter().find(|(_, _, m)| m[0] < 128)?;
    Some((m[0], m[1], u32::from_be_bytes([m[4], m[5], m[6], m[7]])))
}

#[test]
fn extension_headers_are_walked_and_their_errors_point_at_the_fault() {
    let mut i = ready();
    // The host is known, so errors leave at once.
    resolve_and_ping(&mut i, at(1500));
    let echo = echo_request(HOST, OURS);
    let with_option = |kind: u8| {
        // Hop-by-Hop: next header ICMPv6, length 0 (8 bytes), one 4-byte option of `kind`.
        let mut p = vec![ICMPV6, 0, kind, 2, 0, 0, 1, 0];
        p.extend_from_slice(&echo);
        p
    };
    // An unknown option whose type says "skip": the echo is answered.
    let mac = our_mac(&i);
    i.receive(at(2000), &frame(mac, HOST, OURS, 0, 64, &with_option(0x1e)));
    assert_eq!(sent6(&mut i).len(), 1, "answered");
    // "Discard": silence.
    assert_eq!(error_for(&mut i, 0, &with_option(0x5e)), None);
    assert_eq!(i.counters().icmp6_tx_echo_replies, 2);
    // "Discard and report": parameter problem code 2, pointing at the option (offset 42).
    assert_eq!(error_for(&mut i, 0, &with_option(0x9e)), Some((4, 2, 42)));
    // A routing header with segments left: code 0, pointing at its type (offset 42).
    let mut routing = vec![ICMPV6, 0, 0, 1, 0, 0, 0, 0];
    routing.extend_from_slice(&echo);
    assert_eq!(error_for(&mut i, 43, &routing), Some((4, 0, 42)));
    // An unknown next header: code 1, pointing at the field that named it.
    assert_eq!(error_for(&mut i, 253, &[0; 8]), Some((4, 1, 6)));
    // Hop-by-Hop after another header: code 1, pointing at that header's next-header field.
    let mut late = vec![0, 0, 1, 4, 0, 0, 0, 0];
    late.extend_from_slice(&[ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
    assert_eq!(error_for(&mut i, 60, &late), Some((4, 1, 40)));
    // An atomic fragment is the whole packet (RFC 6946).
    let mut atomic = vec![ICMPV6, 0, 0, 0, 0, 0, 0, 1];
    atomic.extend_from_slice(&echo);
    i.receive(at(2000), &frame(mac, HOST, OURS, 44, 64, &atomic));
    assert_eq!(sent6(&mut i).len(), 1, "answered");
    // A fragment but the last whose length is no multiple of 8: pointing at the payload
    // length.
    let mut first = vec![ICMPV6, 0, 0, 1, 0, 0, 0, 1];
    first.extend_from_slice(&echo);
    assert_eq!(error_for(&mut i, 44, &first), Some((4, 0, 4)));
    // UDP to us: every IPv6 port is closed, port unreachable.
    assert_eq!(error_for(&mut i, 17, &udp6(7, b"hi")), Some((1, 4, 0)));
}

#[test]
fn neighbor_discovery_is_validated_and_errors_are_never_about_errors() {
    let mut i = resolved();
    let mac = our_mac(&i);
    let invalid = i.counters().nd_rx_invalid;
    // A solicitation that crossed a router (hop limit below 255) is not answered.
    let ns = solicitation(HOST, OURS, OURS);
    i.receive(at(2000), &frame(mac, HOST, OURS, ICMPV6, 64, &ns));
    assert!(sent6(&mut i).is_empty());
    // Nor one with a zero-length option.
    let mut bad = vec![0, 0, 0, 0];
    bad.extend_from_slice(&OURS.octets());
    bad.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    let bad = icmp(HOST, OURS, 135, 0, &bad);
    i.receive(at(2000), &frame(mac, HOST, OURS, ICMPV6, 255, &bad));
    assert!(sent6(&mut i).is_empty());
    assert_eq!(i.counters().nd_rx_invalid, invalid + 2);
    // An ICMPv6 error with a bad inner packet is never answered with an error.
    let err = icmp(HOST, OURS, 1, 4, &[0; 44]);
    assert_eq!(error_for(&mut i, ICMPV6, &err), None);
    // A bad checksum drops the message.
    let mut echo = echo_request(HOST, OURS);
    echo[6] ^= 0xff;
    assert_eq!(error_for(&mut i, ICMPV6, &echo), None);
    assert_eq!(i.counters().icmp6_rx_bad_checksum, 1);
}

#[test]
fn without_ipv6_its_frames_are_ignored() {
    let mut i = Interface::new(config(2, 2), Instant::ZERO);
    drain(&mut i);
    let ns = solicitation(HOST, solicited_node(OURS), OURS);
    i.receive(
        at(0),
        &frame(
            multicast_mac(solicited_node(OURS)),
            HOST,
            solicited_node(OURS),
            ICMPV6,
            255,
            &ns,
        ),
    );
    assert!(drain(&mut i).is_empty());
    assert_eq!(i.counters().ip6_rx_packets, 0);
}

/// Valid IPv6 frames (echo, NS, NA, options, routing, fragment, UDP) with random bytes
/// changed or cut short, their ICMPv6 checksum recomputed half the time so that the mutations
/// reach past it, and random bytes after an IPv6 ethertype: no panic, every frame counted,
/// and the stack still resolves and answers afterwards.
#[test]
fn a_hundred_thousand_mangled_ipv6_frames_never_break_the_stack() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let mut i = ready();
    let mac = our_mac(&i);
    let sn = solicited_node(OURS);
    let echo = echo_request(HOST, OURS);
    let mut hbh = vec![ICMPV6, 0, 0x9e, 2, 0, 0, 1, 0];
    hbh.extend_from_slice(&echo);
    let mut routing = vec![ICMPV6, 0, 0, 1, 0, 0, 0, 0];
    routing.extend_from_slice(&echo);
    let mut frag = vec![ICMPV6, 0, 0, 0, 0, 0, 0, 1];
    frag.extend_from_slice(&echo);
    let templates = [
        frame(mac, HOST, OURS, ICMPV6, 64, &echo),
        frame(
            multicast_mac(sn),
            HOST,
            sn,
            ICMPV6,
            255,
            &solicitation(HOST, sn, OURS),
        ),
        frame(
            mac,
            HOST,
            OURS,
            ICMPV6,
            255,
            &advertisement(HOST, OURS, HOST, 0x60),
        ),
        frame(mac, HOST, OURS, 0, 64, &hbh),
        frame(mac, HOST, OURS, 43, 64, &routing),
        frame(mac, HOST, OURS, 44, 64, &frag),
        frame(mac, HOST, OURS, 17, 64, &[0, 1, 0, 7, 0, 9, 0, 0, 1]),
    ];
    let n = 100_000u64;
    for k in 0..n {
        let mut f = if k % 4 == 0 {
            let len = rng.random_range(15..1600);
            let mut f: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            f[..6].copy_from_slice(&mac.0);
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f
        } else {
            templates[rng.random_range(0..templates.len())].clone()
        };
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(14..f.len());
            f[at] = rng.random();
        }
        if rng.random_range(0..4) == 0 && f.len() > 15 {
            f.truncate(rng.random_range(15..f.len()));
        }
        // Recompute an ICMPv6 checksum right after the header, when there is one.
        if rng.random() && f.len() >= 14 + 44 && f[14 + 6] == ICMPV6 {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
            let len = usize::from(u16::from_be_bytes([f[18], f[19]])).min(f.len() - 54);
            let msg = &mut f[54..54 + len];
            if msg.len() >= 4 {
                msg[2..4].fill(0);
                let c = checksum(src, dst, ICMPV6, msg);
                msg[2..4].copy_from_slice(&c);
            }
        }
        let now = at(2000 + k / 10);
        i.receive(now, &f);
        i.poll(now);
        drain(&mut i);
    }
    assert_eq!(i.counters().eth_rx_frames, n);
    // Whatever the garbage taught the cache, a fresh host still gets its answers.
    let later = at(200_000);
    i.poll(later);
    drain(&mut i);
    let out = resolve_and_ping(&mut i, later);
    assert!(
        out.iter().any(|(m, _, p)| *m == HOST_MAC && p[0] == 129),
        "{out:?}"
    );
}

/// A UDP datagram from the host to `port` over IPv6, its checksum right.
fn udp6(port: u16, data: &[u8]) -> Vec<u8> {
    udp6_to(OURS, port, data)
}

/// A UDP datagram from the host's port 12345 to `dst`'s `port`, its checksum for HOST → `dst`.
fn udp6_to(dst: Ipv6Addr, port: u16, data: &[u8]) -> Vec<u8> {
    let mut u = vec![0x30, 0x39];
    u.extend_from_slice(&port.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    let c = checksum(HOST, dst, 17, &u);
    u[6..8].copy_from_slice(&c);
    u
}

/// A TCP segment from the host's `port` to our port 80, with an MSS option if given, its
/// checksum for HOST → OURS.
fn tcp6_with(port: u16, seq: u32, ack: u32, flags: u8, mss: Option<u16>) -> Vec<u8> {
    let mut t = port.to_be_bytes().to_vec();
    t.extend_from_slice(&[0, 80]);
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    let offset = if mss.is_some() { 0x60 } else { 0x50 };
    t.extend_from_slice(&[offset, flags, 0xff, 0xff, 0, 0, 0, 0]);
    if let Some(m) = mss {
        t.extend_from_slice(&[2, 4]);
        t.extend_from_slice(&m.to_be_bytes());
    }
    let c = checksum(HOST, OURS, 6, &t);
    t[16..18].copy_from_slice(&c);
    t
}

#[test]
fn udp_over_ipv6_and_ipv4_through_one_dual_stack_socket() {
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    let mut i = resolved();
    let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 7));
    let s = i.udp_bind(any6).unwrap();
    // The dual-stack socket holds port 7 in both families.
    let any4 = SocketAddr::from(([0, 0, 0, 0], 7));
    assert_eq!(
        i.udp_bind(any4).unwrap_err().raw_os_error(),
        Some(libc::EADDRINUSE)
    );
    let mac = our_mac(&i);
    i.receive(
        at(2000),
        &frame(mac, HOST, OURS, 17, 64, &udp6(7, b"over six")),
    );
    let (data, from) = i.udp_recv(s).expect("a datagram").unwrap();
    let host = SocketAddr::V6(SocketAddrV6::new(HOST, 0x3039, 0, 0));
    assert_eq!((&data[..], from), (&b"over six"[..], host));
    i.udp_send(at(2000), s, b"back", Some(from)).unwrap();
    let out = sent6(&mut i);
    assert_eq!(out.len(), 1);
    let (m, h, u) = &out[0];
    assert_eq!(
        (*m, Ipv6Addr::from(h.source), Ipv6Addr::from(h.destination)),
        (HOST_MAC, OURS, HOST)
    );
    assert_eq!(&u[8..], b"back");
    assert_eq!(checksum(OURS, HOST, 17, u), [0, 0], "a valid checksum");

    // IPv4 reaches the same socket, its peer shown as an IPv4-mapped address (the host's
    // IPv4 link address learned first, so that the answer leaves at once).
    let arp = common::arp_request(HOST_MAC, [10, 0, 0, 1].into(), [10, 0, 0, 2].into());
    i.receive(at(2000), &arp);
    drain(&mut i);
    let seg = common::udp_segment(
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        5000,
        7,
        b"over four",
    );
    let f = common::ipv4_frames(
        HOST_MAC,
        mac,
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        IpNumber::UDP,
        1,
        &seg,
        1500,
    );
    i.receive(at(2000), &f[0]);
    let (data, from) = i.udp_recv(s).expect("a datagram").unwrap();
    let mapped = SocketAddr::V6(SocketAddrV6::new(
        Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped(),
        5000,
        0,
        0,
    ));
    assert_eq!((&data[..], from), (&b"over four"[..], mapped));
    i.udp_send(at(2000), s, b"back to four", Some(from))
        .unwrap();
    let frames = drain(&mut i);
    assert!(frames
        .iter()
        .any(|f| f[12..14] == [0x08, 0x00] && f.ends_with(b"back to four")));

    // Specific addresses of each family share a port; a datagram over the MTU leaves in
    // fragments, one over UDP's length field is refused.
    let v4 = i.udp_bind(SocketAddr::from(([10, 0, 0, 2], 9))).unwrap();
    let v6 = i.udp_bind(SocketAddr::from((OURS, 9))).unwrap();
    assert_ne!(v4, v6);
    let err = i
        .udp_send(at(2000), v6, &[0; 65528], Some(host))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
    assert!(i.udp_send(at(2000), v6, &[0; 1452], Some(host)).is_ok());
    assert_eq!(sent6(&mut i).len(), 1, "fits the MTU: one packet");
    assert!(i.udp_send(at(2000), v6, &[0; 65527], Some(host)).is_ok());
    let frags = sent6(&mut i);
    assert_eq!(frags.len(), 46, "1448 bytes of the 65535 each");
    assert!(frags
        .iter()
        .all(|(_, h, p)| h.next_header.0 == 44 && 40 + p.len() <= 1500));
    let to4 = SocketAddr::V4(SocketAddrV4::new([10, 0, 0, 1].into(), 9));
    assert_eq!(
        i.udp_send(at(2000), v6, b"x", Some(to4))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENETUNREACH)
    );
    assert_eq!(
        i.udp_send(at(2000), v4, b"x", Some(host))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EAFNOSUPPORT)
    );
}

#[test]
fn a_connected_udp6_socket_learns_port_unreachable() {
    use std::net::{SocketAddr, SocketAddrV6};
    let mut i = resolved();
    let s = i
        .udp_bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))
        .unwrap();
    // Connected with a flow label, which the peer's datagrams and errors do not carry: they
    // are still the peer's.
    let peer = SocketAddr::V6(SocketAddrV6::new(HOST, 4444, 7, 0));
    i.udp_connect(s, peer).unwrap();
    let ours = i.udp_local_addr(s).unwrap();
    assert_eq!(ours.ip(), std::net::IpAddr::V6(OURS));
    let ip = Ipv6Header {
        next_header: IpNumber::UDP,
        hop_limit: 64,
        source: HOST.octets(),
        destination: OURS.octets(),
        ..Default::default()
    };
    let udp = etherparse::UdpHeader::with_ipv6_checksum(4444, ours.port(), &ip, b"hi").unwrap();
    let mut datagram = udp.to_bytes().to_vec();
    datagram.extend_from_slice(b"hi");
    let mac = our_mac(&i);
    i.receive(at(1990), &frame(mac, HOST, OURS, 17, 64, &datagram));
    let (data, from) = i.udp_recv(s).expect("the peer's datagram").unwrap();
    assert_eq!((&data[..], from.port()), (&b"hi"[..], 4444));
    i.udp_send(at(2000), s, b"anyone?", None).unwrap();
    let (_, _, sent) = sent6(&mut i).remove(0);
    // The host's port unreachable quotes our packet.
    let mut quote = Ipv6Header {
        payload_length: sent.len() as u16,
        next_header: IpNumber::UDP,
        hop_limit: 64,
        source: OURS.octets(),
        destination: HOST.octets(),
        ..Default::default()
    }
    .to_bytes()
    .to_vec();
    quote.extend_from_slice(&sent);
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&quote);
    let unreachable = icmp(HOST, OURS, 1, 4, &body);
    i.receive(at(2010), &frame(mac, HOST, OURS, ICMPV6, 64, &unreachable));
    let err = i.udp_recv(s).expect("the error").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    // Without IPv6 on, an IPv6 bind is refused.
    let mut plain = Interface::new(config(3, 3), Instant::ZERO);
    let err = plain
        .udp_bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 7)))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EAFNOSUPPORT));
}

/// An echo request of 3000 bytes in three fragments, out of order and one duplicated, is
/// reassembled and answered in fragments; overlapping fragments drop their packet (RFC 5722);
/// an incomplete one times out with time exceeded, code 1.
#[test]
fn fragments_are_reassembled_and_big_replies_fragmented() {
    let mut i = resolved();
    let mac = our_mac(&i);
    let data: Vec<u8> = (0..2992u32).map(|k| (k * 7) as u8).collect();
    let mut body = vec![0x77, 0x77, 0, 1];
    body.extend_from_slice(&data);
    let echo = icmp(HOST, OURS, 128, 0, &body);
    let frag = |id: u32, offset: usize, more: bool, piece: &[u8]| {
        let mut p = vec![ICMPV6, 0];
        p.extend_from_slice(&(((offset / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(piece);
        frame(mac, HOST, OURS, 44, 64, &p)
    };
    let (a, b, c) = (&echo[..1232], &echo[1232..2464], &echo[2464..]);
    for f in [
        frag(9, 2464, false, c),
        frag(9, 0, true, a),
        frag(9, 0, true, a),
        frag(9, 1232, true, b),
    ] {
        i.receive(at(2000), &f);
    }
    let out = sent6(&mut i);
    assert!(out.len() >= 3, "the reply in fragments: {}", out.len());
    let mut reply = Vec::new();
    for (_, h, p) in &out {
        assert_eq!(h.next_header.0, 44);
        reply.extend_from_slice(&p[8..]);
    }
    let mut want = echo.clone();
    want[0] = 129;
    want[2..4].copy_from_slice(&[0, 0]);
    let c = checksum(OURS, HOST, ICMPV6, &want);
    want[2..4].copy_from_slice(&c);
    assert_eq!(reply, want, "the whole reply, in order");
    assert_eq!(i.counters().reasm_ok, 1);

    // Overlap: the second fragment starts inside the first.
    i.receive(at(3000), &frag(10, 0, true, a));
    i.receive(at(3000), &frag(10, 1224, true, &echo[1224..2464]));
    i.receive(at(3000), &frag(10, 2464, false, &echo[2464..]));
    assert!(sent6(&mut i).is_empty());
    assert!(i.counters().reasm_overlaps >= 1);

    // Incomplete: time exceeded (code 1) once IPv6's 60-second reassembly timeout passes
    // (not IPv4's 30).
    i.receive(at(4000), &frag(11, 0, true, a));
    i.poll(at(4000 + 45_000));
    assert!(
        !sent6(&mut i).iter().any(|(_, _, m)| m[0] == 3),
        "still waiting at 45 s"
    );
    i.poll(at(4000 + 60_000));
    let out = sent6(&mut i);
    let (_, _, m) = out
        .iter()
        .find(|(_, _, m)| m[0] == 3 && m[1] == 1)
        .expect("time exceeded");
    // It quotes the first fragment as received, Fragment header and all, as far as 1280
    // bytes allow (RFC 4443 §2.4 (c)).
    assert_eq!(m.len(), 8 + 1232);
    assert_eq!(m[8 + 6], 44, "the quoted header names its Fragment header");
    assert_eq!(
        &m[8 + 48..8 + 48 + 64],
        &a[..64],
        "the fragment's data follows"
    );
}

/// A Router Advertisement: router `fe80::1` (link address 02:..:fe) for `lifetime` seconds,
/// MTU 1400, prefix 2001:db8:1::/64 on-link and autonomous.
fn router_advertisement(lifetime: u16) -> Vec<u8> {
    router_advertisement_from("fe80::1".parse().unwrap(), lifetime)
}

fn router_advertisement_from(router: Ipv6Addr, lifetime: u16) -> Vec<u8> {
    router_advertisement_with(router, lifetime, [64, 0, 0])
}

/// A Router Advertisement with `[Cur Hop Limit, Reachable Time (ms), Retrans Timer (ms)]`,
/// an MTU of 1400 and the prefix 2001:db8:1::/64.
fn router_advertisement_with(router: Ipv6Addr, lifetime: u16, fields: [u32; 3]) -> Vec<u8> {
    let [hop_limit, reachable, retrans] = fields;
    let mut body = vec![hop_limit as u8, 0];
    body.extend_from_slice(&lifetime.to_be_bytes());
    body.extend_from_slice(&reachable.to_be_bytes());
    body.extend_from_slice(&retrans.to_be_bytes());
    body.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0xfe]);
    body.extend_from_slice(&[5, 1, 0, 0, 0, 0, 0x05, 0x78]);
    body.extend_from_slice(&[3, 4, 64, 0xc0]);
    body.extend_from_slice(&3600u32.to_be_bytes());
    body.extend_from_slice(&1800u32.to_be_bytes());
    body.extend_from_slice(&[0; 4]);
    body.extend_from_slice(&"2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets());
    icmp(router, ALL_NODES, 134, 0, &body)
}

#[test]
fn a_router_advertisement_gives_an_address_a_default_router_and_the_mtu() {
    let mut i = ready();
    let router: Ipv6Addr = "fe80::1".parse().unwrap();
    let router_mac = MacAddr([2, 0, 0, 0, 0, 0xfe]);
    let slaac: Ipv6Addr = "2001:db8:1::ff:fe00:2".parse().unwrap();
    // Router discovery began with a solicitation once the link-local address was in use.
    assert_eq!(i.counters().nd_tx_router_solicitations, 1);
    let ra = router_advertisement(1800);
    // Not from a link-local address, or not with hop limit 255: invalid.
    let invalid = i.counters().nd_rx_invalid;
    let from_global = router_advertisement_from(HOST, 1800);
    i.receive(
        at(2000),
        &frame(
            multicast_mac(ALL_NODES),
            HOST,
            ALL_NODES,
            ICMPV6,
            255,
            &from_global,
        ),
    );
    i.receive(
        at(2000),
        &frame(multicast_mac(ALL_NODES), router, ALL_NODES, ICMPV6, 64, &ra),
    );
    assert_eq!(i.counters().nd_rx_invalid, invalid + 2);
    i.receive(
        at(2000),
        &frame(
            multicast_mac(ALL_NODES),
            router,
            ALL_NODES,
            ICMPV6,
            255,
            &ra,
        ),
    );
    let c = i.counters();
    assert_eq!(
        (
            c.nd_rx_router_advertisements,
            c.nd_routers,
            c.nd_prefixes_autoconfigured
        ),
        (1, 1, 1)
    );
    let a = *i
        .ipv6()
        .unwrap()
        .addrs()
        .iter()
        .find(|a| a.addr == slaac)
        .expect("formed");
    assert_eq!(a.state, AddrState::Tentative { sent: 0 });
    // DAD for it, then it is in use.
    i.poll(at(2000));
    let probes = sent6(&mut i);
    assert!(probes.iter().any(|(_, h, m)| m[0] == 135
        && Ipv6Addr::from(h.source).is_unspecified()
        && m[8..24] == slaac.octets()));
    i.poll(at(3000));
    drain(&mut i);
    assert!(i
        .ipv6()
        .unwrap()
        .addrs()
        .iter()
        .any(|a| a.addr == slaac && a.state == AddrState::Preferred));

    // A host off the link pings it through the router: the reply goes to the router's link
    // address, in fragments within the advertised MTU.
    let far: Ipv6Addr = "2001:db8:99::5".parse().unwrap();
    let mut body = vec![0, 1, 0, 1];
    body.extend_from_slice(&[0x5a; 1500]);
    let echo = icmp(far, slaac, 128, 0, &body);
    let mac = our_mac(&i);
    let frag = |offset: usize, more: bool, piece: &[u8]| {
        let mut p = vec![ICMPV6, 0];
        p.extend_from_slice(&(((offset / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(piece);
        frame(mac, far, slaac, 44, 60, &p)
    };
    i.receive(at(3100), &frag(0, true, &echo[..1000]));
    i.receive(at(3100), &frag(1000, false, &echo[1000..]));
    let out = sent6(&mut i);
    assert!(out.len() >= 2, "{out:?}");
    for (m, h, p) in &out {
        assert_eq!((*m, Ipv6Addr::from(h.destination)), (router_mac, far));
        assert!(40 + p.len() <= 1400, "within the advertised MTU");
    }
    // The router says it is no router any more (an advertisement without R): it leaves the
    // default routers at once (RFC 4861 §7.2.5); off-link destinations have no route.
    let na = advertisement(router, ALL_NODES, router, 0x20);
    i.receive(
        at(3900),
        &frame(
            multicast_mac(ALL_NODES),
            router,
            ALL_NODES,
            ICMPV6,
            255,
            &na,
        ),
    );
    i.receive(at(4100), &frag(0, true, &echo[..1000]));
    i.receive(at(4100), &frag(1000, false, &echo[1000..]));
    assert!(sent6(&mut i).is_empty());
    let unroutable = i.counters().ip6_tx_no_route;
    assert!(unroutable >= 1, "the reply's fragments had no route");
    // A router whose lifetime ends (an advertisement with lifetime 0) leaves as well.
    let ra = router_advertisement(1800);
    i.receive(
        at(4200),
        &frame(
            multicast_mac(ALL_NODES),
            router,
            ALL_NODES,
            ICMPV6,
            255,
            &ra,
        ),
    );
    let ra = router_advertisement(0);
    i.receive(
        at(4300),
        &frame(
            multicast_mac(ALL_NODES),
            router,
            ALL_NODES,
            ICMPV6,
            255,
            &ra,
        ),
    );
    i.receive(at(4400), &frag(0, true, &echo[..1000]));
    i.receive(at(4400), &frag(1000, false, &echo[1000..]));
    assert!(sent6(&mut i).is_empty());
    assert!(i.counters().ip6_tx_no_route > unroutable);
}

/// Packet Too Big lowers the path MTU to its destination, never below 1280 and never up, only
/// for packets we sent, and for ten minutes (RFC 8201).
#[test]
fn packet_too_big_lowers_the_path_mtu_for_a_while() {
    use std::net::{SocketAddr, SocketAddrV6};
    let mut i = resolved();
    let mac = our_mac(&i);
    let s = i.udp_bind(SocketAddr::from((OURS, 0))).unwrap();
    let host = SocketAddr::V6(SocketAddrV6::new(HOST, 9, 0, 0));
    let send = |i: &mut Interface, t: u64| {
        i.udp_send(at(t), s, &[1; 1452], Some(host)).unwrap();
        let out = sent6(i);
        out.iter().map(|(_, _, p)| 40 + p.len()).max().unwrap_or(0)
    };
    assert_eq!(send(&mut i, 2000), 1500, "the link MTU");
    // The router's Packet Too Big quotes our packet.
    let too_big = |src: Ipv6Addr, mtu: u32| {
        let mut body = mtu.to_be_bytes().to_vec();
        body.extend_from_slice(
            &Ipv6Header {
                payload_length: 1460,
                next_header: IpNumber::UDP,
                hop_limit: 64,
                source: src.octets(),
                destination: HOST.octets(),
                ..Default::default()
            }
            .to_bytes(),
        );
        body.extend_from_slice(&[0; 8]);
        let router: Ipv6Addr = "2001:db8::fe".parse().unwrap();
        frame(
            mac,
            router,
            OURS,
            ICMPV6,
            64,
            &icmp(router, OURS, 2, 0, &body),
        )
    };
    i.receive(at(2100), &too_big(OURS, 1300));
    assert_eq!(send(&mut i, 2200), 1296, "fragments within 1300");
    // Not about a packet of ours: ignored. Larger: never raises it. Below 1280: discarded.
    i.receive(at(2300), &too_big("2001:db8::77".parse().unwrap(), 1280));
    assert_eq!(i.counters().icmp6_rx_not_ours, 1);
    i.receive(at(2300), &too_big(OURS, 1400));
    assert_eq!(send(&mut i, 2400), 1296);
    i.receive(at(2500), &too_big(OURS, 600));
    assert_eq!(send(&mut i, 2600), 1296);
    i.receive(at(2500), &too_big(OURS, 1280));
    assert!(send(&mut i, 2600) <= 1280);
    assert_eq!(i.counters().ip6_pmtu_updates, 2);
    // Ten minutes on, the link MTU is tried again.
    assert_eq!(send(&mut i, 2500 + 600_001), 1500);
}

/// A TCP connect over IPv6 answered by destination unreachable fails at once, as over IPv4.
#[test]
fn an_unreachable_ipv6_peer_fails_a_tcp_connect_at_once() {
    use std::net::{SocketAddr, SocketAddrV6};
    let mut i = resolved();
    let remote = SocketAddr::V6(SocketAddrV6::new(HOST, 80, 0, 0));
    let now = at(2000);
    let id = i
        .with_tcp(now, |tcp, st| tcp.connect(now, None, remote, st))
        .unwrap();
    let syn = sent6(&mut i)
        .into_iter()
        .find(|(_, h, _)| h.next_header == IpNumber::TCP)
        .expect("a SYN");
    let mut quote = syn.1.to_bytes().to_vec();
    quote.extend_from_slice(&syn.2);
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&quote);
    let unreachable = icmp(HOST, OURS, 1, 4, &body);
    let mac = our_mac(&i);
    i.receive(at(2010), &frame(mac, HOST, OURS, ICMPV6, 64, &unreachable));
    let err = i
        .with_tcp(at(2010), |tcp, _| tcp.connect_result(id))
        .expect("decided")
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
}

/// A datagram to a neighbour that never answers: resolution gives up after three
/// solicitations and the connected socket hears host unreachable (RFC 4861 §7.2.2).
#[test]
fn a_failed_resolution_reaches_the_connected_udp_socket() {
    use std::net::{SocketAddr, SocketAddrV6};
    let mut i = ready();
    let ghost: Ipv6Addr = "2001:db8::99".parse().unwrap();
    let s = i.udp_bind(SocketAddr::from((OURS, 0))).unwrap();
    i.udp_connect(s, SocketAddr::V6(SocketAddrV6::new(ghost, 9, 0, 0)))
        .unwrap();
    i.udp_send(at(2000), s, b"anyone?", None).unwrap();
    assert!(i.udp_recv(s).is_none(), "still resolving");
    for t in [3000, 4000, 5000] {
        i.poll(at(t));
    }
    let err = i.udp_recv(s).expect("the error").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EHOSTUNREACH));
    assert_eq!(i.counters().nd_resolution_failures, 1);
}

/// No error answers an ICMPv6 error or a Redirect even behind an extension header (RFC 4443
/// §2.4 e.1, e.2), while an echo request there does draw one; a Parameter Problem about a
/// connected UDP socket's datagram reaches it (§2.4 a, d).
#[test]
fn errors_behind_extension_headers_are_recognised_and_errors_reach_udp() {
    use std::net::{SocketAddr, SocketAddrV6};
    let mut i = resolved();
    // Destination options with an option of type 10 (discard and report), then ICMPv6.
    let behind = |msg: &[u8]| {
        let mut p = vec![ICMPV6, 0, 0x9e, 2, 0, 0, 1, 0];
        p.extend_from_slice(msg);
        p
    };
    let err = icmp(HOST, OURS, 1, 4, &[0; 52]);
    assert_eq!(error_for(&mut i, 60, &behind(&err)), None, "about an error");
    let redirect = icmp(HOST, OURS, 137, 0, &[0; 36]);
    assert_eq!(
        error_for(&mut i, 60, &behind(&redirect)),
        None,
        "about a redirect"
    );
    let echo = echo_request(HOST, OURS);
    assert_eq!(error_for(&mut i, 60, &behind(&echo)), Some((4, 2, 42)));

    let s = i.udp_bind(SocketAddr::from((OURS, 0))).unwrap();
    i.udp_connect(s, SocketAddr::V6(SocketAddrV6::new(HOST, 9, 0, 0)))
        .unwrap();
    i.udp_send(at(2100), s, b"odd", None).unwrap();
    let (_, h, sent) = sent6(&mut i).remove(0);
    let mut body = vec![0, 0, 0, 6];
    body.extend_from_slice(&h.to_bytes());
    body.extend_from_slice(&sent);
    let mac = our_mac(&i);
    let problem = icmp(HOST, OURS, 4, 0, &body);
    i.receive(at(2110), &frame(mac, HOST, OURS, ICMPV6, 64, &problem));
    let err = i.udp_recv(s).expect("the error").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPROTO));
}

/// A general MLD query from a router on the link is answered with the state of our groups.
#[test]
fn an_mld_query_is_answered_with_our_groups() {
    let mut i = ready();
    let router: Ipv6Addr = "fe80::1".parse().unwrap();
    let query = icmp(router, ALL_NODES, 130, 0, &[0; 24]);
    i.receive(
        at(2000),
        &frame(
            multicast_mac(ALL_NODES),
            router,
            ALL_NODES,
            ICMPV6,
            1,
            &query,
        ),
    );
    let out = sent6(&mut i);
    let (_, _, p) = out
        .iter()
        .find(|(_, h, _)| h.next_header.0 == 0)
        .expect("a report");
    let mld = &p[8..];
    assert_eq!((mld[0], u16::from_be_bytes([mld[6], mld[7]])), (143, 1));
    assert_eq!(mld[8], 2, "mode is exclude");
    assert_eq!(i.counters().nd_tx_mld_reports, 2);
}

/// A link whose MTU is below 1280 carries no IPv6 (RFC 8200 §5).
#[test]
fn a_link_below_1280_bytes_carries_no_ipv6() {
    let mut cfg = config(2, 2);
    cfg.mtu = 1200;
    cfg.ipv6 = Some(Ipv6Config::default());
    let i = Interface::new(cfg, Instant::ZERO);
    assert!(i.ipv6().is_none());
}

/// The echo replies sent, as their ICMPv6 messages.
fn replies(i: &mut Interface) -> Vec<Vec<u8>> {
    sent6(i)
        .into_iter()
        .filter(|(_, _, m)| m[0] == 129)
        .map(|(_, _, m)| m)
        .collect()
}

/// RFC 8200 §3: the version is checked, the Payload Length must fit the frame, Ethernet
/// padding after it is cut, and a zero Payload Length (a jumbogram's) is taken only with No
/// Next Header.
#[test]
fn the_header_is_validated_and_ethernet_padding_cut() {
    let mut i = resolved();
    let mac = our_mac(&i);
    let echo = echo_request(HOST, OURS);
    let malformed = i.counters().ip6_rx_malformed;
    let mut v5 = frame(mac, HOST, OURS, ICMPV6, 64, &echo);
    v5[14] = 0x50;
    i.receive(at(2000), &v5);
    let mut long = frame(mac, HOST, OURS, ICMPV6, 64, &echo);
    long[19] += 4; // Payload Length past the frame's end
    i.receive(at(2000), &long);
    i.receive(at(2000), &frame(mac, HOST, OURS, ICMPV6, 64, &[]));
    assert!(sent6(&mut i).is_empty());
    assert_eq!(i.counters().ip6_rx_malformed, malformed + 3);
    // No Next Header with nothing after it is a valid, empty packet.
    i.receive(at(2000), &frame(mac, HOST, OURS, 59, 64, &[]));
    assert_eq!(i.counters().ip6_rx_malformed, malformed + 3);
    // Padding beyond the Payload Length is not part of the message: the reply echoes the
    // request's data only.
    let mut padded = frame(mac, HOST, OURS, ICMPV6, 64, &echo);
    padded.extend_from_slice(&[0xee; 10]);
    i.receive(at(2000), &padded);
    let out = replies(&mut i);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][4..], echo[4..]);
}

/// RFC 8200 §4.7: nothing after No Next Header is looked at. §4.4: a routing header with no
/// segments left is skipped and the next header processed.
#[test]
fn no_next_header_ends_the_walk_and_a_spent_routing_header_is_skipped() {
    let mut i = resolved();
    let mac = our_mac(&i);
    let unknown = i.counters().ip6_rx_unknown_next;
    // Destination options saying No Next Header, then bytes that would be an echo request.
    let mut after_none = vec![59, 0, 1, 4, 0, 0, 0, 0];
    after_none.extend_from_slice(&echo_request(HOST, OURS));
    i.receive(at(2000), &frame(mac, HOST, OURS, 60, 64, &after_none));
    assert!(sent6(&mut i).is_empty(), "nothing answered, no error");
    assert_eq!(i.counters().ip6_rx_unknown_next, unknown);
    // A routing header (type 2) with zero segments left before an echo request.
    let mut routed = vec![ICMPV6, 0, 2, 0, 0, 0, 0, 0];
    routed.extend_from_slice(&echo_request(HOST, OURS));
    i.receive(at(2000), &frame(mac, HOST, OURS, 43, 64, &routed));
    assert_eq!(replies(&mut i).len(), 1);
}

/// RFC 8200 §4.5: a fragment whose data would reach past 65535 bytes of reassembled payload
/// is discarded with a parameter problem pointing at its Fragment Offset.
#[test]
fn a_fragment_reaching_past_65535_bytes_is_refused_at_its_offset() {
    let mut i = resolved();
    // Offset 65520, 24 bytes, the last fragment: it would end at 65544.
    let mut last = vec![ICMPV6, 0, 0xff, 0xf0, 0, 0, 0, 9];
    last.extend_from_slice(&[0; 24]);
    assert_eq!(error_for(&mut i, 44, &last), Some((4, 0, 42)));
    assert_eq!(i.counters().ip6_rx_bad_fragments, 1);
}

/// RFC 8200 §8.1: a UDP datagram with a zero checksum is discarded; a datagram whose
/// checksum computes to zero is sent with 0xffff.
#[test]
fn udp_checksums_are_mandatory_over_ipv6() {
    use std::net::SocketAddr;
    let mut i = resolved();
    let mac = our_mac(&i);
    let s = i.udp_bind(SocketAddr::from((OURS, 7))).unwrap();
    let bad = i.counters().udp_rx_bad_checksum;
    let mut zero = udp6(7, b"hi");
    zero[6..8].copy_from_slice(&[0, 0]);
    i.receive(at(2000), &frame(mac, HOST, OURS, 17, 64, &zero));
    assert!(i.udp_recv(s).is_none(), "not delivered");
    assert_eq!(i.counters().udp_rx_bad_checksum, bad + 1);
    // Two data bytes chosen so that the checksum computes to zero: the word that completes
    // the sum to all ones is the checksum of the datagram without it.
    let mut probe = vec![0, 7, 0x30, 0x39, 0, 10, 0, 0, 0, 0];
    let word = checksum(OURS, HOST, 17, &probe);
    probe[8..10].copy_from_slice(&word);
    probe[6..8].copy_from_slice(&[0, 0]);
    assert_eq!(checksum(OURS, HOST, 17, &probe), [0, 0]);
    i.udp_send(at(2000), s, &word, Some(SocketAddr::from((HOST, 12345))))
        .unwrap();
    let out = sent6(&mut i);
    let (_, _, udp) = out.iter().find(|(_, h, _)| h.next_header.0 == 17).unwrap();
    assert_eq!(udp[8..10], word);
    assert_eq!(
        udp[6..8],
        [0xff, 0xff],
        "a computed zero is sent as all ones"
    );
}

/// A connection accepted on `[::]:80` from the host's SYN without options (sequence 1000) and
/// its ACK; with the SYN-ACK's header and TCP segment.
fn accepted6(i: &mut Interface) -> (SocketId, Ipv6Header, Vec<u8>) {
    let l = listen6(i);
    accept6(i, l, 4000, None)
}

/// A listener on `[::]:80`.
fn listen6(i: &mut Interface) -> SocketId {
    use std::net::SocketAddr;
    let (l, _) = i
        .with_tcp(at(2000), |tcp, _| {
            tcp.listen(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 80)), 4)
        })
        .unwrap();
    l
}

/// The connection that listener `l` accepts from the host's `port` (a SYN with sequence 1000
/// and an MSS option if given, then its ACK); with the SYN-ACK's header and TCP segment.
fn accept6(
    i: &mut Interface,
    l: SocketId,
    port: u16,
    mss: Option<u16>,
) -> (SocketId, Ipv6Header, Vec<u8>) {
    let mac = our_mac(i);
    let syn = tcp6_with(port, 1000, 0, 0x02, mss);
    i.receive(at(2000), &frame(mac, HOST, OURS, 6, 64, &syn));
    let out = sent6(i);
    let (_, h, synack) = out
        .into_iter()
        .find(|(_, h, t)| h.next_header.0 == 6 && t[2..4] == port.to_be_bytes())
        .unwrap();
    assert_eq!(synack[13] & 0x12, 0x12, "a SYN-ACK");
    let ours = u32::from_be_bytes([synack[4], synack[5], synack[6], synack[7]]);
    let ack = tcp6_with(port, 1001, ours + 1, 0x10, None);
    i.receive(at(2001), &frame(mac, HOST, OURS, 6, 64, &ack));
    let (id, _) = i
        .with_tcp(at(2001), |tcp, _| tcp.accept(l))
        .unwrap()
        .unwrap();
    (id, h, synack)
}

/// The MSS option of a SYN or SYN-ACK.
fn mss_option(seg: &[u8]) -> Option<u16> {
    seg[20..usize::from(seg[12] >> 4) * 4]
        .windows(4)
        .find(|o| o[0] == 2 && o[1] == 4)
        .map(|o| u16::from_be_bytes([o[2], o[3]]))
}

/// A Router Advertisement's Cur Hop Limit, Reachable Time and Retrans Timer are taken where
/// not zero (RFC 4861 §6.3.4), the timers no shorter than 100 and 10 ms: packets leave with
/// its hop limit, a confirmed neighbour stays REACHABLE for its Reachable Time (times a random
/// factor of 0.5 to 1.5), and solicitations repeat at its Retrans Timer.
#[test]
fn a_router_advertisement_sets_the_hop_limit_and_the_nd_timers() {
    let mut i = ready();
    let mac = our_mac(&i);
    let router: Ipv6Addr = "fe80::1".parse().unwrap();
    let ra = router_advertisement_with(router, 1800, [32, 10_000, 500]);
    let all_nodes = multicast_mac(ALL_NODES);
    i.receive(
        at(2000),
        &frame(all_nodes, router, ALL_NODES, ICMPV6, 255, &ra),
    );
    drain(&mut i);
    // An echo from an unknown host: solicitations for it 500 ms apart (the SLAAC address's
    // DAD aside), then the reply at hop limit 32 once it answers, and REACHABLE for 10 s.
    i.receive(
        at(2100),
        &frame(mac, HOST, OURS, ICMPV6, 64, &echo_request(HOST, OURS)),
    );
    let solicited = |i: &mut Interface| {
        sent6(i)
            .iter()
            .filter(|(_, _, m)| m[0] == 135 && m[8..24] == HOST.octets())
            .count()
    };
    assert_eq!(solicited(&mut i), 1);
    i.poll(at(2599));
    assert_eq!(solicited(&mut i), 0);
    i.poll(at(2600));
    assert_eq!(solicited(&mut i), 1, "the second, 500 ms on");
    let na = advertisement(HOST, OURS, HOST, 0x60);
    i.receive(at(2610), &frame(mac, HOST, OURS, ICMPV6, 255, &na));
    let out = sent6(&mut i);
    let (_, h, reply) = out.iter().find(|(_, _, m)| m[0] == 129).unwrap();
    assert_eq!((reply[0], h.hop_limit), (129, 32));
    let until = match i.ipv6().unwrap().neighbor(HOST) {
        Some((Some(HOST_MAC), NudState::Reachable { until })) => until,
        other => panic!("{other:?}"),
    };
    // ReachableTime: 10 s times a random factor of 0.5 to 1.5 (RFC 4861 §6.3.2).
    assert!(
        until >= at(2610 + 5_000) && until <= at(2610 + 15_000),
        "{until:?}"
    );
}

/// TCP's MSS follows the link MTU a router advertised and the path MTU a Packet Too Big taught
/// (RFC 8201 §5.2), for the connection the message is about and for later ones; a Packet Too
/// Big about TCP counts only if it quotes data in flight (RFC 5927), so a forged one changes
/// nothing, in TCP or in the IP layer's path MTU.
#[test]
fn tcp_follows_the_advertised_and_the_learned_mtu() {
    let mut i = resolved();
    let mac = our_mac(&i);
    let router: Ipv6Addr = "fe80::1".parse().unwrap();
    let ra = router_advertisement(1800);
    let all_nodes = multicast_mac(ALL_NODES);
    i.receive(
        at(2000),
        &frame(all_nodes, router, ALL_NODES, ICMPV6, 255, &ra),
    );
    // The RA says 1400: a connection's MSS both ways is 1340.
    let l = listen6(&mut i);
    let (id, _, synack) = accept6(&mut i, l, 4000, Some(1440));
    assert_eq!(mss_option(&synack), Some(1340));
    assert_eq!(i.tcp().info(id).unwrap().snd.mss, 1340);
    i.tcp_send(at(2002), id, &[7; 3000]).unwrap();
    let out = sent6(&mut i);
    let (_, _, seg) = out.iter().find(|(_, h, _)| h.next_header.0 == 6).unwrap();
    let seq = u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]);
    let too_big = |mtu: u32, next: IpNumber, seq: u32| {
        let mut body = mtu.to_be_bytes().to_vec();
        let quoted = Ipv6Header {
            payload_length: 1360,
            next_header: next,
            hop_limit: 64,
            source: OURS.octets(),
            destination: HOST.octets(),
            ..Default::default()
        };
        body.extend_from_slice(&quoted.to_bytes());
        body.extend_from_slice(&[0, 80, 0x0f, 0xa0]);
        body.extend_from_slice(&seq.to_be_bytes());
        let r: Ipv6Addr = "2001:db8::fe".parse().unwrap();
        frame(mac, r, OURS, ICMPV6, 64, &icmp(r, OURS, 2, 0, &body))
    };
    // Forged: not about data in flight.
    i.receive(
        at(2003),
        &too_big(1300, IpNumber::TCP, seq.wrapping_add(1 << 20)),
    );
    assert_eq!(i.tcp().info(id).unwrap().snd.mss, 1340);
    assert_eq!(i.counters().ip6_pmtu_updates, 0);
    assert_eq!(i.counters().tcp_icmp_out_of_window, 1);
    // About the segment sent: 1300 - 60.
    i.receive(at(2004), &too_big(1300, IpNumber::TCP, seq));
    assert_eq!(i.tcp().info(id).unwrap().snd.mss, 1240);
    assert_eq!(i.counters().ip6_pmtu_updates, 1);
    // One about a datagram (no sequence number to check) lowers the IP layer's path MTU,
    // not TCP's.
    i.receive(at(2005), &too_big(1290, IpNumber::UDP, 0));
    assert_eq!(i.counters().ip6_pmtu_updates, 2);
    // A later connection to the host starts from what TCP believed.
    let (id2, _, synack) = accept6(&mut i, l, 4001, Some(1440));
    assert_eq!(mss_option(&synack), Some(1240));
    assert_eq!(i.tcp().info(id2).unwrap().snd.mss, 1240);
}

/// RFC 8200 §8.3: upper layers count the longer header. The SYN-ACK's MSS is the MTU less 60,
/// a peer's SYN without the option means 1220, and UDP carries at most 65527 bytes.
#[test]
fn upper_layers_count_the_longer_header() {
    use std::net::SocketAddr;
    let mut i = resolved();
    let (id, _, synack) = accepted6(&mut i);
    assert_eq!(mss_option(&synack), Some(1500 - 60));
    // The connection sends with 1220 bytes a segment.
    assert_eq!(i.tcp().info(id).unwrap().snd.mss, 1220);
    // UDP: 65527 bytes fit the 16-bit Payload Length with the UDP header; one more does not.
    let s = i.udp_bind(SocketAddr::from((OURS, 9))).unwrap();
    let to = Some(SocketAddr::from((HOST, 9)));
    assert!(i.udp_send(at(2002), s, &vec![0; 65527], to).is_ok());
    let err = i.udp_send(at(2002), s, &vec![0; 65528], to).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
}

/// A connection's TTL and Diffserv field (`set_ttl`, `set_tos`) are its hop limit and traffic
/// class over IPv6 (RFC 8200 §3, RFC 2474), as for UDP; until set, the link's hop limit and 0.
#[test]
fn a_connections_ttl_and_dscp_are_its_hop_limit_and_traffic_class() {
    let mut i = resolved();
    let (id, synack, _) = accepted6(&mut i);
    assert_eq!((synack.hop_limit, synack.traffic_class), (64, 0));
    i.with_tcp(at(2002), |tcp, _| {
        tcp.set_ttl(id, Some(7))?;
        tcp.set_dscp(id, 46)
    })
    .unwrap();
    i.tcp_send(at(2002), id, b"marked").unwrap();
    let out = sent6(&mut i);
    let (_, h, seg) = out.iter().find(|(_, h, _)| h.next_header.0 == 6).unwrap();
    assert_eq!(&seg[20..], b"marked");
    assert_eq!((h.hop_limit, h.traffic_class), (7, 46 << 2));
}

/// RFC 4443 §2.4: an unknown informational message is dropped silently (b); no error goes
/// out about a packet to a group (e.3, but for Parameter Problem code 2 about an option of
/// type 10xxxxxx), to a link-layer multicast or broadcast (e.4, e.5), or from the
/// unspecified address or a group (e.6); and errors are rate limited (f).
#[test]
fn icmpv6_errors_go_only_where_rfc_4443_allows() {
    let mut i = resolved();
    let mac = our_mac(&i);
    let other = i.counters().icmp6_rx_other;
    i.receive(
        at(2000),
        &frame(
            mac,
            HOST,
            OURS,
            ICMPV6,
            64,
            &icmp(HOST, OURS, 200, 0, &[0; 4]),
        ),
    );
    assert!(sent6(&mut i).is_empty());
    assert_eq!(i.counters().icmp6_rx_other, other + 1);
    // To all nodes: a closed UDP port and an option of type 11xxxxxx are silent; an option
    // of type 10xxxxxx is reported, to multicast too.
    let group = multicast_mac(ALL_NODES);
    let udp = udp6_to(ALL_NODES, 7, b"hi");
    i.receive(at(2000), &frame(group, HOST, ALL_NODES, 17, 64, &udp));
    assert_eq!(i.counters().ip6_rx_multicast_transport, 1);
    let option = |kind: u8| {
        let mut p = vec![ICMPV6, 0, kind, 2, 0, 0, 1, 0];
        p.extend_from_slice(&echo_request(HOST, ALL_NODES));
        p
    };
    i.receive(
        at(2000),
        &frame(group, HOST, ALL_NODES, 0, 64, &option(0xde)),
    );
    assert!(sent6(&mut i).is_empty());
    i.receive(
        at(2000),
        &frame(group, HOST, ALL_NODES, 0, 64, &option(0x9e)),
    );
    let out = sent6(&mut i);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].2[0], out[0].2[1]), (4, 2));
    // To our unicast address, but in a link-layer multicast or broadcast frame: silent.
    let solicited = multicast_mac(solicited_node(OURS));
    i.receive(at(2000), &frame(solicited, HOST, OURS, 253, 64, &[0; 8]));
    i.receive(
        at(2000),
        &frame(MacAddr([0xff; 6]), HOST, OURS, 253, 64, &[0; 8]),
    );
    // From the unspecified address: silent; from a group: dropped on input.
    let bad_source = i.counters().ip6_rx_bad_source;
    i.receive(
        at(2000),
        &frame(mac, Ipv6Addr::UNSPECIFIED, OURS, 253, 64, &[0; 8]),
    );
    i.receive(at(2000), &frame(mac, ALL_NODES, OURS, 253, 64, &[0; 8]));
    assert!(sent6(&mut i).is_empty());
    assert_eq!(i.counters().ip6_rx_bad_source, bad_source + 1);
    // A burst of a hundred packets that each deserve an error: the first 50 get one, the
    // rest are counted as suppressed (one bucket with ICMPv4's, 1000 a second, burst 50).
    let limited = i.counters().icmp6_tx_rate_limited;
    let now = at(10_000);
    for _ in 0..100 {
        i.receive(now, &frame(mac, HOST, OURS, 253, 64, &[0; 8]));
    }
    let errors = sent6(&mut i).iter().filter(|(_, _, m)| m[0] == 4).count();
    assert_eq!(errors, 50);
    assert_eq!(i.counters().icmp6_tx_rate_limited, limited + 50);
}

/// RFC 4861 §6.1.1: a host silently discards Router Solicitations. §7.1.2: an advertisement
/// with the Solicited flag sent to a group is invalid. §7.2.4 and RFC 4862 §5.4.3: a
/// solicitation from the unspecified address for an address we use (another node's DAD) is
/// answered to all nodes with the Solicited flag clear.
#[test]
fn solicitations_and_advertisements_follow_rfc_4861() {
    let mut i = resolved();
    let mac = our_mac(&i);
    let all_routers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let rs = icmp(HOST, all_routers, 133, 0, &[0; 4]);
    let other = i.counters().icmp6_rx_other;
    i.receive(
        at(2000),
        &frame(
            multicast_mac(all_routers),
            HOST,
            all_routers,
            ICMPV6,
            255,
            &rs,
        ),
    );
    i.receive(
        at(2000),
        &frame(
            mac,
            HOST,
            OURS,
            ICMPV6,
            255,
            &icmp(HOST, OURS, 133, 0, &[0; 4]),
        ),
    );
    assert!(sent6(&mut i).is_empty());
    assert!(i.counters().icmp6_rx_other > other);
    let invalid = i.counters().nd_rx_invalid;
    let na = advertisement(HOST, ALL_NODES, HOST, 0x40);
    i.receive(
        at(2000),
        &frame(multicast_mac(ALL_NODES), HOST, ALL_NODES, ICMPV6, 255, &na),
    );
    assert_eq!(i.counters().nd_rx_invalid, invalid + 1);
    // Another node's DAD probe for our address.
    let probe = solicitation(Ipv6Addr::UNSPECIFIED, solicited_node(OURS), OURS);
    i.receive(
        at(2000),
        &frame(
            multicast_mac(solicited_node(OURS)),
            Ipv6Addr::UNSPECIFIED,
            solicited_node(OURS),
            ICMPV6,
            255,
            &probe,
        ),
    );
    let out = sent6(&mut i);
    let (dst_mac, h, m) = out.iter().find(|(_, _, m)| m[0] == 136).expect("a defence");
    assert_eq!(Ipv6Addr::from(h.destination), ALL_NODES);
    assert_eq!(*dst_mac, multicast_mac(ALL_NODES));
    assert_eq!(m[4] & 0x40, 0, "the Solicited flag is clear");
    assert_eq!(m[8..24], OURS.octets());
}

/// RFC 4862 §5.4.3: a solicitation from a unicast source for an address still tentative is
/// not answered, and does not make the address a duplicate (only another node's DAD does).
#[test]
fn a_tentative_address_answers_no_unicast_solicitation() {
    let mut i = iface();
    i.poll(at(0));
    drain(&mut i);
    let ns = solicitation(HOST, solicited_node(OURS), OURS);
    i.receive(
        at(500),
        &frame(
            multicast_mac(solicited_node(OURS)),
            HOST,
            solicited_node(OURS),
            ICMPV6,
            255,
            &ns,
        ),
    );
    assert!(
        sent6(&mut i).iter().all(|(_, _, m)| m[0] != 136),
        "no advertisement"
    );
    i.poll(at(1000));
    let state = (i.ipv6().unwrap().addrs().iter())
        .find(|a| a.addr == OURS)
        .map(|a| a.state);
    assert_eq!(state, Some(AddrState::Preferred));
}

/// RFC 4862 §5.5.4: past its valid lifetime an autoconfigured address is removed: neither
/// source nor destination any more.
#[test]
fn an_address_past_its_valid_lifetime_is_removed() {
    let mut i = ready();
    let router: Ipv6Addr = "fe80::1".parse().unwrap();
    let slaac: Ipv6Addr = "2001:db8:1::ff:fe00:2".parse().unwrap();
    // The prefix's valid lifetime is 3600 s.
    let ra = router_advertisement(1800);
    i.receive(
        at(2000),
        &frame(
            multicast_mac(ALL_NODES),
            router,
            ALL_NODES,
            ICMPV6,
            255,
            &ra,
        ),
    );
    i.poll(at(2000));
    i.poll(at(4000));
    let state = |i: &Interface| {
        (i.ipv6().unwrap().addrs().iter())
            .find(|a| a.addr == slaac)
            .map(|a| a.state)
    };
    assert_eq!(state(&i), Some(AddrState::Preferred));
    i.poll(at(2000 + 3_599_000));
    assert!(state(&i).is_some(), "valid until its lifetime ends");
    i.poll(at(2000 + 3_601_000));
    assert_eq!(state(&i), None);
    assert_eq!(i.counters().ip6_addrs_expired, 1);
    let not_for_us = i.counters().ip6_rx_not_for_us;
    let mac = our_mac(&i);
    i.receive(
        at(2000 + 3_601_000),
        &frame(mac, HOST, slaac, ICMPV6, 64, &echo_request(HOST, slaac)),
    );
    assert!(replies(&mut i).is_empty());
    assert_eq!(i.counters().ip6_rx_not_for_us, not_for_us + 1);
}
