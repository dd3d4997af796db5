//! Explicit Congestion Notification for TCP (RFC 3168 §6.1): the handshake that turns it on,
//! the receiver's echo of Congestion Experienced marks, and what the sender marks and sends
//! back. (The sender's window reduction is loss recovery's: `recovery::ecn_echo`.)
//!
//! With [`crate::config::TcpConfig::ecn_low`] the echo is precise, as DCTCP's receiver
//! (RFC 8257 §3.2): an ACK echoes the mark of the data it acknowledges, and a change of mark
//! first acknowledges what came before it, so the sender can count the marked bytes.

use super::segment::SegmentIn;
use super::seq::Seq;
use super::tcb::{State, Tcb};
use crate::config::Ecn;
use crate::stats::Counters;

pub use crate::wire::ecn::{CE, ECN_MASK, ECT0};

/// One connection's ECN state (RFC 3168 §6.1), grouped as Linux's `ecn_flags`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EcnState {
    /// What the stack's configuration says of ECN.
    pub mode: Ecn,
    /// Marks are shallow-threshold ones and echoed precisely ([`crate::config::TcpConfig::ecn_low`]).
    pub low: bool,
    /// Our latest SYN asked for ECN (ECE and CWR set). A retransmitted SYN does not ask, in
    /// case a middlebox drops SYNs that do (RFC 3168 §6.1.1.1; Linux `tcp_ecn_clear_syn`).
    pub syn_asked: bool,
    /// Both ends agreed in the handshake: new data leaves ECT(0), marks are echoed and
    /// answered (Linux's `TCP_ECN_OK`).
    pub ok: bool,
    /// Receiver: ACKs carry ECE. Classic ECN sets it at a CE mark and clears it at the
    /// sender's CWR (RFC 3168 §6.1.3, Linux's `TCP_ECN_DEMAND_CWR`); the precise echo holds
    /// the mark of the latest data.
    pub echo: bool,
    /// Sender: the window was reduced; the next new data segment carries CWR (RFC 3168
    /// §6.1.2, Linux's `TCP_ECN_QUEUE_CWR`).
    pub queue_cwr: bool,
    /// Sender: an echo was answered for the data below this (SND.MAX then); later echoes
    /// until SND.UNA passes it are the same congestion (once a window, §6.1.2).
    pub answered_until: Option<Seq>,
}

impl EcnState {
    /// A connection's state before its handshake, as the configuration has it.
    pub fn new(mode: Ecn, low: bool) -> EcnState {
        EcnState {
            mode,
            low,
            ..EcnState::default()
        }
    }
}

/// The ECE and CWR bits of our SYN or SYN-ACK (RFC 3168 §6.1.1): a SYN asks with both, unless
/// it is a retransmission; a SYN-ACK agrees with ECE alone.
pub fn syn_flags(t: &mut Tcb) -> (bool, bool) {
    if t.state == State::SynSent {
        t.ecn.syn_asked = t.ecn.mode == Ecn::On && t.rtx.retries == 0;
        (t.ecn.syn_asked, t.ecn.syn_asked)
    } else {
        (t.ecn.ok, false)
    }
}

/// The peer's SYN or SYN-ACK decides (RFC 3168 §6.1.1): a SYN with ECE and CWR asks, and we
/// agree unless ECN is off; a SYN-ACK with ECE and without CWR agrees to our asking.
pub fn negotiate(t: &mut Tcb, seg: &SegmentIn<'_>, stats: &mut Counters) {
    let f = seg.flags;
    t.ecn.ok = if f.ack {
        t.ecn.syn_asked && f.ece && !f.cwr
    } else if t.state == State::SynSent {
        // A simultaneous open: both SYNs must have asked (Linux's `tcp_ecn_rcv_syn`).
        t.ecn.syn_asked && f.ece && f.cwr
    } else {
        t.ecn.mode != Ecn::Off && f.ece && f.cwr
    };
    stats.tcp_ecn_negotiated += u64::from(t.ecn.ok);
    if t.ecn.ok && t.ecn.low {
        t.cc.use_ecn();
    }
}

/// The ECN field of a segment we send: ECT(0) on new data (RFC 3168 §6.1.5: never on a
/// retransmission, §6.1.4: nor on a pure ACK); with the precise echo on every segment but
/// the SYN's, as Linux's `TCP_ECN_ECT_PERMANENT`.
pub fn codepoint(t: &Tcb, new_data: bool, syn: bool) -> u8 {
    if t.ecn.ok && !syn && (new_data || t.ecn.low) {
        ECT0
    } else {
        0
    }
}

