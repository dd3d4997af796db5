//! Connection timers: retransmission (RFC 6298), delayed ACK (RFC 1122 §4.2.3.2), zero-window
//! probes (RFC 9293 §3.8.6.1), TIME-WAIT (§3.4.2) and the orphan FIN-WAIT-2 timeout.

use super::output;
use super::tcb::State;
use super::trace::{LossTimer, Trigger};
use super::Tcp;
use crate::id::SocketId;
use crate::stats::Counters;
use crate::time::Instant;
use std::time::Duration;

/// R1 (RFC 9293 §3.8.3, RFC 1122 §4.2.3.5): after this many retransmissions of the same
/// segment, TCP gives IP negative advice about the path (MUST-20); Linux's `tcp_retries1` is
/// 3 too (its advice drops a stale route; here IP confirms the next hop again).
pub const R1: u32 = 3;

/// Zero-window probes back off up to this interval and never give up.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// Zero-window probes, backed off, after which a connection nobody holds any more is given up
/// (Linux's `tcp_orphan_retries`, whose default of 0 means 8): a peer that keeps its window
/// shut must not keep an orphan and its send buffer for ever.
const ORPHAN_PROBES: u32 = 8;

/// The kinds of connection timer (RACK's reordering and probe timers live with its state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Retransmission timeout (RFC 6298).
    Rto,
    /// Delayed ACK (RFC 1122 §4.2.3.2).
    DelayedAck,
    /// Zero-window probe (RFC 9293 §3.8.6.1).
    Persist,
    /// 2 MSL in TIME-WAIT (RFC 9293 §3.4.2).
    TimeWait,
    /// An orphan's FIN-WAIT-2 timeout (Linux `tcp_fin_timeout`).
    FinWait2,
    /// Keep-alive probe (RFC 1122 §4.2.3.6).
    Keepalive,
    /// A paced segment's release time ([`super::pacing`]).
    Pacing,
}

/// One connection's timers: a deadline per [`Timer`] kind, and the counts the backed-off
/// ones keep.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timers {
    /// Retransmission timeout deadline (RFC 6298).
    pub rto: Option<Instant>,
    /// Delayed ACK deadline (RFC 1122 §4.2.3.2).
    pub delack: Option<Instant>,
    /// Zero-window probe deadline (RFC 9293 §3.8.6.1).
    pub persist: Option<Instant>,
    /// End of TIME-WAIT: 2 MSL (RFC 9293 §3.4.2).
    pub timewait: Option<Instant>,
    /// End of an orphan's FIN-WAIT-2 (Linux `tcp_fin_timeout`).
    pub finwait2: Option<Instant>,
    /// Next keep-alive probe (RFC 1122 §4.2.3.6).
    pub keepalive: Option<Instant>,
    /// Output held back by pacing resumes then.
    pub pacing: Option<Instant>,
    /// Zero-window probes sent in a row (their interval doubles).
    pub persist_backoff: u32,
    /// Keep-alive probes sent since the peer was last heard from.
    pub keepalive_probes: u32,
    /// The deadline the connection is filed under in the stack's timer index.
    pub key: Option<Instant>,
}

impl Timers {
    /// Every deadline with its kind.
    pub fn all(&self) -> [(Option<Instant>, Timer); 7] {
        [
            (self.rto, Timer::Rto),
            (self.delack, Timer::DelayedAck),
            (self.persist, Timer::Persist),
            (self.timewait, Timer::TimeWait),
            (self.finwait2, Timer::FinWait2),
            (self.keepalive, Timer::Keepalive),
            (self.pacing, Timer::Pacing),
        ]
    }

    /// The earliest deadline and its kind.
    pub fn next(&self) -> Option<(Instant, Timer)> {
        self.all()
            .into_iter()
            .filter_map(|(at, kind)| at.map(|at| (at, kind)))
            .min_by_key(|(at, _)| *at)
    }

