//! TCP super-segments (TSO): the core sends whole MSS pieces in one frame when told the device
//! splits them; software segmentation at the device boundary yields wire frames.

mod common;

use common::*;
use std::time::Duration;
use tapstack::core::SocketId;
use tapstack::phy::FaultConfig;
use tapstack::wire::gso;
use tapstack::wire::transport_checksum_ok;

/// Payload of a full-sized segment on the sim's 1500-byte link with timestamps.
const MSS: usize = 1448;

/// A sim whose client `a` sends super-segments.
fn tso_pair() -> Sim {
    let mut a = config(1, 1);
    a.tcp.tso = true;
    Sim::new(a, config(2, 2), FaultConfig::default())
}

/// Moves `data` from a to b through the sim (a's super-segments split in software by
/// `pop_transmit`); returns what b read.
fn transfer(sim: &mut Sim, c: SocketId, s: SocketId, data: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut sent = 0;
    let mut buf = vec![0u8; 1 << 20];
    let deadline = sim.now + Duration::from_secs(60);
    while got.len() < data.len() {
        assert!(sim.now < deadline, "stalled at {} bytes", got.len());
        let now = sim.now;
        if let Ok(n) = sim.a.iface.tcp_send(now, c, &data[sent..]) {
            sent += n;
        }
        sim.advance(Duration::from_millis(1));
        let now = sim.now;
        while let Ok(n) = sim.b.iface.tcp_recv(now, s, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    got
}

/// The TCP payload length and sequence number of a TCP frame.
fn tcp_piece(frame: &[u8]) -> Option<(u32, usize)> {
    let (tcp_at, payload_at, end) = gso::segment_offsets(frame)?;
    let seq = u32::from_be_bytes(frame[tcp_at + 4..tcp_at + 8].try_into().ok()?);
    Some((seq, end - payload_at))
}

#[test]
fn a_large_write_leaves_as_one_super_segment_and_splits_into_valid_wire_frames() {
    let mut sim = tso_pair();
    let (c, s) = connect(&mut sim);
    // Open the congestion window first: 1 MiB through the sim.
    let warm = pattern(1 << 20, 1);
    assert_eq!(sha256(&transfer(&mut sim, c, s, &warm)), sha256(&warm));
    sim.advance(Duration::from_millis(100));
    // A super-segment takes at most half the congestion window.
    let data = pattern(40_000, 2);
    let cwnd = sim.a.iface.tcp().info(c).expect("info").cwnd as usize;
    assert!(cwnd / 2 >= data.len().next_multiple_of(MSS), "cwnd {cwnd}");
    let now = sim.now;
    assert_eq!(sim.a.iface.tcp_send(now, c, &data).unwrap(), data.len());
    let frame = sim.a.iface.pop_transmit_frame().expect("a frame");
    assert_eq!(frame.tso_mss, Some(MSS as u16), "one super-segment");
    assert!(sim.a.iface.pop_transmit_frame().is_none(), "nothing else");
    let (_, len) = tcp_piece(&frame.bytes).unwrap();
    assert_eq!(len, data.len(), "the whole write in one frame");

    // Software segmentation: wire-sized pieces with valid checksums, in sequence.
    let pieces = gso::segment(&frame.bytes, MSS).unwrap();
    assert_eq!(pieces.len(), data.len().div_ceil(MSS));
    let (first_seq, _) = tcp_piece(&pieces[0]).unwrap();
    for (i, p) in pieces.iter().enumerate() {
        assert!(p.len() <= 14 + 1500, "piece {i} fits the MTU");
        let (tcp_at, _, end) = gso::segment_offsets(p).unwrap();
        let ip = &p[14..34];
        assert!(tapstack::wire::checksum_ok(ip), "piece {i} IP checksum");
        let (src, dst) = (
            ip[12..16].try_into().unwrap(),
            ip[16..20].try_into().unwrap(),
        );
        assert!(
            transport_checksum_ok(src, dst, 6, &p[tcp_at..end]),
            "piece {i} TCP checksum"
        );
        let (seq, len) = tcp_piece(p).unwrap();
        assert_eq!(seq, first_seq.wrapping_add((i * MSS) as u32));
        assert_eq!(len, MSS.min(data.len() - i * MSS));
        sim.a.dev.send(sim.now, p).unwrap();
    }
    let counters = sim.a.iface.counters();
    sim.advance(Duration::from_millis(10));
    let mut got = vec![0u8; 70_000];
    let now = sim.now;
    let n = sim.b.iface.tcp_recv(now, s, &mut got).unwrap();
    assert_eq!(sha256(&got[..n]), sha256(&data));
    assert!(counters.tcp_out_segs >= pieces.len() as u64);
}

#[test]
fn a_loss_inside_a_super_segment_resends_only_the_lost_piece() {
    let mut sim = tso_pair();
    let (c, s) = connect(&mut sim);
    let lost = std::rc::Rc::new(std::cell::Cell::new(None));
    let resent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let (lost2, resent2) = (lost.clone(), resent.clone());
    let mut data_frames = 0;
    sim.a_out_filter = Some(Box::new(move |f: &[u8]| {
        let Some((seq, len)) = tcp_piece(f).filter(|&(_, len)| len > 0) else {
            return true;
        };
        data_frames += 1;
        if data_frames == 5 {
            lost2.set(Some(seq));
            return false;
        }
        if lost2.get() == Some(seq) {
            resent2.borrow_mut().push(len);
        }
        true
    }));
    let data = pattern(2 << 20, 3);
    assert_eq!(sha256(&transfer(&mut sim, c, s, &data)), sha256(&data));
    let ca = sim.a.iface.counters();
    assert!(lost.get().is_some());
    assert_eq!(*resent.borrow(), vec![MSS], "one MSS resent: {ca}");
    assert_eq!(ca.tcp_retrans_segs, 1, "{ca}");
    assert_eq!(ca.tcp_timeouts, 0, "{ca}");
}

#[test]
fn a_super_segment_takes_at_most_half_the_congestion_window() {
    let mut sim = tso_pair();
    let (c, _) = connect(&mut sim);
    // The initial window is 10 segments (RFC 6928); a write larger than it leaves as two
    // super-segments of half the window each, so that a lost ACK for one of them leaves the
    // other's to clock the flight on (Linux `tcp_cwnd_test`).
    let data = pattern(60_000, 4);
    let now = sim.now;
    // The autotuned send buffer takes two windows to begin with: more than one leaves.
    let queued = sim.a.iface.tcp_send(now, c, &data).unwrap();
    assert!(queued >= 2 * 10 * MSS, "{queued}");
    let mut sizes = Vec::new();
    while let Some(frame) = sim.a.iface.pop_transmit_frame() {
        if let Some((_, len)) = tcp_piece(&frame.bytes).filter(|&(_, len)| len > 0) {
            sizes.push((len, frame.tso_mss));
        }
    }
    let half = Some(MSS as u16);
    assert_eq!(sizes, [(5 * MSS, half), (5 * MSS, half)], "{sizes:?}");
}

/// Where the flags byte and the urgent pointer sit in a TCP header (RFC 9293 §3.1).
const FLAGS_AT: usize = 13;
const URG: u8 = 0x20;
const URGENT_POINTER_AT: usize = 18;

#[test]
fn urgent_data_leaves_in_single_segments_each_with_its_pointer() {
    let mut sim = tso_pair();
    let (c, s) = connect(&mut sim);
    // Every piece of a super-segment would copy the first piece's urgent pointer: in urgent
    // mode the stack builds each segment itself (as Linux).
    let data = pattern(5 * MSS, 5);
    let now = sim.now;
    let n = sim
        .a
        .iface
        .with_tcp(now, |tcp, stats| tcp.send_urgent(c, now, &data, stats))
        .unwrap();
    assert_eq!(n, data.len());
    let mut pointers = Vec::new();
    while let Some(frame) = sim.a.iface.pop_transmit_frame() {
        assert_eq!(frame.tso_mss, None);
        let (tcp_at, _, _) = gso::segment_offsets(&frame.bytes).unwrap();
        let urg = frame.bytes[tcp_at + FLAGS_AT] & URG != 0;
        let at = tcp_at + URGENT_POINTER_AT;
        let ptr = u16::from_be_bytes([frame.bytes[at], frame.bytes[at + 1]]);
        let (_, len) = tcp_piece(&frame.bytes).unwrap();
        pointers.push((len, urg, ptr as usize));
        sim.a.dev.send(sim.now, &frame.bytes).unwrap();
    }
    let want: Vec<_> = (0..5).map(|i| (MSS, true, (5 - i) * MSS)).collect();
    assert_eq!(pointers, want);
    // Past the mark, data leaves as super-segments again, without URG, though the urgent
    // data is not yet acknowledged.
    let more = pattern(5 * MSS, 6);
    assert_eq!(sim.a.iface.tcp_send(now, c, &more).unwrap(), more.len());
    let frame = sim.a.iface.pop_transmit_frame().expect("a frame");
    assert_eq!(frame.tso_mss, Some(MSS as u16));
    let (tcp_at, _, _) = gso::segment_offsets(&frame.bytes).unwrap();
    assert_eq!(frame.bytes[tcp_at + FLAGS_AT] & URG, 0);
    sim.a.dev.send(sim.now, &frame.bytes).unwrap();
    sim.advance(Duration::from_millis(10));
    let left = sim.b.iface.tcp().urgent_left(s).unwrap();
    assert_eq!(left, Some(data.len()), "the receiver's mark");
    let mut got = vec![0u8; 20 * MSS];
    let now = sim.now;
    assert_eq!(sim.b.iface.tcp_recv(now, s, &mut got).unwrap(), data.len());
    assert_eq!(sim.b.iface.tcp().urgent_left(s).unwrap(), None);
    assert_eq!(sim.b.iface.tcp_recv(now, s, &mut got).unwrap(), more.len());
}

/// A super-segment leaves its data in the send buffer: the frame popped in parts holds the
/// headers, and its payload the written bytes, which the whole frame then carries. One whose
/// data is discarded before the device takes it (the connection reset meanwhile) is not sent,
/// and is counted.
#[test]
fn a_super_segment_carries_its_data_from_the_send_buffer_or_is_not_sent() {
    let mut sim = tso_pair();
    let (c, s) = connect(&mut sim);
    let warm = pattern(1 << 20, 1);
    assert_eq!(sha256(&transfer(&mut sim, c, s, &warm)), sha256(&warm));
    sim.advance(Duration::from_millis(100));

    let data = pattern(40_000, 5);
    let now = sim.now;
    assert_eq!(sim.a.iface.tcp_send(now, c, &data).unwrap(), data.len());
    let mut frame = sim.a.iface.pop_transmit_parts().expect("a frame");
    assert_eq!(frame.tso_mss, Some(MSS as u16));
    let payload = frame
        .payload
        .as_ref()
        .expect("data left in the send buffer");
    assert_eq!(payload.len(), data.len());
    let head = frame.bytes.len();
    assert!(head <= 14 + 20 + 60, "headers only: {head} bytes");
    assert!(frame.materialize());
    assert_eq!(&frame.bytes[head..], &data[..]);
    let (_, len) = tcp_piece(&frame.bytes).unwrap();
    assert_eq!(len, data.len(), "the frame's lengths count the data");
    // The partial checksum, completed over headers and data as the kernel completes it, is
    // the segment's.
    let (tcp_at, _, end) = gso::segment_offsets(&frame.bytes).unwrap();
    let mut whole = frame.bytes.clone();
    assert!(tapstack::wire::complete_partial_checksum(
        &mut whole,
        tcp_at,
        gso::TCP_CHECKSUM_OFFSET
    ));
    let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    assert!(transport_checksum_ok(src, dst, 6, &whole[tcp_at..end]));

    let more = pattern(40_000, 6);
    let now = sim.now;
    assert_eq!(sim.a.iface.tcp_send(now, c, &more).unwrap(), more.len());
    // The peer resets the connection before a's device takes the frame: the reset closes
    // the connection, whose unsent data is then discarded.
    sim.b
        .iface
        .with_tcp(now, |tcp, stats| tcp.reset(s, now, stats));
    let rst = sim.b.iface.pop_transmit_frame().expect("the peer's reset");
    sim.a.iface.receive(now, &rst.bytes);
    assert!(
        sim.a.iface.pop_transmit_frame().is_none(),
        "the super-segment is not sent"
    );
    assert_eq!(sim.a.iface.counters().tcp_out_stale, 1);
}