/// Whether a data segment changes the mark a precise echo reports while an ACK is owed for
/// earlier data: that ACK goes first, with the earlier mark (RFC 8257 §3.2; Linux's
/// `dctcp_ece_ack_update`).
pub fn echo_changes(t: &Tcb, seg: &SegmentIn<'_>) -> bool {
    t.ecn.ok
        && t.ecn.low
        && !seg.payload.is_empty()
        && seg.ce != t.ecn.echo
        && t.ack.unacked_bytes > 0
}

/// A data segment arrived: its CWR ends the echo of earlier marks, then its CE mark starts
/// it again (RFC 3168 §6.1.3; Linux's `tcp_ecn_accept_cwr` then `tcp_ecn_check_ce`). The
/// first mark is acknowledged at once: the sender may be down to a window of one segment.
pub fn on_data(t: &mut Tcb, seg: &SegmentIn<'_>, stats: &mut Counters) {
    if !t.ecn.ok {
        return;
    }
    stats.tcp_ecn_ce_recv += u64::from(seg.ce);
    if seg.flags.cwr {
        // The sender just cut its window, perhaps to one segment: ACK at once (Linux's
        // `tcp_ecn_accept_cwr`).
        t.ack.now = true;
    }
    if t.ecn.low {
        t.ecn.echo = seg.ce;
        return;
    }
    if seg.flags.cwr {
        t.ecn.echo = false;
    }
    if seg.ce {
        if !t.ecn.echo {
            t.ack.now = true;
        }
        t.ecn.echo = true;
    }
}

