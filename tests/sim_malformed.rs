//! Malformed input of every kind is a counted drop, never a panic; afterwards the stack still
//! answers.

mod common;

use common::*;
use etherparse::IpNumber;
use rand::{Rng, SeedableRng};
use std::net::{Ipv4Addr, SocketAddrV4};
use tapstack::core::Interface;
use tapstack::time::Instant;
use tapstack::wire::MacAddr;
use tapstack::Counters;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const US_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fn stack() -> Interface {
    let mut iface = Interface::new(config(2, 7), Instant::ZERO);
    iface
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7).into())
        .unwrap();
    while iface.pop_transmit().is_some() {}
    iface
}

fn udp_frame(data: &[u8]) -> Vec<u8> {
    let seg = udp_segment(PEER, US, 1234, 7, data);
    ipv4_frames(PEER_MAC, US_MAC, PEER, US, IpNumber::UDP, 1, &seg, 1500).remove(0)
}

fn ping_frame() -> Vec<u8> {
    let req = echo_request(1, 1, b"are you alive?");
    ipv4_frames(PEER_MAC, US_MAC, PEER, US, IpNumber::ICMP, 2, &req, 1500).remove(0)
}

/// Recomputes the IPv4 header checksum of a frame after a test edited the header.
fn fix_ip_checksum(f: &mut [u8]) {
    let ihl = usize::from(f[14] & 0xf) * 4;
    f[24] = 0;
    f[25] = 0;
    let end = (14 + ihl).min(f.len());
    let sum = tapstack::wire::checksum_bytes(&f[14..end]);
    f[24..26].copy_from_slice(&sum);
}

type Check = fn(&Counters) -> u64;

