//! TCP between two cores over the in-memory link under virtual time.

mod common;

use common::*;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tapstack::core::SocketId;
use tapstack::phy::{FaultConfig, PathConfig};
use tapstack::tcp::State;
use tapstack::time::Instant;

const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

#[test]
fn handshake_negotiates_mss_window_scale_sack_and_timestamps() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::Established));
    assert_eq!(sim.b.iface.tcp_state(s), Some(State::Established));
    for (iface, id) in [(&sim.a.iface, c), (&sim.b.iface, s)] {
        let t = iface.tcp_info(id).unwrap();
        assert_eq!(t.snd.mss, 1460);
        assert_eq!(t.rcv.wscale, 5, "a 1 MiB buffer needs a shift of 5");
        assert_eq!(t.snd.wscale, 5);
        assert!(t.sack && t.ts_recent.is_some());
        assert!(t.srtt.is_some(), "the handshake gave an RTT sample");
    }
    let c = sim.a.iface.counters();
    assert_eq!(c.tcp_active_opens, 1);
    assert_eq!(sim.b.iface.counters().tcp_passive_opens, 1);
    assert_eq!(c.tcp_curr_estab, 1);
}

#[test]
fn four_mib_cross_intact_on_a_clean_link() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let data = pattern(4 << 20, 1);
    let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
    assert_eq!(sha256(&got), sha256(&data));
    let ca = sim.a.iface.counters();
    assert_eq!(ca.tcp_retrans_segs, 0, "{ca}");
    assert_eq!(ca.tcp_timeouts, 0);
}

#[test]
fn transfers_survive_loss_reordering_duplication_and_corruption() {
    for (seed, loss) in [(1u64, 0.0), (2, 1.0), (3, 5.0), (4, 10.0), (5, 20.0)] {
        let faults = FaultConfig {
            drop_pct: loss,
            duplicate_pct: 5.0,
            reorder_pct: 10.0,
            corrupt_pct: 2.0,
            mark_pct: 0.0,
            seed,
        };
        let mut sim = Sim::new(config(1, seed), config(2, seed + 100), faults);
        let (c, s) = connect(&mut sim);
        let data = pattern(4 << 20, seed as u8);
        let got = transfer(&mut sim, c, s, &data, Duration::from_secs(3600));
        assert_eq!(sha256(&got), sha256(&data), "seed {seed}, loss {loss}%");
        let ca = sim.a.iface.counters();
        eprintln!(
            "loss {loss}%: {:?} virtual, {} retransmitted, {} fast retransmits, {} timeouts",
            sim.now - Instant::ZERO,
            ca.tcp_retrans_segs,
            ca.tcp_fast_retransmits,
            ca.tcp_timeouts
        );
    }
}

#[test]
fn graceful_close_from_the_client_ends_in_time_wait() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, b"last words").unwrap();
    sim.a.iface.tcp_shutdown(now, c, false, true).unwrap();
    sim.advance(Duration::from_millis(100));
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::FinWait2));
    assert_eq!(sim.b.iface.tcp_state(s), Some(State::CloseWait));
    let mut buf = [0u8; 64];
    let now = sim.now;
    assert_eq!(sim.b.iface.tcp_recv(now, s, &mut buf).unwrap(), 10);
    assert_eq!(
        sim.b.iface.tcp_recv(now, s, &mut buf).unwrap(),
        0,
        "end of stream"
    );
    // Half-close: b can still send.
    sim.b.iface.tcp_send(now, s, b"reply").unwrap();
    sim.b.iface.tcp_close(now, s);
    sim.advance(Duration::from_millis(100));
    let now = sim.now;
    assert_eq!(sim.a.iface.tcp_recv(now, c, &mut buf).unwrap(), 5);
    assert_eq!(sim.a.iface.tcp_recv(now, c, &mut buf).unwrap(), 0);
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::TimeWait));
    assert_eq!(
        sim.b.iface.tcp_state(s),
        None,
        "b's side is gone after LAST-ACK"
    );
    sim.advance(Duration::from_secs(59));
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::TimeWait));
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::Closed), "2 MSL later");
}

/// The server closed first and holds TIME-WAIT; the client reuses its port at once (as a
/// kernel client picking ports does). The new SYN, with a newer timestamp, ends TIME-WAIT and
/// opens a connection without a retransmission (RFC 6191, Linux `tcp_timewait_state_process`).
#[test]
fn a_new_syn_reopens_a_connection_in_time_wait() {
    let mut sim = Sim::pair();
    let (l, _) = sim
        .b
        .iface
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16)
        .unwrap();
    for round in 0..2 {
        let now = sim.now;
        let c = sim
            .a
            .iface
            .tcp_connect_from(now, Some(40000), SocketAddrV4::new(B, 80))
            .unwrap();
        sim.advance(Duration::from_millis(5));
        assert!(
            matches!(sim.a.iface.tcp_connect_result(c), Some(Ok(()))),
            "round {round}: connected at once"
        );
        let (s, _) = sim.b.iface.tcp_accept(l).expect("accepted").unwrap();
        let now = sim.now;
        sim.b.iface.tcp_close(now, s);
        sim.advance(Duration::from_millis(5));
        let now = sim.now;
        sim.a.iface.tcp_close(now, c);
        sim.advance(Duration::from_millis(5));
        assert_eq!(sim.b.iface.tcp_state(s), Some(State::TimeWait));
        assert_eq!(sim.a.iface.tcp_state(c), None);
    }
    let cb = sim.b.iface.counters();
    assert_eq!(cb.tcp_tw_reopened, 1, "{cb}");
    assert_eq!(sim.a.iface.counters().tcp_retrans_segs, 0);
}

/// The initial window counts the peer's MSS, not ours (RFC 5681 §3.1, RFC 6928): against a
/// peer announcing 1000 bytes, the first flight is 10 segments of at most 1000 bytes, not
/// 14 600 bytes' worth.
#[test]
fn the_initial_window_counts_the_peers_mss() {
    let mut b = config(2, 2);
    b.mtu = 1040; // MSS option 1000
    let mut sim = Sim::new(config(1, 1), b, FaultConfig::default());
    let (c, _s) = connect(&mut sim);
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, &pattern(100_000, 9)).unwrap();
    let mut segments = 0;
    let mut bytes = 0;
    while let Some(frame) = sim.a.iface.pop_transmit() {
        if let Some((_, len)) = data_segment(&frame) {
            segments += 1;
            bytes += len;
            assert!(len <= 1000, "a segment of {len} bytes");
        }
    }
    assert_eq!(segments, 10, "{bytes} bytes in the first flight");
    assert!(bytes <= 10_000, "{bytes} bytes in the first flight");
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    let mut sim = Sim::pair();
    let now = sim.now;
    let c = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(B, 81))
        .unwrap();
    sim.advance(Duration::from_millis(10));
    let err = sim.a.iface.tcp_connect_result(c).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(sim.b.iface.counters().tcp_out_rsts, 1);
    assert_eq!(sim.a.iface.counters().tcp_attempt_fails, 1);
}

