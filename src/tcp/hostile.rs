//! Hostile peers, one segment at a time: what each costs the stack is bounded and counted, and
//! the connection goes on.

use super::fixture::*;
use super::seq::Seq;
use super::tcb::State;

#[test]
fn twenty_thousand_tiny_segments_behind_a_hole_keep_a_bounded_reassembly() {
    let mut fx = Fixture::established();
    let start = PEER_ISS + 1;
    let ack = fx.iss + 1;
    // One byte each, two apart, all behind a missing first byte: each needs a range of its own.
    for i in 0..20_000u32 {
        fx.send(seg(start + 2 + 2 * i).ack(ack).data(&[i as u8]));
    }
    let ranges = fx.tcb().io().recv.ooo_ranges().count();
    assert_eq!(ranges, 32, "at most max_ooo_ranges held");
    assert_eq!(fx.stats.tcp_ofo_drops, 20_000 - 32);
    assert!(fx.tcb().io().recv.allocated() <= 128 * 1024);
    // The hole filled, what joins it becomes readable; the connection goes on.
    fx.send(seg(start).ack(ack).data(&[0, 1]));
    assert_eq!(fx.read().len(), 3);
    assert_eq!(fx.tcb().state, State::Established);
}

#[test]
fn data_far_past_the_window_is_not_kept_and_the_edge_is_trimmed() {
    let mut fx = Fixture::established();
    let start = PEER_ISS + 1;
    let ack = fx.iss + 1;
    // Far beyond the window: not acceptable, answered with an ACK (RFC 9293 §3.10.7.4).
    let out = fx.send(seg(start + 10_000_000).ack(ack).data(&[7; 1000]));
    assert_eq!(out.len(), 1);
    assert!(out[0].payload.is_empty() && out[0].ack == Some(start));
    assert_eq!(fx.tcb().io().recv.allocated(), 0, "nothing stored");
    // Straddling the right edge: the part inside is kept, the rest trimmed and counted.
    let edge = fx.tcb().rcv.adv.since(start) as usize;
    fx.send(seg(start).ack(ack).data(&vec![1; edge + 5000]));
    assert_eq!(fx.read().len(), edge);
    assert_eq!(fx.stats.tcp_rcv_pruned, 1);
}

#[test]
fn sack_blocks_that_fragment_the_scoreboard_or_lie_beyond_what_was_sent_are_bounded() {
    let mut fx = Fixture::established_sack_ts();
    fx.set_send_buffer(1 << 20);
    let ack = fx.iss + 1;
    fx.write(&vec![5; 200 * 1448]);
    let high = fx.tcb().snd.nxt;
    // Ten bytes SACKed in every twenty, three new ranges an ACK, and a block beyond SND.NXT.
    let mut acks = 0;
    for k in 0..1000u32 {
        let base = ack + 10 + 60 * k;
        let blocks: Vec<(Seq, Seq)> = (0..3)
            .map(|j| (base + 20 * j, base + 20 * j + 10))
            .chain([(high + 1000, high + 2000)])
            .collect();
        if blocks[2].1.gt(high) {
            break;
        }
        fx.send(seg(PEER_ISS + 1).ack(ack).sack(&blocks));
        acks += 1;
    }
    assert!(acks > 100);
    let t = fx.tcb();
    assert!(
        t.recovery.scoreboard.range_count() <= 64,
        "the scoreboard is bounded"
    );
    assert!(t.recovery.scoreboard.sacked_bytes() > 0);
    assert_eq!(t.state, State::Established);
}

#[test]
fn a_syn_announcing_mss_1_gets_segments_of_the_floor_not_of_one_byte() {
    let mut fx = Fixture::established_after(seg(PEER_ISS).syn().mss(1));
    assert_eq!(fx.tcb().snd.mss, super::input::MIN_SND_MSS);
    let out = fx.write(&[7; 1000]);
    assert!(!out.is_empty());
    assert!(
        out.iter()
            .all(|s| s.payload.len() as u32 >= super::input::MIN_SND_MSS.min(1000)),
        "{:?}",
        out.iter().map(|s| s.payload.len()).collect::<Vec<_>>()
    );
}

#[test]
fn bursts_of_in_window_syns_and_rsts_get_ten_challenge_acks_a_second() {
    let mut fx = Fixture::established();
    let mut answers = 0;
    // A thousand each, none exactly at RCV.NXT: none may reset the connection (RFC 5961).
    for i in 0..1000u32 {
        answers += fx.send(seg(PEER_ISS + 2 + i).syn()).len();
        answers += fx.send(seg(PEER_ISS + 2 + i).rst()).len();
    }
    assert_eq!(answers, 10, "one second's worth of challenge ACKs");
    assert_eq!(fx.stats.tcp_challenge_acks, 10);
    assert_eq!(fx.tcb().state, State::Established);
    // A second later the budget is back.
    fx.advance(std::time::Duration::from_secs(1));
    assert_eq!(fx.send(seg(PEER_ISS + 2).rst()).len(), 1);
    assert_eq!(fx.tcb().state, State::Established);
}

#[test]
fn a_connection_not_yet_accepted_holds_at_most_its_small_window() {
    use super::UNACCEPTED_RCVBUF;
    // A peer that scales its window, so that ours can grow past 64 KiB once accepted.
    let mut fx = Fixture::listen();
    let out = fx.send(seg(PEER_ISS).syn().mss(1460).wscale(7));
    fx.iss = out[0].seq;
    fx.id = fx.tcp.conns.keys().next().copied();
    // The handshake completes with data: the connection waits in the accept queue.
    let ack = fx.iss + 1;
    let chunk = [3u8; 1400];
    let mut seq = PEER_ISS + 1;
    let mut out = Vec::new();
    for _ in 0..200 {
        out = fx.send(seg(seq).ack(ack).data(&chunk));
        seq += chunk.len() as u32;
    }
    let held = fx.tcb().io().recv.readable();
    assert!(held <= UNACCEPTED_RCVBUF, "{held} bytes held before accept");
    assert!(held >= UNACCEPTED_RCVBUF - chunk.len());
    let window = out.last().map(|s| s.window).expect("an ACK");
    assert_eq!(window, 0, "the small window closed");
    // Accepting gives it its whole buffer; the next ACK reopens the window (a socket handle
    // pokes the core for it at once).
    let l = fx.listener.expect("listener");
    fx.tcp.accept(l).expect("queued").expect("accepted");
    assert!(fx.tcb().io().recv.capacity() > UNACCEPTED_RCVBUF);
    let next = PEER_ISS + 1 + held as u32;
    let out = fx.send(seg(next).ack(ack).data(&chunk));
    assert!(out.iter().any(|s| s.window > 0), "{out:?}");
    assert_eq!(fx.tcb().io().recv.readable(), held + chunk.len());
}
