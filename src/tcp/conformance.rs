//! One test per MUST of RFC 9293 Appendix B that no other test checks, named by its ID (see
//! docs/conformance.md): one segment in, the segments out, through [`super::fixture`].

use super::fixture::*;
use super::seq::Seq;
use super::tcb::State;
use std::time::Duration;

/// A listener whose connections get `recv` bytes of receive buffer, then ESTABLISHED.
fn established_with_recv_buffer(recv: usize) -> Fixture {
    let mut fx = Fixture::listen();
    let l = fx.listener.expect("listener");
    let now = fx.now;
    fx.tcp
        .set_buffers(l, now, None, Some(recv), &mut fx.stats)
        .expect("buffers");
    let out = fx.send(seg(PEER_ISS).syn().mss(1460));
    fx.iss = out[0].seq;
    fx.id = fx.tcp.conns.keys().next().copied();
    fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1));
    assert_eq!(fx.tcb().state, State::Established);
    fx
}

/// MUST-15: without an MSS option the send MSS is 536 (RFC 9293 §3.7.1, IPv4).
#[test]
fn must_15_the_send_mss_defaults_to_536() {
    let mut fx = Fixture::listen();
    fx.send(seg(PEER_ISS).syn());
    fx.id = fx.tcp.conns.keys().next().copied();
    assert_eq!(fx.tcb().snd.mss, 536);
}

/// MUST-18 (Karn): an ACK of retransmitted data gives no RTT sample.
#[test]
fn must_18_a_retransmission_gives_no_rtt_sample() {
    let mut fx = Fixture::established();
    let srtt = fx.tcb().rtx.rtt.srtt();
    fx.write(&[1; 100]);
    let out = fx.advance(Duration::from_secs(2));
    assert!(
        out.iter().any(|s| s.payload.len() == 100),
        "resent: {out:?}"
    );
    fx.send(seg(PEER_ISS + 1).ack(fx.iss + 101));
    assert_eq!(fx.tcb().rtx.rtt.srtt(), srtt, "2 s would have been sampled");
}

/// MUST-22: a SYN is retransmitted by the same timer, backing off (1 s, then 2 s).
#[test]
fn must_22_syns_are_retransmitted_with_backoff() {
    let mut fx = Fixture::syn_sent();
    assert!(fx.advance(Duration::from_millis(999)).is_empty());
    let out = fx.advance(Duration::from_millis(1));
    assert!(out.len() == 1 && out[0].flags.syn, "{out:?}");
    assert!(fx.advance(Duration::from_millis(1999)).is_empty());
    let out = fx.advance(Duration::from_millis(1));
    assert!(out.len() == 1 && out[0].flags.syn, "{out:?}");
}

/// MUST-25: keep-alive is off unless the application asks for it.
#[test]
fn must_25_keepalive_is_off_by_default() {
    let mut fx = Fixture::established();
    for _ in 0..4 {
        assert!(fx.advance(Duration::from_secs(3600)).is_empty());
    }
    assert_eq!(fx.stats.tcp_keepalive_probes, 0);
}

/// MUST-26: a keep-alive probe goes only after the connection was idle for the interval.
#[test]
fn must_26_keepalive_probes_only_an_idle_connection() {
    let mut fx = Fixture::established();
    let id = fx.id.expect("conn");
    let now = fx.now;
    fx.tcp
        .set_keepalive(id, now, Some(Duration::from_secs(10)))
        .expect("keepalive");
    let mut seq = PEER_ISS + 1;
    for _ in 0..12 {
        fx.advance(Duration::from_secs(5));
        fx.send(seg(seq).ack(fx.iss + 1).data(b"busy"));
        seq += 4;
    }
    assert_eq!(fx.stats.tcp_keepalive_probes, 0, "never idle for 10 s");
    let out = fx.advance(Duration::from_secs(11));
    assert_eq!(fx.stats.tcp_keepalive_probes, 1);
    let probe = out.last().expect("a probe");
    assert_eq!(probe.seq, fx.iss, "SND.UNA - 1, no data");
    assert!(probe.payload.is_empty());
}

