//! Connection timers: retransmission (RFC 6298), delayed ACK (RFC 1122 §4.2.3.2), zero-window
//! probes (RFC 9293 §3.8.6.1), TIME-WAIT (§3.4.2) and the orphan FIN-WAIT-2 timeout.

use super::output;
use super::tcb::State;
use super::Tcp;
use crate::id::SocketId;
use crate::stats::Counters;
use crate::time::Instant;
use std::time::Duration;

/// Zero-window probes back off up to this interval and never give up.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(60);

fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}

impl Tcp {
    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Instant, stats: &mut Counters) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(t) = self.conns.get_mut(&id) {
                t.timer_key = None;
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
        if due(t.timewait_at, now) || due(t.finwait2_at, now) {
            self.closed(id, None, stats);
            return;
        }
        let mut sink = output::Sink {
            out: &mut self.out,
            stats,
            our_mss: self.our_mss,
            ato: self.cfg.delayed_ack,
            tso: self.cfg.tso,
        };
        if due(t.rack.pto_at, now) {
            // A probe due with the RTO goes in its place and restarts it (RFC 8985 §7.3).
            output::tail_probe(t, now, &mut sink);
        }
        if due(t.rto_at, now) {
            t.rto_at = None;
            t.retries += 1;
            let handshake = matches!(t.state, State::SynSent | State::SynReceived);
            let limit = if handshake {
                self.cfg.syn_retries
            } else {
                self.cfg.max_retries
            };
            if t.retries > limit {
                sink.stats.tcp_aborted_timeout += 1;
                self.closed(id, Some(libc::ETIMEDOUT), stats);
                return;
            }
            sink.stats.tcp_timeouts += 1;
            // RFC 6298 §5.5–5.7: back off, resend from the oldest unacknowledged byte; RFC 5681
            // §3.1: collapse the window; Karn: no RTT sample from retransmitted data.
            t.rtt.backoff();
            t.rtt_probe = None;
            if handshake {
                t.snd_nxt = t.iss;
            } else {
                let flight = t.snd_max.since(t.snd_una);
                t.cc.on_timeout(now, flight);
                t.recover = None;
                t.high_rxt = t.snd_una;
                t.recovery_inflation = 0;
                t.dupacks = 0;
                t.snd_nxt = t.snd_una;
                t.rack.on_timeout();
                t.rto_recover = Some(t.snd_max);
                if let Some(ts) = t.ts {
                    t.rto_stamp = Some(output::ts_now(now, ts.offset));
                }
            }
            t.rto_at = Some(now + t.rtt.rto());
        }
        if due(t.keepalive_at, now) {
            if t.keepalive_probes >= self.cfg.keepalive_probes {
                sink.stats.tcp_keepalive_drops += 1;
                self.closed(id, Some(libc::ETIMEDOUT), stats);
                return;
            }
            t.keepalive_at = Some(now + self.cfg.keepalive_interval);
            if t.state.synchronized() && t.snd_max == t.snd_una {
                // A probe is an old sequence number with no data: the peer answers with an ACK.
                t.keepalive_probes += 1;
                output::probe(t, now, &mut sink);
                sink.stats.tcp_keepalive_probes += 1;
            }
        }
        if due(t.rack.reo_at, now) {
            super::recovery::detect_loss(t, now, sink.stats);
        }
        if due(t.delack_at, now) {
            t.delack_at = None;
            t.ack_now = true;
            // No reply carried the ACK in time: not interactive after all.
            t.delack.pingpong = false;
        }
        if due(t.persist_at, now) && t.snd_wnd > 0 {
            t.persist_at = None;
            t.sws_override = true;
        } else if due(t.persist_at, now) {
            // The probe makes the peer state its window; it never counts towards the retry
            // limit.
            output::probe(t, now, &mut sink);
            sink.stats.tcp_zero_window_probes += 1;
            t.persist_backoff = (t.persist_backoff + 1).min(16);
            let interval = t.rtt.rto().saturating_mul(1 << t.persist_backoff.min(6));
            t.persist_at = Some(now + interval.min(MAX_PROBE_INTERVAL));
        }
        self.flush(id, now, stats);
    }
}