    /// Stops every timer.
    pub fn clear(&mut self) {
        self.rto = None;
        self.delack = None;
        self.persist = None;
        self.timewait = None;
        self.finwait2 = None;
        self.keepalive = None;
        self.pacing = None;
    }
}

fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}

impl Tcp {
    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Instant, stats: &mut Counters) {
        self.intercept_poll(now, stats);
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(t) = self.conns.get_mut(&id) {
                t.timers.key = None;
            }
            self.on_timer(id, now, stats);
        }
    }

    fn on_timer(&mut self, id: SocketId, now: Instant, stats: &mut Counters) {
        let Some(t) = self.conns.get_mut(&id) else {
            return;
        };
        if t.state == State::Closed {
            // Nothing runs on a closed connection; a timer left behind must not spin.
            t.clear_timers();
            self.reschedule(id);
            return;
        }
        if due(t.timers.timewait, now) || due(t.timers.finwait2, now) {
            self.closed(id, now, None, stats);
            return;
        }
        let mut sink = output::Sink {
            out: &mut self.out,
            stats,
            mtus: &self.mtus,
            ato: self.cfg.delayed_ack,
            tso: self.cfg.tso,
        };
        if due(t.recovery.rack.pto_at, now) {
            // A probe due with the RTO goes in its place and restarts it (RFC 8985 §7.3).
            t.trace_timer(now, LossTimer::Pto);
            output::tail_probe(t, now, &mut sink);
        }
        if due(t.timers.rto, now) {
            t.trace_timer(now, LossTimer::Rto);
            t.timers.rto = None;
            t.rtx.retries += 1;
            let handshake = matches!(t.state, State::SynSent | State::SynReceived);
            let limit = if handshake {
                self.cfg.syn_retries
            } else {
                t.user.max_retries.unwrap_or(self.cfg.max_retries)
            };
            if t.rtx.retries > limit {
                sink.stats.tcp_aborted_timeout += 1;
                // What the network said, if anything, explains the timeout better (Linux).
                let err = t.io().soft_error.take().unwrap_or(libc::ETIMEDOUT);
                self.closed(id, now, Some(err), stats);
                return;
            }
            sink.stats.tcp_timeouts += 1;
            // A connection a listener is still opening gives none (Linux's request sockets
            // do not either): spoofed SYNs must not make IP ask about anything.
            if t.rtx.retries == R1 && t.state != State::SynReceived {
                // MUST-20: the next hop may be gone; IP confirms it again.
                sink.stats.tcp_negative_advice += 1;
                self.negative_advice.push(t.remote.ip());
            }
            // RFC 6298 §5.5–5.7: back off, resend from the oldest unacknowledged byte; RFC 5681
            // §3.1: collapse the window; Karn: no RTT sample from retransmitted data.
            t.rtx.rtt.backoff();
            t.rtx.rtt_probe = None;
            if handshake {
                t.snd.nxt = t.snd.iss;
            } else {
                // A timeout within fast recovery does not cut again: the threshold comes from
                // the window before the recovery (Linux `tcp_enter_loss` keeps ssthresh).
                let window = match t.recovery.recover {
                    Some(_) => super::recovery::prior_cwnd(t).unwrap_or(t.cc.cwnd()),
                    None => t.cc.cwnd(),
                };
                t.trace_lost(now, t.snd.max, Trigger::Rto);
                if let Some(rate) = t.rate.as_mut() {
                    // Everything in flight is lost (Linux `tcp_enter_loss` marks it so).
                    let board = &t.recovery.scoreboard;
                    rate.on_lost(t.snd.una, t.snd.max, |a, b| board.unsacked(a, b));
                    rate.on_timeout(t.snd.max);
                }
                super::recovery::begin_episode(t);
                t.cc.on_timeout(now, window);
                t.recovery.on_timeout(t.snd.una);
                t.snd.nxt = t.snd.una;
                t.rtx.rto_recover = Some(t.snd.max);
                if let Some(ts) = t.opts.ts {
                    t.rtx.rto_stamp = Some(output::ts_now(now, ts.offset));
                }
                t.trace_trigger(now, Trigger::Rto);
            }
            t.timers.rto = Some(now + t.rtx.rtt.rto());
        }
        if let Some(ka) = t.user.keepalive.filter(|_| due(t.timers.keepalive, now)) {
            if t.timers.keepalive_probes >= ka.probes {
                sink.stats.tcp_keepalive_drops += 1;
                self.closed(id, now, Some(libc::ETIMEDOUT), stats);
                return;
            }
            t.timers.keepalive = Some(now + ka.interval);
            if t.state.synchronized() && t.snd.max == t.snd.una {
                // A probe is an old sequence number with no data: the peer answers with an ACK.
                t.timers.keepalive_probes += 1;
                output::probe(t, now, &mut sink);
                sink.stats.tcp_keepalive_probes += 1;
            }
        }
        if due(t.recovery.rack.reo_at, now) {
            t.trace_timer(now, LossTimer::Reorder);
            super::recovery::detect_loss(t, now, sink.stats);
        }
        if due(t.timers.pacing, now) {
            // The flush below sends what pacing held back.
            t.timers.pacing = None;
        }
        if due(t.timers.delack, now) {
            t.timers.delack = None;
            t.ack.now = true;
            // No reply carried the ACK in time: not interactive after all.
            t.ack.delack.pingpong = false;
        }
        if due(t.timers.persist, now) && t.snd.wnd > 0 {
            t.timers.persist = None;
            t.output.sws_override = true;
        } else if due(t.timers.persist, now)
            && t.user.orphan
            && t.timers.persist_backoff >= ORPHAN_PROBES
        {
            // An orphan whose peer kept its window shut through every probe: nothing will
            // ever read what is left (Linux aborts it in `tcp_probe_timer`, without a RST).
            sink.stats.tcp_orphan_probe_drops += 1;
            self.closed(id, now, Some(libc::ETIMEDOUT), stats);
            return;
        } else if due(t.timers.persist, now) {
            // The probe makes the peer state its window; for a connection with a handle it never
            // counts towards the retry limit.
            t.trace_timer(now, LossTimer::Persist);
            output::probe(t, now, &mut sink);
            sink.stats.tcp_zero_window_probes += 1;
            t.timers.persist_backoff = (t.timers.persist_backoff + 1).min(16);
            let interval = t
                .rtx
                .rtt
                .rto()
                .saturating_mul(1 << t.timers.persist_backoff.min(6));
            t.timers.persist = Some(now + interval.min(MAX_PROBE_INTERVAL));
        }
        self.flush(id, now, stats);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::tcb::State;
    use std::time::Duration;

    /// Runs timers in 1 ms steps until something is sent; how long that took, and what.
    fn next_send(fx: &mut Fixture, limit: Duration) -> (Duration, Vec<Out>) {
        let start = fx.now;
        while fx.now - start < limit {
            let out = fx.advance(Duration::from_millis(1));
            if !out.is_empty() {
                return (fx.now - start, out);
            }
        }
        panic!("nothing sent within {limit:?}");
    }

    #[test]
    fn time_wait_lasts_two_msl() {
        let mut fx = Fixture::established();
        let id = fx.id.unwrap();
        fx.tcp
            .shutdown(id, fx.now, false, true, &mut fx.stats)
            .unwrap();
        fx.output();
        fx.send(seg(PEER_ISS + 1).ack(fx.iss + 2).fin());
        assert_eq!(fx.tcb().state, State::TimeWait);
        let two_msl = 2 * fx.tcp.cfg.msl;
        fx.advance(two_msl - Duration::from_millis(1));
        assert_eq!(fx.tcb().state, State::TimeWait);
        fx.advance(Duration::from_millis(2));
        assert_eq!(fx.tcp.state(id).unwrap_or(State::Closed), State::Closed);
    }

    #[test]
    fn the_retransmission_timer_doubles_at_each_timeout() {
        let mut fx = Fixture::established();
        fx.write(b"lost");
        let (first, out) = next_send(&mut fx, Duration::from_secs(5));
        assert_eq!(out[0].payload, b"lost");
        let (second, _) = next_send(&mut fx, Duration::from_secs(10));
        let (third, _) = next_send(&mut fx, Duration::from_secs(20));
        // The handshake measured an RTT of ~0, so the first RTO is the 200 ms floor (Linux's
        // `TCP_RTO_MIN`); each timeout doubles it (RFC 6298 §5.5).
        assert_eq!(first, Duration::from_millis(200));
        assert_eq!(second, 2 * first);
        assert_eq!(third, 2 * second);
        assert_eq!(fx.stats.tcp_timeouts, 3, "{:?}", fx.stats);
    }

    #[test]
    fn keepalive_probes_at_its_interval_and_gives_up_after_its_count() {
        let mut fx = Fixture::established();
        let id = fx.id.unwrap();
        let ka = crate::config::Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            probes: 3,
        };
        let now = fx.now;
        fx.tcp.set_keepalive_with(id, now, Some(ka)).unwrap();
        let (idle, out) = next_send(&mut fx, Duration::from_secs(20));
        assert_eq!(idle, Duration::from_secs(10));
        assert_eq!(
            out[0].seq, fx.iss,
            "an old sequence number, no data (RFC 1122 §4.2.3.6)"
        );
        assert!(out[0].payload.is_empty());
        for _ in 0..2 {
            let (gap, _) = next_send(&mut fx, Duration::from_secs(5));
            assert_eq!(gap, Duration::from_secs(1));
        }
        fx.advance(Duration::from_secs(1));
        assert_eq!(fx.tcb().state, State::Closed, "three probes unanswered");
        assert_eq!(fx.tcb().io().error, Some(libc::ETIMEDOUT));
        let bad = crate::config::Keepalive { probes: 0, ..ka };
        assert!(fx.tcp.set_keepalive_with(id, now, Some(bad)).is_err());
    }

    #[test]
    fn an_orphan_at_a_zero_window_is_dropped_after_eight_backed_off_probes() {
        use super::super::fixture::seg;
        let mut fx = Fixture::established();
        let id = fx.id.unwrap();
        assert!(fx
            .send(seg(PEER_ISS + 1).ack(fx.iss + 1).window(0))
            .is_empty());
        fx.write(b"never read");
        let now = fx.now;
        fx.tcp.close(id, now, &mut fx.stats);
        assert!(fx.tcb().user.orphan);
        // Each probe is answered with the window still shut, and the next waits twice as long.
        let mut gaps = Vec::new();
        for _ in 0..super::ORPHAN_PROBES {
            let (gap, _) = next_send(&mut fx, Duration::from_secs(600));
            gaps.push(gap);
            fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).window(0));
        }
        assert!(gaps.windows(2).all(|w| w[1] >= w[0]), "{gaps:?}");
        // Dropped at the next probe's time, after the last backed-off interval.
        fx.advance(Duration::from_secs(61));
        assert!(fx.tcp.tcb(id).is_none(), "the orphan is gone");
        assert_eq!(fx.stats.tcp_orphan_probe_drops, 1);
    }

    #[test]
    fn a_connection_with_its_handle_is_probed_at_a_zero_window_as_long_as_it_takes() {
        use super::super::fixture::seg;
        let mut fx = Fixture::established();
        let id = fx.id.unwrap();
        fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).window(0));
        fx.write(b"waiting");
        for _ in 0..20 {
            let (_, out) = next_send(&mut fx, Duration::from_secs(600));
            assert!(!out.is_empty());
            fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).window(0));
        }
        assert_eq!(fx.tcp.tcb(id).unwrap().state, State::Established);
    }
}