/// MUST-34 and MUST-35: a window shrunk below what is in flight sends nothing new and does not
/// break the connection; a window shrunk to zero is probed until it opens.
#[test]
fn must_34_35_a_shrunk_window_is_probed_and_survived() {
    let mut fx = Fixture::established();
    let out = fx.write(&[3; 8 * 1460]);
    assert_eq!(out.len(), 8);
    // Two segments acknowledged, and the window shrunk to nothing: its right edge moved left.
    let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1 + 2 * 1460).window(0));
    assert!(out.iter().all(|s| s.payload.is_empty()), "{out:?}");
    let mut probes = 0;
    for _ in 0..20 {
        let out = fx.advance(Duration::from_secs(1));
        probes += out.len();
    }
    assert!(probes > 0, "the zero window is probed");
    assert!(fx.stats.tcp_zero_window_probes > 0, "{:?}", fx.stats);
    assert_eq!(fx.tcb().state, State::Established);
    // The window opens: everything still unacknowledged goes.
    let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1 + 2 * 1460));
    let sent: usize = out.iter().map(|s| s.payload.len()).sum();
    assert!(sent > 0, "{out:?}");
}

/// MUST-39: the receiver does not advertise small increments of window (SWS avoidance): a
/// read that frees less than min(buffer/2, MSS) sends no window update.
#[test]
fn must_39_no_window_update_for_a_small_read() {
    let mut fx = established_with_recv_buffer(4096);
    let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(&[1; 4096]));
    assert_eq!(out.last().expect("ack").window, 0, "full: {out:?}");
    let id = fx.id.expect("conn");
    let now = fx.now;
    let mut buf = [0u8; 100];
    fx.tcp.recv(id, now, &mut buf, &mut fx.stats).expect("read");
    assert!(
        fx.output().is_empty(),
        "100 bytes of window are not worth a segment"
    );
    let mut buf = [0u8; 2000];
    fx.tcp.recv(id, now, &mut buf, &mut fx.stats).expect("read");
    let out = fx.output();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].window, 2100);
}

/// MUST-61 and MUST-65: data the application wrote ends with PSH; MSS goes only in SYNs.
#[test]
fn must_61_65_psh_on_the_last_segment_and_mss_only_in_syns() {
    let mut fx = Fixture::listen();
    let out = fx.send(seg(PEER_ISS).syn().mss(1460));
    assert!(out[0].options.mss.is_some(), "the SYN-ACK announces it");
    let mut fx = Fixture::established();
    let out = fx.write(&[5; 3000]);
    assert_eq!(out.len(), 3);
    assert!(
        !out[0].flags.psh && !out[1].flags.psh && out[2].flags.psh,
        "{out:?}"
    );
    assert!(out.iter().all(|s| s.options.mss.is_none()));
}

/// MUST-66: a RST is processed even when the receive window is zero.
#[test]
fn must_66_a_reset_counts_with_a_zero_window() {
    let mut fx = established_with_recv_buffer(1000);
    let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(&[1; 1000]));
    assert_eq!(out.last().expect("ack").window, 0);
    fx.send(seg(PEER_ISS + 1001).rst());
    assert_eq!(fx.tcb().state, State::Closed);
    assert_eq!(fx.tcb().io().error, Some(libc::ECONNRESET));
}

/// MUST-66 (the URG part): an urgent pointer counts even on a segment a zero window keeps
/// out.
#[test]
fn must_66_an_urgent_pointer_counts_with_a_zero_window() {
    let mut fx = established_with_recv_buffer(1000);
    let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(&[1; 1000]));
    assert_eq!(out.last().expect("ack").window, 0);
    fx.send(seg(PEER_ISS + 1001).ack(fx.iss + 1).data(b"!").urgent(1));
    assert_eq!(
        fx.tcb().io().rcv_urgent,
        Some(1001),
        "the mark after the '!'"
    );
    assert_eq!(
        fx.tcb().io().recv.readable(),
        1000,
        "the data waits for room"
    );
}