#[test]
fn closing_with_unread_data_resets_the_peer() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, b"unread").unwrap();
    sim.advance(Duration::from_millis(50));
    let now = sim.now;
    sim.b.iface.tcp_close(now, s);
    sim.advance(Duration::from_millis(50));
    let err = sim.a.iface.tcp_recv(sim.now, c, &mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[test]
fn zero_window_is_probed_with_backoff_and_never_times_out() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let data = pattern(3 << 20, 7);
    let mut sent = 0;
    // b does not read for ten virtual minutes.
    for _ in 0..600 {
        let now = sim.now;
        while let Ok(n) = sim.a.iface.tcp_send(now, c, &data[sent..]) {
            sent += n;
        }
        sim.advance(Duration::from_secs(1));
    }
    let ca = sim.a.iface.counters().clone();
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::Established));
    assert!(ca.tcp_zero_window_probes >= 10, "{ca}");
    assert!(
        ca.tcp_zero_window_probes < 60,
        "probes back off: {}",
        ca.tcp_zero_window_probes
    );
    assert_eq!(ca.tcp_aborted_timeout, 0);
    // Reading resumes the transfer; every byte arrives once, in order.
    let got = transfer_from(&mut sim, c, s, &data, sent, Duration::from_secs(600));
    assert_eq!(sha256(&got), sha256(&data));
}

/// Ethernet type of ARP (RFC 826), and where the ethertype sits in a frame.
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ETHERTYPE_AT: std::ops::Range<usize> = 12..14;

/// RFC 9293 MUST-20 (R1): after three retransmissions of the same segment TCP gives IP
/// negative advice, and IP asks the next hop again by unicast, with that retransmission,
/// which still leaves (a neighbour that changed its address or went away is found out).
#[test]
fn must_20_r1_retransmissions_make_ip_confirm_the_next_hop_again() {
    let mut sim = Sim::pair();
    let (c, _s) = connect(&mut sim);
    // (ARP requests to b's MAC, ARP broadcasts, other frames) a sent.
    let sent = std::rc::Rc::new(std::cell::Cell::new((0, 0, 0)));
    let counted = sent.clone();
    // Segments from a are lost; its ARP requests get through and are answered.
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        let (mut unicast, mut broadcast, mut other) = counted.get();
        let arp = f.get(ETHERTYPE_AT) == Some(&ETHERTYPE_ARP[..]);
        match (arp, f[..6] == [0xff; 6]) {
            (true, true) => broadcast += 1,
            (true, false) => unicast += 1,
            (false, _) => other += 1,
        }
        counted.set((unicast, broadcast, other));
        arp
    }));
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, b"unanswered").unwrap();
    let deadline = sim.now + Duration::from_secs(60);
    let mut seen = Vec::new();
    while sim.a.iface.counters().tcp_timeouts < 4 {
        assert!(sim.now < deadline, "four timeouts within 60 s");
        let t = sim.next_event().expect("a timer is pending");
        sim.run_until(t);
        let c = sim.a.iface.counters();
        seen.push((c.tcp_timeouts, c.tcp_negative_advice, sent.get()));
    }
    let ca = sim.a.iface.counters();
    assert_eq!(ca.tcp_negative_advice, 1, "{ca}");
    assert_eq!(ca.arp_negative_advice, 1, "{ca}");
    // No advice and no ARP before the third timeout; then one unicast request (answered:
    // no more), and every retransmission left.
    for &(timeouts, advice, (unicast, broadcast, _)) in &seen {
        let want = if timeouts < 3 { (0, 0, 0) } else { (1, 1, 0) };
        assert_eq!((advice, unicast, broadcast), want, "{seen:?}");
    }
    let (_, _, segments) = sent.get();
    assert!(
        segments >= 6,
        "the data, a probe and four retransmissions: {seen:?}"
    );
}

#[test]
fn retransmission_timeouts_back_off_and_give_up_with_timed_out() {
    let mut sim = Sim::pair();
    let (c, _s) = connect(&mut sim);
    sim.a_out_filter = Some(Box::new(|_| false));
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, b"into the void").unwrap();
    let start = sim.now;
    let mut last = 0;
    let mut gaps = Vec::new();
    let mut prev = start;
    while sim.a.iface.tcp_connect_result(c).is_some_and(|r| r.is_ok())
        && sim.a.iface.tcp_state(c) != Some(State::Closed)
    {
        let t = sim.next_event().expect("a timer is pending");
        sim.run_until(t);
        let timeouts = sim.a.iface.counters().tcp_timeouts;
        if timeouts != last {
            gaps.push(sim.now - prev);
            prev = sim.now;
            last = timeouts;
        }
        assert!(sim.now - start < Duration::from_secs(3600), "never gave up");
    }
    let err = sim.a.iface.tcp_recv(sim.now, c, &mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(last, 15, "retries");
    // A tail loss probe goes first, in the first RTO's place (RFC 8985 §7.3), and the RTO is
    // restarted; from then on each timeout doubles.
    assert_eq!(sim.a.iface.counters().tcp_loss_probes, 1);
    for w in gaps.windows(2).skip(1).take(8) {
        assert!(
            w[1] >= w[0] * 2 - Duration::from_millis(2),
            "doubling: {gaps:?}"
        );
    }
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(120)),
        "capped: {gaps:?}"
    );
}

#[test]
fn one_lost_segment_is_fast_retransmitted() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let mut data_frames = 0;
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        // Drop the fifth data-carrying segment once.
        if f.len() > 14 + 20 + 32 + 100 {
            data_frames += 1;
            return data_frames != 5;
        }
        true
    }));
    let data = pattern(200_000, 3);
    let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
    assert_eq!(sha256(&got), sha256(&data));
    let ca = sim.a.iface.counters();
    assert_eq!(ca.tcp_fast_retransmits, 1, "{ca}");
    assert_eq!(ca.tcp_timeouts, 0, "{ca}");
}

/// A data segment's sequence number and payload length, if `f` is one (IPv4 without options).
fn data_segment(f: &[u8]) -> Option<(u32, usize)> {
    let tcp = f.get(34..)?;
    let header = usize::from(tcp.get(12)? >> 4) * 4;
    let len = tcp.len().checked_sub(header)?;
    let seq = u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?);
    (len > 0).then_some((seq, len))
}

#[test]
fn tail_loss_is_recovered_by_a_probe_not_a_timeout() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    // Whole segments, so that Nagle holds nothing back and two segments are in flight.
    let total = 69 * 1448u32;
    let mut base = None;
    let mut seen = std::collections::HashSet::new();
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        // The first transmission of the last two segments is lost.
        let Some((seq, _)) = data_segment(f) else {
            return true;
        };
        let offset = seq.wrapping_sub(*base.get_or_insert(seq));
        !(offset >= total - 2 * 1448 && seen.insert(seq))
    }));
    let data = pattern(total as usize, 11);
    let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
    assert_eq!(sha256(&got), sha256(&data));
    let ca = sim.a.iface.counters();
    assert!(ca.tcp_loss_probes >= 1, "{ca}");
    assert!(
        ca.tcp_rack_losses >= 1,
        "the probe's SACK exposes the other loss: {ca}"
    );
    assert_eq!(ca.tcp_timeouts, 0, "{ca}");
    assert!(
        sim.now < Instant::from_millis(200),
        "well before a 200 ms RTO: {}",
        sim.now
    );
}