#[test]
fn each_malformation_is_dropped_with_its_counter() {
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("runt frame", vec![0xff; 10], |c| c.eth_rx_truncated),
        (
            "other MAC",
            {
                let mut f = udp_frame(b"x");
                f[0] = 0x04;
                f
            },
            |c| c.eth_rx_not_for_us,
        ),
        (
            "IPv6 ethertype",
            {
                let mut f = udp_frame(b"x");
                f[12..14].copy_from_slice(&[0x86, 0xdd]);
                f
            },
            |c| c.eth_rx_unknown_ethertype,
        ),
        (
            "truncated IP header",
            udp_frame(b"x")[..14 + 12].to_vec(),
            |c| c.ip_rx_truncated,
        ),
        (
            "version 6 in IPv4",
            {
                let mut f = udp_frame(b"x");
                f[14] = 0x65;
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.ip_rx_bad_version,
        ),
        (
            "IHL 4",
            {
                let mut f = udp_frame(b"x");
                f[14] = 0x44;
                f
            },
            |c| c.ip_rx_bad_ihl,
        ),
        (
            "IHL past the frame",
            {
                let mut f = udp_frame(b"x");
                f.truncate(14 + 24);
                f[14] = 0x4f;
                f
            },
            |c| c.ip_rx_truncated,
        ),
        (
            "total length past the frame",
            {
                let mut f = udp_frame(b"x");
                f[16..18].copy_from_slice(&2000u16.to_be_bytes());
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.ip_rx_bad_length,
        ),
        (
            "total length below the header",
            {
                let mut f = udp_frame(b"x");
                f[16..18].copy_from_slice(&10u16.to_be_bytes());
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.ip_rx_bad_length,
        ),
        (
            "bad header checksum",
            {
                let mut f = udp_frame(b"x");
                f[24] ^= 1;
                f
            },
            |c| c.ip_rx_bad_checksum,
        ),
        (
            "broadcast source",
            {
                let mut f = udp_frame(b"x");
                f[26..30].copy_from_slice(&[255; 4]);
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.ip_rx_bad_source,
        ),
        (
            "a loopback source (RFC 1122 §3.2.1.3)",
            {
                let mut f = udp_frame(b"x");
                f[26..30].copy_from_slice(&[127, 0, 0, 1]);
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.ip_rx_bad_source,
        ),
        (
            "a 0/8 source (this network)",
            {
                let mut f = udp_frame(b"x");
                f[26..30].copy_from_slice(&[0, 1, 2, 3]);
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.ip_rx_bad_source,
        ),
        (
            "our own address as source",
            {
                let mut f = udp_frame(b"x");
                f[26..30].copy_from_slice(&US.octets());
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.ip_rx_bad_source,
        ),
        (
            "another destination",
            {
                let mut f = udp_frame(b"x");
                f[33] = 3;
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.ip_rx_not_for_us,
        ),
        (
            "UDP length past the datagram",
            {
                let mut f = udp_frame(b"hello");
                f[38..40].copy_from_slice(&100u16.to_be_bytes());
                f
            },
            |c| c.udp_rx_malformed,
        ),
        (
            "UDP length below its header",
            {
                let mut f = udp_frame(b"hello");
                f[38..40].copy_from_slice(&4u16.to_be_bytes());
                f
            },
            |c| c.udp_rx_malformed,
        ),
        (
            "UDP truncated header",
            {
                let mut f = udp_frame(b"");
                f.truncate(14 + 20 + 4);
                f[16..18].copy_from_slice(&24u16.to_be_bytes());
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.udp_rx_malformed,
        ),
        (
            "UDP bad checksum",
            {
                let mut f = udp_frame(b"hello");
                f[42] ^= 0x10;
                f
            },
            |c| c.udp_rx_bad_checksum,
        ),
        (
            "ICMP bad checksum",
            {
                let mut f = ping_frame();
                f[40] ^= 1;
                f
            },
            |c| c.icmp_rx_bad_checksum,
        ),
        (
            "ICMP shorter than its header",
            {
                let mut f = ping_frame();
                f.truncate(14 + 20 + 4);
                f[16..18].copy_from_slice(&24u16.to_be_bytes());
                fix_ip_checksum(&mut f);
                f[34..38].copy_from_slice(&[8, 0, 0, 0]);
                let sum = tapstack::wire::checksum_bytes(&f[34..38]);
                f[36..38].copy_from_slice(&sum);
                f
            },
            |c| c.icmp_rx_malformed,
        ),
        (
            "ARP truncated",
            {
                let mut f = udp_frame(b"x");
                f[12..14].copy_from_slice(&[0x08, 0x06]);
                f.truncate(14 + 20);
                f
            },
            |c| c.arp_rx_malformed,
        ),
        (
            "ARP for another protocol",
            {
                let mut f = etherparse::Ethernet2Header {
                    source: PEER_MAC.0,
                    destination: MacAddr::BROADCAST.0,
                    ether_type: etherparse::EtherType::ARP,
                }
                .to_bytes()
                .to_vec();
                f.extend_from_slice(&[0, 1, 0x86, 0xdd, 6, 16, 0, 1]);
                f.extend_from_slice(&[0; 44]);
                f
            },
            |c| c.arp_rx_malformed,
        ),
        (
            "fragment not a multiple of 8",
            {
                let seg = udp_segment(PEER, US, 1, 7, &[0; 100]);
                let mut f =
                    ipv4_frames(PEER_MAC, US_MAC, PEER, US, IpNumber::UDP, 3, &seg, 1500).remove(0);
                f[20] |= 0x20; // MF
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.reasm_bad_fragments,
        ),
        (
            "fragment past 65535",
            {
                let seg = [0u8; 800];
                let mut f =
                    ipv4_frames(PEER_MAC, US_MAC, PEER, US, IpNumber::UDP, 4, &seg, 1500).remove(0);
                f[20..22].copy_from_slice(&8100u16.to_be_bytes()); // offset 64800
                fix_ip_checksum(&mut f);
                f
            },
            |c| c.reasm_oversize,
        ),
    ];
    for (name, frame, counter) in cases {
        let mut iface = stack();
        let before = counter(&iface.counters());
        iface.receive(Instant::ZERO, &frame);
        assert_eq!(
            counter(&iface.counters()),
            before + 1,
            "{name}: not counted"
        );
        assert_eq!(iface.counters().udp_rx_datagrams, 0, "{name}: delivered");
        assert!(iface.pop_transmit().is_none(), "{name}: answered");
    }
}

#[test]
fn zero_udp_checksum_is_accepted() {
    let mut iface = stack();
    let mut f = udp_frame(b"no checksum");
    f[40] = 0;
    f[41] = 0;
    iface.receive(Instant::ZERO, &f);
    assert_eq!(iface.counters().udp_rx_datagrams, 1);
}

/// A bad transport checksum is skipped only when the device vouches for the frame (the tap's
/// CHECKSUM_PARTIAL data from kernel memory); a reassembled datagram is always checked.
#[test]
fn only_device_verified_frames_skip_the_transport_checksum() {
    let mut iface = stack();
    let mut f = udp_frame(b"checksum offloaded");
    f[40] ^= 0x5a;
    iface.receive(Instant::ZERO, &f);
    assert_eq!(iface.counters().udp_rx_bad_checksum, 1);
    assert_eq!(iface.counters().udp_rx_datagrams, 0);
    iface.receive_checksum_verified(Instant::ZERO, &f);
    assert_eq!(iface.counters().udp_rx_datagrams, 1);
    // The flag covers that one frame: the same frame through `receive` is checked again.
    iface.receive(Instant::ZERO, &f);
    assert_eq!(iface.counters().udp_rx_bad_checksum, 2);
    // Fragments of a datagram with a bad checksum, the last one "verified": still dropped.
    let mut seg = udp_segment(PEER, US, 1234, 7, &[7u8; 3000]);
    seg[6] ^= 0x5a;
    let frames = ipv4_frames(PEER_MAC, US_MAC, PEER, US, IpNumber::UDP, 9, &seg, 1500);
    let (last, first) = frames.split_last().unwrap();
    for f in first {
        iface.receive(Instant::ZERO, f);
    }
    iface.receive_checksum_verified(Instant::ZERO, last);
    assert_eq!(iface.counters().udp_rx_bad_checksum, 3);
    assert_eq!(iface.counters().udp_rx_datagrams, 1);
}

/// Random frames, and valid frames with random bytes changed or cut short: no panic, every
/// frame accounted for, and the stack still answers a ping afterwards.
#[test]
fn thousands_of_garbage_frames_never_break_the_stack() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let mut iface = stack();
    let templates = [
        udp_frame(&pattern(100, 1)),
        ping_frame(),
        ipv4_frames(
            PEER_MAC,
            US_MAC,
            PEER,
            US,
            IpNumber::UDP,
            9,
            &udp_segment(PEER, US, 1, 7, &pattern(3000, 2)),
            1500,
        )
        .remove(1),
        {
            let mut f = udp_frame(b"x");
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f.truncate(14 + 28);
            f
        },
    ];
    let n = 200_000;
    for i in 0..n {
        let mut f = match i % 3 {
            0 => {
                let len = rng.random_range(0..1600);
                let mut f: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                if f.len() >= 14 {
                    f[..6].copy_from_slice(&US_MAC.0);
                    f[12..14].copy_from_slice(if rng.random() { &[8, 0] } else { &[8, 6] });
                }
                f
            }
            _ => templates[rng.random_range(0..templates.len())].clone(),
        };
        if !f.is_empty() {
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..f.len());
                f[at] = rng.random();
            }
            if rng.random_range(0..4) == 0 {
                f.truncate(rng.random_range(0..f.len()));
            }
        }
        let now = Instant::from_micros(i * 10);
        iface.receive(now, &f);
        iface.poll(now);
        while iface.pop_transmit().is_some() {}
        while iface.pop_event().is_some() {}
    }
    assert_eq!(iface.counters().eth_rx_frames, n);
    let later = Instant::from_secs(100);
    iface.poll(later);
    assert_eq!(
        iface.reassembly_mem(),
        0,
        "timeouts reclaimed all fragment memory"
    );
    iface.receive(later, &arp_request(PEER_MAC, PEER, US));
    iface.receive(later, &ping_frame());
    let replies: Vec<_> = std::iter::from_fn(|| iface.pop_transmit()).collect();
    assert!(
        replies
            .iter()
            .any(|f| f.len() > 34 && f[23] == 1 && f[34] == 0),
        "echo reply after the garbage"
    );
}