/// Writes `data` as urgent data through the fixture's connection; returns what goes out.
fn write_urgent(fx: &mut Fixture, data: &[u8]) -> Vec<Out> {
    let (id, now) = (fx.id.expect("a connection"), fx.now);
    let n = fx
        .tcp
        .send_urgent(id, now, data, &mut fx.stats)
        .expect("send");
    assert_eq!(n, data.len());
    fx.output()
}

/// MUST-30, MUST-62: urgent data is sent with the urgent pointer at the first octet after
/// it, in every segment before that octet (retransmissions too), and urgent mode ends when
/// it is acknowledged.
#[test]
fn must_30_62_the_urgent_pointer_points_past_the_urgent_data() {
    let mut fx = Fixture::established();
    let out = write_urgent(&mut fx, b"interrupt");
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].flags.urg);
    assert_eq!(
        out[0].urgent_ptr, 9,
        "SEG.SEQ + 9 is the first octet after it"
    );
    assert_eq!(fx.stats.tcp_urgent_out, 1);

    let out = fx.advance(Duration::from_secs(2));
    let resent = out
        .iter()
        .find(|s| s.payload == b"interrupt")
        .expect("resent");
    assert!(resent.flags.urg && resent.urgent_ptr == 9, "{resent:?}");

    fx.send(seg(PEER_ISS + 1).ack(fx.iss + 10));
    assert_eq!(fx.tcb().io().send.urgent_end(), None, "urgent mode is over");
    let out = fx.write(b"plain");
    assert!(!out[0].flags.urg, "{out:?}");
}

/// MUST-31: urgent data of any length: the pointer covers every segment before the mark
/// (and saturates at 65535 beyond a segment's reach); the receiver takes a mark past the
/// data it holds.
#[test]
fn must_31_urgent_data_may_be_of_any_length() {
    let mut fx = Fixture::established();
    let out = write_urgent(&mut fx, &[7; 4000]);
    let pointers: Vec<(usize, bool, u16)> = out
        .iter()
        .map(|s| (s.payload.len(), s.flags.urg, s.urgent_ptr))
        .collect();
    assert_eq!(
        pointers,
        [(1460, true, 4000), (1460, true, 2540), (1080, true, 1080)]
    );

    let mut fx = Fixture::established();
    fx.send(
        seg(PEER_ISS + 1)
            .ack(fx.iss + 1)
            .data(&[1; 1000])
            .urgent(30_000),
    );
    assert_eq!(fx.tcb().io().rcv_urgent, Some(30_000));
    let mut buf = vec![0; 2000];
    assert_eq!(fx.tcb().io().read(&mut buf).unwrap(), 1000);
    assert_eq!(fx.tcb().io().rcv_urgent, Some(29_000));
}

/// MUST-32: the application is told asynchronously when urgent data begins or its mark
/// advances: the handle's readiness callback runs, with no data to read yet.
#[test]
fn must_32_urgent_data_wakes_the_application() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let mut fx = Fixture::established();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    fx.tcb().io.watch(Some(Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    })));
    let before = calls.load(Ordering::Relaxed);
    fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).urgent(5));
    assert!(calls.load(Ordering::Relaxed) > before, "woken");
    assert_eq!(fx.tcb().io().rcv_urgent, Some(5));
    assert_eq!(fx.tcb().io().recv.readable(), 0);
}