#[test]
fn a_lost_retransmission_is_resent_without_a_timeout() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let mut data_frames = 0;
    let mut victim = None;
    let mut victim_drops = 0;
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        // The 20th data segment and its first retransmission are lost.
        let Some((seq, _)) = data_segment(f) else {
            return true;
        };
        data_frames += 1;
        if data_frames == 20 {
            victim = Some(seq);
        }
        if victim == Some(seq) && victim_drops < 2 {
            victim_drops += 1;
            return false;
        }
        true
    }));
    let data = pattern(400_000, 12);
    let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
    assert_eq!(sha256(&got), sha256(&data));
    let ca = sim.a.iface.counters();
    assert_eq!(ca.tcp_retrans_segs, 2, "sent three times in all: {ca}");
    assert_eq!(ca.tcp_timeouts, 0, "{ca}");
}

#[test]
fn nagle_coalesces_small_writes_unless_nodelay() {
    for nodelay in [false, true] {
        let mut sim = Sim::pair();
        let (c, _s) = connect(&mut sim);
        let now = sim.now;
        sim.a.iface.tcp_set_nodelay(now, c, nodelay).unwrap();
        let before = sim.a.iface.counters().tcp_out_segs;
        for i in 0..10u8 {
            sim.a.iface.tcp_send(now, c, &[i]).unwrap();
        }
        let sent = sim.a.iface.counters().tcp_out_segs - before;
        if nodelay {
            assert_eq!(sent, 10, "every write goes at once");
        } else {
            assert_eq!(sent, 1, "the rest waits for the first ACK");
        }
        sim.advance(Duration::from_millis(100));
    }
}

#[test]
fn delayed_ack_quick_acks_first_then_waits_40ms_for_a_lone_segment_and_acks_every_second() {
    let mut sim = Sim::pair();
    let (c, _s) = connect(&mut sim);
    let acks = |sim: &Sim| sim.b.iface.counters().tcp_out_segs;
    let now = sim.now;
    sim.a.iface.tcp_set_nodelay(now, c, true).unwrap();
    // Quick-ACK mode at the start of the connection (Linux `tcp_incr_quickack`): the first 16
    // data segments are ACKed at once.
    for i in 0..16u8 {
        let before = acks(&sim);
        let now = sim.now;
        sim.a.iface.tcp_send(now, c, &[i]).unwrap();
        sim.settle();
        assert_eq!(acks(&sim), before + 1, "quick ACK for segment {i}");
        sim.advance(Duration::from_millis(1));
    }
    let now = sim.now;
    let before = acks(&sim);
    sim.a.iface.tcp_send(now, c, b"one").unwrap();
    sim.settle();
    assert_eq!(
        acks(&sim),
        before,
        "no immediate ACK once quick ACKs are spent"
    );
    sim.advance(Duration::from_millis(39));
    assert_eq!(acks(&sim), before);
    sim.advance(Duration::from_millis(2));
    assert_eq!(acks(&sim), before + 1, "delayed ACK after 40 ms");
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, &[1; 3000]).unwrap();
    sim.settle();
    assert_eq!(acks(&sim), before + 2, "two full segments, one ACK at once");
    // After an idle gap longer than the RTO, quick ACKs again.
    sim.advance(Duration::from_secs(2));
    let before = acks(&sim);
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, b"after a pause").unwrap();
    sim.settle();
    assert_eq!(acks(&sim), before + 1, "quick ACK after idle");
}

/// Reads whatever `id` has on `node` into `into`; returns how much arrived.
fn drain(node: &mut Node, now: Instant, id: SocketId, into: &mut Vec<u8>) -> usize {
    let mut buf = [0u8; 65536];
    let mut n = 0;
    while let Ok(k) = node.iface.tcp_recv(now, id, &mut buf) {
        if k == 0 {
            break;
        }
        into.extend_from_slice(&buf[..k]);
        n += k;
    }
    n
}

/// One HTTP-like exchange: `client` sends a request, `server` answers with a head and a body
/// written separately (the pattern of the request/response issue: a short head, full segments,
/// a short tail). Returns the virtual time it took.
fn exchange(
    sim: &mut Sim,
    client: SocketId,
    server: SocketId,
    request: &[u8],
    head: &[u8],
    body: &[u8],
) -> Duration {
    let start = sim.now;
    let now = sim.now;
    sim.a.iface.tcp_send(now, client, request).unwrap();
    let mut got = Vec::new();
    while got.len() < request.len() {
        sim.advance(Duration::from_micros(100));
        let now = sim.now;
        drain(&mut sim.b, now, server, &mut got);
        assert!(sim.now - start < Duration::from_secs(1), "request stuck");
    }
    let now = sim.now;
    sim.b.iface.tcp_send(now, server, head).unwrap();
    sim.b.iface.tcp_send(now, server, body).unwrap();
    let mut got = Vec::new();
    while got.len() < head.len() + body.len() {
        sim.advance(Duration::from_micros(100));
        let now = sim.now;
        drain(&mut sim.a, now, client, &mut got);
        assert!(sim.now - start < Duration::from_secs(1), "response stuck");
    }
    sim.now - start
}

/// Nagle with Minshall's modification: the short tail of a response leaves as soon as the
/// short head before it is acknowledged, not when everything is; no exchange waits on the
/// 40 ms delayed-ACK timer. Without Minshall's rule each response waited 40 ms.
#[test]
fn a_response_tail_does_not_wait_for_a_delayed_ack() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    // The client ACKs segment by segment, as the kernel's `ab` did in the capture.
    sim.rx_batch = Some(1);
    let head = pattern(166, 1);
    let body = pattern(10 * 1024, 2);
    for i in 0..40 {
        let took = exchange(&mut sim, c, s, b"GET / HTTP/1.1\r\n\r\n", &head, &body);
        assert!(
            took < Duration::from_millis(5),
            "exchange {i} took {took:?}: a timer was in the loop"
        );
    }
}

/// Small writes still coalesce behind an unacknowledged short segment (Nagle), and a short
/// segment behind only full-sized ones goes at once (Minshall).
#[test]
fn nagle_holds_a_short_segment_only_behind_an_unacknowledged_short_one() {
    let mut sim = Sim::pair();
    let (c, _s) = connect(&mut sim);
    let now = sim.now;
    let before = sim.a.iface.counters().tcp_out_segs;
    // Full segments and a short tail, nothing short in flight before: all go.
    sim.a
        .iface
        .tcp_send(now, c, &pattern(3 * 1448 + 100, 3))
        .unwrap();
    assert_eq!(sim.a.iface.counters().tcp_out_segs - before, 4);
    // A short write behind the unacknowledged short tail waits, and so do more.
    sim.a.iface.tcp_send(now, c, b"x").unwrap();
    sim.a.iface.tcp_send(now, c, b"y").unwrap();
    assert_eq!(sim.a.iface.counters().tcp_out_segs - before, 4);
    // The ACK of the tail releases them together in one segment.
    sim.advance(Duration::from_millis(100));
    let data_segs = sim.a.iface.counters().tcp_out_segs - before;
    assert_eq!(data_segs, 5, "x and y coalesced into one segment");
}