/// One segment in, the segments out: the handshake, the echo and the answer (RFC 3168 §6.1).
#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::TcpConfig;
    use super::*;
    use std::time::Duration;

    fn config(ecn: Ecn, low: bool) -> TcpConfig {
        TcpConfig {
            ecn,
            ecn_low: low,
            ..TcpConfig::default()
        }
    }

    /// A SYN that asks for ECN: ECE and CWR (RFC 3168 §6.1.1).
    fn ecn_syn() -> In {
        seg(PEER_ISS).syn().mss(1460).ece().cwr()
    }

    /// ESTABLISHED after a SYN that asked for ECN, on a stack configured so.
    fn established(ecn: Ecn, low: bool) -> Fixture {
        Fixture::with_config(config(ecn, low))
            .listening(16)
            .establish(ecn_syn())
    }

    #[test]
    fn a_syn_asking_for_ecn_gets_a_syn_ack_with_ece_alone() {
        let mut fx = Fixture::listen();
        let out = fx.send(ecn_syn());
        assert!(out[0].flags.ece && !out[0].flags.cwr, "{out:?}");
        assert_eq!(out[0].ecn, 0, "a SYN-ACK is not ECN-capable (§6.1.1)");
        fx.id = fx.tcp.conns.keys().next().copied();
        assert!(fx.tcb().ecn.ok);
        assert_eq!(fx.stats.tcp_ecn_negotiated, 1);
    }

    #[test]
    fn no_ecn_when_off_or_when_the_syn_does_not_ask_with_both_bits() {
        let syns = [
            (Ecn::Off, ecn_syn()),
            (Ecn::Passive, seg(PEER_ISS).syn().ece()),
            (Ecn::Passive, seg(PEER_ISS).syn().cwr()),
            (Ecn::On, seg(PEER_ISS).syn()),
        ];
        for (mode, syn) in syns {
            let mut fx = Fixture::with_config(config(mode, false)).listening(16);
            let out = fx.send(syn.clone());
            assert!(!out[0].flags.ece && !out[0].flags.cwr, "{mode:?} {syn:?}");
            fx.id = fx.tcp.conns.keys().next().copied();
            assert!(!fx.tcb().ecn.ok);
        }
    }

    #[test]
    fn an_active_open_asks_only_when_on_and_only_in_its_first_syn() {
        let fx = Fixture::syn_sent();
        assert!(!fx.tcb().ecn.syn_asked, "passive by default, as Linux");
        let mut fx = Fixture::with_config(config(Ecn::On, false));
        let remote = std::net::SocketAddr::new(PEER_IP, PEER_PORT);
        fx.tcp
            .connect(fx.now, Some(LOCAL_PORT), remote, &mut fx.stats)
            .expect("connect");
        let out = fx.output();
        assert!(out[0].flags.syn && out[0].flags.ece && out[0].flags.cwr);
        assert_eq!(out[0].ecn, 0, "a SYN is not ECN-capable (§6.1.1)");
        // The SYN is lost: its retransmission does not ask (§6.1.1.1).
        let out = fx.advance(Duration::from_secs(1));
        assert!(out[0].flags.syn && !out[0].flags.ece && !out[0].flags.cwr);
    }

    #[test]
    fn a_syn_ack_with_ece_alone_agrees_and_one_with_both_bits_does_not() {
        for (cwr, agreed) in [(false, true), (true, false)] {
            let mut fx = Fixture::with_config(config(Ecn::On, false)).connecting();
            let mut syn_ack = seg(PEER_ISS).syn().ack(fx.iss + 1).mss(1460).ece();
            if cwr {
                syn_ack = syn_ack.cwr();
            }
            let out = fx.send(syn_ack);
            assert!(!out[0].flags.ece && !out[0].flags.cwr, "{out:?}");
            assert_eq!(fx.tcb().ecn.ok, agreed);
            let out = fx.write(&[1; 100]);
            assert_eq!(out[0].ecn, if agreed { ECT0 } else { 0 });
        }
    }

    #[test]
    fn a_simultaneous_open_agrees_only_if_both_syns_asked() {
        for (mode, agreed) in [(Ecn::On, true), (Ecn::Passive, false)] {
            let mut fx = Fixture::with_config(config(mode, false)).connecting();
            let out = fx.send(ecn_syn());
            assert!(out[0].flags.syn && out[0].flags.ack, "a SYN-ACK: {out:?}");
            assert_eq!(fx.tcb().ecn.ok, agreed, "{mode:?}");
            assert_eq!(out[0].flags.ece, agreed, "{mode:?}");
        }
    }

    #[test]
    fn new_data_is_ect_but_pure_acks_and_retransmissions_are_not() {
        let mut fx = established(Ecn::Passive, false);
        let out = fx.write(&[1; 1000]);
        assert_eq!(out[0].ecn, ECT0, "new data (§6.1.2)");
        let out = fx.advance(Duration::from_secs(1));
        assert_eq!(out[0].payload.len(), 1000, "the retransmission: {out:?}");
        assert_eq!(out[0].ecn, 0, "a retransmission (§6.1.5)");
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1001).data(&[2; 100]).ce());
        assert!(out.len() == 1 && out[0].payload.is_empty() && out[0].flags.ece);
        assert_eq!(out[0].ecn, 0, "a pure ACK (§6.1.4)");
    }

    #[test]
    fn a_mark_is_echoed_at_once_and_until_the_senders_cwr() {
        let mut fx = established(Ecn::Passive, false);
        let mut seq = PEER_ISS + 1;
        let mut data = |fx: &mut Fixture, ce: bool, cwr: bool| {
            let mut s = seg(seq).ack(fx.iss + 1).data(&[3; 100]);
            if ce {
                s = s.ce();
            }
            if cwr {
                s = s.cwr();
            }
            seq += 100;
            let mut out = fx.send(s);
            out.extend(fx.advance(Duration::from_millis(200)));
            out.pop().expect("an ACK")
        };
        assert!(!data(&mut fx, false, false).flags.ece);
        let ack = data(&mut fx, true, false);
        assert!(ack.flags.ece, "the mark echoed (§6.1.3)");
        assert_eq!(fx.stats.tcp_ecn_ce_recv, 1);
        assert!(data(&mut fx, false, false).flags.ece, "until CWR");
        assert!(!data(&mut fx, false, true).flags.ece, "CWR ends the echo");
        assert!(
            data(&mut fx, true, true).flags.ece,
            "a new mark with the CWR"
        );
        // Past the quick ACKs of the connection's start, the first mark of an echo and
        // data with CWR are acknowledged at once, not after the delayed ACK: the sender's
        // window may be one segment.
        let mut fx = established(Ecn::Passive, false);
        let mut seq = PEER_ISS + 1;
        let mut send = |fx: &mut Fixture, s: In| {
            let s = In { seq, ..s };
            seq += 1460;
            fx.send(s.ack(fx.iss + 1).data(&[3; 1460]))
        };
        while !send(&mut fx, seg(Seq(0))).is_empty() {}
        let out = send(&mut fx, seg(Seq(0)).ce());
        assert!(out.len() == 1 && out[0].flags.ece, "{out:?}");
        assert!(send(&mut fx, seg(Seq(0))).is_empty(), "delayed again");
        let out = send(&mut fx, seg(Seq(0)).cwr());
        assert!(out.len() == 1 && !out[0].flags.ece, "{out:?}");
    }

    #[test]
    fn an_echo_cuts_the_window_once_a_window_and_the_next_data_says_cwr() {
        let mut fx = established(Ecn::Passive, false);
        fx.set_send_buffer(1 << 20);
        let out = fx.write(&[4; 200_000]);
        let sent = out.len();
        let cwnd = fx.tcb().cc.cwnd();
        assert_eq!(sent as u32 * 1460, cwnd, "a window of full segments");
        let first_end = fx.iss + 1 + 1460;
        let out = fx.send(seg(PEER_ISS + 1).ack(first_end).ece());
        assert_eq!(fx.stats.tcp_ecn_ece_recv, 1);
        assert_eq!(fx.stats.tcp_ecn_reductions, 1);
        let cut = fx.tcb().cc.cwnd();
        assert!(cut < cwnd, "cut from {cwnd} to {cut}");
        assert!(out.is_empty(), "the cut window is full");
        // More echoes within that window change nothing; the new data they let out starts
        // with CWR, once, on one segment.
        let mut out = Vec::new();
        for i in 2..sent as u32 {
            out.extend(fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1 + i * 1460).ece()));
        }
        assert_eq!(fx.stats.tcp_ecn_reductions, 1);
        assert!(fx.tcb().cc.cwnd() <= cut, "no growth on echoing ACKs");
        out.extend(fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1 + sent as u32 * 1460)));
        let flags: Vec<_> = out.iter().map(|s| (s.flags.cwr, s.payload.len())).collect();
        assert_eq!(flags[0], (true, 1460), "{flags:?}");
        assert!(flags[1..].iter().all(|&(cwr, _)| !cwr), "{flags:?}");
        assert!(out.iter().all(|s| s.ecn == ECT0));
        // An echo past that window is new congestion: another cut (Linux's CWR again).
        let una = fx.tcb().snd.una;
        fx.send(seg(PEER_ISS + 1).ack(una + 1460).ece());
        assert_eq!(fx.stats.tcp_ecn_reductions, 2);
    }

    #[test]
    fn a_precise_echo_follows_each_segments_mark_and_acks_the_earlier_data_first() {
        let mut fx = established(Ecn::Passive, true);
        let mut seq = PEER_ISS + 1;
        let mut data = |fx: &mut Fixture, ce: bool| {
            let mut s = seg(seq).ack(fx.iss + 1).data(&[5; 1460]);
            if ce {
                s = s.ce();
            }
            seq += 1460;
            fx.send(s)
        };
        // Past the quick ACKs of a connection's start, an unmarked segment waits.
        while !data(&mut fx, false).is_empty() {}
        // The mark changes: the unmarked segment is acknowledged first, unmarked.
        let before = fx.tcb().rcv.nxt;
        let out = data(&mut fx, true);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].ack, Some(before));
        assert!(!out[0].flags.ece);
        let out = data(&mut fx, true);
        assert_eq!(out.len(), 1, "every second segment: {out:?}");
        assert!(out[0].flags.ece, "both marked");
        assert_eq!(out[0].ack, Some(before + 2 * 1460));
        assert!(data(&mut fx, false).is_empty(), "nothing owed before it");
        let out = fx.advance(Duration::from_millis(200));
        assert!(!out[0].flags.ece, "the last one was not marked");
        // The precise echo sends ACKs ECT too, as Linux's ECT_PERMANENT.
        assert_eq!(out[0].ecn, ECT0);
    }

    #[test]
    fn a_syn_cookie_connection_does_without_ecn() {
        let mut fx = Fixture::with_config(TcpConfig {
            syn_backlog: 0,
            ..TcpConfig::default()
        })
        .listening(16);
        let out = fx.send(ecn_syn());
        assert_eq!(fx.stats.tcp_syncookies_sent, 1);
        assert!(!out[0].flags.ece, "the cookie keeps no ECN: {out:?}");
        let cookie = out[0].seq;
        fx.send(seg(PEER_ISS + 1).ack(cookie + 1));
        fx.id = fx.tcp.conns.keys().next().copied();
        assert!(!fx.tcb().ecn.ok);
    }
}