/// MUST-33: the application learns how much urgent data is left, and a read stops at the
/// mark so that it never mixes urgent and ordinary bytes.
#[test]
fn must_33_the_application_learns_how_much_urgent_data_is_left() {
    let mut fx = Fixture::established();
    fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(b"ab!cd").urgent(3));
    let id = fx.id.expect("a connection");
    assert_eq!(fx.tcp.urgent_left(id).unwrap(), Some(3));
    let mut buf = [0u8; 10];
    assert_eq!(fx.tcb().io().peek(&mut buf).unwrap(), 3, "peek stops too");
    assert_eq!(fx.tcb().io().read(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"ab!");
    assert_eq!(fx.tcp.urgent_left(id).unwrap(), None, "at the mark");
    assert_eq!(fx.tcb().io().read(&mut buf).unwrap(), 2);
}

/// MUST-69: options are padded to a 32-bit boundary with zeros.
#[test]
fn must_69_options_are_padded_with_zeros() {
    let header = super::segment::SegmentOut {
        src_port: 1,
        dst_port: 2,
        seq: Seq(1),
        ack: None,
        flags: super::segment::Flags::SYN,
        window: 1000,
        urgent_ptr: 0,
        options: super::segment::Options {
            mss: Some(1460),
            wscale: Some(7),
            ..Default::default()
        },
    };
    let mut bytes = Vec::new();
    super::segment::write_header(&header, &mut bytes);
    let data_offset = usize::from(bytes[12] >> 4) * 4;
    assert_eq!(data_offset % 4, 0);
    // MSS (4 bytes) and window scale (3 bytes): one byte of padding, zero (End of List).
    assert_eq!(data_offset, 20 + 8);
    assert_eq!(bytes[20..24], [2, 4, 0x05, 0xb4]);
    assert_eq!(bytes[27], 0, "{:?}", &bytes[20..data_offset]);
}

/// MUST-21 (and MUST-20's R2): the application sets how many retransmissions end the
/// connection; then it closes with ETIMEDOUT.
#[test]
fn must_21_the_application_sets_r2() {
    let mut fx = Fixture::established();
    let id = fx.id.expect("conn");
    fx.tcp.set_max_retries(id, Some(2)).expect("R2");
    assert!(fx.tcp.set_max_retries(id, Some(0)).is_err());
    fx.write(&[1; 100]);
    for _ in 0..10 {
        fx.advance(Duration::from_secs(10));
    }
    assert_eq!(
        fx.stats.tcp_timeouts, 2,
        "two retransmissions, then the end"
    );
    assert_eq!(fx.tcb().state, State::Closed);
    assert_eq!(fx.tcb().io().error, Some(libc::ETIMEDOUT));
}

/// MUST-42: an application may LISTEN on a port while a connection from that port is still
/// opening (SYN-SENT); segments of that connection still reach it, new SYNs the listener.
#[test]
fn must_42_listen_beside_a_connection_in_syn_sent() {
    let mut fx = Fixture::syn_sent();
    let any = std::net::SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), LOCAL_PORT);
    let (l, _) = fx.tcp.listen(any, 8).expect("LISTEN beside SYN-SENT");
    // The SYN-ACK completes the connection, not the listener's.
    let out = fx.send(seg(PEER_ISS).syn().ack(fx.iss + 1).mss(1460));
    assert_eq!(fx.tcb().state, State::Established, "{out:?}");
    assert!(
        out.iter().all(|o| !o.flags.syn),
        "the ACK of the handshake: {out:?}"
    );
    // Another peer's SYN finds the listener.
    let other = seg(PEER_ISS).syn().mss(1460).src_port(PEER_PORT + 1);
    let out = fx.send(other);
    assert!(
        out.len() == 1 && out[0].flags.syn && out[0].flags.ack,
        "{out:?}"
    );
    assert!(fx.tcp.accept(l).is_none(), "half open, not yet accepted");
    // Once the connection is established, the port is taken for another LISTEN.
    let now = fx.now;
    fx.tcp.close(l, now, &mut fx.stats);
    assert_eq!(
        fx.tcp
            .listen(any, 8)
            .map(|_| ())
            .map_err(|e| e.raw_os_error()),
        Err(Some(libc::EADDRINUSE))
    );
}