/// Interactive mode: once the server answers requests, its ACK of a request rides on the
/// response instead of leaving as a pure ACK.
#[test]
fn in_interactive_mode_the_ack_rides_on_the_response() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    for _ in 0..3 {
        exchange(&mut sim, c, s, b"ping", b"", b"pong");
    }
    let before = sim.b.iface.counters().tcp_out_segs;
    for _ in 0..10 {
        let took = exchange(&mut sim, c, s, b"ping", b"", b"pong");
        assert!(took < Duration::from_millis(5), "{took:?}");
    }
    let segs = sim.b.iface.counters().tcp_out_segs - before;
    assert_eq!(segs, 10, "one segment per response, no separate ACKs");
}

/// The ACK of a peer's FIN waits, as Linux's does, to ride on the FIN of the application's
/// close that usually follows at once: one segment instead of two. Without a close it leaves
/// when the delayed-ACK timer fires.
#[test]
fn the_ack_of_a_fin_rides_on_our_fin() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    exchange(&mut sim, c, s, b"ping", b"", b"pong");
    let before = sim.b.iface.counters().tcp_out_segs;
    let now = sim.now;
    sim.a.iface.tcp_shutdown(now, c, false, true).unwrap();
    let start = sim.now;
    while sim.b.iface.tcp_state(s) != Some(State::CloseWait) {
        sim.advance(Duration::from_micros(100));
        assert!(sim.now - start < Duration::from_secs(1), "FIN not received");
    }
    assert_eq!(sim.b.iface.counters().tcp_out_segs, before, "no ACK yet");
    let now = sim.now;
    sim.b.iface.tcp_close(now, s);
    sim.advance(Duration::from_millis(1));
    assert_eq!(
        sim.b.iface.counters().tcp_out_segs - before,
        1,
        "one FIN+ACK for the peer's FIN"
    );
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::TimeWait));

    // A server that does not close: the ACK leaves after the delayed-ACK timeout.
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    exchange(&mut sim, c, s, b"ping", b"", b"pong");
    let before = sim.b.iface.counters().tcp_out_segs;
    let now = sim.now;
    sim.a.iface.tcp_shutdown(now, c, false, true).unwrap();
    let start = sim.now;
    while sim.a.iface.tcp_state(c) != Some(State::FinWait2) {
        sim.advance(Duration::from_millis(1));
        assert!(sim.now - start < Duration::from_secs(1), "FIN never ACKed");
    }
    let waited = sim.now - start;
    assert!(waited <= Duration::from_millis(45), "{waited:?}");
    assert_eq!(sim.b.iface.counters().tcp_out_segs - before, 1);
}

#[test]
fn sack_recovery_resends_only_the_holes() {
    let mut sim = Sim::new(config_bulk(1, 1), config(2, 2), FaultConfig::default());
    let (c, s) = connect(&mut sim);
    let mut data_frames = 0;
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        if f.len() > 14 + 20 + 32 + 100 {
            data_frames += 1;
            return ![20, 22, 23].contains(&data_frames);
        }
        true
    }));
    let data = pattern(400_000, 4);
    let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
    assert_eq!(sha256(&got), sha256(&data));
    let ca = sim.a.iface.counters();
    assert_eq!(ca.tcp_retrans_segs, 3, "exactly the three holes: {ca}");
    assert_eq!(ca.tcp_fast_retransmits, 1, "one recovery episode: {ca}");
    assert_eq!(ca.tcp_timeouts, 0);
    let b = sim.b.iface.counters();
    assert!(
        b.tcp_ofo_queued >= 2,
        "the receiver queued out of order and SACKed: {b}"
    );
}

#[test]
fn a_legitimate_client_connects_through_a_syn_flood() {
    let mut cfg_b = config(2, 2);
    cfg_b.tcp.syn_backlog = 64;
    let mut sim = Sim::new(config(1, 1), cfg_b, FaultConfig::default());
    let (l, _) = sim
        .b
        .iface
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16)
        .unwrap();
    // 5000 spoofed SYNs from addresses that never answer.
    let now = sim.now;
    for i in 0..5000u32 {
        let src = Ipv4Addr::new(10, 0, 0, 100 + (i % 100) as u8);
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x66], [2, 0, 0, 0, 0, 2])
            .ipv4(src.octets(), B.octets(), 64)
            .tcp(1024 + (i / 100) as u16, 80, i.wrapping_mul(7919), 64240)
            .syn()
            .write(&mut f, &[])
            .unwrap();
        sim.b.iface.receive(now, &f);
    }
    let cb = sim.b.iface.counters().clone();
    assert_eq!(cb.tcp_passive_opens, 64, "the SYN queue holds 64");
    assert_eq!(cb.tcp_syncookies_sent, 5000 - 64, "{cb}");
    // The real client gets a cookie too, and its ACK opens the connection.
    let c = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(B, 80))
        .unwrap();
    sim.advance(Duration::from_millis(10));
    assert!(matches!(sim.a.iface.tcp_connect_result(c), Some(Ok(()))));
    let (s, _) = sim.b.iface.tcp_accept(l).expect("accepted").unwrap();
    assert_eq!(sim.b.iface.counters().tcp_syncookies_recv, 1);
    // The server speaks first on a connection a cookie opened.
    let now = sim.now;
    assert_eq!(sim.b.iface.tcp_send(now, s, b"banner\n").unwrap(), 7);
    sim.advance(Duration::from_millis(10));
    let mut banner = [0u8; 16];
    let now = sim.now;
    assert_eq!(sim.a.iface.tcp_recv(now, c, &mut banner).unwrap(), 7);
    let data = pattern(300_000, 5);
    let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
    assert_eq!(sha256(&got), sha256(&data));
    // A forged ACK is refused.
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x66], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 77], B.octets(), 64)
        .tcp(5555, 80, 1000, 64240)
        .ack(12345)
        .write(&mut f, &[])
        .unwrap();
    let now = sim.now;
    sim.b.iface.receive(now, &f);
    assert_eq!(sim.b.iface.counters().tcp_syncookies_failed, 1);
}

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

#[test]
fn simultaneous_open_and_simultaneous_close() {
    let mut sim = Sim::pair();
    let now = sim.now;
    let x = sim
        .a
        .iface
        .tcp_connect_from(now, Some(5000), SocketAddrV4::new(B, 6000))
        .unwrap();
    let y = sim
        .b
        .iface
        .tcp_connect_from(now, Some(6000), SocketAddrV4::new(A, 5000))
        .unwrap();
    sim.advance(Duration::from_millis(50));
    assert_eq!(sim.a.iface.tcp_state(x), Some(State::Established));
    assert_eq!(sim.b.iface.tcp_state(y), Some(State::Established));
    let now = sim.now;
    sim.a.iface.tcp_send(now, x, b"from a").unwrap();
    sim.b.iface.tcp_send(now, y, b"from b").unwrap();
    sim.advance(Duration::from_millis(50));
    let mut buf = [0u8; 16];
    let now = sim.now;
    assert_eq!(sim.b.iface.tcp_recv(now, y, &mut buf).unwrap(), 6);
    assert_eq!(sim.a.iface.tcp_recv(now, x, &mut buf).unwrap(), 6);
    // Both FINs cross: FIN-WAIT-1 -> CLOSING -> TIME-WAIT on both sides.
    sim.a.iface.tcp_shutdown(now, x, false, true).unwrap();
    sim.b.iface.tcp_shutdown(now, y, false, true).unwrap();
    assert_eq!(sim.a.iface.tcp_state(x), Some(State::FinWait1));
    sim.advance(Duration::from_millis(50));
    assert_eq!(sim.a.iface.tcp_state(x), Some(State::TimeWait));
    assert_eq!(sim.b.iface.tcp_state(y), Some(State::TimeWait));
}

