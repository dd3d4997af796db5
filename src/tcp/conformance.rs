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
    let any = std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, LOCAL_PORT);
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