/// A segment from a's connection to b, crafted by hand.
fn segment_to_b(
    sim: &Sim,
    client: SocketId,
    seq: u32,
    build: impl FnOnce(etherparse::TcpHeader) -> etherparse::TcpHeader,
    payload: &[u8],
) -> Vec<u8> {
    let (local, remote) = sim.a.iface.tcp_addrs(client).unwrap();
    let t = sim.a.iface.tcp_info(client).unwrap();
    let mut tcp = etherparse::TcpHeader::new(local.port(), remote.port(), seq, 1000);
    tcp.ack = true;
    tcp.acknowledgment_number = t.rcv.nxt.0;
    let tcp = build(tcp);
    let ip = etherparse::Ipv4Header::new(
        (tcp.header_len() + payload.len()) as u16,
        64,
        etherparse::IpNumber::TCP,
        A.octets(),
        B.octets(),
    )
    .unwrap();
    let mut tcp = tcp;
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, payload).unwrap();
    let mut f = Vec::new();
    etherparse::Ethernet2Header {
        source: [2, 0, 0, 0, 0, 1],
        destination: [2, 0, 0, 0, 0, 2],
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut f)
    .unwrap();
    ip.write(&mut f).unwrap();
    tcp.write(&mut f).unwrap();
    f.extend_from_slice(payload);
    f
}

#[test]
fn resets_must_match_exactly_else_they_get_a_challenge_ack() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let rcv_nxt = sim.b.iface.tcp_info(s).unwrap().rcv.nxt.0;
    // In the window but not exact (RFC 5961 §3.2): a challenge ACK, the connection lives.
    let f = segment_to_b(
        &sim,
        c,
        rcv_nxt + 1000,
        |mut h| {
            h.rst = true;
            h.ack = false;
            h
        },
        &[],
    );
    let now = sim.now;
    sim.b.iface.receive(now, &f);
    assert_eq!(sim.b.iface.counters().tcp_challenge_acks, 1);
    assert_eq!(sim.b.iface.tcp_state(s), Some(State::Established));
    // A SYN on an established connection also gets a challenge ACK (RFC 5961 §4).
    let f = segment_to_b(
        &sim,
        c,
        rcv_nxt,
        |mut h| {
            h.syn = true;
            h.ack = false;
            h
        },
        &[],
    );
    sim.b.iface.receive(now, &f);
    assert_eq!(sim.b.iface.counters().tcp_challenge_acks, 2);
    assert_eq!(sim.b.iface.tcp_state(s), Some(State::Established));
    // The exact sequence number resets it.
    let f = segment_to_b(
        &sim,
        c,
        rcv_nxt,
        |mut h| {
            h.rst = true;
            h.ack = false;
            h
        },
        &[],
    );
    sim.b.iface.receive(now, &f);
    let err = sim.b.iface.tcp_recv(now, s, &mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[test]
fn paws_drops_segments_with_old_timestamps() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, b"fresh").unwrap();
    sim.advance(Duration::from_millis(100));
    let tb = sim.b.iface.tcp_info(s).unwrap();
    let (rcv_nxt, recent) = (tb.rcv.nxt.0, tb.ts_recent.unwrap());
    let old = segment_to_b(
        &sim,
        c,
        rcv_nxt,
        |mut h| {
            h.set_options(&[etherparse::TcpOptionElement::Timestamp(
                recent.wrapping_sub(1000),
                0,
            )])
            .unwrap();
            h
        },
        b"stale duplicate",
    );
    let now = sim.now;
    sim.b.iface.receive(now, &old);
    assert_eq!(sim.b.iface.counters().tcp_paws_drops, 1);
    let mut buf = [0u8; 64];
    assert_eq!(
        sim.b.iface.tcp_recv(now, s, &mut buf).unwrap(),
        5,
        "only the fresh data"
    );
    assert!(sim.b.iface.tcp_recv(now, s, &mut buf).is_err());
}

#[test]
fn transfers_across_the_sequence_number_wrap() {
    let mut a = config(1, 1);
    let mut b = config(2, 2);
    a.tcp.fixed_iss = Some(u32::MAX - 300_000);
    b.tcp.fixed_iss = Some(u32::MAX - 10);
    let mut sim = Sim::new(
        a,
        b,
        FaultConfig {
            drop_pct: 3.0,
            reorder_pct: 5.0,
            seed: 9,
            ..Default::default()
        },
    );
    let (c, s) = connect(&mut sim);
    let data = pattern(1 << 20, 6);
    let got = transfer(&mut sim, c, s, &data, Duration::from_secs(600));
    assert_eq!(sha256(&got), sha256(&data));
    let t = sim.a.iface.tcp_info(c).unwrap();
    assert!(t.snd.una.0 < t.snd.iss.0, "snd_una wrapped past 2^32");
}

#[test]
fn keepalive_probes_idle_connections_and_drops_dead_peers() {
    let mut sim = Sim::pair();
    let (c, _s) = connect(&mut sim);
    let now = sim.now;
    sim.a
        .iface
        .tcp_set_keepalive(now, c, Some(Duration::from_secs(10)))
        .unwrap();
    // A live peer answers every probe: still established an hour later.
    sim.advance(Duration::from_secs(3600));
    assert_eq!(sim.a.iface.tcp_state(c), Some(State::Established));
    assert!(sim.a.iface.counters().tcp_keepalive_probes >= 300);
    // The peer goes silent: nine unanswered probes 75 s apart end the connection.
    let probes = sim.a.iface.counters().tcp_keepalive_probes;
    sim.a_out_filter = Some(Box::new(|_| false));
    sim.advance(Duration::from_secs(10 + 9 * 75 + 5));
    assert_eq!(sim.a.iface.counters().tcp_keepalive_probes - probes, 9);
    let err = sim.a.iface.tcp_recv(sim.now, c, &mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn both_directions_at_once_under_loss() {
    let faults = FaultConfig {
        drop_pct: 3.0,
        reorder_pct: 5.0,
        seed: 21,
        ..Default::default()
    };
    let mut sim = Sim::new(config(1, 21), config(2, 22), faults);
    let (c, s) = connect(&mut sim);
    let up = pattern(1 << 20, 1);
    let down = pattern(1 << 20, 2);
    let (mut up_sent, mut down_sent) = (0, 0);
    let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 1 << 16];
    let deadline = sim.now + Duration::from_secs(600);
    while got_up.len() < up.len() || got_down.len() < down.len() {
        assert!(
            sim.now < deadline,
            "stalled: {} up, {} down",
            got_up.len(),
            got_down.len()
        );
        let now = sim.now;
        while let Ok(n) = sim.a.iface.tcp_send(now, c, &up[up_sent..]) {
            up_sent += n;
            if up_sent == up.len() {
                break;
            }
        }
        while let Ok(n) = sim.b.iface.tcp_send(now, s, &down[down_sent..]) {
            down_sent += n;
            if down_sent == down.len() {
                break;
            }
        }
        sim.advance(Duration::from_millis(1));
        let now = sim.now;
        while let Ok(n) = sim.b.iface.tcp_recv(now, s, &mut buf) {
            if n == 0 {
                break;
            }
            got_up.extend_from_slice(&buf[..n]);
        }
        while let Ok(n) = sim.a.iface.tcp_recv(now, c, &mut buf) {
            if n == 0 {
                break;
            }
            got_down.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(sha256(&got_up), sha256(&up));
    assert_eq!(sha256(&got_down), sha256(&down));
}

#[test]
fn established_gauge_returns_to_zero_after_graceful_closes() {
    let mut sim = Sim::pair();
    let (c, s) = connect(&mut sim);
    assert_eq!(sim.a.iface.counters().tcp_curr_estab, 1);
    assert_eq!(sim.b.iface.counters().tcp_curr_estab, 1);
    let now = sim.now;
    sim.a.iface.tcp_close(now, c);
    sim.advance(Duration::from_millis(50));
    assert_eq!(sim.a.iface.counters().tcp_curr_estab, 0, "FIN-WAIT-2");
    assert_eq!(
        sim.b.iface.counters().tcp_curr_estab,
        1,
        "CLOSE-WAIT counts"
    );
    let now = sim.now;
    sim.b.iface.tcp_close(now, s);
    sim.advance(Duration::from_millis(50));
    assert_eq!(sim.b.iface.counters().tcp_curr_estab, 0, "after LAST-ACK");
}

#[test]
fn ts_recent_follows_the_peers_pure_acks() {
    let mut sim = Sim::pair();
    let (c, _s) = connect(&mut sim);
    let before = sim.a.iface.tcp_info(c).unwrap().ts_recent.unwrap();
    // a sends; b only acknowledges (pure ACKs), a second later on b's clock.
    sim.advance(Duration::from_secs(1));
    let now = sim.now;
    sim.a.iface.tcp_send(now, c, &[7; 3000]).unwrap();
    sim.advance(Duration::from_millis(100));
    let after = sim.a.iface.tcp_info(c).unwrap().ts_recent.unwrap();
    assert!(
        after.wrapping_sub(before) >= 1000,
        "TS.Recent {before} -> {after}: updated from a pure ACK (RFC 7323 §4.3)"
    );
}

/// a connects to a listener on b whose connections get a 16 KiB receive buffer: (a's, b's).
fn to_a_small_receiver(sim: &mut Sim, now: Instant) -> (SocketId, SocketId) {
    let small = tapstack::config::Buffers {
        recv: 16 * 1024,
        ..tapstack::config::TcpConfig::default().buffers()
    };
    let lid = sim
        .b
        .iface
        .with_tcp(now, |tcp, _| {
            tcp.listen_with(
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80).into(),
                8,
                small,
            )
        })
        .unwrap()
        .0;
    let ca = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(B, 80))
        .unwrap();
    sim.settle();
    let cb = sim.b.iface.tcp_accept(lid).unwrap().unwrap().0;
    (ca, cb)
}

/// A receive buffer bounds what the peer may send (the advertised window); growing it on an
/// open connection opens the window without a read, and shrinking it never drops what it
/// holds or has promised (RFC 9293 §3.8.6).
#[test]
fn the_receive_buffer_bounds_the_window_and_can_grow() {
    // The sender queues 100 000 bytes at once.
    let mut sim = Sim::new(config_bulk(1, 1), config(2, 2), FaultConfig::default());
    let now = sim.now;
    let (ca, cb) = to_a_small_receiver(&mut sim, now);
    let data = pattern(100_000, 3);
    let now = sim.now;
    let queued = sim.a.iface.tcp_send(now, ca, &data).unwrap();
    assert_eq!(queued, 100_000);
    sim.advance(Duration::from_secs(2));
    let held = |sim: &Sim| sim.b.iface.tcp().info(cb).unwrap().readable;
    assert_eq!(held(&sim), 16 * 1024, "the window held the sender back");
    let now = sim.now;
    sim.b
        .iface
        .with_tcp(now, |tcp, st| {
            tcp.set_buffers(cb, now, None, Some(48 * 1024), st)
        })
        .unwrap();
    sim.advance(Duration::from_secs(2));
    assert_eq!(
        held(&sim),
        48 * 1024,
        "the grown buffer was filled without a read"
    );
    let now = sim.now;
    sim.b
        .iface
        .with_tcp(now, |tcp, st| {
            tcp.set_buffers(cb, now, None, Some(1024), st)
        })
        .unwrap();
    let buffers = sim.b.iface.tcp().buffers(cb).unwrap();
    assert_eq!(buffers.recv, 48 * 1024, "never below what it holds");
    let mut got = vec![0u8; 100_000];
    let mut n = 0;
    for _ in 0..100 {
        let now = sim.now;
        n += sim.b.iface.tcp_recv(now, cb, &mut got[n..]).unwrap_or(0);
        sim.advance(Duration::from_millis(200));
        if n == data.len() {
            break;
        }
    }
    assert_eq!(n, data.len());
    assert_eq!(sha256(&got), sha256(&data));
}

/// Reordering without loss: each segment held back is taken for lost and resent; the
/// receiver reports the late original as a duplicate (D-SACK, RFC 2883), and the sender undoes
/// the reduction (RFC 3708) and widens its reordering window (RFC 8985 §6.2.4), so the
/// transfer never times out.
#[test]
fn reordering_is_reported_by_dsack_and_its_reductions_undone() {
    let faults = FaultConfig {
        reorder_pct: 3.0,
        seed: 21,
        ..FaultConfig::default()
    };
    let mut sim = Sim::new(config(1, 21), config(2, 121), faults);
    let (c, s) = connect(&mut sim);
    let data = pattern(4 << 20, 21);
    let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
    assert_eq!(sha256(&got), sha256(&data));
    let (ca, cb) = (sim.a.iface.counters(), sim.b.iface.counters());
    assert!(
        ca.tcp_retrans_segs > 0,
        "reordering fooled the loss detection: {ca}"
    );
    assert!(cb.tcp_dsack_sent > 0, "{cb}");
    assert!(ca.tcp_dsack_recv > 0, "{ca}");
    assert!(ca.tcp_undos > 0, "{ca}");
    assert_eq!(ca.tcp_timeouts, 0, "{ca}");
}

/// Over a link of 64 KB frames (as the tap's GRO frames are) losing 2% of them each way, the
/// receiver holds the frames that arrive past a hole in their buffers, as Linux holds its
/// out-of-order skbs, and reads them in place once the retransmission fills it: 8 MiB arrive
/// intact over three seeds, with frames kept out of order as well as in order.
#[test]
fn frames_past_a_hole_wait_whole_and_are_read_in_place() {
    for seed in 70..73 {
        let (mut ca, mut cb) = (config_bulk(1, seed), config_bulk(2, seed + 100));
        ca.mtu = 65_000;
        cb.mtu = 65_000;
        let faults = FaultConfig {
            drop_pct: 2.0,
            seed,
            ..FaultConfig::default()
        };
        let mut sim = Sim::new(ca, cb, faults);
        sim.frames = true;
        let (c, s) = connect_despite_loss(&mut sim);
        let data = pattern(8 << 20, seed as u8);
        let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
        assert_eq!(sha256(&got), sha256(&data), "seed {seed}");
        let cb = sim.b.iface.counters();
        assert!(cb.tcp_ofo_kept > 0, "seed {seed}: {cb}");
        assert!(cb.tcp_in_kept > cb.tcp_ofo_kept, "seed {seed}: {cb}");
    }
}

/// Loss alone, each way, in virtual time: 4 MiB at 1% and at 5% of frames lost, over ten
/// seeds. A timeout costs 200 ms here, where the link's round trip is nothing, so the bounds
/// count timeouts: repeated probes, in recovery too, leave about one per ten transfers at 1%
/// and one per two at 5% (today: 0.33 s and 0.97 s; before them 1.3 s and 11 s).
#[test]
fn loss_recovery_keeps_timeouts_rare() {
    for (loss, max_total_ms) in [(1.0, 600u64), (5.0, 2_500)] {
        let mut total = Duration::ZERO;
        let mut timeouts = 0;
        for seed in 40..50 {
            let faults = FaultConfig {
                drop_pct: loss,
                seed,
                ..FaultConfig::default()
            };
            let mut sim = Sim::new(config_bulk(1, seed), config_bulk(2, seed + 100), faults);
            let (c, s) = connect_despite_loss(&mut sim);
            let start = sim.now;
            let data = pattern(4 << 20, seed as u8);
            let got = transfer(&mut sim, c, s, &data, Duration::from_secs(600));
            assert_eq!(sha256(&got), sha256(&data), "loss {loss}%, seed {seed}");
            total += sim.now - start;
            timeouts += sim.a.iface.counters().tcp_timeouts;
        }
        eprintln!("loss {loss}%: 10 x 4 MiB in {total:?} virtual, {timeouts} timeouts");
        assert!(
            total <= Duration::from_millis(max_total_ms),
            "loss {loss}%: {total:?}, {timeouts} timeouts"
        );
    }
}

/// Random loss holds a sender that cuts its window per loss (CUBIC by 30%) near
/// MSS/RTT · √(3/2)/√p (Mathis et al., 1997; CUBIC's TCP-friendly region, RFC 9438 §4.3,
/// keeps that rate). Over a 100 MB/s bottleneck with 1% of frames lost each way, 8 MiB at a
/// time, three seeds: where the round trip is short enough for that window to fill the path
/// (200 µs), the sender keeps most of its lossless rate (at least half, the loss issue's
/// target); where it is not (1 ms), it reaches the model's rate and no timeout strikes
/// (today, in the mean: 83% of lossless and 0.87 of the model's rate at 200 µs; 28% of
/// lossless and 1.36 times the model's rate at 1 ms).
#[test]
fn one_percent_loss_costs_no_more_than_the_mathis_limit() {
    const RATE: u64 = 100_000_000;
    const QUEUE: usize = 200_000;
    const LOSS: f64 = 0.01;
    /// The segments' payload: the MSS less the timestamp option.
    const SMSS: f64 = 1448.0;
    for (rtt_us, keeps_half) in [(200u64, true), (1000, false)] {
        let path = PathConfig {
            rate: RATE,
            delay: Duration::from_micros(rtt_us / 2),
            queue: QUEUE,
            ecn_threshold: None,
        };
        let mean_rate = |loss_pct: f64| {
            let mut rates = Vec::new();
            for seed in 60..63 {
                let faults = FaultConfig {
                    drop_pct: loss_pct,
                    seed,
                    ..FaultConfig::default()
                };
                let mut sim =
                    Sim::with_path(config(1, seed), config(2, seed + 100), faults, Some(path));
                let (c, s) = connect_despite_loss(&mut sim);
                let start = sim.now;
                let data = pattern(8 << 20, seed as u8);
                let got = transfer(&mut sim, c, s, &data, Duration::from_secs(60));
                assert_eq!(sha256(&got), sha256(&data), "{rtt_us} µs, seed {seed}");
                let ca = sim.a.iface.counters();
                assert_eq!(ca.tcp_timeouts, 0, "{rtt_us} µs, seed {seed}: {ca}");
                rates.push(data.len() as f64 / (sim.now - start).as_secs_f64());
            }
            rates.iter().sum::<f64>() / rates.len() as f64
        };
        let lossless = mean_rate(0.0);
        let lossy = mean_rate(LOSS * 100.0);
        let mathis = SMSS / (rtt_us as f64 * 1e-6) * 1.5f64.sqrt() / LOSS.sqrt();
        eprintln!(
            "{rtt_us} µs: lossless {:.1} MB/s, 1% {:.1} MB/s, model {:.1} MB/s",
            lossless / 1e6,
            lossy / 1e6,
            mathis / 1e6
        );
        // Slow start's first round trips included, 8 MiB fills most of the path.
        assert!(lossless >= 0.75 * RATE as f64, "{rtt_us} µs: {lossless}");
        assert!(
            lossy >= 0.8 * lossless.min(mathis),
            "{rtt_us} µs: {lossy} B/s at 1%, lossless {lossless}, model {mathis}"
        );
        if keeps_half {
            assert!(
                lossy >= 0.5 * lossless,
                "{rtt_us} µs: {lossy} of {lossless}"
            );
        }
    }
}

/// Send buffers autotune (Linux's `tcp_sndbuf_expand`): towards a peer that stops reading
/// the sender holds two congestion windows, not its whole `SO_SNDBUF`; towards one that
/// reads, the buffer grows with the window up to its size; a size the application sets is
/// held from the start.
#[test]
fn the_send_buffer_grows_with_the_congestion_window_only() {
    let mut sim = Sim::pair();
    let now = sim.now;
    let (ca, cb) = to_a_small_receiver(&mut sim, now);
    let send_size = |sim: &Sim| sim.a.iface.tcp().buffers(ca).unwrap().send;
    let initial = send_size(&sim);
    assert_eq!(initial, 2 * 14600, "two initial windows (RFC 6928)");
    // b reads nothing: its 16 KiB fill, its window closes, and a's application is held to
    // what a's buffer earned, however long it keeps writing.
    let data = pattern(4 << 20, 7);
    let mut queued = 0;
    for _ in 0..2000 {
        let now = sim.now;
        if let Ok(n) = sim.a.iface.tcp_send(now, ca, &data[queued..]) {
            queued += n;
        }
        sim.advance(Duration::from_millis(1));
    }
    let held = sim.a.iface.tcp_info(ca).unwrap().unsent;
    assert!(send_size(&sim) <= 64 * 1024, "{}", send_size(&sim));
    assert!(held <= send_size(&sim), "{held}");
    assert_eq!(queued, 16 * 1024 + held, "what b holds and what a holds");
    assert!(sim.a.iface.counters().tcp_zero_window_probes > 0);
    // b reads from now on, into a 1 MiB buffer: the window opens, cwnd grows, and the send
    // buffer with it.
    let now = sim.now;
    sim.b
        .iface
        .with_tcp(now, |tcp, st| {
            tcp.set_buffers(cb, now, None, Some(1 << 20), st)
        })
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0;
    while queued < data.len() || got < queued {
        let now = sim.now;
        if let Ok(n) = sim.a.iface.tcp_send(now, ca, &data[queued..]) {
            queued += n;
        }
        sim.advance(Duration::from_millis(1));
        while let Ok(n) = sim.b.iface.tcp_recv(sim.now, cb, &mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert!(sim.now < Instant::from_secs(120), "stalled at {got}");
    }
    assert!(send_size(&sim) > 64 * 1024, "{}", send_size(&sim));
    assert!(send_size(&sim) <= 1 << 20);
    // A size set by the application is held from the start, and is no longer tuned.
    let now = sim.now;
    sim.a
        .iface
        .with_tcp(now, |tcp, st| {
            tcp.set_buffers(ca, now, Some(300_000), None, st)
        })
        .unwrap();
    let b = sim.a.iface.tcp().buffers(ca).unwrap();
    assert_eq!((b.send, b.send_locked), (300_000, true));
}

/// Connects a to b's listener `l` on port 80 and accepts: (a's end, b's end).
fn open_on(sim: &mut Sim, l: SocketId) -> (SocketId, SocketId) {
    let now = sim.now;
    let c = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(B, 80))
        .unwrap();
    sim.advance(Duration::from_millis(10));
    let (s, _) = sim.b.iface.tcp_accept(l).unwrap().unwrap();
    (c, s)
}

/// TIME-WAIT is bounded (Linux's `tcp_max_tw_buckets`): past the cap a connection closing
/// first still sends its last ACK, so the peer closes cleanly, but is forgotten at once; the
/// ones in TIME-WAIT hold no buffer; the gauge follows them out when 2 MSL pass.
#[test]
fn time_wait_is_capped_and_holds_no_buffer() {
    let mut a = config(1, 1);
    a.tcp.max_time_wait = 2;
    let mut sim = Sim::new(a, config(2, 2), FaultConfig::default());
    let (l, _) = sim
        .b
        .iface
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    let mut pairs = Vec::new();
    for _ in 0..3 {
        let (c, s) = open_on(&mut sim, l);
        // Enough for the rings to have grown; b reads it all, to the end of a's stream.
        let data = pattern(100_000, 1);
        let (mut sent, mut eof, mut closed) = (0, false, false);
        let mut buf = vec![0u8; 1 << 16];
        while !eof {
            let now = sim.now;
            sent += sim.a.iface.tcp_send(now, c, &data[sent..]).unwrap_or(0);
            if sent == data.len() && !closed {
                sim.a.iface.tcp_close(now, c);
                closed = true;
            }
            sim.advance(Duration::from_millis(1));
            while let Ok(n) = sim.b.iface.tcp_recv(sim.now, s, &mut buf) {
                eof |= n == 0;
                if n == 0 {
                    break;
                }
            }
            assert!(sim.now < Instant::from_secs(30));
        }
        sim.b.iface.tcp_close(sim.now, s);
        sim.advance(Duration::from_millis(10));
        pairs.push((c, s));
    }
    let ca = sim.a.iface.counters();
    assert_eq!(ca.tcp_time_wait, 2, "{ca}");
    assert_eq!(ca.tcp_tw_overflow, 1, "{ca}");
    let states: Vec<_> = pairs
        .iter()
        .map(|&(c, _)| sim.a.iface.tcp_state(c))
        .collect();
    assert_eq!(
        states,
        [Some(State::TimeWait), Some(State::TimeWait), None],
        "the third is forgotten at once"
    );
    for &(c, s) in &pairs {
        assert_eq!(sim.b.iface.tcp_state(s), None, "the peer closed cleanly");
        if let Some(t) = sim.a.iface.tcp().io(c) {
            let io = t.lock();
            let held = io.send.allocated() + io.recv.allocated();
            assert_eq!(held, 0, "TIME-WAIT holds no buffer");
        }
    }
    assert_eq!(sim.b.iface.counters().tcp_estab_resets, 0);
    sim.advance(Duration::from_secs(61));
    assert_eq!(sim.a.iface.counters().tcp_time_wait, 0);
}

/// The memory budget (Linux's `tcp_mem`): peers that send to an application that does not
/// read fill the receive buffers until the pressure mark; from then on the windows offer only
/// what is allocated, so memory stops growing; at the limit a connect fails with `ENOBUFS`;
/// once the application reads, every transfer completes and the memory is given back.
#[test]
fn the_memory_budget_holds_the_windows_and_refuses_connections_at_its_limit() {
    let mut a = config(1, 1);
    a.tcp.mem_pressure = 128 * 1024;
    a.tcp.mem_limit = 256 * 1024;
    let mut sim = Sim::new(a, config(2, 2), FaultConfig::default());
    let (l, _) = sim
        .b
        .iface
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    let mut conns = Vec::new();
    for _ in 0..3 {
        let (c, s) = open_on(&mut sim, l);
        conns.push((c, s, 0usize, 0usize));
    }
    let data = pattern(1 << 20, 9);
    // b sends 1 MiB on each; a reads nothing for 2 s.
    for _ in 0..2000 {
        for (_, s, sent, _) in conns.iter_mut() {
            let now = sim.now;
            *sent += sim.b.iface.tcp_send(now, *s, &data[*sent..]).unwrap_or(0);
        }
        sim.advance(Duration::from_millis(1));
    }
    let ca = sim.a.iface.counters();
    assert_eq!(ca.tcp_mem_pressure, 1, "{ca}");
    assert!(ca.tcp_mem_bytes <= 2 * 256 * 1024, "{ca}");
    let held: usize = conns
        .iter()
        .map(|&(c, ..)| sim.a.iface.tcp_info(c).unwrap().readable)
        .sum();
    assert!(held < 3 << 20, "the windows held the senders back: {held}");
    // Memory stays where it stopped while nothing is read.
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.a.iface.counters().tcp_mem_bytes, ca.tcp_mem_bytes);
    if sim.a.iface.tcp().memory().exhausted() {
        let now = sim.now;
        let err = sim
            .a
            .iface
            .tcp_connect(now, SocketAddrV4::new(B, 80))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS));
        assert_eq!(sim.a.iface.counters().tcp_mem_refused, 1);
    }
    // a reads: everything arrives, in order.
    let mut buf = vec![0u8; 1 << 16];
    let deadline = sim.now + Duration::from_secs(60);
    while conns.iter().any(|&(_, _, _, got)| got < data.len()) {
        assert!(sim.now < deadline, "stalled");
        for (c, s, sent, got) in conns.iter_mut() {
            let now = sim.now;
            *sent += sim.b.iface.tcp_send(now, *s, &data[*sent..]).unwrap_or(0);
            while let Ok(n) = sim.a.iface.tcp_recv(now, *c, &mut buf) {
                if n == 0 {
                    break;
                }
                assert_eq!(&buf[..n], &data[*got..*got + n]);
                *got += n;
            }
        }
        sim.advance(Duration::from_millis(1));
    }
    for (c, ..) in &conns {
        let now = sim.now;
        sim.a.iface.tcp_close(now, *c);
    }
    sim.advance(Duration::from_secs(1));
    assert!(
        sim.a.iface.counters().tcp_mem_bytes < ca.tcp_mem_bytes,
        "{}",
        sim.a.iface.counters()
    );
}
